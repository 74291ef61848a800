"""Tumour safety of the mask (union, holes, margin in mm, grown box), volumes, and the spec."""

from __future__ import annotations

import numpy as np
import pytest

from glioedge.errors import ConfigError, InputError, ModelError
from glioedge.runtime.skullstrip import (
    BrainMaskSpec,
    SkullStripConfig,
    brain_volume_ml,
    dilate_mm,
    grow_for_tumour,
    plausibility_warnings,
    tumour_safe_mask,
)
from glioedge.runtime.skullstrip.safety import largest_component
from glioedge.runtime.skullstrip.spec import axis_direction


def _ball(shape, centre, r, spacing=(1.0, 1.0, 1.0)):
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1).astype(float)
    return (((idx - centre) * spacing) ** 2).sum(-1) <= r * r


def test_union_fills_holes_and_keeps_what_either_series_saw():
    a = _ball((40, 40, 40), (20, 20, 20), 12)
    b = a.copy()
    a[25:30, 18:22, 18:22] = False  # a bite out of the edge in one series
    b[18:22, 18:22, 18:22] = False  # a "necrotic" hole inside the other
    b[18:22, 18:22, 18:22] &= False
    brain, mask = tumour_safe_mask([a, b], (1.0, 1.0, 1.0), margin_mm=0)
    assert brain[25:30, 18:22, 18:22].all()  # the union restores the bite
    solo, _ = tumour_safe_mask([b], (1.0, 1.0, 1.0), margin_mm=0)
    assert solo[18:22, 18:22, 18:22].all()  # holes are filled
    assert (mask == brain).all()


def test_margin_is_in_millimetres_on_anisotropic_grids():
    spacing = (1.0, 1.0, 5.0)
    m = np.zeros((60, 60, 20), bool)
    m[20:40, 20:40, 8:12] = True
    d = dilate_mm(m, spacing, 5.0)
    assert d[15:45, 20:40, 8:12].all() and not d[14, 30, 10]  # 5 voxels in-plane
    assert d[30, 30, 7] and not d[30, 30, 6]  # one 5 mm slice through the plane
    assert (dilate_mm(m, spacing, 0.0) == m).all()


def test_largest_component_drops_islands_and_empty_union_is_an_input_error():
    m = _ball((40, 40, 40), (20, 20, 20), 10)
    m[0:3, 0:3, 0:3] = True
    assert not largest_component(m)[1, 1, 1]
    with pytest.raises(InputError, match="no brain"):
        tumour_safe_mask([np.zeros((5, 5, 5), bool)], (1, 1, 1))
    with pytest.raises(InputError, match="different grids"):
        tumour_safe_mask([np.ones((5, 5, 5), bool), np.ones((5, 5, 4), bool)], (1, 1, 1))


def test_grow_for_tumour_only_around_components_at_the_border():
    mask = _ball((60, 60, 60), (30, 30, 30), 20)
    labels = np.zeros(mask.shape, np.uint8)
    labels[28:32, 28:32, 28:32] = 2  # deep inside: no growth
    grown, n = grow_for_tumour(mask, labels, (1, 1, 1), 5.0)
    assert n == 0 and (grown == mask).all()
    labels[30, 30, 46:51] = 3  # reaches the border (radius 20 → index 50)
    grown, n = grow_for_tumour(mask, labels, (1, 1, 1), 5.0)
    assert n == 1 and grown.sum() > mask.sum() and grown[30, 30, 55] and not grown[30, 30, 57]
    assert grown[mask].all()


def test_volume_and_plausibility():
    m = np.ones((10, 10, 10), bool)
    assert brain_volume_ml(m, (1.0, 1.0, 2.0)) == pytest.approx(2.0)
    assert plausibility_warnings(1200) == []
    assert "below 800" in plausibility_warnings(500)[0]
    assert "above 2000" in plausibility_warnings(2500)[0]


def test_spec_round_trip_and_validation():
    spec = BrainMaskSpec(folds=(0, 3), mirror_axes=(0, 1, 2), source={"licence": "Apache-2.0"})
    again = BrainMaskSpec.from_dict(spec.to_dict())
    assert again == spec and again.axes == ("S", "A", "L")
    cols = np.array(axis_direction(spec.axes))
    assert np.allclose(cols, [[0, 0, 1], [0, -1, 0], [1, 0, 0]])
    with pytest.raises(ModelError, match="anatomical lines"):
        BrainMaskSpec(axes=("S", "I", "L"))
    with pytest.raises(ModelError, match="malformed"):
        BrainMaskSpec.from_dict({"threshold": "half"})
    with pytest.raises(ConfigError, match="margin"):
        SkullStripConfig(margin_mm=-1)
    assert SkullStripConfig.from_dict({"margin_mm": 4, "other": 1}).margin_mm == 4
