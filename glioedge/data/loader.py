"""Infinite, deterministic training batches from preprocessed cases (imports torch).

Batch ``k`` of the stream is drawn with its own ``numpy`` generator seeded from ``(seed, k)``;
worker ``w`` of ``W`` makes batches ``start + w, start + w + W, …`` and the ``DataLoader`` hands
them out in order, so the stream is the same for any number of workers and a run resumed at
batch ``start`` continues the stream it left. Workers open the cases memory-mapped and assemble
whole batches (sampling → augmentation → stacking); they persist for the whole run (the loader is
built once, not per epoch). Foreground oversampling is
scheduled per batch as in nnU-Net: the last ``round(batch_size * oversample_foreground)`` samples
of every batch are centred on tumour.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glioedge._optional import require
from glioedge.data.augment import AugmentConfig, Augmenter
from glioedge.data.dataset import load_preprocessed
from glioedge.data.sampling import FgLocations, PatchSampler, foreground_locations
from glioedge.errors import ConfigError, InputError

torch = require("torch", "glioedge.data.loader (training batches)")

__all__ = ["PatchBatchDataset", "load_preprocessed", "make_train_loader"]


class PatchBatchDataset(torch.utils.data.IterableDataset):
    """An endless stream of ``{"image": (B, C, *patch) float32, "label": (B, 1, *patch) int64}``.

    Args:
        case_paths: preprocessed ``<id>.npy`` paths (see :func:`preprocess_cohort`).
        patch_size: network patch size.
        batch_size: samples per batch.
        augment: augmentation config.
        oversample_foreground: share of each batch centred on tumour.
        seed: base seed; batch ``k`` uses ``numpy.random.default_rng([seed, k])``.
        start_batch: index of the first batch (``epoch * iters_per_epoch`` when resuming).

    Raises:
        InputError: no case paths, or a case has no label.
    """

    def __init__(
        self,
        case_paths: Sequence[Path],
        patch_size: tuple[int, int, int],
        batch_size: int,
        augment: AugmentConfig,
        oversample_foreground: float = 1 / 3,
        seed: int = 0,
        start_batch: int = 0,
    ) -> None:
        super().__init__()
        if not case_paths:
            raise InputError("no preprocessed cases given to the training loader")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.case_paths = [Path(p) for p in case_paths]
        self.patch_size = tuple(int(p) for p in patch_size)
        self.batch_size = int(batch_size)
        self.augment = augment
        self.oversample_foreground = float(oversample_foreground)
        self.seed = int(seed)
        self.start_batch = int(start_batch)
        n_fg = round(self.batch_size * self.oversample_foreground)
        self._force_fg = [b >= self.batch_size - n_fg for b in range(self.batch_size)]

    def _open(self, idx: int, cache: dict[int, Any]) -> tuple[np.ndarray, np.ndarray, FgLocations]:
        if idx not in cache:
            case = load_preprocessed(self.case_paths[idx], mmap=True)
            if case.label is None:
                raise InputError(f"{self.case_paths[idx]}: no label; cannot train on it")
            fg = foreground_locations(np.asarray(case.label), rng=np.random.default_rng(idx))
            cache[idx] = (case.data, case.label, fg)
        return cache[idx]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Yield batches forever (deterministic for a given seed and start, any worker count)."""
        info = torch.utils.data.get_worker_info()
        worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        cache: dict[int, Any] = {}
        k = self.start_batch + worker
        while True:
            yield self._batch(np.random.default_rng([self.seed, k]), cache)
            k += n_workers

    def _batch(self, rng: np.random.Generator, cache: dict[int, Any]) -> dict[str, Any]:
        augmenter = Augmenter(self.augment, rng)
        sampler = PatchSampler(
            self.patch_size,  # type: ignore[arg-type]
            self.oversample_foreground,
            rng,
            input_size=augmenter.input_size(self.patch_size),  # type: ignore[arg-type]
        )
        images, labels = [], []
        for force in self._force_fg:
            data, label, fg = self._open(int(rng.integers(len(self.case_paths))), cache)
            x, y = sampler.sample(data, label, fg, force_fg=force)
            x, y = augmenter(x, y, self.patch_size)
            images.append(x)
            labels.append(y)
        return {
            "image": torch.from_numpy(np.stack(images)),
            "label": torch.from_numpy(np.stack(labels).astype(np.int64)[:, None]),
        }


def _seed_worker(worker_id: int) -> None:
    """Keep torch's own RNG per worker deterministic too (numpy is seeded in the dataset)."""
    info = torch.utils.data.get_worker_info()
    torch.manual_seed(info.seed % (2**31) if info is not None else worker_id)


def make_train_loader(
    case_paths: Sequence[Path],
    patch_size: tuple[int, int, int],
    batch_size: int,
    augment: AugmentConfig,
    oversample_foreground: float = 1 / 3,
    seed: int = 0,
    num_workers: int = 2,
    *,
    prefetch_factor: int = 4,
    pin_memory: bool = False,
    start_batch: int = 0,
) -> torch.utils.data.DataLoader:
    """An infinite loader of augmented training batches (iterate it once; it never ends).

    Build it once per run and keep one iterator over it: a new ``iter()`` restarts the stream.

    Args:
        case_paths: preprocessed ``<id>.npy`` paths.
        patch_size: network patch size ``(i, j, k)``.
        batch_size: samples per batch.
        augment: augmentation config (``AugmentConfig(enabled=False)`` for none).
        oversample_foreground: share of each batch centred on tumour.
        seed: base seed of every worker's generator.
        num_workers: background processes (0 = in the main process).
        prefetch_factor: batches each worker prepares ahead.
        pin_memory: pin batches in page-locked memory, so that ``.to(cuda, non_blocking=True)``
            overlaps the copy with compute (for CUDA training).
        start_batch: index of the first batch (to resume a run where it stopped).

    Returns:
        A ``DataLoader`` yielding ``{"image": float32 (B, C, *patch), "label": int64
        (B, 1, *patch)}``.

    Raises:
        InputError: no case paths.
        ConfigError: invalid batch size.
    """
    dataset = PatchBatchDataset(
        case_paths, patch_size, batch_size, augment, oversample_foreground, seed, start_batch
    )
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {"prefetch_factor": prefetch_factor, "persistent_workers": True,
                 "worker_init_fn": _seed_worker}
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, **extra
    )
