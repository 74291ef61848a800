"""Deterministic BraTS-like synthetic cases, with anatomy defined in millimetres.

A case is a skull-stripped brain (background exactly 0) with cortical grey matter, white matter,
sulcal CSF and lateral ventricles, and one or more gliomas: an enhancing rim (ET) around a
necrotic core (NCR), peritumoral edema (ED) and, often, a non-enhancing tumour lobe (labelled NCR,
as BraTS does) lying inside the edema. Shapes are deformed by smooth random fields that are
functions of position in mm, so one seed gives the same anatomy at any spacing or grid size
(the grid is centred on the origin, LPS, identity direction).

Contrast table (relative signal before texture, bias field and noise; scaled ×1000):

========  =====  =====  =====  =========  ===========  =====
sequence  CSF    GM     WM     ED         NCR / NET    ET
========  =====  =====  =====  =========  ===========  =====
T1        0.25   0.60   0.85   0.60       **0.25**     0.60
T2        1.00   0.65   0.45   0.75       **1.00**     0.65
FLAIR     0.15   0.55   0.45   0.85       **0.85**     0.75
T1CE      0.25   0.60   0.80   0.55       **0.55**     1.30
========  =====  =====  =====  =========  ===========  =====

The point of the table: in FLAIR and T1CE, NCR and ED have *the same* mean signal (documented
tolerance in the tests: means within 10 %), so a FLAIR+T1CE student can tell them apart only by
shape (inside vs outside the enhancing rim). The rim has gaps (non-enhancing tumour there reaches
the edema directly) and non-enhancing lobes sit inside the edema; there only T2 (very bright,
fluid-like) and T1 (dark) separate NCR from ED. This is the information that the teacher has and
the student lacks, which distillation can transfer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

from glioedge.data.brats import Case
from glioedge.data.geometry import make_affine, sitk_from_array
from glioedge.data.labels import LabelConvention, to_file_labels
from glioedge.data.modalities import Modality

__all__ = [
    "BRATS_LIKE_CONTRAST",
    "COHORT_PRESETS",
    "CONTRAST",
    "SyntheticConfig",
    "cohort_config",
    "generate_cohort",
    "make_case",
    "write_brats_case",
]

# tissue indices used internally for contrast
_CSF, _GM, _WM, _ED, _NCR, _ET = range(6)
#: modality → signal per tissue (CSF, GM, WM, ED, NCR, ET); see the module docstring.
CONTRAST: dict[Modality, tuple[float, ...]] = {
    Modality.T1: (0.25, 0.60, 0.85, 0.60, 0.25, 0.60),
    Modality.T2: (1.00, 0.65, 0.45, 0.75, 1.00, 0.65),
    Modality.FLAIR: (0.15, 0.55, 0.45, 0.85, 0.85, 0.75),
    Modality.T1CE: (0.25, 0.60, 0.80, 0.55, 0.55, 1.30),
}
#: The ``brats-like`` preset (see the module docstring): NCR and ED differ clearly in T1/T2 and
#: only weakly in FLAIR (−11 %) and T1CE (−15 %); ET stays T1CE-bright, as it is by definition.
BRATS_LIKE_CONTRAST: dict[Modality, tuple[float, ...]] = {
    Modality.T1: (0.25, 0.60, 0.85, 0.55, 0.25, 0.60),
    Modality.T2: (1.00, 0.65, 0.45, 0.70, 1.00, 0.65),
    Modality.FLAIR: (0.15, 0.55, 0.45, 0.85, 0.76, 0.75),
    Modality.T1CE: (0.25, 0.60, 0.80, 0.55, 0.47, 1.30),
}
_BRAIN_SEMI_AXES_MM = np.array([66.0, 80.0, 56.0])


@dataclass(frozen=True)
class SyntheticConfig:
    """Grid and appearance of synthetic cases.

    Attributes:
        shape: grid size ``(i, j, k)``.
        spacing: voxel spacing in mm.
        n_tumours: a fixed count or an inclusive ``(min, max)`` range.
        noise: Rician noise sigma, relative to the WM signal.
        bias: amplitude of the multiplicative bias field (log scale).
        texture: amplitude of the smooth per-tissue texture (relative).
        contrast: signal per tissue for each modality (default :data:`CONTRAST`).
        contrast_jitter: per-case, per-modality, per-tissue multiplicative jitter (relative sd),
            like scanner and patient variability; 0 keeps every case on the table.
        tumour_scale: inclusive range of each tumour's size factor; ``None`` keeps the original
            rule (first tumour 1.0, others 0.7).
    """

    shape: tuple[int, int, int] = (96, 96, 64)
    spacing: tuple[float, float, float] = (2.0, 2.0, 2.0)
    n_tumours: int | tuple[int, int] = (1, 2)
    noise: float = 0.03
    bias: float = 0.15
    texture: float = 0.04
    contrast: dict[Modality, tuple[float, ...]] | None = None
    contrast_jitter: float = 0.0
    tumour_scale: tuple[float, float] | None = None

    def table(self) -> dict[Modality, tuple[float, ...]]:
        """The contrast table this config uses."""
        return dict(self.contrast) if self.contrast is not None else dict(CONTRAST)


#: Named cohort settings (``glioedge synth --cohort``, the benches). ``current`` is the original
#: generator, unchanged; ``brats-like`` is the setting where distillation has something to do.
COHORT_PRESETS: dict[str, SyntheticConfig] = {
    "current": SyntheticConfig(),
    "brats-like": SyntheticConfig(
        n_tumours=(2, 3),
        noise=0.06,
        bias=0.2,
        texture=0.08,
        contrast=BRATS_LIKE_CONTRAST,
        contrast_jitter=0.04,
        tumour_scale=(0.55, 1.0),
    ),
}


def cohort_config(name: str, **overrides: object) -> SyntheticConfig:
    """The :data:`COHORT_PRESETS` entry ``name``, with grid/appearance fields overridden.

    Raises:
        ConfigError: unknown preset name.
    """
    from dataclasses import replace

    from glioedge.errors import ConfigError

    if name not in COHORT_PRESETS:
        raise ConfigError(f"unknown cohort preset {name!r}; choose one of {sorted(COHORT_PRESETS)}")
    return replace(COHORT_PRESETS[name], **overrides)


class _Field:
    """A smooth random scalar field of position (mm): a sum of random plane waves in [-1, 1]."""

    def __init__(self, rng: np.random.Generator, n_waves: int, wavelength_mm: tuple[float, float]):
        dirs = rng.normal(size=(n_waves, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        lam = rng.uniform(*wavelength_mm, size=n_waves)
        self.k = (2 * math.pi / lam)[:, None] * dirs
        self.phase = rng.uniform(0, 2 * math.pi, size=n_waves)
        self.amp = rng.uniform(0.5, 1.0, size=n_waves)
        self.amp /= self.amp.sum()

    def __call__(self, p: np.ndarray) -> np.ndarray:
        out = np.zeros(p.shape[1:], dtype=np.float32)
        for k, ph, a in zip(self.k, self.phase, self.amp, strict=True):
            out += np.float32(a) * np.sin(
                np.float32(k[0]) * p[0] + np.float32(k[1]) * p[1] + np.float32(k[2]) * p[2]
                + np.float32(ph)
            )
        return out


def _grid_mm(config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    shape = np.asarray(config.shape)
    spacing = np.asarray(config.spacing, dtype=np.float64)
    origin = -(shape - 1) / 2.0 * spacing
    affine = make_affine(spacing, origin)
    axes = [
        (origin[a] + spacing[a] * np.arange(shape[a])).astype(np.float32) for a in range(3)
    ]
    p = np.stack(np.meshgrid(*axes, indexing="ij"))
    return p, affine


def _tumour(rng: np.random.Generator, scale: float) -> dict:
    """Draw one tumour's parameters (in mm), independent of the grid."""
    u = rng.normal(size=3)
    u /= np.linalg.norm(u)
    centre = u * rng.uniform(0.15, 0.45) * _BRAIN_SEMI_AXES_MM
    centre[0] = abs(centre[0]) * rng.choice([-1, 1]) + math.copysign(12.0, centre[0] or 1.0)
    lobe_dir = rng.normal(size=3)
    return {
        "centre": centre,
        "radii": rng.uniform(13.0, 21.0, size=3) * scale,
        "core_frac": rng.uniform(0.55, 0.75),
        "edema": rng.uniform(1.5, 2.0),
        "shape_field": _Field(rng, 6, (25.0, 60.0)),
        "edema_field": _Field(rng, 8, (15.0, 40.0)),
        "gap_field": _Field(rng, 3, (2.5, 5.0)),  # on unit directions: a few wide rim gaps
        "gap_threshold": rng.uniform(0.2, 0.5),
        "lobe": rng.random() < 0.7,
        "lobe_dir": lobe_dir / np.linalg.norm(lobe_dir),
        "lobe_radius": rng.uniform(0.35, 0.55),
    }


