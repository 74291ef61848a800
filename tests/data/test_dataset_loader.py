from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glioedge.data.augment import AugmentConfig
from glioedge.data.brats import CaseFiles, discover_cases, load_case
from glioedge.data.dataset import dataset_digest, load_preprocessed, preprocess_cohort
from glioedge.data.modalities import TEACHER_MODALITIES
from glioedge.data.preprocess import PreprocessParams, preprocess
from glioedge.synth.cohort import generate_cohort
from tests.data.conftest import SMALL

PARAMS = PreprocessParams(tuple(m.value for m in TEACHER_MODALITIES), target_spacing=(4.0,) * 3)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> list[CaseFiles]:
    root = tmp_path_factory.mktemp("raw")
    generate_cohort(root, 3, seed=5, config=SMALL)
    return discover_cases(root)


@pytest.fixture(scope="module")
def preprocessed(cohort: list[CaseFiles], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return preprocess_cohort(cohort, PARAMS, tmp_path_factory.mktemp("pre"))


def test_preprocess_cohort_matches_preprocess(
    cohort: list[CaseFiles], preprocessed: list[Path]
) -> None:
    assert [p.name for p in preprocessed] == [f"{c.case_id}.npy" for c in cohort]
    case = load_case(cohort[0])
    direct = preprocess(case.images, case.affine, PARAMS, label=case.label)
    stored = load_preprocessed(preprocessed[0])
    assert isinstance(stored.data, np.memmap)
    assert np.array_equal(stored.data, direct.data)
    assert np.array_equal(stored.label, direct.label)
    assert np.array_equal(stored.mask, direct.mask)
    assert stored.record == direct.record
    meta = json.loads(preprocessed[0].with_suffix(".json").read_text())
    assert PreprocessParams.from_dict(meta["params"]) == PARAMS


def test_preprocess_cohort_skips_done_and_redoes_changed(
    cohort: list[CaseFiles], tmp_path: Path
) -> None:
    out = tmp_path / "pre"
    paths = preprocess_cohort(cohort[:1], PARAMS, out)
    mtime = paths[0].stat().st_mtime_ns
    preprocess_cohort(cohort[:1], PARAMS, out)
    assert paths[0].stat().st_mtime_ns == mtime  # skipped
    other = PreprocessParams(PARAMS.modalities, target_spacing=(5.0, 5.0, 5.0))
    preprocess_cohort(cohort[:1], other, out)
    assert load_preprocessed(paths[0]).record.resampled_shape != load_preprocessed(
        preprocess_cohort(cohort[:1], PARAMS, tmp_path / "again")[0]
    ).record.resampled_shape


def test_dataset_digest(cohort: list[CaseFiles]) -> None:
    d = dataset_digest(cohort)
    assert len(d) == 64
    assert d == dataset_digest(list(reversed(cohort)))
    assert d != dataset_digest(cohort[:2])
    assert dataset_digest(cohort, content=True) != d


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_loader(preprocessed: list[Path], num_workers: int) -> None:
    torch = pytest.importorskip("torch")
    from glioedge.data.loader import make_train_loader

    loader = make_train_loader(preprocessed, (16, 16, 16), batch_size=3,
                               augment=AugmentConfig(), oversample_foreground=0.34, seed=1,
                               num_workers=num_workers)
    it = iter(loader)
    for _ in range(3):
        batch = next(it)
        assert batch["image"].shape == (3, 4, 16, 16, 16)
        assert batch["image"].dtype == torch.float32
        assert batch["label"].shape == (3, 1, 16, 16, 16)
        assert batch["label"].dtype == torch.int64
        assert set(batch["label"].unique().tolist()) <= {0, 1, 2, 3}
        assert (batch["label"][-1] > 0).any()  # the last sample is foreground-centred
    del it


def test_train_loader_deterministic(preprocessed: list[Path]) -> None:
    pytest.importorskip("torch")
    from glioedge.data.loader import make_train_loader

    def first(seed: int) -> np.ndarray:
        loader = make_train_loader(preprocessed, (16, 16, 16), 2, AugmentConfig(), 0.5,
                                   seed, num_workers=0)
        return next(iter(loader))["image"].numpy()

    assert np.array_equal(first(3), first(3))
    assert not np.array_equal(first(3), first(4))


def test_train_loader_stream_is_the_same_for_any_worker_count_and_resumable(
    preprocessed: list[Path],
) -> None:
    """One loader per run: batch k has its own seed, so workers and resuming do not change it."""
    pytest.importorskip("torch")
    from glioedge.data.loader import make_train_loader

    def batches(workers: int, start: int, n: int) -> list[np.ndarray]:
        loader = make_train_loader(preprocessed, (16, 16, 16), 2, AugmentConfig(), 0.5, seed=5,
                                   num_workers=workers, start_batch=start)
        it = iter(loader)
        out = [next(it)["image"].numpy() for _ in range(n)]
        del it
        return out

    serial = batches(0, 0, 4)
    assert all(np.array_equal(a, b) for a, b in zip(serial, batches(2, 0, 4), strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(serial[2:], batches(0, 2, 2), strict=True))
    assert not np.array_equal(serial[0], serial[1])
