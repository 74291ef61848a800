"""A semi-synthetic tumour case on real anatomy, written as a clinical DICOM study.

Anatomy: the MNI ICBM152 2009 grey- and white-matter probability maps (nilearn's bundled files;
:func:`glioedge.synth.templates.mni152_paths`); CSF is the rest of the template's intracranial
volume. Contrast: each sequence's signal is the tissue-probability-weighted mix of the
``brats-like`` table (:data:`glioedge.synth.cohort.BRATS_LIKE_CONTRAST`: CSF, GM, WM, ED, NCR,
ET). Tumour: an analytic glioma (necrotic core, enhancing rim, edema; boundaries deformed by a
smooth field) in the right hemisphere's white matter, its signal blended in with a 1 mm soft
edge. Head: skull, scalp, orbits, neck, bias field and Rician noise around the brain
(:func:`glioedge.synth.head_phantom.add_head`), so brain extraction has work to do. Each
sequence is then resampled onto a clinical grid (:mod:`glioedge.synth.geometry`) and written as an
MR series with the sequence's headers (:func:`glioedge.synth.dicom_writer.write_synthetic_series`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from glioedge.data.modalities import Modality
from glioedge.dicom_io import Volume, resample_to
from glioedge.dicom_io.volume import make_affine
from glioedge.synth.cohort import BRATS_LIKE_CONTRAST
from glioedge.synth.dicom_writer import write_synthetic_series
from glioedge.synth.geometry import CLINICAL_GEOMETRIES, ClinicalGeometry, clinical_grid, sample_on
from glioedge.synth.head_phantom import add_head
from glioedge.synth.templates import mni152_paths

__all__ = ["MNI_STUDY_GEOMETRIES", "MniCase", "MniStudy", "TumourSpec", "make_mni_case",
           "write_mni_study"]

_SERIES_NUMBER = {"t1": 2, "flair": 3, "t2": 4, "t1ce": 7}
#: Which clinical grid each sequence is acquired on (a typical glioma protocol).
MNI_STUDY_GEOMETRIES: dict[str, ClinicalGeometry] = {
    "t1ce": CLINICAL_GEOMETRIES["sag1-tilt15"], "flair": CLINICAL_GEOMETRIES["ax5"],
    "t2": CLINICAL_GEOMETRIES["ax5"], "t1": CLINICAL_GEOMETRIES["cor4"],
}


@dataclass(frozen=True)
class TumourSpec:
    """The analytic glioma, in LPS mm (MNI space; LPS x < 0 is the patient's right).

    Attributes:
        centre: centre (mm). radii_mm: outer radius of NCR, ET (rim) and ED.
        deform: relative amplitude of the smooth boundary deformation.
    """

    centre: tuple[float, float, float] = (-28.0, 12.0, 22.0)
    radii_mm: tuple[float, float, float] = (8.0, 13.0, 24.0)
    deform: float = 0.15


@dataclass(frozen=True, eq=False)
class MniCase:
    """The case on its template grid (before the clinical grids).

    Attributes:
        images: modality → raw-looking head (with skull and scalp, noise) volume.
        labels: tumour classes 0..3 on the head grid. brain: the true brain (intracranial) mask.
    """

    images: dict[str, Volume]
    labels: Volume
    brain: Volume


@dataclass(frozen=True)
class MniStudy:
    """A written study: its folder, each series' folder and the truth on the T1CE grid."""

    root: Path
    series: dict[str, Path]
    labels: Volume
    brain: Volume
    geometries: dict[str, ClinicalGeometry] = field(default_factory=dict)


def _load_tissue(spacing_mm: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(csf, gm, wm) probabilities and the template's affine (LPS) at ``spacing_mm``."""
    paths = mni152_paths()
    vols = {k: Volume.from_nifti(paths[k]) for k in ("t1", "gm", "wm")}
    ref = vols["t1"]
    if spacing_mm != 1.0:
        shape = tuple(int(np.ceil(n * s / spacing_mm)) for n, s in zip(ref.shape, ref.spacing, strict=True))
        grid = Volume(np.zeros(shape, np.float32), make_affine(ref.origin, (spacing_mm,) * 3, ref.direction))
        vols = {k: resample_to(v.with_array(np.asarray(v.array, np.float32)), grid, "linear")
                for k, v in vols.items()}
        ref = vols["t1"]
    inside = np.asarray(vols["t1"].array) > 0.5
    inside = ndimage.binary_fill_holes(inside)
    gm = np.asarray(vols["gm"].array, np.float32) / 255.0 * inside
    wm = np.asarray(vols["wm"].array, np.float32) / 255.0 * inside
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * inside
    return {"csf": csf, "gm": gm, "wm": wm, "inside": inside}, ref.affine


def _tumour_labels(shape: tuple[int, ...], affine: np.ndarray, spec: TumourSpec, inside: np.ndarray,
                   seed: int) -> np.ndarray:
    idx = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij"))
    p = np.tensordot(affine[:3, :3].astype(np.float32), idx, axes=1) + affine[:3, 3, None, None, None]
    d = p - np.asarray(spec.centre, np.float32)[:, None, None, None]
    r = np.sqrt((d**2).sum(0))
    rng = np.random.default_rng(seed)
    wobble = np.zeros(shape, np.float32)
    for _ in range(6):  # a few low-frequency plane waves: a lobulated, not spherical, lesion
        k = rng.normal(size=3)
        k = k / np.linalg.norm(k) * rng.uniform(0.08, 0.2)
        wobble += np.cos(np.tensordot(k.astype(np.float32), d, axes=1) + rng.uniform(0, 2 * np.pi))
    r_eff = r / (1.0 + spec.deform * wobble / 6.0 * 2.0)
    labels = np.zeros(shape, np.uint8)
    ncr, et, ed = spec.radii_mm
    labels[r_eff <= ed] = 2
    labels[r_eff <= et] = 3
    labels[r_eff <= ncr] = 1
    labels[~inside] = 0
    return labels


def make_mni_case(seed: int = 0, *, spacing_mm: float = 1.0, tumour: TumourSpec | None = None,
                  contrast: Mapping[Modality, tuple[float, ...]] | None = None,
                  noise: float = 0.04, modalities: tuple[str, ...] = ("t1", "t2", "flair", "t1ce"),
                  ) -> MniCase:
    """Build the case on the MNI grid (at ``spacing_mm``), each sequence wrapped in a head.

    Raises:
        TemplateMissingError: nilearn (the tissue maps) is not installed.
    """
    tissue, affine = _load_tissue(spacing_mm)
    inside = tissue["inside"]
    spec = tumour or TumourSpec()
    labels = _tumour_labels(inside.shape, affine, spec, inside, seed)
    table = dict(contrast or BRATS_LIKE_CONTRAST)
    soft = {lab: ndimage.gaussian_filter((labels == lab).astype(np.float32), 1.0 / spacing_mm)
            for lab in (1, 2, 3)}
    tumour_w = np.clip(soft[1] + soft[2] + soft[3], 0.0, 1.0)
    images = {}
    for n, mod in enumerate(modalities):
        c = table[Modality(mod)]
        normal = tissue["csf"] * c[0] + tissue["gm"] * c[1] + tissue["wm"] * c[2]
        lesion = soft[2] * c[3] + soft[1] * c[4] + soft[3] * c[5]
        brain = 1000.0 * ((1.0 - tumour_w) * normal + lesion) * inside
        head = add_head(brain.astype(np.float32), affine, mod, brain_mask=inside, noise=noise,
                        seed=seed * 10 + n)
        images[mod] = Volume(head.array, head.affine, description=f"MNI152 {mod}")
    pad = [(p, p) for p in head.pad]
    return MniCase(images=images, labels=Volume(np.pad(labels, pad), head.affine),
                   brain=Volume(np.pad(inside, pad).astype(np.uint8), head.affine))


def write_mni_study(root: Path | str, seed: int = 0, *, spacing_mm: float = 1.0,
                    geometries: Mapping[str, ClinicalGeometry] | None = None,
                    spacing_scale: float = 1.0, modalities: tuple[str, ...] = ("t1", "t2", "flair", "t1ce"),
                    ) -> MniStudy:
    """Write the case as a DICOM study under ``root`` (one folder per series).

    Args:
        root: the study folder (created).
        seed: tumour shape, head and noise.
        spacing_mm: the template grid the case is built on (1 mm: the templates' own).
        geometries: modality → clinical grid (default :data:`MNI_STUDY_GEOMETRIES`).
        spacing_scale: multiply every grid's spacing (e.g. 2 for fast tests).
        modalities: which sequences to write (``flair`` and ``t1ce`` are what the student needs).

    Returns:
        The :class:`MniStudy`, with the truth (labels, brain) on the T1CE grid (or the first
        series' grid without T1CE).

    Raises:
        TemplateMissingError: nilearn is not installed.
    """
    root = Path(root)
    geos = {m: g for m, g in dict(geometries or MNI_STUDY_GEOMETRIES).items() if m in modalities}
    if spacing_scale != 1.0:
        geos = {m: replace(g, spacing=tuple(s * spacing_scale for s in g.spacing)) for m, g in geos.items()}
    case = make_mni_case(seed, spacing_mm=spacing_mm, modalities=tuple(geos))
    series: dict[str, Path] = {}
    grids: dict[str, Volume] = {}
    for mod, geo in geos.items():
        grid = clinical_grid(geo, case.images[mod])
        grids[mod] = grid
        vol = sample_on(case.images[mod], grid)
        array = np.round(np.clip(np.asarray(vol.array), 0, 4095)).astype(np.uint16)
        folder = root / f"{_SERIES_NUMBER.get(mod, 9):02d}_{mod}_{geo.name}"
        write_synthetic_series(folder, vol.with_array(array), modality=mod,
                               series_number=_SERIES_NUMBER.get(mod, 9),
                               overrides={"SeriesDescription": f"{mod.upper()} {geo.description}"[:64]})
        series[mod] = folder
    ref = grids.get("t1ce", next(iter(grids.values())))
    labels = sample_on(case.labels, ref, labels=True)
    brain = sample_on(case.brain, ref, labels=True)
    return MniStudy(root=root, series=series, labels=labels.with_array(np.asarray(labels.array, np.uint8)),
                    brain=brain.with_array(np.asarray(brain.array) > 0), geometries=geos)