def _draw_anatomy(rng: np.random.Generator, config: SyntheticConfig) -> dict:
    """Draw every random parameter in a fixed order (so anatomy does not depend on the grid)."""
    n = config.n_tumours
    count = int(rng.integers(n[0], n[1] + 1)) if isinstance(n, tuple | list) else int(n)
    def scale(t: int) -> float:
        if config.tumour_scale is None:
            return 1.0 if t == 0 else 0.7
        return float(rng.uniform(*config.tumour_scale))

    anat = {
        "brain_scale": rng.uniform(0.92, 1.05, size=3),
        "brain_field": _Field(rng, 6, (60.0, 140.0)),
        "gyri_field": _Field(rng, 10, (12.0, 25.0)),
        "vent_scale": rng.uniform(0.8, 1.25),
        "tumours": [_tumour(rng, scale(t)) for t in range(count)],
        "texture": [_Field(rng, 8, (8.0, 30.0)) for _ in range(6)],
        "bias": {m: _Field(rng, 4, (150.0, 300.0)) for m in Modality},
    }
    # drawn last, and only when asked for, so the original preset's anatomy is unchanged
    table = config.table()
    anat["contrast"] = {
        m: np.asarray(table[m], dtype=np.float32)
        * (1.0 + np.float32(config.contrast_jitter) * rng.standard_normal(6).astype(np.float32))
        if config.contrast_jitter > 0 else np.asarray(table[m], dtype=np.float32)
        for m in (Modality.T1, Modality.T2, Modality.FLAIR, Modality.T1CE)
    }
    return anat


