"""Training runs end to end: losses fall, checkpoints resume exactly, bad data is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from glioedge.cli import main
from glioedge.data.augment import AugmentConfig
from glioedge.data.loader import load_preprocessed, make_train_loader
from glioedge.errors import InputError, ModelError
from glioedge.metrics.brats import evaluate_case
from glioedge.metrics.summary import summarise
from glioedge.train.checkpoint import load_student, read_meta
from glioedge.train.run import resolve_plan, split_cases, train_from_folder
from glioedge.train.trainer import Trainer
from glioedge.train.validation import predict_case
from tests.train.conftest import tiny_config


def _first_batch(paths: list[Path], cfg, seed: int) -> dict[str, torch.Tensor]:
    loader = make_train_loader(
        paths, patch_size=resolve_plan(cfg).patch_size, batch_size=cfg.batch_size,
        augment=AugmentConfig(enabled=cfg.augment), seed=seed, num_workers=0,
    )
    return next(iter(loader))


@pytest.mark.slow
def test_short_kd_run_lowers_teacher_and_student_losses(tiny_cohort: Path, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=4, iters_per_epoch=6, val_every=4)
    result = train_from_folder(tiny_cohort, tmp_path / "run", cfg)
    first, last = result.history[0]["train"], result.history[-1]["train"]
    assert last["teacher_seg"] < first["teacher_seg"]
    assert last["student_seg"] < first["student_seg"]
    assert {"teacher", "student"} <= set(result.final_metrics)
    assert result.history[-1]["val"] == result.final_metrics
    # The reported metrics are the final student's on the held-out cases, recomputed here.
    run = tmp_path / "run"
    val_ids = json.loads((run / "split.json").read_text())["val"]
    student, _ = load_student(result.checkpoint)
    per_case = []
    for case_id in val_ids:
        pc = load_preprocessed(run / "preprocessed" / f"{case_id}.npy")
        pred = predict_case(student, pc.data[cfg.student_channel_indices()], resolve_plan(cfg).patch_size,
                            torch.device("cpu"), step=cfg.val_step)
        per_case.append(evaluate_case(pred, pc.label, tuple(cfg.target_spacing)))
    recomputed = summarise(per_case)
    for region in ("WT", "TC", "ET"):
        assert result.final_metrics["student"][region]["dice"]["mean"] == pytest.approx(
            recomputed[region]["dice"]["mean"], abs=1e-6), region
    # Logs, curves and both checkpoints are there, and the student loads without pickle.
    for name in ("history.json", "history.csv", "curves.png", "split.json"):
        assert (run / name).is_file(), name
    net, meta = load_student(result.checkpoint)
    assert meta.student_modalities == ["flair", "t1ce"]
    assert meta.epoch == 4
    assert meta.provenance["data_digest"]
    with torch.no_grad():
        out = net(torch.zeros(1, 2, 32, 32, 32))
    assert out.shape == (1, 4, 32, 32, 32)


def test_checkpoint_resume_gives_identical_next_step_loss(tiny_cohort: Path, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=3, iters_per_epoch=2)
    pre = tmp_path / "pre"
    from glioedge.data.brats import discover_cases
    from glioedge.data.dataset import preprocess_cohort
    from glioedge.data.preprocess import PreprocessParams

    params = PreprocessParams(modalities=cfg.input_modalities, target_spacing=cfg.target_spacing)
    paths = preprocess_cohort(discover_cases(tiny_cohort), params, pre)
    plan = resolve_plan(cfg)

    a = Trainer(cfg, plan, params.to_dict())
    a.run_epoch(make_train_loader(paths, plan.patch_size, 2, AugmentConfig(enabled=False), seed=0,
                                  num_workers=0))
    a.save(tmp_path / "ckpt")
    batch = _first_batch(paths, cfg, seed=1)
    loss_a = a.train_step(batch)

    b = Trainer(cfg.replace(seed=99), plan, params.to_dict())  # different init, overwritten by load
    b.load(tmp_path / "ckpt")
    assert b.epoch == 1
    loss_b = b.train_step(batch)
    assert loss_a == loss_b  # bitwise: same weights, optimiser state and batch


def test_resumed_run_equals_uninterrupted_run(tiny_cohort: Path, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=2, iters_per_epoch=2, val_fraction=0.0)
    full = train_from_folder(tiny_cohort, tmp_path / "full", cfg)
    train_from_folder(tiny_cohort, tmp_path / "part", cfg.replace(epochs=1))
    # "latest" of the 1-epoch run has the 2-epoch schedule's epoch-0 state (poly lr(0) is lr0).
    resumed = train_from_folder(tiny_cohort, tmp_path / "part", cfg, resume=True)
    assert [r["train"] for r in resumed.history] == [r["train"] for r in full.history]
    from safetensors.torch import load_file

    wa = load_file(str(full.checkpoint / "student.safetensors"))
    wb = load_file(str(resumed.checkpoint / "student.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_student_only_run_has_no_teacher(tiny_cohort: Path, tmp_path: Path) -> None:
    cfg = tiny_config(student_only=True, epochs=1, iters_per_epoch=1)
    result = train_from_folder(tiny_cohort, tmp_path / "run", cfg)
    assert set(result.final_metrics) == {"student"}
    assert not (result.checkpoint / "teacher.safetensors").exists()
    assert read_meta(result.checkpoint).student_only
    assert "barlow_twins" not in result.history[0]["train"]


def test_training_and_validation_accept_healthy_cases(tmp_path: Path) -> None:
    """Cases with an all-zero seg (``synth --healthy-fraction``) train and validate: foreground
    patches fall back to random ones, and an empty prediction of an empty truth scores Dice 1."""
    from glioedge.synth.cohort import SyntheticConfig, generate_cohort

    data = tmp_path / "cohort"
    generate_cohort(data, 3, seed=7, config=SyntheticConfig(shape=(64, 64, 48), spacing=(3.0, 3.0, 3.0)),
                    healthy_fraction=1.0)
    cfg = tiny_config(student_only=True, epochs=1, iters_per_epoch=2, val_fraction=0.34)
    result = train_from_folder(data, tmp_path / "run", cfg)
    assert np.isfinite(result.history[0]["train"]["student_seg"])
    for region in ("WT", "TC", "ET"):
        assert np.isfinite(result.final_metrics["student"][region]["dice"]["mean"]), region
    empty = np.zeros((8, 8, 8), dtype=np.uint8)
    assert evaluate_case(empty, empty, (3.0, 3.0, 3.0))["WT"]["dice"] == 1.0


def test_resume_refuses_a_checkpoint_of_another_mode(tiny_cohort: Path, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=1, iters_per_epoch=1, val_fraction=0.0)
    train_from_folder(tiny_cohort, tmp_path / "run", cfg)
    with pytest.raises(ModelError, match="student_only"):
        train_from_folder(tiny_cohort, tmp_path / "run", cfg.replace(student_only=True, epochs=2),
                          resume=True)


def test_split_is_deterministic_and_disjoint() -> None:
    ids = [f"c{i}" for i in range(10)]
    train, val = split_cases(ids, 0.2, seed=3)
    assert split_cases(ids, 0.2, seed=3) == (train, val)
    assert len(val) == 2
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(ids)
    with pytest.raises(InputError, match="held out"):
        split_cases(["only"], 0.5, seed=0)


def test_train_cli_names_the_missing_file(tiny_cohort: Path, tmp_path: Path, caplog) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_cohort, data)
    victim = sorted(data.glob("*/*_t2.nii.gz"))[0]
    victim.unlink()
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--epochs", "1", "--workers", "0"])
    assert code == 2
    assert victim.parent.name in caplog.text
    assert "t2" in caplog.text


def test_train_config_round_trips_through_checkpoint_json(tiny_cohort: Path, tmp_path: Path) -> None:
    from glioedge.train.config import TrainConfig

    cfg = tiny_config(epochs=1, iters_per_epoch=1, val_fraction=0.0)
    result = train_from_folder(tiny_cohort, tmp_path / "run", cfg)
    stored = json.loads((result.checkpoint / "checkpoint.json").read_text())
    assert TrainConfig.from_dict(stored["config"]) == cfg
    assert np.allclose(stored["preprocess"]["target_spacing"], cfg.target_spacing)
