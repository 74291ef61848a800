"""``--resume`` keeps its word: no checkpoint is an error, and a crash between the two renames of
a checkpoint write is recovered from ``.latest.old``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from glioedge.errors import ConfigError
from glioedge.train import checkpoint as ckpt
from glioedge.train.plan import TINY
from glioedge.train.run import train_from_folder
from tests.train.conftest import tiny_config


def _meta(epoch: int) -> ckpt.CheckpointMeta:
    return ckpt.CheckpointMeta(plan=TINY, preprocess={}, teacher_modalities=["flair", "t1ce"],
                               student_modalities=["flair", "t1ce"], num_classes=4, epoch=epoch,
                               config={}, student_only=True)


def _module(value: float) -> nn.Module:
    m = nn.Linear(2, 2)
    with torch.no_grad():
        m.weight.fill_(value)
        m.bias.fill_(value)
    return m


def test_resume_without_a_checkpoint_is_an_error_before_any_work(tiny_cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="--resume: no checkpoint"):
        train_from_folder(tiny_cohort, out, tiny_config(epochs=1, iters_per_epoch=1), resume=True)
    assert not out.exists()  # nothing was preprocessed or written


def test_a_crash_between_the_two_renames_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    latest = tmp_path / "checkpoints" / "latest"
    ckpt.save_checkpoint(latest, _meta(1), {"student": _module(1.0)})

    real_rename = Path.rename
    calls: list[Path] = []

    def crash_on_second_rename(self: Path, target: Path) -> Path:
        calls.append(self)
        if len(calls) == 2:  # latest → .latest.old happened; the new directory never lands
            raise KeyboardInterrupt("simulated crash")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", crash_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(latest, _meta(2), {"student": _module(2.0)})
    monkeypatch.undo()

    old = latest.with_name(".latest.old")
    assert not latest.exists() and old.is_dir()  # the window the recovery is for
    found = ckpt.resumable_checkpoint(latest)
    assert found == old
    assert ckpt.read_meta(found).epoch == 1
    restored = _module(0.0)
    ckpt.load_module_weights(found, "student", restored)
    assert torch.all(restored.weight == 1.0)

    # The next write lands normally and clears the parked copy.
    ckpt.save_checkpoint(latest, _meta(3), {"student": _module(3.0)})
    assert ckpt.resumable_checkpoint(latest) == latest and not old.exists()
    assert ckpt.read_meta(latest).epoch == 3


def test_training_resumes_from_latest_old(tiny_cohort: Path, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=2, iters_per_epoch=1, val_fraction=0.0)
    run = tmp_path / "run"
    train_from_folder(tiny_cohort, run, cfg.replace(epochs=1))
    latest = run / "checkpoints" / "latest"
    latest.rename(latest.with_name(".latest.old"))  # the state a crash mid-write leaves
    resumed = train_from_folder(tiny_cohort, run, cfg, resume=True)
    assert [r["epoch"] for r in resumed.history] == [0, 1]  # epoch 0 kept, epoch 1 trained
    assert ckpt.read_meta(latest).epoch == 2
    assert not latest.with_name(".latest.old").exists()


def test_checkpoint_json_rejects_unknown_keys(tmp_path: Path) -> None:
    import json

    from glioedge.errors import ModelError

    path = ckpt.save_checkpoint(tmp_path / "c", _meta(1), {"student": _module(1.0)})
    data = json.loads((path / ckpt.META_FILE).read_text())
    data["epochs_done"] = 5  # not a field: refused rather than ignored
    (path / ckpt.META_FILE).write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"unknown keys \['epochs_done'\]"):
        ckpt.read_meta(path)