def _labels_and_tissue(p: np.ndarray, anat: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(brain mask, tissue index map, internal label map) on the grid points ``p`` (mm)."""
    semi = _BRAIN_SEMI_AXES_MM * anat["brain_scale"]
    r = np.sqrt(sum((p[a] / np.float32(semi[a])) ** 2 for a in range(3)))
    r = r + np.float32(0.06) * anat["brain_field"](p)
    brain = r < 1.0
    depth_mm = (1.0 - r) * np.float32(semi.min())  # approximate distance to the surface
    gyri = anat["gyri_field"](p)
    tissue = np.full(r.shape, _WM, dtype=np.uint8)
    tissue[depth_mm < 7.0 + 3.0 * gyri] = _GM
    tissue[depth_mm < 1.5 + 1.5 * gyri] = _CSF
    vs = anat["vent_scale"]
    for side in (-1.0, 1.0):  # lateral ventricles: two bent ellipsoids beside the midline
        q0 = (p[0] - np.float32(side * 9.0 * vs)) / np.float32(6.0 * vs)
        q1 = (p[1] + np.float32(5.0)) / np.float32(28.0 * vs)
        q2 = (p[2] - np.float32(10.0) + np.float32(8.0) * q1**2) / np.float32(9.0 * vs)
        tissue[q0**2 + q1**2 + q2**2 < 1.0] = _CSF
    label = np.zeros(r.shape, dtype=np.uint8)
    for t in anat["tumours"]:
        d = p - t["centre"].astype(np.float32)[:, None, None, None]
        dist = np.sqrt(sum((d[a] / np.float32(t["radii"][a])) ** 2 for a in range(3)))
        dist = dist * (1.0 + np.float32(0.18) * t["shape_field"](p))
        unit = d / np.maximum(np.sqrt((d**2).sum(axis=0)), np.float32(1e-3))
        gap = t["gap_field"](unit) > t["gap_threshold"]
        edema_dist = dist * (1.0 + np.float32(0.3) * t["edema_field"](p))
        ed = (edema_dist < t["edema"]) & brain & (tissue != _CSF)
        label[ed & (label == 0)] = 2
        if t["lobe"]:
            lc = t["radii"] * t["lobe_dir"] * (1.0 + 0.6 * (t["edema"] - 1.0))
            dl = d - lc.astype(np.float32)[:, None, None, None]
            lr = t["lobe_radius"] * t["radii"]
            lobe = sum((dl[a] / np.float32(lr[a])) ** 2 for a in range(3)) < 1.0
            label[lobe & brain & ((label == 0) | (label == 2))] = 1
        core = (dist < 1.0) & brain
        label[core & (dist >= t["core_frac"]) & ~gap] = 3
        label[core & ((dist < t["core_frac"]) | gap)] = 1
    label[~brain] = 0
    return brain, tissue, label


def make_case(
    seed: int, config: SyntheticConfig | None = None, case_id: str | None = None
) -> Case:
    """Generate one synthetic case (all four modalities, internal labels, LPS affine).

    Args:
        seed: random seed; the same seed gives the same anatomy at any spacing.
        config: grid and appearance (default :class:`SyntheticConfig`).
        case_id: identifier (default ``"synth_<seed>"``).

    Returns:
        A :class:`~glioedge.data.brats.Case`; images are float32, 0 outside the brain.
    """
    config = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    anat = _draw_anatomy(rng, config)
    p, affine = _grid_mm(config)
    brain, tissue, label = _labels_and_tissue(p, anat)
    tissue = np.where(label == 2, _ED, np.where(label == 1, _NCR, np.where(label == 3, _ET, tissue)))
    texture = np.zeros(tissue.shape, dtype=np.float32)
    for t_idx, field in enumerate(anat["texture"]):
        sel = tissue == t_idx
        if sel.any():
            texture[sel] = field(p[:, sel])
    noise_rng = np.random.default_rng([seed, *config.shape])  # grid-dependent noise only
    images: dict[Modality, np.ndarray] = {}
    for mod in (Modality.T1, Modality.T2, Modality.FLAIR, Modality.T1CE):
        lut = anat["contrast"][mod]
        signal = lut[tissue] * (1.0 + np.float32(config.texture) * texture)
        signal *= np.exp(np.float32(config.bias) * anat["bias"][mod](p))
        sigma = np.float32(config.noise * config.table()[mod][_WM])
        n1 = noise_rng.standard_normal(signal.shape, dtype=np.float32) * sigma
        n2 = noise_rng.standard_normal(signal.shape, dtype=np.float32) * sigma
        img = np.sqrt((signal + n1) ** 2 + n2**2) * np.float32(1000.0)
        img[~brain] = 0.0
        images[mod] = img.astype(np.float32, copy=False)
    return Case(
        case_id=case_id or f"synth_{seed}", images=images, label=label, affine=affine
    )


def write_brats_case(
    case: Case, out_dir: Path, convention: LabelConvention = LabelConvention.BRATS2021
) -> Path:
    """Write a case as a BraTS folder of NIfTI files (SimpleITK; LPS affine → NIfTI RAS).

    BRATS2021 writes ``<case>/<case>_{t1,t2,flair,t1ce,seg}.nii.gz`` (ET = 4); BRATS2023 writes
    ``<case>/<case>-{t1n,t2w,t2f,t1c,seg}.nii.gz`` (ET = 3).

    Returns:
        The case folder.
    """
    conv = LabelConvention(convention)
    folder = Path(out_dir) / case.case_id
    folder.mkdir(parents=True, exist_ok=True)
    if conv is LabelConvention.BRATS2021:
        names, sep = {m: m.value for m in Modality}, "_"
    else:
        names = {Modality.T1: "t1n", Modality.T2: "t2w", Modality.FLAIR: "t2f",
                 Modality.T1CE: "t1c"}
        sep = "-"
    for mod, arr in case.images.items():
        path = folder / f"{case.case_id}{sep}{names[Modality(mod)]}.nii.gz"
        sitk.WriteImage(sitk_from_array(arr.astype(np.float32), case.affine), str(path))
    if case.label is not None:
        seg = to_file_labels(case.label, conv)
        path = folder / f"{case.case_id}{sep}seg.nii.gz"
        sitk.WriteImage(sitk_from_array(seg, case.affine), str(path))
    return folder


def generate_cohort(
    out_dir: Path,
    n_cases: int,
    seed: int = 0,
    config: SyntheticConfig | None = None,
    convention: LabelConvention = LabelConvention.BRATS2021,
    healthy_fraction: float = 0.0,
) -> list[Path]:
    """Write ``n_cases`` synthetic BraTS case folders ``Synth_00000`` … under ``out_dir``.

    Case ``i`` uses the seed derived from ``(seed, i)``, so cohorts with different seeds differ
    and a cohort's first cases do not depend on ``n_cases``.

    ``healthy_fraction`` draws that share of the cases without a tumour (an all-zero seg), spread
    evenly over the indices (case ``i`` is healthy when ``floor((i + 1) f) > floor(i f)``), so a
    model also sees brains where the right answer is "no tumour" and a validation split taken
    from either end gets its share of them.

    Returns:
        The case folders.

    Raises:
        ConfigError: ``healthy_fraction`` outside [0, 1].
    """
    from dataclasses import replace

    from glioedge.errors import ConfigError

    if not 0.0 <= healthy_fraction <= 1.0:
        raise ConfigError(f"healthy_fraction must be in [0, 1], got {healthy_fraction}")
    config = config or SyntheticConfig()
    healthy_config = replace(config, n_tumours=0)
    paths = []
    for i in range(n_cases):
        case_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        healthy = math.floor((i + 1) * healthy_fraction) > math.floor(i * healthy_fraction)
        case = make_case(case_seed, healthy_config if healthy else config,
                         case_id=f"Synth_{i:05d}")
        paths.append(write_brats_case(case, out_dir, convention))
    return paths
