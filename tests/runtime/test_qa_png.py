"""The QA picture reads on its own: legend colours, orientation markers, volumes, disclaimer."""

from __future__ import annotations

import io

import numpy as np
import pytest

from glioedge.dicom_io import Volume
from glioedge.runtime.qa_png import _letter, qa_png_bytes
from glioedge.vocabulary import SEGMENTS

Image = pytest.importorskip("PIL.Image", reason="the QA picture needs pillow (glioedge[runtime])")


def _labels() -> Volume:
    lab = np.zeros((40, 48, 20), np.uint8)
    lab[10:30, 12:36, 5:15] = 2
    lab[15:25, 18:30, 8:12] = 3
    lab[18:22, 22:26, 9:11] = 1
    return Volume(lab, np.diag([1.0, 1.0, 2.5, 1.0]))


def test_qa_picture_has_the_legend_colours_and_views() -> None:
    png = qa_png_bytes(_labels(), volumes_ml={"ET": 1.0, "TC": 2.0, "WT": 3.0}, bundle_id="b-1")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.height >= 192  # views enlarged to be readable
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20)}
    for spec in SEGMENTS.values():  # each legend square is drawn in the SEG's exact colour
        assert tuple(spec.rgb) in colours, spec.label


def test_orientation_letters_follow_the_affine() -> None:
    lps = np.eye(4)
    assert [_letter(lps, a, 1) for a in range(3)] == ["L", "P", "S"]
    assert [_letter(lps, a, -1) for a in range(3)] == ["R", "A", "I"]
    flipped = np.diag([-1.0, -1.0, 1.0, 1.0])  # a RAS-like grid: +i points to the patient's right
    assert _letter(flipped, 0, 1) == "R" and _letter(flipped, 1, 1) == "A"
    sagittal = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float)
    assert [_letter(sagittal, a, 1) for a in range(3)] == ["P", "I", "L"]


def test_qa_picture_outlines_the_brain_mask() -> None:
    from glioedge.runtime.qa_png import BRAIN_RGB

    labels = _labels()
    brain = np.zeros(labels.shape, bool)
    brain[4:36, 6:42, 2:18] = True
    without = Image.open(io.BytesIO(qa_png_bytes(labels))).convert("RGB")
    with_brain = Image.open(io.BytesIO(qa_png_bytes(labels, brain=labels.with_array(brain),
                                                    brain_ml=123.0))).convert("RGB")
    count = {c: n for n, c in with_brain.getcolors(maxcolors=1 << 20)}
    assert BRAIN_RGB not in {c for _, c in without.getcolors(maxcolors=1 << 20)}
    # the outline of three views (each enlarged ≥ 4×) plus the legend square: far more than a legend
    assert count.get(BRAIN_RGB, 0) > 1000
