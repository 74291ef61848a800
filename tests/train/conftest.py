"""Factories for training tests: a tiny synthetic BraTS cohort written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from glioedge.synth.cohort import SyntheticConfig, generate_cohort
from glioedge.train.config import TrainConfig


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five small BraTS-2021-named synthetic cases (64×64×48 voxels at 3 mm)."""
    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(out, 5, seed=7, config=SyntheticConfig(shape=(64, 64, 48), spacing=(3.0, 3.0, 3.0)))
    return out


def tiny_config(**changes: object) -> TrainConfig:
    """The smallest realistic configuration: tiny plan, 32³ patches at 3 mm, no worker processes."""
    base = TrainConfig(
        preset="tiny",
        patch_size=(32, 32, 32),
        epochs=2,
        iters_per_epoch=2,
        batch_size=2,
        val_every=1,
        val_fraction=0.2,
        target_spacing=(3.0, 3.0, 3.0),
        num_workers=0,
        augment=False,
    )
    return base.replace(**changes)
