"""Benchmark: one raw-head study through ``Segmenter.segment_study``, today's path vs the new one.

In one run, on one synthetic clinical-like study with skull (a 240×240×160 1 mm 3-D T1CE and a
32-slice 5 mm FLAIR, both from one head phantom; ``--storage enhanced`` writes the T1CE as one
Enhanced MR instance and the FLAIR JPEG-LS compressed), with a random-initialised student of
``--plan`` exported as a bundle together with HD-BET (``brain_mask.onnx``):

* ``today``: brain extraction as before this change: HD-BET on every series over the whole field
  of view, ONNX Runtime's memory arena on (``brain_mask_series="all"``,
  ``brain_mask_head_box_mm=None``, ``memory_arena=True``);
* ``new``: the defaults: HD-BET on the finest series only (the others only when its brain volume
  is implausible), cropped to the head's box, no memory arena.

Each runs in its own process (its own peak RSS, VmHWM) through the same ``segment_study`` (read
DICOM → brain mask → preprocess → windows → resample → post-process → SEG): the stage seconds,
their ratios, the Dice of the new brain mask against today's and against the phantom's truth, the
tumour recall of both masks, and the label agreement. Then the per-window time of the student
(``--plan`` and the nnU-Net-sized ``nnunet`` plan, batch 1) on ONNX Runtime CPU vs PyTorch eager,
same network, same threads, same process (inference only, no other stage).

Random weights: latency does not depend on them, except that a random student predicts tumour
at the brain mask's border, so both paths include the tumour-safety re-run on the grown mask
(column ``regrown``; the inference column is then two passes). ``cpu_s`` is the worker's CPU time
(all threads), less sensitive than wall time to other load on a shared machine. Prints tables, writes
bench/results/study_latency.json (``study_latency_<storage>.json`` for ``--storage enhanced``).

    python bench/study_latency.py [--storage enhanced] [--plan small] [--no-windows]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import print_table, write_json

STAGES = ["load", "brain_mask", "preprocess", "inference", "resample", "postprocess", "seg_write",
          "total"]
PATHS = {
    "today": {"brain_mask_series": "all", "brain_mask_head_box_mm": None, "memory_arena": True},
    "new": {"brain_mask_series": "best", "brain_mask_head_box_mm": 10.0, "memory_arena": False},
}


def _peak_mib() -> float:
    """This process's own peak RSS (VmHWM, reset by exec, unlike ``ru_maxrss`` of a fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _prepare(root: Path, storage: str, plan_name: str) -> None:
    """Study (DICOM), truth (npz) and bundle (with brain_mask.onnx) under ``root``."""
    import torch
    from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

    from glioedge.data.modalities import Modality
    from glioedge.data.preprocess import PreprocessParams
    from glioedge.dicom_io import Volume
    from glioedge.export.pipeline import ExportOptions, export_bundle
    from glioedge.synth import write_synthetic_series
    from glioedge.synth.cohort import SyntheticConfig, make_case
    from glioedge.synth.head_phantom import add_head
    from glioedge.train.checkpoint import CheckpointMeta, save_checkpoint
    from glioedge.train.networks import build_unet
    from glioedge.train.plan import PRESETS

    case = make_case(3, SyntheticConfig(shape=(192, 192, 112), spacing=(1.0, 1.0, 1.0)))
    t1ce = add_head(case.images[Modality.T1CE], case.affine, "t1ce", seed=4)
    flair = add_head(case.images[Modality.FLAIR], case.affine, "flair", seed=4)
    # a 2-D FLAIR: every fifth 1 mm slice → 5 mm slices
    f_aff = flair.affine.copy()
    f_aff[:3, 2] *= 5
    f_aff[:3, 3] = (flair.affine @ np.array([0.0, 0.0, 2.0, 1.0]))[:3]
    compressed = JPEGLSLossless if storage == "enhanced" else ExplicitVRLittleEndian
    study = root / "study"
    write_synthetic_series(study / "flair", Volume(flair.array[:, :, 2::5], f_aff), modality="flair",
                           series_number=3, transfer_syntax=compressed)
    write_synthetic_series(study / "t1ce", Volume(t1ce.array, t1ce.affine), modality="t1ce",
                           series_number=7, storage="enhanced" if storage == "enhanced" else "mr")
    np.savez_compressed(root / "truth.npz", brain=t1ce.brain_mask, tumour=t1ce.embed(case.label) > 0)
    plan = PRESETS[plan_name]
    torch.manual_seed(0)
    net = build_unet(plan, in_channels=2, num_classes=4, deep_supervision=True)
    meta = CheckpointMeta(
        plan=plan, preprocess=PreprocessParams(("flair", "t1ce"), target_spacing=(1.0, 1.0, 1.0)).to_dict(),
        teacher_modalities=["t1", "t2", "flair", "t1ce"], student_modalities=["flair", "t1ce"],
        num_classes=4, epoch=0, config={"preset": plan.name}, student_only=True,
    )
    ckpt = save_checkpoint(root / "ckpt", meta, {"student": net})
    export_bundle(ckpt, root / "bundle", ExportOptions(fp16=False, brain_mask=True))


