"""Benchmark: the quality verdict (issue 19) on a catalogue of perturbations of held-out cases.

Held-out synthetic cases of the ``brats-like`` cohort (seeds 1000+; the calibration set
``--write-calibration`` writes uses seeds 2000+ and, for healthy brains, 2500+: disjoint) are
perturbed:

heavy Rician noise; motion ghosting (a shifted copy of the image along the phase axis); a strong
bias field; FLAIR replaced by the T2 (a mislabelled series: written with the FLAIR's headers, so
the name rules accept it); T1CE without enhancement (the T1 instead); the top 30 % of the brain cut
off; 7 mm slices; intensities ×10; a resection cavity (the tumour core becomes fluid: dark on
FLAIR/T1CE, no enhancing rim; the truth there becomes background); a healthy brain (no tumour
drawn).

Two modes:

* ``--bundle B``: each case is written as a DICOM study (FLAIR and T1CE MR series,
  :mod:`glioedge.synth.dicom_writer`) and run through the product's DICOM path, as ``glioedge
  segment`` runs it: ``Segmenter.segment_study(folder)`` (series discovery, modality rules,
  geometry, brain mask, preprocessing, sliding window, post-processing, verdict, SEG) and
  ``Result.write`` (SEG, report). Reported per perturbation: verdicts, Dice (WT, TC, ET) against
  the truth and its change from the clean version of the same case, "no tumour found", and the
  verdict's share of the study's time (``timings["quality"]`` / the wall time of
  ``segment_study`` + ``write``, same run). A bundle without a ``quality`` block gets the training
  profile computed here. ``--mirror-cost N`` also times the mirrored sliding window on N clean
  cases with and without the disagreement accumulation (same run, alternating; ratio).
* no bundle (``oracle``): the truth is the segmentation (a perfect model), so only the input-side
  signals (intensity distribution, coverage, thickness) and the anatomy/no-tumour logic are
  exercised; no DICOM, no Dice.

Prints a table and the goals of issue 19, writes bench/results/quality_<mode>.json and a
picture (flagged % per perturbation beside its Dice change) bench/results/quality_<mode>.png.

    python bench/quality.py --write-calibration DIR [--calibration-cases 20 --calibration-healthy 4]
    python bench/quality.py [--bundle B] [--clean-cases 20] [--cases 10] [--only P ...] [--tag T]
        [--mirror] [--mirror-cost N] [--merge EARLIER_JSON] [--threads 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, print_table, write_json

from glioedge.data.preprocess import PreprocessParams, preprocess
from glioedge.export.quality_block import add_contrasts, contrast_record
from glioedge.intensity_profile import merge_profiles, profile, region_contrasts
from glioedge.synth.cohort import cohort_config, make_case

MODS = ("flair", "t1ce")
GRID = {"shape": (96, 96, 64), "spacing": (2.0, 2.0, 2.0)}
PERTURBATIONS = ("clean", "noise", "ghosting", "bias", "flair_is_t2", "t1ce_no_enhancement",
                 "top_30pct_cut", "slices_7mm", "scaled_x10", "resection_cavity", "healthy")
REGIONS = ("WT", "TC", "ET")
BENCH_SEED, CALIBRATION_SEED, CALIBRATION_HEALTHY_SEED = 1000, 2000, 2500
#: A perturbation that costs at least this much mean Dice must be flagged (issue 19).
HARMFUL = 0.1


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


def write_study(folder: Path, images: dict[str, np.ndarray], affine: np.ndarray, tag: str) -> Path:
    """One case as a DICOM study: a FLAIR and a T1CE MR series (each written with its own
    sequence's headers: a T2 passed as ``flair`` carries the FLAIR's description and protocol)."""
    from glioedge.dicom_io import Volume, deterministic_uid
    from glioedge.synth.dicom_writer import StudyInfo, write_synthetic_series

    study = StudyInfo(study_instance_uid=deterministic_uid("bench-quality-study", tag),
                      frame_of_reference_uid=deterministic_uid("bench-quality-frame", tag))
    for number, m in ((3, "flair"), (7, "t1ce")):
        write_synthetic_series(folder / m, Volume(images[m], affine), modality=m, study=study,
                               series_number=number)
    return folder


def write_calibration(out: Path, n_clean: int, n_healthy: int) -> None:
    """Clean held-out studies for ``glioedge quality calibrate`` (seeds disjoint from the bench's)."""
    seeds = [(CALIBRATION_SEED + i, "clean") for i in range(n_clean)]
    seeds += [(CALIBRATION_HEALTHY_SEED + i, "healthy") for i in range(n_healthy)]
    for seed, kind in seeds:
        images, _, affine = _case(seed, kind)
        write_study(out / f"{kind}_{seed}", images, affine, f"calibration-{seed}")
    print(f"wrote {len(seeds)} held-out studies ({n_clean} clean, {n_healthy} healthy) to {out}")


def training_block(n: int) -> dict[str, Any]:
    """The manifest's quality block from ``n`` clean training cases (as export records it)."""
    params = PreprocessParams(modalities=MODS, target_spacing=GRID["spacing"])
    per: dict[str, list[dict[str, Any]]] = {m: [] for m in MODS}
    contrast: dict[str, dict[str, list[float]]] = {}
    for seed in range(n):
        images, label, affine = _case(seed, "clean")
        case = preprocess(images, affine, params, label=label)
        for c, m in enumerate(MODS):
            per[m].append(profile(case.data[c], case.mask & (case.label == 0)))
        add_contrasts(contrast, region_contrasts(case.data, MODS, case.mask, case.label))
    return {"intensity": {m: merge_profiles(p) for m, p in per.items()},
            "tumour_contrast": contrast_record(contrast),
            "training_max_spacing_mm": max(GRID["spacing"]), "cases": n, "source": "bench"}


def region_dice(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice of WT, TC and ET (internal classes; both empty: 1)."""
    from glioedge.metrics.surface import dice
    from glioedge.vocabulary import REGIONS as CLASSES

    return {r: dice(np.isin(pred, CLASSES[r]), np.isin(truth, CLASSES[r])) for r in REGIONS}


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


def _through_dicom(seg: Any, images: dict[str, np.ndarray], affine: np.ndarray, tag: str,
                   work: Path) -> tuple[dict[str, Any], np.ndarray, dict[str, float]]:
    """Write the case as DICOM, segment it as ``glioedge segment`` does, write the outputs."""
    folder = write_study(work / "study", images, affine, tag)
    t0 = time.perf_counter()
    res = seg.segment_study(folder)
    res.write(work / "out")
    study_s = time.perf_counter() - t0
    quality, labels = dict(res.quality), np.asarray(res.label_map.array)
    timing = {"quality_s": round(res.timings["quality"], 4), "study_s": round(study_s, 4),
              "load_s": round(res.timings["load"], 4), "inference_s": round(res.timings["inference"], 4),
              "verdict_share": res.timings["quality"] / study_s}
    shutil.rmtree(work / "study")
    shutil.rmtree(work / "out")
    return quality, labels, timing


def mirror_cost(seg: Any, seeds: list[int], repeats: int) -> dict[str, Any]:
    """Seconds of the mirrored sliding window without and with the disagreement accumulation, on
    the same network input and back-end, alternating (same run). The input is the centre of each
    case's network input, 1.5 patches wide (8 windows × 8 flips): the extra work is per window,
    so the ratio is that of a whole case, at a fraction of the time."""
    from glioedge.data.sliding_window import sliding_window_predict
    from glioedge.runtime.inference import MIRROR_AXES, preprocess_params

    m = seg.bundle.manifest
    params = preprocess_params(m)
    plain, measured = [], []
    for seed in seeds:
        images, _, affine = _case(seed, "clean")
        data = preprocess(images, affine, params).data
        box = [min(s, int(1.5 * p)) for s, p in zip(data.shape[1:], m.patch_size, strict=True)]
        lo = [(s - b) // 2 for s, b in zip(data.shape[1:], box, strict=True)]
        centre = tuple(slice(a, a + b) for a, b in zip(lo, box, strict=True))
        data = np.ascontiguousarray(data[(slice(None), *centre)])
        kw = {"num_classes": m.num_classes, "batch_size": seg.config.batch_size,
              "mirror_axes": MIRROR_AXES, "predict_fn": seg.backend.predict}
        for r in range(repeats):
            for with_dis in ((False, True) if r % 2 == 0 else (True, False)):
                t0 = time.perf_counter()
                sliding_window_predict(data, patch_size=m.patch_size, return_disagreement=with_dis, **kw)
                (measured if with_dis else plain).append(time.perf_counter() - t0)
    return {"cases": len(seeds), "repeats": repeats, "input": "1.5 patches of the network input's centre",
            "without_s": [round(t, 4) for t in plain],
            "with_s": [round(t, 4) for t in measured],
            "median_without_s": statistics.median(plain), "median_with_s": statistics.median(measured),
            "ratio_median": statistics.median(measured) / statistics.median(plain),
            "ratio_paired_median": statistics.median(w / p for w, p in zip(measured, plain, strict=True))}


def _open_segmenter(bundle: Path, threads: int, mirror: bool, block: dict[str, Any]) -> Any:
    from glioedge.bundle import Bundle
    from glioedge.runtime import Segmenter, SegmenterConfig
    from glioedge.runtime.backends.ort_backend import OrtBackend

    b = Bundle.load(bundle, verify=True)
    seg = Segmenter(b, OrtBackend.from_bundle(b, "cpu", threads=threads), SegmenterConfig(mirror=mirror))
    if not seg.bundle.manifest.quality:
        seg.bundle.manifest = replace(seg.bundle.manifest, quality=block)
    return seg


def _mean(values: list[float]) -> float | str:
    return round(float(np.mean(values)), 4) if values else "-"


def summarise(name: str, recs: list[dict[str, Any]], clean: dict[int, dict[str, float]],
              bundle: bool) -> dict[str, Any]:
    """One table row of a perturbation's records."""
    n = len(recs)
    verdicts = Counter(r["verdict"] for r in recs)
    codes = Counter(c for r in recs for c in r["flags"])
    row: dict[str, Any] = {
        "perturbation": name, "n": n, "ok": verdicts["ok"], "review": verdicts["review"],
        "reject": verdicts["reject"], "flagged_%": round(100.0 * (n - verdicts["ok"]) / n, 1),
        "no_tumour_found": sum(r["finding"] == "no tumour found" for r in recs)}
    if bundle:
        for g in REGIONS:
            row[f"{g}_dice"] = _mean([r["dice"][g] for r in recs])
        deltas = [r["dice_change"] for r in recs if r.get("dice_change")]
        for g in (*REGIONS, "mean"):
            row[f"d{g}"] = _mean([d[g] for d in deltas])
        harmful = [r for r in recs if r.get("dice_change") and r["dice_change"]["mean"] <= -HARMFUL]
        row["harmful_cases"] = len(harmful)
        row["harmful_flagged"] = sum(r["verdict"] != "ok" for r in harmful)
        row["verdict_share_%"] = round(100 * float(np.mean([r["verdict_share"] for r in recs])), 2)
        empty = [r for r in recs if r["predicted_wt_voxels"] == 0]
        row["empty"] = len(empty)
        row["empty_no_tumour_found"] = sum(r["finding"] == "no tumour found" for r in empty)
        row["empty_ok"] = sum(r["verdict"] == "ok" for r in empty)
    row["top_reasons"] = ",".join(c for c, _ in codes.most_common(3)) or "-"
    return row


def goals(rows: list[dict[str, Any]], bundle: bool) -> list[str]:
    """Issue 19's goals, each with its measured value."""
    by = {r["perturbation"]: r for r in rows}
    out = []
    if "clean" in by:
        ok = 100 * by["clean"]["ok"] / by["clean"]["n"]
        out.append(f"clean held-out cases ok: {ok:.0f} % (goal ≥ 95 %): {'met' if ok >= 95 else 'MISSED'}")
    if bundle:
        for r in rows:
            if r["perturbation"] in ("clean", "healthy") or not isinstance(r["dmean"], float):
                continue
            if r["dmean"] <= -HARMFUL:
                met = r["flagged_%"] >= 90
                out.append(f"{r['perturbation']}: costs {-r['dmean']:.2f} mean Dice, flagged in "
                           f"{r['flagged_%']:.0f} % (goal ≥ 90 %): {'met' if met else 'MISSED'}")
        shares = [r["verdict_share_%"] for r in rows]
        out.append(f"verdict share of the study's time: mean of perturbations {np.mean(shares):.1f} %, "
                   f"largest {max(shares):.1f} % (goal ≤ 5 %): {'met' if max(shares) <= 5 else 'MISSED'}")
    if "healthy" in by:
        h = by["healthy"]
        line = (f"healthy brains: {h['no_tumour_found']}/{h['n']} 'no tumour found', "
                f"{h['ok']}/{h['n']} ok")
        if "empty" in h:  # goal: an empty segmentation reads "no tumour found", verdict ok
            met = h["empty"] > 0 and h["empty_no_tumour_found"] == h["empty_ok"] == h["empty"]
            line += (f"; empty segmentations {h['empty']}/{h['n']}, of them 'no tumour found' "
                     f"{h['empty_no_tumour_found']} and ok {h['empty_ok']} (goal: all of those "
                     f"that are empty, ok): {'met' if met else 'MISSED'}")
        out.append(line)
    return out


def picture(rows: list[dict[str, Any]], path: Path, title: str, bundle: bool) -> Path:
    """Flagged % per perturbation beside its mean Dice change (WT, TC, ET)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["perturbation"] for r in rows][::-1]
    y = np.arange(len(names))
    fig, axes = plt.subplots(1, 2 if bundle else 1, figsize=(10 if bundle else 5.5, 0.42 * len(names) + 1.4),
                             sharey=True, squeeze=False)
    ax = axes[0][0]
    flagged = [next(r for r in rows if r["perturbation"] == n)["flagged_%"] for n in names]
    ax.barh(y, flagged, color=["#c0392b" if f >= 90 else "#e67e22" if f > 0 else "#7f8c8d" for f in flagged])
    ax.axvline(90, color="k", lw=0.8, ls="--")
    ax.set_yticks(y, names)
    ax.set_xlim(0, 100)
    ax.set_xlabel("flagged (review or reject), % of cases")
    for yi, f in zip(y, flagged, strict=True):
        ax.text(min(f + 1, 88), yi, f"{f:.0f}", va="center", fontsize=7)
    if bundle:
        ax = axes[0][1]
        h = 0.26
        for k, (g, color) in enumerate(zip(REGIONS, ("#2980b9", "#8e44ad", "#c0392b"), strict=True)):
            vals = [next(r for r in rows if r["perturbation"] == n)[f"d{g}"] for n in names]
            ax.barh(y + (1 - k) * h, [v if isinstance(v, float) else 0 for v in vals], height=h, color=color,
                    label=f"Δ {g} Dice")
        ax.axvline(-HARMFUL, color="k", lw=0.8, ls="--")
        ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel("Dice change vs the clean case (mean)")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--clean-cases", type=int, default=20)
    ap.add_argument("--cases", type=int, default=10, help="cases per perturbation")
    ap.add_argument("--train-cases", type=int, default=6,
                    help="cases of the training profile when the bundle (or oracle mode) has none")
    ap.add_argument("--only", nargs="*", default=None, help="a subset of the perturbations")
    ap.add_argument("--mirror", action="store_true", help="segment with test-time mirroring")
    ap.add_argument("--mirror-cost", type=int, default=0, metavar="N",
                    help="also time the mirrored window with/without the disagreement on N clean cases")
    ap.add_argument("--mirror-repeats", type=int, default=4, help="timings per case and variant")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--work", type=Path, default=None, help="folder for the DICOM studies (default: temp)")
    ap.add_argument("--write-calibration", type=Path, default=None, metavar="DIR",
                    help="write held-out clean (and healthy) studies for glioedge quality calibrate; exit")
    ap.add_argument("--calibration-cases", type=int, default=20)
    ap.add_argument("--calibration-healthy", type=int, default=4)
    ap.add_argument("--first-seed", type=int, default=BENCH_SEED,
                    help="seed of the first case (default %(default)s, the bench's held-out cases; "
                    "another range, e.g. 3000, is a development set to choose defaults on)")
    ap.add_argument("--tag", default="", help="suffix of the output file names")
    ap.add_argument("--merge", type=Path, default=None, metavar="JSON",
                    help="an earlier run's JSON: its rows for the perturbations not run now join the "
                    "table and the picture, marked '(earlier run)'")
    args = ap.parse_args()
    if args.write_calibration:
        write_calibration(args.write_calibration, args.calibration_cases, args.calibration_healthy)
        return
    block = training_block(args.train_cases)
    seg = _open_segmenter(args.bundle, args.threads, args.mirror, block) if args.bundle else None
    mode = "bundle" if seg else "oracle"
    work = Path(tempfile.mkdtemp(prefix="glioedge-quality-", dir=args.work))
    rows, records = [], []
    clean: dict[int, dict[str, float]] = {}
    try:
        for name in args.only or PERTURBATIONS:
            n = args.clean_cases if name == "clean" else args.cases
            recs = []
            for seed in range(args.first_seed, args.first_seed + n):
                images, label, affine = _case(seed, name)
                rec: dict[str, Any] = {"perturbation": name, "seed": seed}
                if seg is not None:
                    quality, labels, timing = _through_dicom(seg, images, affine, f"{name}-{seed}", work)
                    rec.update(timing)
                    rec["dice"] = region_dice(labels, label)
                    rec["dice"]["mean"] = float(np.mean([rec["dice"][g] for g in REGIONS]))
                    if name == "clean":
                        clean[seed] = rec["dice"]
                    elif seed in clean and name != "healthy":  # healthy: another case, no change
                        rec["dice_change"] = {g: rec["dice"][g] - clean[seed][g] for g in (*REGIONS, "mean")}
                    rec["predicted_wt_voxels"] = int((labels > 0).sum())
                else:
                    quality = _oracle(images, label, affine, block)["quality"]
                rec.update({"verdict": quality["verdict"], "finding": quality["finding"],
                            "flags": [r["code"] for r in quality["reasons"] if r["severity"] != "info"],
                            "reasons": [r["code"] for r in quality["reasons"]], "scores": quality["scores"]})
                recs.append(rec)
                print(f"{name:20s} {seed}  {rec['verdict']:6s} {','.join(rec['flags']) or '-':40s} "
                      + (f"Dice {rec['dice']['mean']:.3f}  share {100 * rec['verdict_share']:.1f} %"
                         if seg is not None else ""), flush=True)
            records.extend(recs)
            rows.append(summarise(name, recs, clean, seg is not None))
            # a run cut short keeps the perturbations it finished
            write_json(f"quality_{mode}" + (f"_{args.tag}" if args.tag else "") + "_partial",
                       {"rows": rows, "records": records})
        cost = mirror_cost(seg, list(range(BENCH_SEED, BENCH_SEED + args.mirror_cost)),
                           args.mirror_repeats) \
            if seg is not None and args.mirror_cost else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    qblock = (seg.bundle.manifest.quality or {}) if seg else block
    source = "bundle" if qblock.get("thresholds") else "defaults"
    mirrored = ", mirrored" if args.mirror else ""
    head = f"mode: {mode}" + (f" (bundle {seg.bundle_id}, thresholds {source}{mirrored})" if seg
                              else " (truth as segmentation)")
    if args.merge:
        import json

        earlier = json.loads(args.merge.read_text())
        done = {r["perturbation"] for r in rows}
        order = {p: i for i, p in enumerate(PERTURBATIONS)}
        rows += [{**r, "top_reasons": r["top_reasons"] + " (earlier run)"} for r in earlier["rows"]
                 if r["perturbation"] not in done]
        records += [r for r in earlier["records"] if r["perturbation"] not in done]
        rows.sort(key=lambda r: order.get(r["perturbation"], len(order)))
        head += f" + earlier run {args.merge.name}"
    print("\n" + head)
    columns = list(rows[0])
    print_table(rows, columns)
    met = goals(rows, seg is not None)
    print("\n" + "\n".join(met))
    if cost:
        print(f"\nmirrored window, {cost['cases']} cases × {cost['repeats']}: without the disagreement "
              f"{cost['median_without_s']:.2f} s, with {cost['median_with_s']:.2f} s (median); ratio "
              f"{cost['ratio_median']:.3f} (paired median {cost['ratio_paired_median']:.3f})")
    name = f"quality_{mode}" + (f"_{args.tag}" if args.tag else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    picture(rows, RESULTS / f"{name}.png", head, seg is not None)
    write_json(name, {"mode": mode, "clean_cases": args.clean_cases, "cases": args.cases,
                      "bundle": str(args.bundle) if args.bundle else None,
                      "bundle_id": seg.bundle_id if seg else None, "mirror": args.mirror,
                      "threads": args.threads,
                      "quality_block": {k: v for k, v in qblock.items()
                                        if k in ("thresholds", "calibration", "cases")},
                      "merged_from": str(args.merge) if args.merge else None,
                      "rows": rows, "goals": met, "mirror_cost": cost, "records": records})


if __name__ == "__main__":
    main()
