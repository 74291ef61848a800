"""Benchmark: load a 2-series MR study and write its SEG, against plain pydicom reading.

Writes a synthetic study (FLAIR 2-D axial, T1CE 3-D sagittal, 512×512 slices), then times in
one run: plain pydicom (dcmread every file + stack pixel arrays, the baseline), glioedge's
``load_study`` (scan, identify, geometry checks, fusion onto the T1CE grid) and ``write_seg``
(BINARY and LABELMAP, saved to disk). Prints a table and writes bench/results/dicom_io.json.

    .venv/bin/python bench/dicom_io.py            # 176 + 30 slices of 512×512
    .venv/bin/python bench/dicom_io.py --quick    # 48 + 12 slices of 128×128
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from glioedge.dicom_io import load_study, read_seg, write_seg
from glioedge.synth import write_synthetic_series
from glioedge.synth.phantom import grid_affine, phantom_image, phantom_labels


def _write(folder: Path, modality: str, shape, spacing, orientation, number: int) -> None:
    affine = grid_affine(shape, spacing, orientation)
    image = np.empty(shape, dtype=np.uint16)
    for k in range(shape[2]):  # slice by slice: the phantom's grid points stay small
        shifted = affine.copy()
        shifted[:3, 3] = affine[:3, :3] @ [0, 0, k] + affine[:3, 3]
        image[:, :, k] = phantom_image((*shape[:2], 1), shifted, modality, seed=k)[:, :, 0]
    write_synthetic_series(folder / modality, image, affine, modality=modality,
                           storage="mr", series_number=number)


def _timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small study (for CI)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = 128 if args.quick else 512
    t1_slices, flair_slices = (48, 12) if args.quick else (176, 30)
    t1_grid = ((n, n, t1_slices), (256 / n, 256 / n, 176 / t1_slices), "sagittal")
    flair_grid = ((n, n, flair_slices), (230 / n, 230 / n, 150 / flair_slices), "axial")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "study"
        _write(folder, "t1ce", *t1_grid, number=7)
        _write(folder, "flair", *flair_grid, number=3)
        files = sorted(folder.rglob("*.dcm"))

        def baseline():
            datasets = [pydicom.dcmread(p) for p in files]
            return [np.stack([d.pixel_array for d in datasets if d.SeriesNumber == s])
                    for s in (3, 7)]

        _, t_base = _timed(baseline, args.repeats)
        loaded, t_load = _timed(lambda: load_study(folder), args.repeats)
        reference = loaded.series["t1ce"].datasets
        labels = phantom_labels(loaded.volumes["t1ce"].shape, loaded.volumes["t1ce"].affine)[1]
        results = {}
        for kind in ("BINARY", "LABELMAP"):
            path = Path(tmp) / f"seg_{kind}.dcm"
            _, t_seg = _timed(lambda kind=kind, path=path: write_seg(
                labels, reference, loaded.series["flair"].datasets,
                segmentation_type=kind).save_as(path), args.repeats)
            back = read_seg(path, loaded.volumes["t1ce"])
            assert np.array_equal(back.array, labels)
            results[kind] = (t_seg, path.stat().st_size)
    rows = [("plain pydicom read + stack (baseline)", t_base),
            ("load_study (scan, identify, check, fuse)", t_load),
            ("write_seg BINARY + save", results["BINARY"][0]),
            ("write_seg LABELMAP + save", results["LABELMAP"][0])]
    print(f"study: T1CE {t1_slices} + FLAIR {flair_slices} slices of {n}×{n}, "
          f"{len(files)} files; best of {args.repeats}")
    print(f"{'step':<44}{'seconds':>9}{'× baseline':>12}")
    for name, seconds in rows:
        print(f"{name:<44}{seconds:>9.3f}{seconds / t_base:>12.2f}")
    print(f"SEG sizes: BINARY {results['BINARY'][1] / 1e6:.2f} MB, "
          f"LABELMAP {results['LABELMAP'][1] / 1e6:.2f} MB")
    out = Path(__file__).parent / "results" / "dicom_io.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "quick": args.quick, "size": [n, n], "slices": {"t1ce": t1_slices, "flair": flair_slices},
        "repeats": args.repeats, "machine": platform.platform(), "python": platform.python_version(),
        "seconds": dict(rows),
        "seg_bytes": {k: v[1] for k, v in results.items()},
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