def _study_worker(kind: str, root: Path) -> dict[str, Any]:
    """``segment_study`` on ``today``'s or the ``new`` path; saves its brain mask and labels."""
    import glioedge.runtime.segmenter as segmenter_module
    from glioedge.runtime import Segmenter, SegmenterConfig
    from glioedge.runtime.skullstrip import BrainMaskModel

    opts = PATHS[kind]
    captured: dict[str, Any] = {}
    compute = segmenter_module.compute_brain_mask

    def capture(*args: Any, **kwargs: Any) -> Any:  # bench instrumentation: keep the mask
        c0 = time.process_time()
        captured["outcome"] = out = compute(*args, **kwargs)
        captured["brain_mask_cpu_s"] = time.process_time() - c0
        return out

    segmenter_module.compute_brain_mask = capture  # type: ignore[assignment]
    cfg = SegmenterConfig(brain_mask_series=opts["brain_mask_series"],
                          brain_mask_head_box_mm=opts["brain_mask_head_box_mm"])
    with Segmenter.from_bundle(root / "bundle", "onnxruntime", config=cfg) as seg:
        seg.brain_mask_model = BrainMaskModel.from_bundle(seg.bundle, memory_arena=opts["memory_arena"])
        c0 = time.process_time()
        result = seg.segment_study(root / "study")
        cpu_s = time.process_time() - c0
    outcome = captured["outcome"]
    np.savez_compressed(root / f"{kind}.npz", mask=outcome.mask, brain=outcome.extraction.brain,
                        labels=np.asarray(result.label_map.array, np.uint8))
    return {"timings": dict(result.timings), "peak_rss_mib": _peak_mib(), "windows": result.windows,
            "brain_ml": outcome.extraction.brain_ml, "series_run": outcome.report.get("series_run"),
            "regrown_components": outcome.report.get("regrown_components"),
            "cpu_s": cpu_s, "brain_mask_cpu_s": captured["brain_mask_cpu_s"],
            "backend": result.backend}


