"""Find and read BraTS cases: BraTS 2018–2021 folders, BraTS 2023+ folders, nnU-Net raw datasets.

Images are read with SimpleITK, which converts NIfTI (RAS) to LPS; arrays come back as
``(i, j, k)`` float32 with a 4×4 LPS affine; labels as internal classes 0..3 (uint8).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from glioedge.data.geometry import affine_from_sitk, array_from_sitk, spacing_of
from glioedge.data.labels import LabelConvention, label_mapping, map_labels
from glioedge.data.modalities import TEACHER_MODALITIES, Modality
from glioedge.errors import InputError

__all__ = ["Case", "CaseFiles", "discover_cases", "load_case", "read_image"]

logger = logging.getLogger(__name__)

_GEOMETRY_TOL_MM = 1e-3
_EXTS = (".nii.gz", ".nii")
_SUFFIX_2021 = {m: m.value for m in Modality}
_SUFFIX_2023 = {Modality.T1: "t1n", Modality.T1CE: "t1c", Modality.T2: "t2w", Modality.FLAIR: "t2f"}
# nnU-Net channel names, normalised (lower case, no separators) → modality
_CHANNEL_ALIASES: dict[str, Modality] = {
    **dict.fromkeys(("t1", "t1w", "t1n", "t1native", "t1pre"), Modality.T1),
    **dict.fromkeys(
        ("t1ce", "t1c", "t1gd", "t1post", "t1contrast", "t1wce", "t1gad", "t1km"), Modality.T1CE
    ),
    **dict.fromkeys(("t2", "t2w"), Modality.T2),
    **dict.fromkeys(("flair", "t2f", "t2flair", "t2wflair"), Modality.FLAIR),
}


@dataclass
class CaseFiles:
    """Where one case's files are.

    Attributes:
        case_id: case identifier (folder or nnU-Net case name).
        images: modality → image file.
        seg: segmentation file, or None (inference-only data).
        convention: label convention of ``seg``.
        label_map: explicit file value → internal class mapping that overrides ``convention``
            (nnU-Net datasets, whose labels are defined by their dataset.json).
    """

    case_id: str
    images: dict[Modality, Path]
    seg: Path | None
    convention: LabelConvention
    label_map: dict[int, int] | None = field(default=None)

    def mapping(self) -> dict[int, int]:
        """File value → internal class for this case's segmentation."""
        return dict(self.label_map) if self.label_map is not None else label_mapping(
            self.convention
        )


@dataclass
class Case:
    """One case in memory: images ``(i, j, k)`` float32, internal labels, LPS affine."""

    case_id: str
    images: dict[Modality, np.ndarray]
    label: np.ndarray | None
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing in mm (column norms of the affine)."""
        return spacing_of(self.affine)

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape ``(i, j, k)``."""
        return next(iter(self.images.values())).shape


def _find(folder: Path, stem: str) -> Path | None:
    for ext in _EXTS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def _expected(folder: Path, stem: str) -> str:
    return str(folder / f"{stem}.nii.gz") + " (or .nii)"


def _case_from_folder(
    folder: Path, modalities: Sequence[Modality], require_seg: bool
) -> CaseFiles | None:
    case = folder.name
    names = [p.name for p in folder.iterdir() if p.name.endswith(_EXTS)]
    if not names:
        return None
    is_2023 = any(re.search(r"-(t1n|t1c|t2w|t2f|seg)\.nii(\.gz)?$", n) for n in names)
    suffixes, sep, conv = (
        (_SUFFIX_2023, "-", LabelConvention.BRATS2023)
        if is_2023
        else (_SUFFIX_2021, "_", LabelConvention.BRATS2021)
    )
    images: dict[Modality, Path] = {}
    for mod in modalities:
        stem = f"{case}{sep}{suffixes[mod]}"
        path = _find(folder, stem)
        if path is None:
            raise InputError(
                f"case {case}: missing {mod.value} image; expected {_expected(folder, stem)}"
            )
        images[mod] = path
    seg = _find(folder, f"{case}{sep}seg")
    if seg is None and require_seg:
        raise InputError(
            f"case {case}: missing segmentation; expected {_expected(folder, f'{case}{sep}seg')}"
        )
    return CaseFiles(case, images, seg, conv)


