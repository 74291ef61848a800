"""The raw-looking head phantom: geometry, truth, and sequence-specific contrast."""

from __future__ import annotations

import numpy as np
import pytest

from glioedge.data.modalities import Modality
from glioedge.errors import InputError
from glioedge.synth.cohort import SyntheticConfig, make_case
from glioedge.synth.head_phantom import HEAD_CONTRAST, add_head


@pytest.fixture(scope="module")
def case():
    return make_case(1, SyntheticConfig(shape=(72, 84, 64), spacing=(2.0, 2.0, 2.0)))


def test_head_wraps_the_brain_with_skull_scalp_and_noise(case):
    brain = case.images[Modality.FLAIR]
    head = add_head(brain, case.affine, "flair", pad_mm=24.0, seed=3)
    assert head.pad == (12, 12, 12)
    assert head.array.shape == tuple(n + 24 for n in brain.shape)
    assert (head.brain_mask == head.embed(brain != 0)).all()
    # same physical position: voxel (pad) of the head is voxel 0 of the input
    assert np.allclose(head.affine @ [12, 12, 12, 1], case.affine @ [0, 0, 0, 1])
    labels = head.embed(case.label)
    assert labels.sum() == case.label.sum()
    air = head.tissue == 0
    air &= ~head.brain_mask
    assert (head.array[air] > 0).mean() > 0.99  # Rician noise, not zeros
    assert {int(t) for t in np.unique(head.tissue)} >= {0, 1, 2, 3, 5, 6, 7}


def test_contrast_is_sequence_specific(case):
    med = {}
    for mod in ("flair", "t1ce"):
        head = add_head(case.images[Modality(mod)], case.affine, mod, seed=0, bias=0.0)
        ref = float(np.median(head.array[head.brain_mask]))
        med[mod] = {t: float(np.median(head.array[head.tissue == t + 1])) / ref for t in range(6)}
    fat, csf, bone = 4, 0, 1
    assert med["t1ce"][fat] > 1.2 and med["flair"][csf] < 0.35
    # thin tables (1.5 mm) partial-volume with their neighbours at 2 mm, but stay dark
    assert med["flair"][fat] > 3 * med["flair"][bone] and med["t1ce"][fat] > 3 * med["t1ce"][bone]
    assert set(HEAD_CONTRAST) == {"flair", "t1ce", "t1", "t2"}


def test_bad_inputs_are_named(case):
    with pytest.raises(InputError, match="modality"):
        add_head(case.images[Modality.FLAIR], case.affine, "dwi")
    with pytest.raises(InputError, match="empty"):
        add_head(np.zeros((8, 8, 8)), np.eye(4))
    head = add_head(case.images[Modality.FLAIR], case.affine, neck=False)
    with pytest.raises(InputError, match="input grid"):
        head.embed(np.zeros((3, 3, 3)))
