"""A quality-control picture: the label overlay on three orthogonal slices through the tumour.

numpy + zlib only (no matplotlib on an edge box). Colours: the SEG's
(:data:`glioedge.vocabulary.SEGMENTS`; NCR red, ED green, ET yellow).
Each view is resampled (nearest neighbour) to square pixels, so anisotropic series look right.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from glioedge.dicom_io import Volume
from glioedge.vocabulary import SEGMENTS

__all__ = ["encode_png", "qa_png_bytes"]

COLOURS = {cls: spec.rgb for cls, spec in SEGMENTS.items()}
ALPHA = 0.45
VIEW_MM = 1.0  # pixel size of the views


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 image as PNG."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + np.ascontiguousarray(rgb[r]).tobytes() for r in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


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


def qa_png_bytes(labels: Volume, background: Volume | None = None) -> bytes:
    """PNG bytes: three views through the tumour's centre (the grid's centre without tumour).

    Args:
        labels: the label map (classes 0..3).
        background: image under the overlay, on the same grid (default: black).
    """
    lab = np.asarray(labels.array, dtype=np.uint8)
    img = np.zeros(lab.shape, np.float32) if background is None else np.asarray(
        background.array, np.float32)
    tumour = np.argwhere(lab > 0)
    centre = tuple(int(v) for v in (tumour.mean(0) if len(tumour) else np.array(lab.shape) / 2))
    nonzero = img[img > 0]
    lo, hi = (np.percentile(nonzero, [1, 99.5]) if nonzero.size else (0.0, 1.0))
    grey = np.clip((img - lo) / max(float(hi - lo), 1e-6), 0, 1) * 255
    tiles = []
    for g, lv in zip(_views(grey, centre, labels.spacing), _views(lab, centre, labels.spacing),
                     strict=True):
        rgb = np.repeat(g[..., None], 3, axis=2)
        for cls, colour in COLOURS.items():
            sel = lv == cls
            rgb[sel] = (1 - ALPHA) * rgb[sel] + ALPHA * np.asarray(colour, np.float32)
        tiles.append(rgb.astype(np.uint8))
    height = max(t.shape[0] for t in tiles)
    gap = np.zeros((height, 4, 3), np.uint8)
    padded = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
    return encode_png(np.concatenate([padded[0], gap, padded[1], gap, padded[2]], axis=1))