def _nnunet_label_map(labels: dict[str, int | list[int]], source: Path) -> dict[int, int]:
    """Internal mapping from a dataset.json ``labels`` entry (plain or region-based)."""
    norm = {re.sub(r"[^a-z]", "", k.lower()): v for k, v in labels.items()}
    if any(isinstance(v, list | tuple) for v in norm.values()):
        # region-based (nnU-Net Dataset137_BraTS2021): whole tumour ⊃ tumour core ⊃ enhancing
        def region(*keys: str) -> set[int]:
            for k in keys:
                if k in norm:
                    v = norm[k]
                    return set(v) if isinstance(v, list | tuple) else {int(v)}
            raise InputError(f"{source}: region-based labels need {keys[0]!r}; got {list(labels)}")

        wt = region("wholetumor", "wholetumour", "wt")
        tc = region("tumorcore", "tumourcore", "tc")
        et = region("enhancingtumor", "enhancingtumour", "et")
        mapping = {0: 0}
        mapping.update(dict.fromkeys(wt - tc, 2))
        mapping.update(dict.fromkeys(tc - et, 1))
        mapping.update(dict.fromkeys(et, 3))
        return mapping
    mapping = {}
    for name, value in norm.items():
        if name == "background":
            cls = 0
        elif "edema" in name or "oedema" in name or name == "ed":
            cls = 2
        elif ("enhanc" in name and "non" not in name) or name == "et":
            cls = 3
        elif "necro" in name or "non" in name or "core" in name or name in ("ncr", "net"):
            cls = 1
        else:
            raise InputError(
                f"{source}: cannot map label {name!r} to background/NCR/ED/ET; "
                f"labels were {labels}"
            )
        mapping[int(value)] = cls
    return mapping


def _discover_nnunet(
    root: Path, modalities: Sequence[Modality], require_seg: bool
) -> list[CaseFiles]:
    djson = root / "dataset.json"
    try:
        meta = json.loads(djson.read_text())
        channels = meta.get("channel_names", meta.get("modality"))
        labels = meta["labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{djson}: not a readable nnU-Net dataset.json ({exc})") from exc
    if not isinstance(channels, dict):
        raise InputError(f"{djson}: 'channel_names' must map channel index → name")
    ending = meta.get("file_ending", ".nii.gz")
    index: dict[Modality, int] = {}
    for idx, name in channels.items():
        mod = _CHANNEL_ALIASES.get(re.sub(r"[^a-z0-9]", "", str(name).lower()))
        if mod is not None:
            index[mod] = int(idx)
    missing = [m.value for m in modalities if m not in index]
    if missing:
        raise InputError(
            f"{djson}: channel_names {channels} have no channel for {', '.join(missing)}"
        )
    mapping = _nnunet_label_map(labels, djson)
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    pattern = re.compile(r"^(.*)_(\d{4})" + re.escape(ending) + "$")
    ids = sorted(
        {m.group(1) for p in images_dir.glob(f"*{ending}") if (m := pattern.match(p.name))}
    )
    cases = []
    for cid in ids:
        imgs = {}
        for mod in modalities:
            path = images_dir / f"{cid}_{index[mod]:04d}{ending}"
            if not path.is_file():
                raise InputError(f"case {cid}: missing {mod.value} image; expected {path}")
            imgs[mod] = path
        seg: Path | None = labels_dir / f"{cid}{ending}"
        if not seg.is_file():  # type: ignore[union-attr]
            if require_seg:
                raise InputError(f"case {cid}: missing segmentation; expected {seg}")
            seg = None
        cases.append(CaseFiles(cid, imgs, seg, LabelConvention.BRATS2023, label_map=mapping))
    return cases


