"""Moved: the metrics live in :mod:`glioedge.metrics` (one torch-free implementation for training
validation, benches and ``glioedge evaluate``). This alias keeps older imports working."""

from __future__ import annotations

from glioedge.metrics import HD95_EMPTY, METRICS, dice, evaluate_case, hd95, summarise, surface_distances

__all__ = ["HD95_EMPTY", "METRICS", "dice", "evaluate_case", "hd95", "summarise", "surface_distances"]
