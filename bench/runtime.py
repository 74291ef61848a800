"""Runtime latency by stage and peak memory per backend, against MONAI's sliding window.

One run: a synthetic BraTS-sized study (240×240×155 at 1 mm T1CE + 2-D FLAIR at 1×1×3 mm,
written as DICOM), a random-initialised student of ``--plan`` exported as a bundle, then for each
available backend a fresh worker process (so ``ru_maxrss`` is that backend's peak) runs
``Segmenter.segment_study`` ``--repeats`` times; stages: load (DICOM read + fusion resample),
preprocess, inference (sliding window), resample (probabilities back to the reference grid),
postprocess, SEG write. The baseline is MONAI's ``sliding_window_inference`` (Gaussian, σ = 1/8,
overlap 0.5, same batch) with the same PyTorch network on the same preprocessed input, in its own
worker too. Random weights: latency does not depend on them.

    python bench/runtime.py            # BraTS-sized case, SMALL plan (64³ windows)
    python bench/runtime.py --plan nnunet   # nnU-Net's 128³ plan (minutes per backend on CPU)
    python bench/runtime.py --quick    # 96×96×64 at 2 mm, TINY plan

Writes bench/results/runtime.json (``runtime_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import peak_rss_mib, print_table, write_json

STAGES = ["load", "preprocess", "inference", "resample", "postprocess", "seg_write", "total"]
#: stages that the MONAI baseline runs too: the like-with-like sum
COMMON = ["load", "preprocess", "inference", "resample"]


def _prepare(root: Path, quick: bool, plan_name: str) -> tuple[Path, Path, Path]:
    """Write the study, the checkpoint and the bundle under ``root``."""
    import torch

    from glioedge.data.preprocess import PreprocessParams
    from glioedge.dicom_io import Volume
    from glioedge.export.pipeline import ExportOptions, export_bundle
    from glioedge.synth import write_synthetic_series
    from glioedge.synth.cohort import SyntheticConfig, make_case
    from glioedge.train.checkpoint import CheckpointMeta, save_checkpoint
    from glioedge.train.networks import build_unet
    from glioedge.train.plan import PRESETS

    if quick:
        t1ce_cfg = SyntheticConfig(shape=(96, 96, 64), spacing=(2.0, 2.0, 2.0))
        flair_cfg = SyntheticConfig(shape=(96, 96, 32), spacing=(2.0, 2.0, 4.0))
        spacing = (2.0, 2.0, 2.0)
    else:
        t1ce_cfg = SyntheticConfig(shape=(240, 240, 155), spacing=(1.0, 1.0, 1.0))
        flair_cfg = SyntheticConfig(shape=(240, 240, 52), spacing=(1.0, 1.0, 3.0))
        spacing = (1.0, 1.0, 1.0)
    t1ce, flair = make_case(3, t1ce_cfg), make_case(3, flair_cfg)
    study = root / "study"
    write_synthetic_series(study / "flair", Volume(flair.images["flair"], flair.affine),
                           modality="flair", series_number=3)
    write_synthetic_series(study / "t1ce", Volume(t1ce.images["t1ce"], t1ce.affine),
                           modality="t1ce", series_number=7)
    plan = PRESETS[plan_name]
    torch.manual_seed(0)
    net = build_unet(plan, in_channels=2, num_classes=4, deep_supervision=True)
    meta = CheckpointMeta(
        plan=plan, preprocess=PreprocessParams(("flair", "t1ce"), target_spacing=spacing).to_dict(),
        teacher_modalities=["t1", "t2", "flair", "t1ce"], student_modalities=["flair", "t1ce"],
        num_classes=4, epoch=0, config={"preset": plan.name}, student_only=True,
    )
    ckpt = save_checkpoint(root / "ckpt", meta, {"student": net})
    bundle = root / "bundle"
    export_bundle(ckpt, bundle, ExportOptions(fp16=False))
    return study, ckpt, bundle


def _peak_mib() -> float:
    """This process's own peak RSS: VmHWM (per address space, reset by exec). ``ru_maxrss`` would
    carry the parent's peak into a fork+exec'd worker on Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


