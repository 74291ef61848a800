"""A quality-control picture that reads on its own: the label overlay on three orthogonal slices
through the tumour, the brain mask's outline, with a legend, orientation markers, the volumes, the
bundle id and the "not for diagnostic use" disclaimer.

Pillow draws and encodes it (no matplotlib on an edge box). Colours: the SEG's
(:data:`glioedge.vocabulary.SEGMENTS`; NCR red, ED green, ET yellow). Each view is resampled
(nearest neighbour) to square pixels, so anisotropic series look right; each view's edges carry
the patient direction they face (L/R, A/P, S/I), worked out from the volume's LPS affine.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from glioedge._optional import require
from glioedge.dicom_io import Volume
from glioedge.vocabulary import SEGMENTS

__all__ = ["DISCLAIMER", "qa_png_bytes"]

COLOURS = {cls: spec.rgb for cls, spec in SEGMENTS.items()}
ALPHA = 0.45
VIEW_MM = 1.0  # pixel size of the views
MIN_VIEW_PX = 192  # views are enlarged (nearest neighbour) to at least this height
DISCLAIMER = "Not for diagnostic use"
#: Colour of the brain-mask outline (cyan: unlike every segment colour).
BRAIN_RGB = (0, 200, 255)
#: LPS axis → (letter for +, letter for -).
_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))


def _square(plane: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Nearest-neighbour resample of a (x, y) plane with spacings (sx, sy) to VIEW_MM pixels."""
    nx = max(1, round(plane.shape[0] * sx / VIEW_MM))
    ny = max(1, round(plane.shape[1] * sy / VIEW_MM))
    ix = np.minimum((np.arange(nx) * VIEW_MM / sx).astype(int), plane.shape[0] - 1)
    iy = np.minimum((np.arange(ny) * VIEW_MM / sy).astype(int), plane.shape[1] - 1)
    return plane[np.ix_(ix, iy)]


def _views(array: np.ndarray, centre: tuple[int, int, int], spacing: np.ndarray) -> list[np.ndarray]:
    ci, cj, ck = centre
    si, sj, sk = (float(s) for s in spacing)
    # Rows down the image: j for the slice view, k (reversed: superior up) for the others.
    return [
        _square(array[:, :, ck], si, sj).T,
        _square(array[:, cj, ::-1], si, sk).T,
        _square(array[ci, :, ::-1], sj, sk).T,
    ]


#: For each view of :func:`_views`: (array axis, sign) along columns (→) and along rows (↓).
_VIEW_AXES = (((0, 1), (1, 1)), ((0, 1), (2, -1)), ((1, 1), (2, -1)))


def _letter(affine: np.ndarray, axis: int, sign: int) -> str:
    """The patient direction (L, R, P, A, S, I) an array axis points to, in LPS."""
    direction = sign * np.asarray(affine, float)[:3, axis]
    dominant = int(np.argmax(np.abs(direction)))
    plus, minus = _LETTERS[dominant]
    return plus if direction[dominant] > 0 else minus


def _opposite(letter: str) -> str:
    return {a: b for pair in _LETTERS for a, b in (pair, pair[::-1])}[letter]


def _outline(plane: np.ndarray) -> np.ndarray:
    """The one-pixel inner border of a 2-D mask."""
    inner = plane.copy()
    inner[1:-1, 1:-1] = (plane[1:-1, 1:-1] & plane[:-2, 1:-1] & plane[2:, 1:-1]
                         & plane[1:-1, :-2] & plane[1:-1, 2:])
    return plane & ~inner


