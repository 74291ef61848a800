"""Export parity and speed: ORT FP32, ORT FP16 (and TensorRT FP16 where present) vs PyTorch FP32.

One run exports a student (random weights, or ``--checkpoint``) as a bundle, then on the same
window batch reports max |Δlogit|, argmax voxel agreement and Dice of each back-end against
PyTorch eager FP32, and the time of ORT vs PyTorch eager (the baseline) on that batch.

    python bench/export_parity.py --quick          # tiny preset, seconds
    python bench/export_parity.py                  # small preset (default)
    python bench/export_parity.py --preset nnunet  # the real network (slow on CPU)

Writes bench/results/export_parity.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS, machine, print_table


def _checkpoint(tmp: Path, preset: str, seed: int) -> Path:
    import torch

    from glioedge.data.preprocess import PreprocessParams
    from glioedge.train.checkpoint import CheckpointMeta, save_checkpoint
    from glioedge.train.networks import build_unet
    from glioedge.train.plan import get_preset

    plan = get_preset(preset)
    torch.manual_seed(seed)
    net = build_unet(plan, 2, 4)
    meta = CheckpointMeta(
        plan=plan, preprocess=PreprocessParams(modalities=("flair", "t1ce")).to_dict(),
        teacher_modalities=["t1", "t2", "flair", "t1ce"], student_modalities=["flair", "t1ce"],
        num_classes=4, epoch=0, config={"bench": "export_parity"}, student_only=True,
    )
    return save_checkpoint(tmp / "ckpt", meta, {"student": net})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny preset (CI-sized)")
    ap.add_argument("--preset", default="small", help="tiny, small or nnunet (default small)")
    ap.add_argument("--checkpoint", type=Path, help="export this checkpoint instead")
    ap.add_argument("--batch", type=int, default=2, help="windows per batch (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs (median; default 3)")
    ap.add_argument("--engine", action="store_true", help="also build a TensorRT engine (GPU)")
    ap.add_argument("--out", type=Path, default=RESULTS / "export_parity.json")
    args = ap.parse_args(argv)
    preset = "tiny" if args.quick else args.preset

    import numpy as np
    import torch

    from glioedge.export import verify as V
    from glioedge.export.pipeline import ExportOptions, export_bundle
    from glioedge.export.tensorrt import TrtRunner, tensorrt_unavailable_reason
    from glioedge.train.checkpoint import load_student

    trt_reason = tensorrt_unavailable_reason()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        ckpt = args.checkpoint or _checkpoint(tmp, preset, seed=0)
        t0 = time.perf_counter()
        bundle = export_bundle(
            ckpt, tmp / "bundle",
            ExportOptions(engine=args.engine and trt_reason is None, verify_batch=args.batch),
        )
        export_s = time.perf_counter() - t0
        net, _ = load_student(ckpt)
        m = bundle.manifest
        inputs, source = V.verification_inputs(
            len(m.modalities), m.patch_size, modalities=m.modalities, preprocess=m.preprocess,
            batch=args.batch, seed=123,
        )
        x = inputs["case"]
        torch_run = V.torch_runner(net)
        ref = torch_run(x)
        runners: dict[str, Any] = {
            "ORT FP32 (CPU)": V.ort_runner(bundle.model_path),
            "ORT FP16 (CPU)": V.ort_runner(bundle.fp16_model_path),
        }
        for e in m.engines:
            runners[f"TensorRT {e.precision} (sm{e.compute_capability[0]}{e.compute_capability[1]})"] = (
                TrtRunner(bundle.path(e.file))
            )
        rows = [{"backend": "PyTorch FP32 eager (baseline)", "max_abs_logit": 0.0, "agreement": 1.0,
                 "dice": 1.0, "seconds": V.time_runner(torch_run, x, args.repeats)}]
        for name, run in runners.items():
            p = V.compare_logits(ref, run(x), m.class_names)
            rows.append({"backend": name, "max_abs_logit": p.max_abs_logit, "agreement": p.agreement,
                         "dice": p.dice, "seconds": V.time_runner(run, x, args.repeats)})
        base = rows[0]["seconds"]
        for r in rows:
            r["speedup_vs_torch"] = base / r["seconds"]
    print(f"preset {preset}, batch {list(x.shape)} ({source}), {torch.get_num_threads()} torch threads, "
          f"export {export_s:.1f} s")
    print_table(rows, ["backend", "max_abs_logit", "agreement", "dice", "seconds", "speedup_vs_torch"])
    if not m.engines:
        print(f"TensorRT FP16: skipped ({trt_reason or 'not requested: pass --engine'})")
    payload = {
        "machine": machine(), "preset": preset, "batch_shape": list(x.shape), "case_source": source,
        "export_seconds": export_s, "bundle_id": m.bundle_id, "exporters": m.exporters,
        "tensorrt": "built" if m.engines else trt_reason or "not requested", "rows": rows,
        "manifest_verification": m.verification, "numpy": np.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2, default=str))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
