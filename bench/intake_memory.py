"""Benchmark: peak memory of DICOM intake on a study with 6 series it does not use.

The study: FLAIR (2-D axial) and T1CE (3-D sagittal), which are used, plus DWI, ADC, a DSC
perfusion time series, a localiser, a T2 and an SWI, which are not. Each way of loading runs in
its own process (peak RSS only grows), in the same run:

* ``baseline``: glioedge before headers-first intake (commit ``ec864a6``, extracted with
  ``git archive``): ``load_study(folder)``, whose scan read every file whole.
* ``folder``: this tree's ``load_study(folder)``: headers first, pixel data only for FLAIR/T1CE.
* ``inbox headers``: the daemon's way with this tree: headers read with ``stop_before_pixels``
  (as ``Inbox`` does), handed over as datasets; pixel data is read from their files.
* ``whole datasets``: this tree given every file read whole (the daemon's ``read_study`` today).
* ``floor``: this tree's ``load_study(folder)`` on a copy of the study without the 6 extra series:
  what loading and fusing FLAIR + T1CE costs by itself.

Peak RSS is the process's VmHWM while loading (reset after the imports through
``/proc/self/clear_refs``, Linux), reported as is and as growth above the RSS after imports.
Prints a table and writes bench/results/intake_memory.json.

    .venv/bin/python bench/intake_memory.py           # 256² T1CE 176 slices, perfusion 40×30
    .venv/bin/python bench/intake_memory.py --quick   # small, for CI
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "ec864a6"

#: The child: load one way, print RSS (MiB) before loading and its peak while loading, and the time.
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import pydicom
from glioedge.dicom_io import load_study
mode, folder = sys.argv[1], Path(sys.argv[2])
def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
files = sorted(p for p in folder.rglob("*.dcm"))
import_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak (VmHWM) to the current RSS
t0 = time.perf_counter()
if mode in ("baseline", "folder", "floor"):
    loaded = load_study(folder)
elif mode == "inbox headers":
    loaded = load_study([pydicom.dcmread(p, stop_before_pixels=True) for p in files])
else:
    loaded = load_study([pydicom.dcmread(p) for p in files])
seconds = time.perf_counter() - t0
shape = loaded.volumes["t1ce"].shape
import glioedge
print(json.dumps({"glioedge": str(Path(glioedge.__file__).parent.parent), "before_mib": before,
                  "peak_mib": status("VmHWM"), "import_peak_mib": import_peak,
                  "seconds": seconds, "shape": shape,
                  "flair": loaded.series["flair"].series_number}))
"""


def _write(folder: Path, quick: bool) -> dict[str, int]:
    """Write the study; returns files per series."""
    from glioedge.synth import write_synthetic_series
    from glioedge.synth.phantom import grid_affine, phantom_image

    n = 96 if quick else 256
    rng = np.random.default_rng(0)
    counts = {}

    def used(modality: str, shape: tuple[int, int, int], spacing, orientation: str, number: int) -> None:
        affine = grid_affine(shape, spacing, orientation)
        image = np.empty(shape, dtype=np.uint16)
        for k in range(shape[2]):  # slice by slice: the phantom's grid stays small
            shifted = affine.copy()
            shifted[:3, 3] = affine[:3, :3] @ [0, 0, k] + affine[:3, 3]
            image[:, :, k] = phantom_image((*shape[:2], 1), shifted, modality, seed=k)[:, :, 0]
        counts[modality] = len(write_synthetic_series(folder / modality, image, affine,
                                                      modality=modality, series_number=number))

    slices = 48 if quick else 176
    used("t1ce", (n, n, slices), (256 / n, 256 / n, 176 / slices), "sagittal", 7)
    used("flair", (n, n, 30), (230 / n, 230 / n, 5.0), "axial", 3)
    # (name, description, shape, number): noise images, never loaded by intake.
    frames = 10 if quick else 40
    extras = [("dwi", "AX DWI b0 b1000 TRACE", (n, n, 60), 4), ("adc", "AX DWI ADC", (n, n, 30), 5),
              ("perfusion", "ep2d_perf DSC perfusion", (n // 2, n // 2, 30 * frames), 6),
              ("localizer", "AAHead_Scout localizer", (n, n, 3), 1), ("t2", "AX T2 TSE", (n, n, 30), 8),
              ("swi", "AX SWI", (n, n, 72), 9)]
    for name, description, shape, number in extras:
        affine = grid_affine(shape, (230 / shape[0], 230 / shape[1], 1.0), "axial")
        image = rng.integers(0, 1000, size=shape, dtype=np.uint16)
        counts[name] = len(write_synthetic_series(
            folder / name, image, affine, modality="t2", series_number=number,
            overrides={"SeriesDescription": description, "ProtocolName": description}))
    return counts


def _baseline_tree(out: Path) -> Path:
    """glioedge at BASELINE_COMMIT, extracted (only the package)."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE_COMMIT, "glioedge"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(out, filter="data")
    return out


def _run(mode: str, folder: Path, pythonpath: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1"}
    # cwd: ``python -c`` puts the working directory first on sys.path, ahead of PYTHONPATH.
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(folder)], env=env, cwd=folder,
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small study (for CI)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode (best kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "study"
        t0 = time.perf_counter()
        counts = _write(folder, args.quick)
        size_mib = sum(p.stat().st_size for p in folder.rglob("*.dcm")) / 2**20
        used_mib = sum(p.stat().st_size for m in ("flair", "t1ce")
                       for p in (folder / m).glob("*.dcm")) / 2**20
        print(f"study written in {time.perf_counter() - t0:.1f} s: {sum(counts.values())} files, "
              f"{size_mib:.1f} MiB ({used_mib:.1f} MiB in FLAIR + T1CE); series: {counts}")
        baseline = _baseline_tree(Path(tmp) / "baseline")
        only_used = Path(tmp) / "only_used"
        for modality in ("flair", "t1ce"):
            shutil.copytree(folder / modality, only_used / modality)
        modes = {"baseline": baseline, "folder": ROOT, "inbox headers": ROOT, "whole datasets": ROOT,
                 "floor": ROOT}
        results = {}
        for mode, path in modes.items():
            source = only_used if mode == "floor" else folder
            runs = [_run(mode, source, path) for _ in range(args.repeats)]
            results[mode] = min(runs, key=lambda r: r["peak_mib"])
    base = results["baseline"]
    rows = []
    for mode, r in results.items():
        growth = r["peak_mib"] - r["before_mib"]
        rows.append({"mode": mode, "peak RSS MiB": r["peak_mib"], "growth MiB": growth,
                     "growth / baseline": growth / (base["peak_mib"] - base["before_mib"]),
                     "seconds": r["seconds"], "FLAIR #": r["flair"]})
    print(f"\nbaseline = glioedge {BASELINE_COMMIT} (scan read every file whole); growth = peak RSS "
          "minus RSS after imports")
    print_table(rows, ["mode", "peak RSS MiB", "growth MiB", "growth / baseline", "seconds", "FLAIR #"])
    write_json("intake_memory", {"quick": args.quick, "baseline_commit": BASELINE_COMMIT,
                                 "files": counts, "study_mib": size_mib, "used_mib": used_mib,
                                 "results": results, "rows": rows})


if __name__ == "__main__":
    main()
