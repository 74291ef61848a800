"""``glioedge quality calibrate --bundle B HELD_OUT_DIR``: thresholds from held-out studies."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["add_quality_parser"]


def add_quality_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``quality calibrate`` on the CLI's sub-parsers."""
    p = subparsers.add_parser("quality", help="the per-case quality verdict: calibrate its thresholds")
    sub = p.add_subparsers(dest="quality_command", required=True)
    c = sub.add_parser("calibrate", help="segment held-out studies and store thresholds in the bundle",
                       description="Each sub-folder of HELD_OUT_DIR is one clean DICOM study the "
                       "model did not train on; each of the k signals' review threshold becomes its "
                       "(1 - false alarm / k) quantile over them, written into the bundle's manifest.")
    c.add_argument("held_out", type=Path, metavar="HELD_OUT_DIR", help="folder of study folders")
    c.add_argument("--bundle", type=Path, required=True, help="model bundle directory (rewritten)")
    c.add_argument("--false-alarm", type=float, default=0.05,
                   help="share of clean cases that may be flagged, all signals together (default 0.05; "
                   "needs about k/rate held-out cases)")
    c.add_argument("--mirror", action="store_true",
                   help="segment with test-time mirroring, as the site runs (also calibrates the "
                   "mirror-disagreement threshold)")
    c.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt", "torch"])
    c.add_argument("--device", default=None)
    c.add_argument("--scores-out", type=Path, default=None, metavar="JSON",
                   help="also write every held-out case's verdict and scores (in the sorted order "
                   "of the study folders, which are not named), to inspect what the thresholds "
                   "rest on")
    c.set_defaults(func=_run_calibrate)
    return p


def _run_calibrate(args: argparse.Namespace) -> int:
    from glioedge.errors import InputError
    from glioedge.runtime.quality.calibrate import calibrate_bundle

    folder = Path(args.held_out)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of held-out studies")
    studies = sorted(p for p in folder.iterdir() if p.is_dir())
    block = calibrate_bundle(args.bundle, studies, false_alarm=args.false_alarm, backend=args.backend,
                             device=args.device, mirror=args.mirror, scores_out=args.scores_out)
    print(json.dumps({"thresholds": block["thresholds"], "calibration": block["calibration"]}, indent=2))
    return 0
