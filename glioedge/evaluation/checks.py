"""Acceptance checks of ``glioedge evaluate --require``: a statistic of a metric against a bound.

A rule is ``REGION:METRIC[:STAT]>=VALUE`` or ``<=VALUE``, e.g. ``WT:dice>=0.85``,
``ET:hd95:median<=10`` or ``TC:dice:ci95_low>=0.7``; STAT is a field of the summary
(:func:`glioedge.metrics.describe`: ``mean`` by default, ``median``, ``q1``, ``q3``, ``ci95_low``,
``ci95_high``). A rule whose statistic is undefined (no finite value) fails.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from glioedge.errors import ConfigError

__all__ = ["Check", "evaluate_checks", "parse_check"]

_STATS = ("mean", "median", "q1", "q3", "ci95_low", "ci95_high")
_RULE = re.compile(r"^\s*(\w+):(\w+)(?::(\w+))?\s*(>=|<=)\s*([-+0-9.eE]+|inf)\s*$")


@dataclass(frozen=True)
class Check:
    """One acceptance rule."""

    region: str
    metric: str
    stat: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.region}:{self.metric}:{self.stat}{self.op}{self.bound:g}"


def parse_check(text: str, regions: Sequence[str], metrics: Sequence[str]) -> Check:
    """Parse one ``--require`` rule.

    Raises:
        ConfigError: the rule is malformed or names an unknown region, metric or statistic.
    """
    m = _RULE.match(text)
    if not m:
        raise ConfigError(f"--require {text!r}: expected REGION:METRIC[:STAT]>=VALUE or <=VALUE, "
                          f"e.g. WT:dice>=0.85 or ET:hd95:median<=10")
    region, metric, stat, op, bound = m.groups()
    stat = stat or "mean"
    if region not in regions:
        raise ConfigError(f"--require {text!r}: unknown region {region!r}; valid: {', '.join(regions)}")
    if metric not in metrics:
        raise ConfigError(f"--require {text!r}: unknown metric {metric!r}; valid: {', '.join(metrics)}")
    if stat not in _STATS:
        raise ConfigError(f"--require {text!r}: unknown statistic {stat!r}; valid: {', '.join(_STATS)}")
    try:
        value = float(bound)
    except ValueError:
        raise ConfigError(f"--require {text!r}: {bound!r} is not a number") from None
    return Check(region, metric, stat, op, value)


def evaluate_checks(checks: Sequence[Check], stats: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each rule with the measured value and whether it held (``summary()``'s ``regions`` block)."""
    out = []
    for c in checks:
        value = float(stats[c.region][c.metric][c.stat])
        held = not math.isnan(value) and (value >= c.bound if c.op == ">=" else value <= c.bound)
        out.append({"rule": str(c), "value": value, "passed": held})
    return out
