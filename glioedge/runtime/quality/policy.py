"""Which verdicts a daemon sends on as a SEG (``[delivery] deliver``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from glioedge.errors import ConfigError

__all__ = ["DELIVER_POLICIES", "check_policy", "delivers", "summary_of"]

#: ``deliver`` setting → the verdicts delivered as a SEG.
DELIVER_POLICIES: dict[str, frozenset[str]] = {
    "ok": frozenset({"ok"}),
    "ok+review": frozenset({"ok", "review"}),
    "all": frozenset({"ok", "review", "reject"}),
}


def check_policy(policy: str) -> str:
    """The policy, validated.

    Raises:
        ConfigError: not one of ``ok``, ``ok+review``, ``all``.
    """
    if policy not in DELIVER_POLICIES:
        raise ConfigError(f"delivery.deliver = {policy!r}; valid: {', '.join(DELIVER_POLICIES)}")
    return policy


def delivers(policy: str, verdict: str | None) -> bool:
    """Whether a result with ``verdict`` is delivered under ``policy`` (a result without a
    verdict, from an older runtime, counts as ``ok``)."""
    return (verdict or "ok") in DELIVER_POLICIES[check_policy(policy)]


def summary_of(quality: Mapping[str, Any]) -> str:
    """``REVIEW: brain_cut_off, uncertain`` / ``OK: no tumour found`` from ``Quality.to_dict()``."""
    if not quality:
        return ""
    codes = [r["code"] for r in quality.get("reasons", []) if r.get("severity") != "info"]
    tail = ", ".join(codes) if codes else str(quality.get("finding", ""))
    return f"{str(quality.get('verdict', '?')).upper()}: {tail}"
