"""The outputs of ``glioedge evaluate``: per-case CSV and JSON, the summary (JSON and CSV).

Files (all written atomically): ``cases.csv`` (one row per case and region), ``cases.json`` (the
same, with every reference lesion), ``summary.json`` and ``summary.csv`` (per region and metric:
n, mean, std, median, quartiles, IQR and a seeded 95 % bootstrap interval of the mean; plus the
Bland–Altman statistics of the volumes). In JSON an undefined value is ``null`` and an infinite
one the string ``"inf"`` (JSON has no NaN or infinity); in CSV they are an empty cell and ``inf``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glioedge.evaluation.checks import evaluate_checks
from glioedge.fileio import atomic_write_text
from glioedge.metrics import RegionMetrics, describe

__all__ = ["SUMMARY_METRICS", "CaseResult", "bland_altman", "summary", "write_reports"]

#: Metrics summarised over cases (the lesion list and raw voxel counts are per case only).
SUMMARY_METRICS: tuple[str, ...] = (
    "dice", "hd95", "nsd", "sensitivity", "specificity", "volume_pred_ml", "volume_ref_ml",
    "volume_diff_ml", "volume_rel_diff", "lesion_tp", "lesion_fp", "lesion_fn", "lesion_precision",
    "lesion_recall", "lesion_f1", "lesion_dice", "lesion_hd95", "lesion_nsd", "lesion_dice_ranked",
    "lesion_hd95_ranked",
)


@dataclass(frozen=True)
class CaseResult:
    """One evaluated case."""

    case_id: str
    pred_source: str
    truth_source: str
    spacing_mm: tuple[float, float, float]
    shape: tuple[int, int, int]
    regions: Mapping[str, RegionMetrics] = field(default_factory=dict)


def _json_value(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _csv_value(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def bland_altman(pred_ml: Sequence[float], ref_ml: Sequence[float]) -> dict[str, float]:
    """Mean difference (bias) and 95 % limits of agreement of predicted vs reference volumes."""
    diff = np.asarray(pred_ml, float) - np.asarray(ref_ml, float)
    bias = float(diff.mean()) if diff.size else math.nan
    sd = float(diff.std(ddof=1)) if diff.size > 1 else math.nan
    return {"n": int(diff.size), "bias_ml": bias, "sd_ml": sd,
            "loa_low_ml": bias - 1.96 * sd, "loa_high_ml": bias + 1.96 * sd}


def summary(results: Sequence[CaseResult], conventions: Mapping[str, Any]) -> dict[str, Any]:
    """Statistics over cases per region and metric, and Bland–Altman of the volumes."""
    regions = list(results[0].regions) if results else []
    out: dict[str, Any] = {"n_cases": len(results), "conventions": dict(conventions), "regions": {},
                           "bland_altman": {}}
    for region in regions:
        rows = [r.regions[region] for r in results]
        out["regions"][region] = {m: describe([getattr(x, m) for x in rows]) for m in SUMMARY_METRICS}
        out["bland_altman"][region] = bland_altman([x.volume_pred_ml for x in rows],
                                                   [x.volume_ref_ml for x in rows])
    return out


def _cases_csv(results: Sequence[CaseResult]) -> str:
    buf = io.StringIO()
    fields = list(next(iter(results[0].regions.values())).scalars()) if results else []
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["case", "region", *fields])
    for r in results:
        for region, m in r.regions.items():
            writer.writerow([r.case_id, region, *(_csv_value(v) for v in m.scalars().values())])
    return buf.getvalue()


def _summary_csv(stats: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    keys = ("n", "n_nan", "n_inf", "mean", "std", "median", "q1", "q3", "iqr", "ci95_low", "ci95_high")
    writer.writerow(["region", "metric", *keys])
    for region, metrics in stats["regions"].items():
        for metric, d in metrics.items():
            writer.writerow([region, metric, *(_csv_value(d[k]) for k in keys)])
    return buf.getvalue()


def write_reports(out: Path, results: Sequence[CaseResult], conventions: Mapping[str, Any],
                  checks: Sequence[Any] = ()) -> dict[str, Any]:
    """Write ``cases.csv``, ``cases.json``, ``summary.json`` and ``summary.csv`` into ``out``.

    Args:
        checks: acceptance rules (:class:`~glioedge.evaluation.checks.Check`); their outcome is
            recorded in the summary under ``checks``.

    Returns:
        The summary (as written to ``summary.json``, before the JSON encoding of NaN/inf).
    """

    out.mkdir(parents=True, exist_ok=True)
    cases = [{"case": r.case_id, "prediction": r.pred_source, "reference": r.truth_source,
              "spacing_mm": list(r.spacing_mm), "shape": list(r.shape),
              "regions": {name: {**m.scalars(), "lesions": list(m.lesions)} for name, m in r.regions.items()}}
             for r in results]
    stats = summary(results, conventions)
    stats["checks"] = evaluate_checks(checks, stats["regions"])
    atomic_write_text(out / "cases.csv", _cases_csv(results))
    atomic_write_text(out / "cases.json", json.dumps(_json_value({"conventions": dict(conventions),
                                                                  "cases": cases}), indent=1) + "\n")
    atomic_write_text(out / "summary.json", json.dumps(_json_value(stats), indent=1) + "\n")
    atomic_write_text(out / "summary.csv", _summary_csv(stats))
    return stats