def _worker(args: argparse.Namespace) -> dict[str, Any]:
    """Run one backend (or the MONAI baseline) in this process; returns its measurements."""
    import numpy as np

    from glioedge.runtime import Segmenter, SegmenterConfig

    cfg = SegmenterConfig(batch_size=args.batch_size)
    runs: list[dict[str, float]] = []
    labels = None
    if args.worker == "monai":
        import torch
        from monai.inferers import sliding_window_inference

        from glioedge.data.preprocess import PreprocessParams, preprocess, restore_to_original
        from glioedge.dicom_io import load_study
        from glioedge.train.checkpoint import load_student

        net, meta = load_student(args.ckpt)
        for _ in range(args.repeats):
            t: dict[str, float] = {}
            t0 = time.perf_counter()
            study = load_study(args.study, required=("flair", "t1ce"), reference="t1ce")
            t["load"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            ref = study.volumes["t1ce"]
            case = preprocess({m: v.array for m, v in study.volumes.items()}, ref.affine,
                              PreprocessParams.from_dict(meta.preprocess))
            t["preprocess"] = time.perf_counter() - t1
            t1 = time.perf_counter()
            with torch.inference_mode():
                logits = sliding_window_inference(
                    torch.from_numpy(case.data[None]), roi_size=meta.plan.patch_size,
                    sw_batch_size=args.batch_size, predictor=net, overlap=0.5, mode="gaussian",
                    sigma_scale=0.125, padding_mode="constant")
            t["inference"] = time.perf_counter() - t1
            t1 = time.perf_counter()
            probs = torch.softmax(logits[0], 0).numpy()
            labels = restore_to_original(probs, case.record, is_label=False).argmax(0)
            t["resample"] = time.perf_counter() - t1
            t["total"] = time.perf_counter() - t0
            runs.append(t)
        name = "monai-torch-cpu"
    else:
        with Segmenter.from_bundle(args.bundle, args.worker, args.device, cfg,
                                   checkpoint=args.ckpt if args.worker == "torch" else None) as seg:
            name = seg.backend.name
            for _ in range(args.repeats):
                res = seg.segment_study(args.study)
                runs.append(dict(res.timings))
                labels = res.label_map.array
                windows = res.windows
    if labels is not None:
        np.save(Path(args.labels_out), np.asarray(labels, np.uint8))
    best = {k: min(r.get(k, 0.0) for r in runs) for k in STAGES if any(k in r for r in runs)}
    return {"backend": name, "runs": runs, "best": best, "peak_rss_mib": _peak_mib(),
            "windows": locals().get("windows")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small case and TINY plan")
    ap.add_argument("--plan", default=None, help="network plan preset (default small; tiny with --quick)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--device", default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    for hidden in ("--study", "--bundle", "--ckpt", "--labels-out"):
        ap.add_argument(hidden, type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        logging.basicConfig(level=logging.WARNING)
        print("RESULT " + json.dumps(_worker(args)))
        return
    import numpy as np

    from glioedge.runtime.backends import available_backends

    plan = args.plan or ("tiny" if args.quick else "small")
    with tempfile.TemporaryDirectory(prefix="glioedge-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        study, ckpt, bundle = _prepare(root, args.quick, plan)
        print(f"prepared study + bundle ({plan} plan) in {time.perf_counter() - t0:.1f} s")
        avail = available_backends(ckpt)
        targets = [b for b in ("tensorrt", "onnxruntime", "torch") if avail[b] is None] + ["monai"]
        skipped = {b: why for b, why in avail.items() if why is not None}
        results: dict[str, dict[str, Any]] = {}
        for target in targets:
            cmd = [sys.executable, __file__, "--worker", target, "--study", str(study), "--bundle",
                   str(bundle), "--ckpt", str(ckpt), "--labels-out", str(root / f"{target}.npy"),
                   "--repeats", str(args.repeats), "--batch-size", str(args.batch_size)]
            if args.device:
                cmd += ["--device", args.device]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode != 0 or not line:
                skipped[target] = f"failed: {out.stderr.strip()[-300:]}"
                continue
            results[target] = json.loads(line[-1][len("RESULT "):])
        ref = np.load(root / "torch.npy") if (root / "torch.npy").is_file() else None
        for target, r in results.items():
            if ref is not None:
                r["agreement_vs_torch_segmenter"] = float(np.mean(np.load(root / f"{target}.npy") == ref))
    rows = [{"backend": r["backend"], **{k: r["best"].get(k, float("nan")) for k in STAGES},
             "common": sum(r["best"].get(k, float("nan")) for k in COMMON),
             "peak_MiB": r["peak_rss_mib"], "agree": r.get("agreement_vs_torch_segmenter", "")}
            for r in results.values()]
    for row in rows:  # MONAI's worker has no brain mask, post-processing or SEG: no like total
        if row["backend"] == "monai-torch-cpu":
            row["total"] = float("nan")
    print(f"\nper-case latency, best of {args.repeats} (s); peak RSS (VmHWM) per worker process")
    print_table(rows, ["backend", *STAGES, "common", "peak_MiB", "agree"])
    print(f"common = {' + '.join(COMMON)}: the stages every row has (compare MONAI on this column; "
          f"its total would leave out post-processing and the SEG)")
    for b, why in skipped.items():
        print(f"skipped {b}: {why}")
    write_json("runtime_quick" if args.quick else "runtime", {
        "case": "96x96x64 @ 2 mm" if args.quick else "240x240x155 @ 1 mm (FLAIR 240x240x52 @ 1x1x3 mm)",
        "plan": plan, "batch_size": args.batch_size, "repeats": args.repeats,
        "baseline": "MONAI sliding_window_inference, same PyTorch network and preprocessed input",
        "results": results, "skipped": skipped,
    })


if __name__ == "__main__":
    main()
