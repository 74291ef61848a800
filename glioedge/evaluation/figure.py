"""The picture of ``glioedge evaluate``: per-region box plots, a per-case strip, Bland–Altman.

Three panels: Dice per region (WT, TC, ET, NCR, ED) as box plots, each case a dot on top; a
strip of every case's WT/TC/ET Dice (cases on the x axis, so a bad case stands out and can be
looked up in ``cases.csv``); and a Bland–Altman plot of the WT/TC/ET volumes (difference
prediction − reference against their mean, with the bias and the 95 % limits of agreement). Needs matplotlib
(``pip install 'glioedge[evaluate]'``), imported only here.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from glioedge._optional import require
from glioedge.evaluation.report import CaseResult, bland_altman
from glioedge.fileio import atomic_write_bytes

__all__ = ["check_figure_dependency", "write_figure"]

_COLOURS = {"WT": "#2ca02c", "TC": "#d62728", "ET": "#e6b800", "NCR": "#9467bd", "ED": "#1f77b4"}


def check_figure_dependency() -> None:
    """Fail early (before any case is evaluated) when matplotlib is missing.

    Raises:
        MissingDependencyError: matplotlib is not installed; the message says how to get it.
    """
    require("matplotlib", "the evaluation picture (glioedge evaluate; --no-figure skips it)")


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if not (math.isnan(v) or math.isinf(v))]


def write_figure(path: Path, results: Sequence[CaseResult], title: str) -> Path:
    """Draw the three panels into a PNG at ``path`` (written atomically)."""
    matplotlib = require("matplotlib", "the evaluation picture (glioedge evaluate)")
    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    regions = list(results[0].regions) if results else []
    main = [r for r in ("WT", "TC", "ET") if r in regions]  # the strip and Bland–Altman stay legible
    fig = Figure(figsize=(15, 4.8), dpi=110, layout="constrained")
    ax_box, ax_strip, ax_ba = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.4, 1.2]})
    dice = {r: [c.regions[r].dice for c in results] for r in regions}

    data = [_finite(dice[r]) for r in regions]
    ax_box.boxplot(data, showfliers=False)
    ax_box.set_xticks(range(1, len(regions) + 1), regions)
    rng = np.random.default_rng(0)
    for x, (region, values) in enumerate(zip(regions, data, strict=True), start=1):
        ax_box.scatter(x + rng.uniform(-0.12, 0.12, len(values)), values, s=12,
                       color=_COLOURS.get(region, "k"), alpha=0.8, zorder=3)
    ax_box.set_ylim(-0.02, 1.02)
    ax_box.set_ylabel("Dice")
    ax_box.set_title("Dice per region")

    xs = np.arange(len(results))
    for region in main:
        ax_strip.plot(xs, dice[region], "o", ms=4, color=_COLOURS.get(region, "k"), label=region)
    ax_strip.set_xticks(xs, [c.case_id for c in results], rotation=90, fontsize=6 if len(xs) > 20 else 8)
    ax_strip.set_ylim(-0.02, 1.02)
    ax_strip.set_ylabel("Dice")
    ax_strip.set_title("Per case")
    ax_strip.legend(fontsize=7, ncol=len(main), loc="lower left")

    for region in main:
        pred = np.array([c.regions[region].volume_pred_ml for c in results])
        ref = np.array([c.regions[region].volume_ref_ml for c in results])
        colour = _COLOURS.get(region, "k")
        ax_ba.scatter((pred + ref) / 2, pred - ref, s=14, color=colour, label=region)
        stats = bland_altman(pred, ref)
        if not math.isnan(stats["sd_ml"]):
            lines = ((stats["bias_ml"], "-"), (stats["loa_low_ml"], ":"), (stats["loa_high_ml"], ":"))
            for y, style in lines:
                ax_ba.axhline(y, color=colour, linestyle=style, linewidth=0.9)
    ax_ba.axhline(0, color="grey", linewidth=0.6)
    ax_ba.set_xlabel("mean of predicted and reference volume (mL)")
    ax_ba.set_ylabel("predicted − reference (mL)")
    ax_ba.set_title("Bland–Altman (bias —, 95 % limits ···)")
    ax_ba.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())
