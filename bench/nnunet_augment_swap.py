"""One component swapped for the training-parity bench: glioedge's trainer with nnU-Net's own
augmentation (batchgeneratorsv2, exactly ``nnUNetTrainer.get_training_transforms``).

Bench-only: :class:`BG2Augmenter` has the interface of :class:`glioedge.data.augment.Augmenter`
and replaces it in ``glioedge.data.loader`` for one training process
(``python bench/nnunet_augment_swap.py <glioedge train arguments>``). Everything else of the run
(sampling, foreground oversampling, loss, schedule, network) stays glioedge's.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

#: nnU-Net's 3-D rotation range (``configure_rotation_dummyDA_mirroring_and_inital_patch_size``).
ROTATION = (-30.0 / 360 * 2 * math.pi, 30.0 / 360 * 2 * math.pi)


class BG2Augmenter:
    """nnU-Net v2's training transforms on glioedge's sampled patches.

    The sample is drawn at nnU-Net's initial patch size (``get_patch_size`` with its rotation
    and (0.85, 1.25)) and nnU-Net's ``SpatialTransform`` centre-crops it to the patch, as in
    nnU-Net's data loader. Not applied: ``MaskImageTransform`` (it zeroes voxels that nnU-Net's
    preprocessing marked −1 outside the brain; glioedge's labels have no such mark) and deep
    supervision targets (glioedge's loss downsamples them). batchgeneratorsv2 draws from numpy's
    and torch's global generators, which are seeded from glioedge's generator per sample.
    """

    def __init__(self, config: Any, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self._transforms: dict[tuple[int, ...], Any] = {}

    def input_size(self, patch_size: tuple[int, ...]) -> tuple[int, ...]:
        from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size

        if not self.config.enabled:
            return tuple(patch_size)
        size = get_patch_size(tuple(patch_size), ROTATION, ROTATION, ROTATION, (0.85, 1.25))
        return tuple(int(s) for s in size)

    def _pipeline(self, patch_size: tuple[int, ...]) -> Any:
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        if patch_size not in self._transforms:
            self._transforms[patch_size] = nnUNetTrainer.get_training_transforms(
                patch_size, ROTATION, None, (0, 1, 2), False, use_mask_for_norm=None)
        return self._transforms[patch_size]

    def __call__(self, patch: np.ndarray, label: np.ndarray,
                 out_size: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
        import torch

        out_size = tuple(out_size or patch.shape[1:])
        if not self.config.enabled:
            lo = [(s - o) // 2 for s, o in zip(patch.shape[1:], out_size, strict=True)]
            sl = tuple(slice(a, a + o) for a, o in zip(lo, out_size, strict=True))
            return np.asarray(patch[(slice(None), *sl)], np.float32), np.asarray(label[sl])
        seed = int(self.rng.integers(2**31 - 1))
        np.random.seed(seed)
        torch.manual_seed(seed)
        out = self._pipeline(out_size)(
            image=torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32)),
            segmentation=torch.from_numpy(np.asarray(label, dtype=np.int16)[None].copy()))
        return out["image"].numpy().astype(np.float32), out["segmentation"][0].numpy().astype(label.dtype)


def main(argv: list[str]) -> int:
    from glioedge.cli import main as glioedge_main
    from glioedge.data import loader

    loader.Augmenter = BG2Augmenter  # type: ignore[misc, assignment]
    return glioedge_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