def discover_cases(
    root: Path,
    modalities: Sequence[Modality] = TEACHER_MODALITIES,
    require_seg: bool = True,
) -> list[CaseFiles]:
    """Find the cases under ``root`` (sorted by case id).

    Accepts a folder of BraTS 2018–2021 case folders (``<case>/<case>_t1.nii.gz`` …
    ``_seg``), of BraTS 2023+ folders (``<case>/<case>-t1n.nii.gz``, ``-t1c``, ``-t2w``,
    ``-t2f``, ``-seg``), a single case folder, or an nnU-Net raw dataset (``dataset.json``,
    ``imagesTr/<case>_XXXX``, ``labelsTr/<case>``).

    Raises:
        InputError: ``root`` is missing or holds no case, or a case lacks a file (the message
            names the case and the file expected).
    """
    root = Path(root)
    mods = tuple(Modality(m) for m in modalities)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory (expected a BraTS or nnU-Net dataset)")
    if (root / "dataset.json").is_file():
        cases = _discover_nnunet(root, mods, require_seg)
    else:
        single = _case_from_folder(root, mods, require_seg)
        if single is not None:
            cases = [single]
        else:
            found = (
                _case_from_folder(d, mods, require_seg)
                for d in sorted(root.iterdir())
                if d.is_dir()
            )
            cases = [c for c in found if c is not None]
    if not cases:
        raise InputError(
            f"{root}: no case found (expected <case>/<case>_flair.nii.gz folders, "
            "<case>/<case>-t2f.nii.gz folders, or an nnU-Net dataset.json)"
        )
    logger.info("found %d cases under %s", len(cases), root)
    return sorted(cases, key=lambda c: c.case_id)


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-D image file: ``(array[i, j, k], affine_lps)``.

    Raises:
        InputError: the file cannot be read or is not 3-D.
    """
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise InputError(f"{path}: cannot read image ({reason})") from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{path}: expected a 3-D scalar image, got {image.GetDimension()}-D with "
            f"{image.GetNumberOfComponentsPerPixel()} components"
        )
    return array_from_sitk(image), affine_from_sitk(image)


def _check_geometry(
    case_id: str,
    path: Path,
    shape: tuple[int, ...],
    affine: np.ndarray,
    ref: tuple[Path, tuple[int, ...], np.ndarray],
) -> None:
    ref_path, ref_shape, ref_affine = ref
    if shape != ref_shape:
        raise InputError(
            f"case {case_id}: {path.name} has shape {shape}, but {ref_path.name} has {ref_shape}"
        )
    diff = float(np.max(np.abs(affine - ref_affine)))
    if diff > _GEOMETRY_TOL_MM:
        raise InputError(
            f"case {case_id}: {path.name} is not on the grid of {ref_path.name} (affines differ "
            f"by up to {diff:.4g} mm; tolerance {_GEOMETRY_TOL_MM} mm)"
        )


def load_case(files: CaseFiles, modalities: Sequence[Modality] | None = None) -> Case:
    """Read a case's images (float32) and segmentation (internal classes, uint8).

    Args:
        files: the case's files.
        modalities: which images to read (default: all in ``files.images``, in that order).

    Raises:
        InputError: a file is missing or unreadable, images differ in shape or geometry
            (tolerance 1e-3 mm), or the segmentation holds unknown values; the message names
            the case and the file.
    """
    mods = tuple(Modality(m) for m in (modalities or files.images))
    images: dict[Modality, np.ndarray] = {}
    ref: tuple[Path, tuple[int, ...], np.ndarray] | None = None
    for mod in mods:
        if mod not in files.images:
            raise InputError(f"case {files.case_id}: no {mod.value} image listed")
        path = Path(files.images[mod])
        arr, aff = read_image(path)
        if ref is None:
            ref = (path, arr.shape, aff)
        else:
            _check_geometry(files.case_id, path, arr.shape, aff, ref)
        images[mod] = arr.astype(np.float32, copy=False)
    assert ref is not None
    label = None
    if files.seg is not None:
        seg_path = Path(files.seg)
        seg, seg_aff = read_image(seg_path)
        _check_geometry(files.case_id, seg_path, seg.shape, seg_aff, ref)
        label = map_labels(seg, files.mapping(), source=f"case {files.case_id}: {seg_path}")
    return Case(files.case_id, images, label, ref[2])