def qa_png_bytes(labels: Volume, background: Volume | None = None, *,
                 volumes_ml: Mapping[str, float] | None = None, bundle_id: str = "",
                 brain: Volume | None = None, brain_ml: float | None = None,
                 quality: Mapping[str, Any] | None = None) -> bytes:
    """PNG bytes: three views through the tumour's centre (the grid's centre without tumour).

    Args:
        labels: the label map (classes 0..3).
        background: image under the overlay, on the same grid (default: black).
        volumes_ml: ET/TC/WT (and NCR/ED) volumes to print under the views.
        bundle_id: the model bundle that produced the labels.
        brain: the brain mask on the same grid, outlined in :data:`BRAIN_RGB` (so a user sees
            what the tumour model was given). brain_ml: its volume, printed with the others.
        quality: the quality verdict (``Quality.to_dict()``): drawn as a coloured banner at the
            bottom (green ok, amber review, red reject) with its reason codes.
    """
    require("PIL", "drawing the QA picture (pip install pillow; part of glioedge[runtime])")
    from PIL import Image, ImageDraw, ImageFont

    lab = np.asarray(labels.array, dtype=np.uint8)
    img = np.zeros(lab.shape, np.float32) if background is None else np.asarray(
        background.array, np.float32)
    tumour = np.argwhere(lab > 0)
    centre = tuple(int(v) for v in (tumour.mean(0) if len(tumour) else np.array(lab.shape) / 2))
    nonzero = img[img > 0]
    lo, hi = (np.percentile(nonzero, [1, 99.5]) if nonzero.size else (0.0, 1.0))
    grey = np.clip((img - lo) / max(float(hi - lo), 1e-6), 0, 1) * 255
    tiles = []
    brain_views = (_views(np.asarray(brain.array, bool), centre, labels.spacing) if brain is not None
                   else [None] * 3)
    for g, lv, bv in zip(_views(grey, centre, labels.spacing), _views(lab, centre, labels.spacing),
                         brain_views, strict=True):
        rgb = np.repeat(g[..., None], 3, axis=2)
        for cls, colour in COLOURS.items():
            sel = lv == cls
            rgb[sel] = (1 - ALPHA) * rgb[sel] + ALPHA * np.asarray(colour, np.float32)
        if bv is not None:
            rgb[_outline(bv)] = BRAIN_RGB
        tiles.append(rgb.astype(np.uint8))
    height = max(t.shape[0] for t in tiles)
    zoom = max(1, -(-MIN_VIEW_PX // height))
    font = _font(ImageFont, 14)
    small = _font(ImageFont, 12)
    margin, header, footer = 36, 30, 54 + (_BANNER_PX if quality else 0)
    widths = [t.shape[1] * zoom for t in tiles]
    width = sum(widths) + margin * (len(tiles) + 1)
    canvas = Image.new("RGB", (max(width, 520), header + height * zoom + 2 * margin + footer), "black")
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, 8), f"glioedge QA   bundle {bundle_id or '?'}", fill="white", font=font)
    draw.text((canvas.width - margin, 8), DISCLAIMER.upper(), fill=(255, 120, 120), font=font,
              anchor="ra")
    x = margin
    top = header + margin
    for n, tile in enumerate(tiles):
        h, w = tile.shape[0] * zoom, tile.shape[1] * zoom
        canvas.paste(Image.fromarray(tile).resize((w, h), Image.NEAREST), (x, top))
        (col_axis, col_sign), (row_axis, row_sign) = _VIEW_AXES[n]
        right = _letter(labels.affine, col_axis, col_sign)
        below = _letter(labels.affine, row_axis, row_sign)
        marks = ((x + w + 2, top + h // 2, right, "lm"), (x - 2, top + h // 2, _opposite(right), "rm"),
                 (x + w // 2, top + h + 2, below, "ma"), (x + w // 2, top - 2, _opposite(below), "md"))
        for mx, my, letter, anchor in marks:
            draw.text((mx, my), letter, fill=(120, 200, 255), font=small, anchor=anchor)
        x += w + margin
    y = top + height * zoom + margin
    lx = margin
    for cls, spec in SEGMENTS.items():
        draw.rectangle((lx, y + 2, lx + 12, y + 14), fill=tuple(COLOURS[cls]))
        label = f"{spec.label} ({spec.tracking})"
        draw.text((lx + 18, y), label, fill="white", font=small)
        lx += 18 + int(draw.textlength(label, font=small)) + 16
    if brain is not None:
        draw.rectangle((lx, y + 2, lx + 12, y + 14), outline=BRAIN_RGB, width=2)
        draw.text((lx + 18, y), "brain mask", fill="white", font=small)
    vols = dict(volumes_ml or {})
    text = "   ".join(f"{k} {float(vols[k]):.1f} mL" for k in ("ET", "TC", "WT") if k in vols)
    if brain_ml is not None:
        text = f"{text}   brain {float(brain_ml):.0f} mL"
    draw.text((margin, y + 22), text or "volumes: -", fill="white", font=small)
    if quality:
        _banner(draw, quality, canvas.width, canvas.height - _BANNER_PX, font)
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _font(image_font: object, size: int) -> object:
    try:
        return image_font.load_default(size=size)  # type: ignore[attr-defined]
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return image_font.load_default()  # type: ignore[attr-defined]


_BANNER_PX = 28
#: Banner colours of the verdicts.
VERDICT_COLOURS = {"ok": (40, 140, 60), "review": (230, 160, 0), "reject": (200, 30, 30)}


def _banner(draw: Any, quality: Mapping[str, Any], width: int, top: int, font: object) -> None:
    """The verdict across the bottom: ``QUALITY REVIEW: brain_cut_off, uncertain``."""
    verdict = str(quality.get("verdict", "ok"))
    codes = [r["code"] for r in quality.get("reasons", []) if r.get("severity") != "info"]
    detail = ", ".join(codes) if codes else str(quality.get("finding", ""))
    draw.rectangle((0, top, width, top + _BANNER_PX), fill=VERDICT_COLOURS.get(verdict, (90, 90, 90)))
    text = f"QUALITY {verdict.upper()}: {detail}"
    while len(text) > 20 and draw.textlength(text, font=font) > width - 24:
        text = text[:-2] + "…"
    draw.text((12, top + 6), text, fill="black" if verdict == "review" else "white", font=font)
