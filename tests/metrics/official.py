"""Run the official BraTS evaluation package (``brats-evaluation``, AGPL-3.0; a test-only
dependency, never imported by glioedge) on NIfTI files, as a user of the package would."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

#: glioedge RegionMetrics field → the official result key (panoptica's PanopticaResult.to_dict).
FIELD_TO_OFFICIAL = {
    "dice": "global_bin_dsc",
    "hd95": "global_bin_hd95",
    "nsd": "global_bin_nsd",
    "voxels_pred": "global_bin_volume_pred",
    "voxels_ref": "global_bin_volume_ref",
    "lesion_tp": "tp",
    "lesion_fp": "fp",
    "lesion_fn": "fn",
    "lesion_precision": "prec",
    "lesion_recall": "rec",
    "lesion_f1": "rq",
    "lesion_dice": "sq_dsc",
    "lesion_dice_std": "sq_dsc_std",
    "lesion_hd95": "sq_hd95",
    "lesion_hd95_std": "sq_hd95_std",
    "lesion_nsd": "sq_nsd",
    "lesion_nsd_std": "sq_nsd_std",
}


def _evaluator() -> Any:
    from brats_evaluation import config_path
    from panoptica import Panoptica_Evaluator

    return Panoptica_Evaluator.load_from_config(str(config_path("gli")))


_EVALUATOR: Any = None


def official_results(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], folder: Path,
                     name: str = "case") -> tuple[dict, dict[str, dict[str, float]]]:
    """The official package's results for one case (labels in the BraTS 2023 convention).

    Returns:
        ``(per_group, ranked)``: ``evaluate_single_exam``'s dict per group (wt, tc, et, netc,
        snfh, rc), and per group the ranking form ``parse_mets_results`` computes with no size
        and no overlap threshold (``lesionwise_dsc_mean``, ``lesionwise_hd95_mean``; NaN where it
        reports none).
    """
    global _EVALUATOR  # noqa: PLW0603 - one evaluator (its YAML parsing is slow) for all cases
    from brats_evaluation import evaluate_single_exam, parse_mets_results

    if _EVALUATOR is None:
        _EVALUATOR = _evaluator()
    affine = np.diag([*spacing, 1.0])
    folder.mkdir(parents=True, exist_ok=True)
    pred_path, ref_path = folder / f"pred-{name}-00001.nii.gz", folder / f"ref-{name}-00001.nii.gz"
    nib.save(nib.Nifti1Image(pred.astype(np.uint8), affine), pred_path)
    nib.save(nib.Nifti1Image(ref.astype(np.uint8), affine), ref_path)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        result = evaluate_single_exam(str(pred_path), str(ref_path), name, _EVALUATOR)
        if "error" in result:
            raise AssertionError(f"the official package failed on {name}: {result['error']}")
        json_path, csv_path = folder / f"{name}.json", folder / f"{name}.csv"
        json_path.write_text(json.dumps({"metrics": [result], "missings": []}, default=_jsonable))
        parse_mets_results(str(json_path), 0.0, 0.0, str(csv_path))
    with csv_path.open(newline="") as fh:
        row = next(csv.DictReader(fh))
    ranked = {group: {key: float(row[f"{key}_{group}"]) if row[f"{key}_{group}"] else math.nan
                      for key in ("lesionwise_dsc_mean", "lesionwise_hd95_mean")}
              for group in result if isinstance(result[group], dict)}
    return result, ranked


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value)}")
