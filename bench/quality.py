"""Benchmark: the quality verdict (issue 19) on a catalogue of perturbations of held-out cases.

Held-out synthetic cases of the ``brats-like`` cohort (seeds 1000+, training profile from seeds
0..--train-cases-1, as export records it) are perturbed:

heavy Rician noise; motion ghosting (a shifted copy of the image along the phase axis); a strong
bias field; FLAIR replaced by the T2 (a mislabelled series); T1CE without enhancement (the T1
instead); the top 30 % of the brain cut off; 7 mm slices; intensities ×10; a resection cavity
(the tumour core becomes fluid: dark on FLAIR/T1CE, no enhancing rim; the truth there becomes
background); a healthy brain (no tumour drawn).

Two modes:

* ``--bundle B``: each case runs through ``Segmenter.segment_volumes`` (preprocess, sliding
  window, post-processing, verdict; no DICOM writing): verdicts, the whole-tumour Dice against the
  truth and its change from the clean case, and the verdict's share of the study's time
  (``timings["quality"] / timings["total"]``, same run). A bundle without a ``quality`` block gets
  the training profile computed here.
* no bundle (``oracle``): the truth is the segmentation (a perfect model), so only the input-side
  signals (intensity distribution, coverage, thickness) and the anatomy/no-tumour logic are
  exercised; no Dice.

Prints a table and writes bench/results/quality_<mode>.json.

    python bench/quality.py [--bundle B] [--cases 5] [--train-cases 6] [--only P ...] [--tag T]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

from glioedge.data.preprocess import PreprocessParams, preprocess
from glioedge.intensity_profile import merge_profiles, profile
from glioedge.synth.cohort import cohort_config, make_case

MODS = ("flair", "t1ce")
GRID = {"shape": (96, 96, 64), "spacing": (2.0, 2.0, 2.0)}
PERTURBATIONS = ("clean", "noise", "ghosting", "bias", "flair_is_t2", "t1ce_no_enhancement",
                 "top_30pct_cut", "slices_7mm", "scaled_x10", "resection_cavity", "healthy")


def _case(seed: int, perturbation: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(images by modality, truth labels, affine) of one held-out case, perturbed."""
    cfg = cohort_config("brats-like", **GRID)
    if perturbation == "slices_7mm":
        cfg = replace(cfg, shape=(96, 96, 19), spacing=(2.0, 2.0, 7.0))
    if perturbation == "healthy":
        cfg = replace(cfg, n_tumours=0)
    case = make_case(seed, cfg)
    img = {str(getattr(k, "value", k)): np.asarray(v, np.float32) for k, v in case.images.items()}
    label = np.asarray(case.label, np.uint8)
    brain = img["t1ce"] > 0
    rng = np.random.default_rng(seed)
    if perturbation == "noise":
        for m, v in list(img.items()):
            s = 0.3 * float(np.median(v[brain]))
            img[m] = np.where(brain, np.hypot(v + rng.normal(0, s, brain.shape),
                                              rng.normal(0, s, brain.shape)), 0).astype(np.float32)
    elif perturbation == "ghosting":
        for m, v in list(img.items()):
            img[m] = v + 0.35 * np.roll(v, v.shape[1] // 4, axis=1)
    elif perturbation == "bias":
        x = np.linspace(-1, 1, brain.shape[0])[:, None, None]
        for m, v in list(img.items()):
            img[m] = v * np.exp(0.9 * x).astype(np.float32)
    elif perturbation == "flair_is_t2":
        img["flair"] = img["t2"]
    elif perturbation == "t1ce_no_enhancement":
        img["t1ce"] = img["t1"]
    elif perturbation == "top_30pct_cut":
        ks = np.where(brain.any((0, 1)))[0]
        top = int(ks[0] + 0.7 * (ks[-1] - ks[0]))
        img = {m: v[:, :, :top] for m, v in img.items()}
        label = label[:, :, :top]
    elif perturbation == "scaled_x10":
        img = {m: v * 10 for m, v in img.items()}
    elif perturbation == "resection_cavity":
        core = (label == 1) | (label == 3)
        csf = {"flair": 0.1, "t1ce": 0.15, "t1": 0.15, "t2": 1.6}
        for m in img:
            wm = float(np.median(img[m][brain & (label == 0)]))
            img[m] = np.where(core, csf[m] * wm, img[m]).astype(np.float32)
        label = np.where(core, 0, label).astype(np.uint8)
    return {m: img[m] for m in MODS}, label, np.asarray(case.affine)


def training_block(n: int) -> dict[str, Any]:
    """The manifest's quality block from ``n`` clean training cases (as export records it)."""
    params = PreprocessParams(modalities=MODS, target_spacing=GRID["spacing"])
    per: dict[str, list[dict[str, Any]]] = {m: [] for m in MODS}
    for seed in range(n):
        images, label, affine = _case(seed, "clean")
        case = preprocess(images, affine, params, label=label)
        for c, m in enumerate(MODS):
            per[m].append(profile(case.data[c], case.mask & (case.label == 0)))
    return {"intensity": {m: merge_profiles(p) for m, p in per.items()},
            "training_max_spacing_mm": max(GRID["spacing"]), "cases": n, "source": "bench"}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else float(2 * (a & b).sum() / denom)


def _oracle(images: dict[str, np.ndarray], label: np.ndarray, affine: np.ndarray,
            block: dict[str, Any]) -> dict[str, Any]:
    from glioedge.runtime.quality import assess, entropy_stats

    params = PreprocessParams(modalities=MODS, target_spacing=GRID["spacing"])
    case = preprocess(images, affine, params, label=label)
    probs = np.full((4, *label.shape), 0.01, np.float32)
    np.put_along_axis(probs, label[None].astype(np.int64), 0.97, axis=0)
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    brain = np.any([v != 0 for v in images.values()], axis=0)
    q = assess(labels=label, brain_mask=brain, spacing=spacing,
               profiles={m: profile(case.data[c], case.mask & (case.label == 0)) for c, m in enumerate(MODS)},
               entropy=entropy_stats(probs, label), mirror=False, block=block)
    return {"quality": q.to_dict(), "labels": label}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--cases", type=int, default=5)
    ap.add_argument("--train-cases", type=int, default=6)
    ap.add_argument("--only", nargs="*", default=None, help="a subset of the perturbations")
    ap.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = ap.parse_args()
    block = training_block(args.train_cases)
    seg = None
    if args.bundle:
        from glioedge.dicom_io import Volume
        from glioedge.runtime import Segmenter, SegmenterConfig

        seg = Segmenter.from_bundle(args.bundle, "onnxruntime", "cpu", SegmenterConfig())
        if not seg.bundle.manifest.quality:
            seg.bundle.manifest = replace(seg.bundle.manifest, quality=block)
    mode = "bundle" if seg else "oracle"
    rows, records = [], []
    clean_dice: dict[int, float] = {}
    for name in args.only or PERTURBATIONS:
        verdicts: Counter[str] = Counter()
        findings: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        dice, delta, cost = [], [], []
        for seed in range(1000, 1000 + args.cases):
            images, label, affine = _case(seed, name)
            t0 = time.perf_counter()
            if seg is not None:
                res = seg.segment_volumes({m: Volume(v, affine) for m, v in images.items()})
                quality, labels = dict(res.quality), np.asarray(res.label_map.array)
                cost.append(res.timings["quality"] / res.timings["total"])
                timing = {"quality_s": round(res.timings["quality"], 4),
                          "total_s": round(res.timings["total"], 4)}
            else:
                timing = {}
                out = _oracle(images, label, affine, block)
                quality, labels = out["quality"], out["labels"]
            seconds = time.perf_counter() - t0
            verdicts[quality["verdict"]] += 1
            findings[quality["finding"]] += 1
            codes.update(r["code"] for r in quality["reasons"] if r["severity"] != "info")
            if seg is not None:
                d = _dice(labels, label)
                dice.append(d)
                if name == "clean":
                    clean_dice[seed] = d
                elif seed in clean_dice:
                    delta.append(d - clean_dice[seed])
            records.append({"perturbation": name, "seed": seed, "verdict": quality["verdict"],
                            "finding": quality["finding"], "seconds": round(seconds, 3),
                            "reasons": [r["code"] for r in quality["reasons"]],
                            "scores": quality["scores"], "wt_dice": dice[-1] if dice else None, **timing})
        n = args.cases
        rows.append({"perturbation": name, "n": n, "ok": verdicts["ok"], "review": verdicts["review"],
                     "reject": verdicts["reject"], "flagged_%": 100.0 * (n - verdicts["ok"]) / n,
                     "no_tumour_found": findings["no tumour found"],
                     "wt_dice": float(np.mean(dice)) if dice else "-",
                     "dice_change": float(np.mean(delta)) if delta else "-",
                     "quality_cost_%": 100 * float(np.mean(cost)) if cost else "-",
                     "top_reasons": ",".join(c for c, _ in codes.most_common(3)) or "-"})
    print(f"mode: {mode}" + (f" (bundle {seg.bundle_id})" if seg else " (truth as segmentation)"))
    print_table(rows, list(rows[0]))
    name = f"quality_{mode}" if not args.tag else f"quality_{mode}_{args.tag}"
    write_json(name, {"mode": mode, "cases": args.cases, "train_cases": args.train_cases,
                                   "rows": rows, "records": records})


if __name__ == "__main__":
    main()
