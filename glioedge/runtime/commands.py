"""``glioedge segment STUDY_DIR --bundle B --out DIR``: one study, one result folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["add_segment_parser", "run_segment"]


def add_segment_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``segment`` on the CLI's sub-parsers (sets ``func``)."""
    from glioedge.runtime.brain_mask import BrainMaskMode
    from glioedge.runtime.segmenter_config import SegmenterConfig

    d = SegmenterConfig()
    p = subparsers.add_parser(
        "segment", help="segment one DICOM study with a model bundle → DICOM-SEG + report",
        description="Segment the FLAIR + T1CE series of one DICOM study (a folder, searched "
        "recursively) and write seg.dcm, report.json (and qa.png, sr.dcm, brain_mask.nii.gz, "
        "brain_seg.dcm) into --out.",
    )
    p.add_argument("study", type=Path, metavar="STUDY_DIR", help="folder with the study's DICOM files")
    p.add_argument("--bundle", type=Path, required=True, help="model bundle directory")
    p.add_argument("--out", type=Path, required=True, help="folder for the result files")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "torch"],
                   help="inference backend (default auto: TensorRT > ORT-CUDA > ORT-CPU)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: best available)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="training checkpoint (needed by --backend torch)")
    p.add_argument("--engine-cache", type=Path, default=None,
                   help="folder for TensorRT engines built on first use (default "
                   "~/.cache/glioedge/engines)")
    p.add_argument("--brain-mask", default=d.brain_mask, choices=[m.value for m in BrainMaskMode],
                   help="auto: the bundle's brain-extraction model (falls back to skull-stripped "
                   "without one); skull-stripped: trust the input; command: run --brain-mask-command")
    p.add_argument("--brain-mask-command", default=None,
                   help="e.g. 'mri_synthstrip -i {input} -m {output}' (no shell)")
    p.add_argument("--brain-mask-series", default=d.brain_mask_series, choices=["best", "all"],
                   help="auto: run the brain-extraction network on the finest series (best; the "
                   "others only when its brain volume is implausible) or on every series (all)")
    p.add_argument("--rules", type=Path, default=None, help="modality rule file (JSON/TOML)")
    p.add_argument("--mirror", action="store_true", help="test-time mirroring (8× slower)")
    p.add_argument("--no-postprocess", action="store_true",
                   help="keep the raw prediction: no removal of tumour outside the brain mask, no "
                   "small-ET → NCR rule")
    p.add_argument("--segmentation-type", default=d.segmentation_type, choices=["BINARY", "LABELMAP"])
    p.add_argument("--step-size", type=float, default=d.step_size)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--qa-png", action="store_true", help="also write qa.png (overlay)")
    p.add_argument("--sr", action="store_true", help="also write sr.dcm (TID 1500 volumes)")
    p.add_argument("--save-brain-mask", nargs="?", const="nifti", default="",
                   choices=["nifti", "seg", "both"],
                   help="also write the brain mask: brain_mask.nii.gz (nifti, the default when "
                   "given alone), brain_seg.dcm (seg: a SEG with one 'Brain' segment) or both")
    p.add_argument("--trusted-key", action="append", default=[], metavar="PUB",
                   help="accept only a bundle signed by this Ed25519 public key (PEM; repeatable)")
    p.add_argument("--require-signature", action="store_true",
                   help="refuse a bundle not signed by a --trusted-key (required with it)")
    p.add_argument("--register", action="store_true",
                   help="rigidly register series in another frame of reference onto the T1CE "
                   "(else such a study is refused); recorded in the SEG and the report")
    p.set_defaults(func=run_segment)
    return p


def run_segment(args: argparse.Namespace) -> int:
    """Run ``glioedge segment``; returns the exit status.

    Raises:
        GlioedgeError: bad input, bundle or back-end (the CLI logs it; exit code: errors.exit_code).
    """
    from glioedge.progress import Progress, use_progress
    from glioedge.runtime.segmenter import Segmenter, SegmenterConfig

    config = SegmenterConfig(
        step_size=args.step_size, batch_size=args.batch_size, mirror=args.mirror,
        postprocess=not args.no_postprocess, brain_mask=args.brain_mask,
        brain_mask_command=args.brain_mask_command, brain_mask_series=args.brain_mask_series,
        segmentation_type=args.segmentation_type,
        qa_png=args.qa_png, sr=args.sr, register=args.register,
        save_brain_mask=args.save_brain_mask,
        require_signature=args.require_signature, trusted_keys=tuple(args.trusted_key),
    )
    with use_progress(Progress()) as progress:
        progress.stage("loading model")
        with Segmenter.from_bundle(args.bundle, args.backend, args.device, config,
                                   checkpoint=args.checkpoint, cache_dir=args.engine_cache) as segmenter:
            result = segmenter.segment_study(args.study, rules=args.rules)
        progress.stage("writing files")
        files = result.write(args.out)
    vols = ", ".join(f"{k} {v:.2f} ml" for k, v in result.volumes_ml.items())
    logger.info("study %s: %s", result.study_instance_uid, vols)
    from glioedge.runtime.quality import summary_of

    logger.info("quality %s", summary_of(result.quality))
    for kind, path in files.items():
        logger.info("wrote %s: %s", kind, path)
    return 0
