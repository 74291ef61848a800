"""The training-parity bench's conversion and nnU-Net side, against the real nnU-Net v2
(bench/nnunet_training_parity.py): a raw dataset nnU-Net accepts, with glioedge's labels and
split, and nnU-Net's own trainer running the budget it is given on the CPU."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import nnunet_adapter as A  # noqa: E402
import nnunet_training_parity as B  # noqa: E402

SPACING = 6.0  # 32×32×22 voxels: seconds for nnU-Net's fingerprint, preprocessing and training


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, list[str], list[str]]:
    work = tmp_path_factory.mktemp("nnunet-training-parity")
    data = work / "cohort"
    B.make_cohort(data, 4, SPACING)
    cases, train, val = B.glioedge_split(data, 0.25)
    return work, cases, train, val


def test_raw_dataset_has_glioedge_classes_on_the_same_grid(cohort, tmp_path: Path) -> None:
    import SimpleITK as sitk  # noqa: N813
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    from glioedge.data.brats import load_case

    _work, cases, _train, _val = cohort
    raw = A.write_raw_dataset(tmp_path / "Dataset990_GlioedgeParity", cases, B.MODALITIES)
    verify_dataset_integrity(str(raw), num_processes=1)  # raises on anything nnU-Net rejects
    ds = json.loads((raw / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "FLAIR", "1": "T1CE"} and ds["numTraining"] == len(cases)
    saw_et = False
    for cf in cases:
        written = sitk.ReadImage(str(raw / "labelsTr" / f"{cf.case_id}.nii.gz"))
        source = sitk.ReadImage(str(cf.seg))
        assert written.GetSpacing() == source.GetSpacing()
        assert written.GetOrigin() == source.GetOrigin()
        arr = sitk.GetArrayFromImage(written)
        assert set(np.unique(arr).tolist()) <= {0, 1, 2, 3}
        # BraTS-2021 files write ET as 4; nnU-Net needs consecutive labels: glioedge's class 3
        np.testing.assert_array_equal(arr == 3, sitk.GetArrayFromImage(source) == 4)
        saw_et |= bool(np.any(arr == 3))
        # the same labels glioedge trains on, in nnU-Net's (k, j, i) order
        np.testing.assert_array_equal(arr.transpose(2, 1, 0), load_case(cf).label)
        flair = raw / "imagesTr" / f"{cf.case_id}_0000.nii.gz"
        assert flair.resolve() == Path(cf.images[next(k for k in cf.images if k.value == "flair")]).resolve()
    assert saw_et


def test_splits_final_is_one_fold_of_exactly_the_split() -> None:
    assert A.splits_final(["b", "a"], ["c"]) == [{"train": ["a", "b"], "val": ["c"]}]
    with pytest.raises(ValueError, match="both in train and held out"):
        A.splits_final(["a", "b"], ["b"])


@pytest.mark.slow
def test_nnunet_trainer_runs_the_given_budget_and_predicts(cohort, monkeypatch) -> None:
    import torch

    from glioedge.data.brats import load_case

    work, cases, train, val = cohort
    runs = work / "runs"
    for k, v in {**B.nnunet_env(runs, seed=3), "GLIOEDGE_PARITY_EPOCHS": "2",
                 "GLIOEDGE_PARITY_ITERS": "3", "GLIOEDGE_PARITY_SEED": "3"}.items():
        monkeypatch.setenv(k, v)  # restored after the test, also where the bench updates them
    threads = torch.get_num_threads()
    args = argparse.Namespace(preset="tiny", patch=16, spacing=SPACING, batch=2)
    B.prepare_nnunet(runs, cases, train, val, args)
    pre = runs / "nnunet" / "preprocessed" / B.DATASET
    assert json.loads((pre / "splits_final.json").read_text()) == [{"train": train, "val": val}]
    plans = json.loads((pre / "nnUNetPlans.json").read_text())["configurations"]["3d_fullres"]
    assert plans["patch_size"] == [16, 16, 16] and plans["batch_size"] == 2 and plans["batch_dice"]
    try:
        trainer = B.child_nnunet()
    finally:
        torch.set_num_threads(threads)
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch) == (2, 3)
    assert trainer.device.type == "cpu" and trainer.label_manager.has_regions is False
    results = B.nnunet_results_dir(runs, 3)
    assert len(torch.load(results / "fold_0" / "checkpoint_final.pth", map_location="cpu",
                          weights_only=False)["logging"]["train_losses"]) == 2
    assert B.nnunet_epoch_seconds(results) > 0
    predictor = A.make_trained_predictor(results, B.trainer_class(), mirror=False, threads=1)
    cf = next(c for c in cases if c.case_id == val[0])
    labels = A.nnunet_labels(predictor, [cf.images[m] for m in sorted(
        cf.images, key=lambda k: B.MODALITIES.index(k.value))])
    assert labels.shape == load_case(cf).label.shape
    assert set(np.unique(labels).tolist()) <= {0, 1, 2, 3}


def test_nnunet_augmentation_in_glioedges_loader_shape_labels_and_seed() -> None:
    """The swapped-in augmenter (nnU-Net's own transforms) keeps glioedge's Augmenter contract."""
    import nnunet_augment_swap as S

    from glioedge.data.augment import AugmentConfig

    def run(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        aug = S.BG2Augmenter(AugmentConfig(), np.random.default_rng(seed))
        size = aug.input_size((16, 16, 16))
        src = np.random.default_rng(0)
        x = src.normal(size=(2, *size)).astype(np.float32)
        y = np.zeros(size, np.uint8)
        y[8:20, 8:20, 8:20] = 2
        y[11:15, 11:15, 11:15] = 3
        return [aug(x, y, (16, 16, 16)) for _ in range(4)]

    first, again, other = run(1), run(1), run(2)
    assert S.BG2Augmenter(AugmentConfig(), np.random.default_rng(0)).input_size((16,) * 3) > (16,) * 3
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(y, y2)
        assert x.shape == (2, 16, 16, 16) and x.dtype == np.float32 and y.shape == (16, 16, 16)
        assert set(np.unique(y).tolist()) <= {0, 2, 3}
        np.testing.assert_array_equal(x, x2)  # seeded from glioedge's generator
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))
    off = S.BG2Augmenter(AugmentConfig(enabled=False), np.random.default_rng(0))
    x = np.arange(2 * 18**3, dtype=np.float32).reshape(2, 18, 18, 18)
    xo, _ = off(x, np.zeros((18,) * 3, np.uint8), (16, 16, 16))
    np.testing.assert_array_equal(xo, x[:, 1:17, 1:17, 1:17])
