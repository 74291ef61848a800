"""``glioedge evaluate``: the argument parser and the run (heavy imports happen in the run)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["add_evaluate_parser", "run_evaluate"]


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``glioedge evaluate``."""
    p = sub.add_parser(
        "evaluate",
        help="compare predictions with reference segmentations (BraTS 2023+ metrics; NIfTI "
        "folders or DICOM studies with DICOM-SEGs) and write tables, a summary and a picture",
        description="Site acceptance: score glioedge's segmentations against your own annotated "
        "cases. Writes cases.csv/.json, summary.json/.csv and evaluation.png into --out. "
        "Conventions: docs/evaluation.md.",
    )
    p.add_argument("--pred", type=Path, required=True,
                   help="predictions: a folder of NIfTI label maps, or of DICOM studies with glioedge's SEGs")
    p.add_argument("--truth", type=Path, required=True,
                   help="references: NIfTI label maps (BraTS names), or DICOM studies with SEGs drawn "
                   "at the site (OHIF, Slicer)")
    p.add_argument("--labels", choices=("brats2021", "brats2023"), default="brats2023",
                   help="label values of NIfTI label maps: brats2021 (ET = 4) or brats2023 (ET = 3, "
                   "default); DICOM-SEGs carry their own segments")
    p.add_argument("--segment-map", type=Path, default=None, metavar="JSON",
                   help='the site\'s segment names/codes for the reference SEGs: {"segments": '
                   '{"Oedem": "ED", "SCT:108369006": "ET", ...}} (values NCR, ED, ET or ignore)')
    p.add_argument("--out", type=Path, required=True, help="folder for the results")
    p.add_argument("--official", action="store_true",
                   help="the official BraTS package's conventions (global distances in voxels, NaN "
                   "for empty/empty, inf for a missed region) so numbers compare with leaderboards")
    p.add_argument("--nsd-tolerance", type=float, default=1.0, metavar="MM",
                   help="normalised surface Dice tolerance in mm (default 1; glioedge conventions)")
    p.add_argument("--no-figure", action="store_true", help="skip evaluation.png (no matplotlib needed)")
    p.add_argument("--require", action="append", default=[], metavar="RULE",
                   help="an acceptance check on the summary, e.g. WT:dice>=0.85, ET:hd95:median<=10, "
                   "TC:dice:ci95_low>=0.7 (repeatable); exit 1 when one fails (results are written)")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation: 0 on success; a failed ``--require`` check raises CheckFailedError (exit
    1) after every output is written; bad input raises and becomes exit code 2."""
    from glioedge.errors import CheckFailedError, ConfigError
    from glioedge.evaluation.checks import parse_check
    from glioedge.evaluation.grid import common_grid
    from glioedge.evaluation.inputs import find_cases
    from glioedge.evaluation.report import SUMMARY_METRICS, CaseResult, write_reports
    from glioedge.evaluation.segment_map import load_segment_map
    from glioedge.metrics import EVAL_REGIONS, evaluate_case
    from glioedge.progress import Progress, use_progress

    if not args.nsd_tolerance > 0:
        raise ConfigError(f"--nsd-tolerance must be a positive number of mm, got {args.nsd_tolerance}")
    if not args.no_figure:
        from glioedge.evaluation.figure import check_figure_dependency

        check_figure_dependency()
    checks = [parse_check(rule, list(EVAL_REGIONS), SUMMARY_METRICS) for rule in args.require]
    mapping = load_segment_map(args.segment_map) if args.segment_map else None
    conventions = {"official": bool(args.official), "labels": args.labels,
                   "nsd_tolerance_mm": None if args.official else float(args.nsd_tolerance),
                   "regions": list(EVAL_REGIONS)}
    with use_progress(Progress()) as progress:
        progress.stage("finding cases")
        pairs = find_cases(args.pred, args.truth, convention=args.labels, segment_classes=mapping)
        logger.info("%d case(s) to evaluate", len(pairs))
        progress.stage("evaluating")
        results = []
        for n, pair in enumerate(pairs, start=1):
            pred, truth = common_grid(pair.load_pred(), pair.load_truth(), pair.case_id)
            spacing = tuple(float(s) for s in truth.spacing)
            regions = evaluate_case(pred.array, truth.array, spacing, EVAL_REGIONS, full=True,
                                    official=args.official, nsd_tolerance=args.nsd_tolerance)
            results.append(CaseResult(pair.case_id, pair.pred_source, pair.truth_source, spacing,
                                      truth.shape, regions))
            progress.steps(n, len(pairs), unit="cases")
        progress.stage("writing")
        stats = write_reports(args.out, results, conventions, checks)
        if not args.no_figure:
            from glioedge.evaluation.figure import write_figure

            mode = "official BraTS conventions" if args.official else "glioedge conventions"
            write_figure(args.out / "evaluation.png", results, f"{len(results)} cases, {mode}")
    for region in ("WT", "TC", "ET"):
        d = stats["regions"][region]["dice"]
        logger.info("%s Dice mean %.3f (95%% CI %.3f-%.3f), median %.3f", region, d["mean"], d["ci95_low"],
                    d["ci95_high"], d["median"])
    logger.info("results in %s", args.out)
    failed = [c for c in stats["checks"] if not c["passed"]]
    for c in stats["checks"]:
        logger.info("check %s: %.4g, %s", c["rule"], c["value"], "held" if c["passed"] else "FAILED")
    if failed:
        raise CheckFailedError("acceptance check(s) failed: " + "; ".join(
            f"{c['rule']} measured {c['value']:.4g}" for c in failed) + f" (details in {args.out})")
    return 0
