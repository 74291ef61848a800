"""The KD variants of the ablation: modality dropout, BT on decoder scales, warm-up, frozen teacher."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from glioedge.cli import main
from glioedge.errors import ConfigError, ModelError
from glioedge.train.checkpoint import read_meta
from glioedge.train.config import KDConfig, TrainConfig
from glioedge.train.kd_model import KDModel, KDObjective, forward_with_features
from glioedge.train.networks import build_unet
from glioedge.train.plan import TINY
from glioedge.train.run import train_from_folder
from tests.train.conftest import tiny_config


def _model(**kd: object) -> tuple[KDModel, TrainConfig]:
    cfg = TrainConfig(preset="tiny", kd=KDConfig(**kd))
    torch.manual_seed(0)
    return KDModel(TINY, cfg), cfg


def _kd(cfg: TrainConfig, **kd: object) -> TrainConfig:
    return replace(cfg, kd=replace(cfg.kd, **kd))


def test_forward_with_features_matches_the_library_decoder() -> None:
    torch.manual_seed(0)
    net = build_unet(TINY, 2)
    x = torch.randn(1, 2, 32, 32, 32)
    with torch.no_grad():
        ref = net(x)
        outs, feats = forward_with_features(net, x, n_scales=3)
    assert all(torch.equal(a, b) for a, b in zip(ref, outs, strict=True))
    # bottleneck (32 ch, 4³), then the two lowest decoder stages (16 ch 8³, 8 ch 16³)
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 4, 4, 4), (16, 8, 8, 8), (8, 16, 16, 16)]


def test_bt_on_several_scales_has_one_projector_pair_per_scale() -> None:
    model, cfg = _model(bt_scales=3)
    out = model(torch.randn(2, 4, 32, 32, 32))
    assert len(out["teacher_proj"]) == len(out["student_proj"]) == 3
    parts = KDObjective(TINY, cfg)(out, torch.randint(0, 4, (2, 1, 32, 32, 32)))
    assert {"barlow_twins_0", "barlow_twins_1", "barlow_twins_2"} <= set(parts.terms)
    parts.total.backward()
    head = model.extra_proj[1]["student"].net[0].weight
    assert head.grad is not None and head.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="bt_scales"):
        _model(bt_scales=5)


def test_modality_dropout_zeroes_only_the_teachers_extra_channels() -> None:
    model, cfg = _model(teacher_modality_dropout=1.0)
    assert cfg.dropout_channel_indices() == [0, 1]  # t1, t2 of (t1, t2, flair, t1ce)
    image = torch.randn(3, 4, 32, 32, 32)
    drop = torch.tensor([True, False, True])
    dropped = model.drop_modalities(image, drop)
    assert torch.all(dropped[[0, 2], :2] == 0)
    assert torch.equal(dropped[1], image[1])
    assert torch.equal(dropped[:, 2:], image[:, 2:])  # flair, t1ce never dropped
    model.eval()  # evaluation never drops
    assert torch.equal(model.drop_modalities(image, drop), image)
    # the teacher sees the dropped image, the student its channels unchanged
    model.train()
    with torch.no_grad():
        out = model(image, drop)
        t_ref, _ = forward_with_features(model.teacher, dropped)
        s_ref, _ = forward_with_features(model.student, image[:, 2:])
    assert torch.equal(out["teacher"][0], t_ref[0])
    assert torch.equal(out["student"][0], s_ref[0])


def test_warmup_leaves_the_distillation_terms_out_of_the_loss() -> None:
    model, cfg = _model(logit_kd=True)
    out = model(torch.randn(2, 4, 32, 32, 32))
    target = torch.randint(0, 4, (2, 1, 32, 32, 32))
    objective = KDObjective(TINY, cfg)
    off = objective(out, target, kd_on=False)
    on = objective(out, target, kd_on=True)
    seg = off.terms["teacher_seg"] + off.terms["student_seg"]
    assert off.terms["total"] == pytest.approx(seg, rel=1e-6)
    assert on.terms["total"] == pytest.approx(
        seg + cfg.kd.lambda_bt * on.terms["barlow_twins"] + on.terms["logit_kd"], rel=1e-6)


def test_modality_dropout_keeps_resume_exact(tiny_cohort: Path, tmp_path: Path) -> None:
    cfg = _kd(tiny_config(epochs=2, iters_per_epoch=2, val_fraction=0.0), teacher_modality_dropout=0.5)
    full = train_from_folder(tiny_cohort, tmp_path / "full", cfg)
    train_from_folder(tiny_cohort, tmp_path / "part", cfg.replace(epochs=1))
    resumed = train_from_folder(tiny_cohort, tmp_path / "part", cfg, resume=True)
    assert [r["train"] for r in resumed.history] == [r["train"] for r in full.history]
    other = train_from_folder(tiny_cohort, tmp_path / "nodrop",
                              _kd(cfg, teacher_modality_dropout=0.0))
    assert other.history[0]["train"]["teacher_seg"] != full.history[0]["train"]["teacher_seg"]


def test_two_stage_teacher_is_loaded_and_frozen(tiny_cohort: Path, tmp_path: Path) -> None:
    four = ("t1", "t2", "flair", "t1ce")
    stage1 = train_from_folder(
        tiny_cohort, tmp_path / "teacher",
        tiny_config(student_only=True, student_modalities=four, epochs=1, iters_per_epoch=2,
                    val_fraction=0.0),
    )
    cfg = tiny_config(epochs=1, iters_per_epoch=2, val_fraction=0.0,
                      teacher_checkpoint=str(stage1.checkpoint))
    result = train_from_folder(tiny_cohort, tmp_path / "student", cfg)
    from safetensors.torch import load_file

    before = load_file(str(stage1.checkpoint / "student.safetensors"))
    after = load_file(str(result.checkpoint / "teacher.safetensors"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen: bitwise unchanged
    s0 = load_file(str(tmp_path / "teacher" / "checkpoints" / "final" / "student.safetensors"))
    s1 = load_file(str(result.checkpoint / "student.safetensors"))
    assert s0.keys() != s1.keys() or any(not torch.equal(s0[k], s1[k]) for k in s0)
    assert read_meta(result.checkpoint).config["teacher_checkpoint"] == str(stage1.checkpoint)
    # a checkpoint whose network sees only FLAIR+T1CE cannot be the teacher, and says why
    two = train_from_folder(tiny_cohort, tmp_path / "two",
                            tiny_config(student_only=True, epochs=1, iters_per_epoch=1,
                                        val_fraction=0.0))
    with pytest.raises(ModelError, match=r"teacher's modalities .*t1.*flair"):
        train_from_folder(tiny_cohort, tmp_path / "bad",
                          cfg.replace(teacher_checkpoint=str(two.checkpoint)))


def test_train_cli_takes_a_teacher_checkpoint(tiny_cohort: Path, tmp_path: Path) -> None:
    common = ["--data", str(tiny_cohort), "--preset", "tiny", "--patch", "32,32,32", "--epochs", "1",
              "--iters-per-epoch", "1", "--val-fraction", "0", "--spacing", "3", "--workers", "0"]
    assert main(["train", *common, "--out", str(tmp_path / "t"), "--student-only",
                 "--student-modalities", "t1,t2,flair,t1ce"]) == 0
    teacher = tmp_path / "t" / "checkpoints" / "final"
    assert main(["train", *common, "--out", str(tmp_path / "s"), "--teacher", str(teacher)]) == 0
    meta = read_meta(tmp_path / "s" / "checkpoints" / "final")
    assert meta.config["teacher_checkpoint"] == str(teacher)
    assert not meta.student_only
