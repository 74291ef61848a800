"""The head box cut before the brain-mask network: air goes, the brain stays, geometry is kept."""

from __future__ import annotations

import numpy as np
import pytest

from glioedge.data.modalities import Modality
from glioedge.dicom_io import Volume
from glioedge.errors import ConfigError
from glioedge.runtime.skullstrip import SkullStripConfig
from glioedge.runtime.skullstrip.headbox import head_box
from glioedge.synth.cohort import SyntheticConfig, make_case
from glioedge.synth.head_phantom import add_head


@pytest.fixture(scope="module")
def head():
    case = make_case(2, SyntheticConfig(shape=(60, 72, 52), spacing=(3.0, 3.0, 3.0)))
    return add_head(case.images[Modality.T1CE], case.affine, "t1ce", pad_mm=60.0, seed=1)


def test_box_drops_air_and_keeps_the_whole_brain(head):
    vol = Volume(head.array, head.affine)
    box = head_box(vol, margin_mm=10.0)
    assert box.fraction < 0.9  # 60 mm of air on every side is cut away
    inside = np.zeros(vol.shape, dtype=bool)
    inside[box.slices] = True
    assert inside[head.brain_mask].all()
    # the scalp (brightest tissue ring) stays in the box too: the box is the head's, not the brain's
    assert inside[head.tissue > 0].mean() > 0.99
    # a view with the affine moved: voxel 0 of the crop is the same point in space
    start = np.array([s.start for s in box.slices] + [1.0])
    assert np.allclose(box.volume.affine @ [0, 0, 0, 1], vol.affine @ start)
    assert np.shares_memory(box.volume.array, vol.array)
    assert box.volume.shape == tuple(s.stop - s.start for s in box.slices)


def test_head_filling_the_field_of_view_is_not_cut(head):
    tight = add_head(head.array[40:-40, 40:-40, 40:-40] * 0 + 100.0, head.affine, "t1ce", noise=0.0,
                     bias=0.0, pad_mm=0.0, neck=False)
    vol = Volume(tight.array, tight.affine)
    assert head_box(vol).volume is vol
    flat = Volume(np.zeros((20, 20, 20), np.float32), np.eye(4))
    assert head_box(flat).volume is flat  # nothing bright: no crop, the model decides


def test_config_validates_strategy_and_margin():
    with pytest.raises(ConfigError, match="series"):
        SkullStripConfig(series="first")
    with pytest.raises(ConfigError, match="head_box_mm"):
        SkullStripConfig(head_box_mm=-1.0)
    assert SkullStripConfig().series == "best" and SkullStripConfig(head_box_mm=None).head_box_mm is None