def _window_worker(plan_name: str, repeats: int) -> dict[str, Any]:
    """Per-window seconds of one student network: ONNX Runtime CPU vs PyTorch eager (batch 1)."""
    import onnxruntime as ort
    import torch

    from glioedge.export.onnx_export import export_onnx
    from glioedge.runtime.skullstrip.model import usable_cores
    from glioedge.train.networks import build_unet
    from glioedge.train.plan import PRESETS

    threads = usable_cores()
    torch.set_num_threads(threads)
    plan = PRESETS[plan_name]
    torch.manual_seed(0)
    net = build_unet(plan, in_channels=2, num_classes=4, deep_supervision=False).eval()
    patch = tuple(plan.patch_size)
    x = np.random.default_rng(0).normal(size=(1, 2, *patch)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "student.onnx"
        export_onnx(net, 2, patch, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        sess.run(None, {name: x})  # warm-up
        t_ort = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            y_ort = sess.run(None, {name: x})[0]
            t_ort.append(time.perf_counter() - t0)
    with torch.inference_mode():
        xt = torch.from_numpy(x)
        net(xt)  # warm-up
        t_torch = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            y_torch = net(xt).numpy()
            t_torch.append(time.perf_counter() - t0)
    return {"plan": plan_name, "patch": list(patch), "threads": threads,
            "ort_s": min(t_ort), "torch_s": min(t_torch), "ort_speedup": min(t_torch) / min(t_ort),
            "max_abs_diff": float(np.abs(y_ort - y_torch).max())}


def _run(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode != 0 or not line:
        return {"error": out.stderr.strip()[-800:]}
    return json.loads(line[-1][len("RESULT "):])


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", choices=("mr", "enhanced"), default="mr",
                    help="T1CE as classic MR slices, or as Enhanced MR with a JPEG-LS FLAIR")
    ap.add_argument("--plan", default="small", help="student plan of the bundle")
    ap.add_argument("--window-plans", default="small,nnunet", help="plans timed per window")
    ap.add_argument("--no-windows", action="store_true", help="skip the per-window ORT vs torch part")
    ap.add_argument("--repeats", type=int, default=3, help="per-window timings (best of)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        import logging

        logging.basicConfig(level=logging.WARNING)
        if args.worker.startswith("window:"):
            res = _window_worker(args.worker.split(":", 1)[1], args.repeats)
        else:
            res = _study_worker(args.worker, args.root)
        print("RESULT " + json.dumps(res))
        return

    payload: dict[str, Any] = {"storage": args.storage, "plan": args.plan, "paths": PATHS}
    with tempfile.TemporaryDirectory(prefix="glioedge-study-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        _prepare(root, args.storage, args.plan)
        print(f"prepared study ({args.storage}) + bundle ({args.plan} + HD-BET) in "
              f"{time.perf_counter() - t0:.1f} s")
        runs = {kind: _run(["--worker", kind, "--root", str(root)]) for kind in PATHS}
        payload["runs"] = runs
        truth = np.load(root / "truth.npz")
        masks = {k: np.load(root / f"{k}.npz") for k in PATHS if "error" not in runs[k]}
    for kind, r in runs.items():
        if "error" in r:
            print(f"{kind} failed: {r['error']}")
    rows = []
    for kind, r in runs.items():
        if "error" in r:
            continue
        m = masks[kind]
        rows.append({"path": kind, **{s: r["timings"].get(s, float("nan")) for s in STAGES},
                     "peak_MiB": r["peak_rss_mib"], "series": "+".join(r["series_run"] or []),
                     "windows": r["windows"], "regrown": r["regrown_components"],
                     "cpu_s": r["cpu_s"], "brain_mask_cpu_s": r["brain_mask_cpu_s"],
                     "brain_dice_truth": _dice(m["brain"], truth["brain"]),
                     "tumour_recall": float((m["mask"] & truth["tumour"]).sum() / truth["tumour"].sum())})
    if len(rows) == 2:
        old, new = rows
        rows.append({"path": "today/new", **{s: old[s] / new[s] if new[s] else float("nan") for s in STAGES},
                     "peak_MiB": old["peak_MiB"] / new["peak_MiB"], "cpu_s": old["cpu_s"] / new["cpu_s"],
                     "brain_mask_cpu_s": old["brain_mask_cpu_s"] / new["brain_mask_cpu_s"]})
        payload["brain_dice_new_vs_today"] = _dice(masks["new"]["brain"], masks["today"]["brain"])
        payload["mask_dice_new_vs_today"] = _dice(masks["new"]["mask"], masks["today"]["mask"])
        payload["label_agreement"] = float(np.mean(masks["new"]["labels"] == masks["today"]["labels"]))
    payload["rows"] = rows
    print("\nsegment_study, seconds per stage (one run each; the machine is shared, compare ratios)")
    print_table(rows, ["path", *STAGES, "peak_MiB", "cpu_s", "brain_mask_cpu_s", "series", "windows",
                       "regrown", "brain_dice_truth", "tumour_recall"])
    print("cpu_s: CPU seconds of the process (all threads): less sensitive to other load than wall time")
    for key in ("brain_dice_new_vs_today", "mask_dice_new_vs_today", "label_agreement"):
        if key in payload:
            print(f"{key}: {payload[key]:.4f}")
    if not args.no_windows:
        wins = [_run(["--worker", f"window:{p}", "--repeats", str(args.repeats)])
                for p in args.window_plans.split(",")]
        payload["per_window"] = wins
        print(f"\nper window, batch 1, inference only (best of {args.repeats})")
        print_table([w for w in wins if "error" not in w],
                    ["plan", "patch", "threads", "ort_s", "torch_s", "ort_speedup", "max_abs_diff"])
        for w in wins:
            if "error" in w:
                print(f"window timing failed: {w['error']}")
    write_json("study_latency" if args.storage == "mr" else f"study_latency_{args.storage}", payload)


if __name__ == "__main__":
    main()
