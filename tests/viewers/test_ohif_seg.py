"""Every SEG kind glioedge writes, loaded the way OHIF Viewer loads it: the real
``@cornerstonejs/adapters`` call in node (tools/ohif/load_seg.mjs), with the adapter version OHIF
3.13.2 pins (5.6.8) and the current release (5.14.0); see docs/viewers.md.

Each study has a FLAIR (series 3, axial, another grid) besides the reference T1CE (series 7) the
SEG's frames lie on. OHIF attaches a SEG to the first of its display sets whose series the SEG
references, so the SEG is loaded with the display sets in both orders. Checked per labelmap value:
the segment number, label and colour OHIF gives it, the voxels, and the LPS centroid — against the
label volume given to :func:`write_seg`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from glioedge.dicom_io import load_series, write_seg
from glioedge.dicom_io.volume import make_affine
from glioedge.synth import synthetic_series
from glioedge.synth.phantom import direction_matrix, grid_affine, phantom_image
from glioedge.vocabulary import SEGMENTS

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "ohif"
#: adapter folder → what it stands for
ADAPTERS = {"adapters-5.6.8": "pinned by OHIF 3.13.2", "adapters-5.14.0": "current release"}
CENTRE = np.array([25.0, -10.0, 15.0])
#: (reference orientation/storage, in-plane shape): classic oblique (non-square frames), Enhanced
#: MR multi-frame sagittal (square frames), classic with a mirrored row direction (row = -x)
GEOMETRIES = {
    "oblique-mr": ("oblique", "mr", (32, 36, 10)),
    "sagittal-enhanced": ("sagittal", "enhanced", (34, 34, 10)),
    "mirrored-mr": ("mirrored", "mr", (36, 32, 10)),
}
SPACING = (1.5, 1.2, 4.0)
#: class → (offset from the centre in LPS mm, radius mm); ED is drawn first, NCR and ET inside it
BLOBS = {2: ((0.0, 0.0, 0.0), 14.0), 1: ((-6.0, 4.0, 0.0), 5.0), 3: ((6.0, -3.0, 4.0), 5.5)}


@dataclass
class Case:
    name: str
    kind: str
    geometry: str
    seg: Path
    flair: list[Path]
    reference: list[Path]
    reference_uid: str
    labels: np.ndarray
    affine: np.ndarray
    square: bool


def _affine(orientation: str, shape: tuple[int, int, int]) -> np.ndarray:
    if orientation != "mirrored":
        return grid_affine(shape, SPACING, orientation, centre=CENTRE)
    row, col = np.array([-1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    direction = np.stack([row, col, np.cross(row, col)], axis=1)
    half = (np.asarray(shape) - 1) / 2 * np.asarray(SPACING)
    return make_affine(CENTRE - direction @ half, SPACING, direction)


def _labels(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """Three blobs with distinct centroids (a swapped or mirrored segment moves one)."""
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), -1).reshape(-1, 3)
    points = ijk @ affine[:3, :3].T + affine[:3, 3]
    labels = np.zeros(len(points), np.uint8)
    for value, (offset, radius) in BLOBS.items():
        labels[np.linalg.norm(points - (CENTRE + offset), axis=1) <= radius] = value
    return labels.reshape(shape)


def _save(datasets: list[Dataset], folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for n, ds in enumerate(datasets):
        path = folder / f"{n:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("ohif")
    flair_affine = grid_affine((28, 28, 8), (2.0, 2.0, 5.0), "axial", centre=CENTRE)
    assert not np.allclose(direction_matrix("axial"), direction_matrix("oblique"))
    out: dict[str, Case] = {}
    for geometry, (orientation, storage, shape) in GEOMETRIES.items():
        affine = _affine(orientation, shape)
        reference = synthetic_series(phantom_image(shape, affine, "t1ce"), affine, modality="t1ce",
                                     storage=storage, series_number=7)
        flair = synthetic_series(phantom_image((28, 28, 8), flair_affine, "flair"), flair_affine,
                                 modality="flair", series_number=3)
        volume = load_series(reference)
        labels = _labels(shape, volume.affine)
        assert set(np.unique(labels)) == {0, 1, 2, 3}
        ref_files = _save(reference, root / geometry / "t1ce")
        flair_files = _save(flair, root / geometry / "flair")
        for kind in ("BINARY", "LABELMAP"):
            seg = write_seg(labels, reference, flair, segmentation_type=kind, bundle_id="ohif-test")
            path = root / geometry / f"seg-{kind}.dcm"
            seg.save_as(path)
            name = f"{geometry}-{kind}"
            out[name] = Case(name, kind, geometry, path, flair_files, ref_files,
                             str(reference[0].SeriesInstanceUID), labels, volume.affine,
                             square=shape[0] == shape[1])
    return out


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the OHIF adapter runs in node; .ci/run installs it)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = (int(v) for v in re.findall(r"\d+", version)[:2])
    # the adapters ship ES modules in .js files: node loads them by syntax detection (20.19+, 22.7+)
    assert (major == 20 and minor >= 19) or (major == 22 and minor >= 7) or major >= 23, (
        f"node {version.strip()} cannot load the adapter's ES modules: need 20.19+ or 22.7+")
    return node


@pytest.fixture(scope="module", params=sorted(ADAPTERS))
def loaded(request: pytest.FixtureRequest, cases: dict[str, Case],
           tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """All cases, in both display-set orders, through one node process per adapter version."""
    node = _node()
    folder = TOOL / request.param
    assert (folder / "node_modules" / "@cornerstonejs" / "adapters").is_dir(), (
        f"run `npm ci --prefix {folder.relative_to(ROOT)}` first (.ci/run does)")
    jobs = {}
    for case in cases.values():
        flair, ref = [str(p) for p in case.flair], [str(p) for p in case.reference]
        jobs[f"{case.name}/flair-first"] = {"seg": str(case.seg), "series": [flair, ref]}
        jobs[f"{case.name}/reference-first"] = {"seg": str(case.seg), "series": [ref, flair]}
    job_file = tmp_path_factory.mktemp("ohif-jobs") / "request.json"
    job_file.write_text(json.dumps({"cases": jobs}))
    run = subprocess.run([node, str(TOOL / "load_seg.mjs"), str(folder), str(job_file)],
                         capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    answer = json.loads(run.stdout)
    assert answer["adapter_version"] == request.param.removeprefix("adapters-")
    return answer["adapter_version"], answer["cases"]


def _expected(case: Case) -> dict[int, tuple[int, np.ndarray]]:
    """Class → (voxels, LPS centroid) of the product's label volume."""
    out = {}
    for value in (1, 2, 3):
        ijk = np.argwhere(case.labels == value)
        points = ijk @ case.affine[:3, :3].T + case.affine[:3, 3]
        out[value] = (len(ijk), points.mean(axis=0))
    return out


@pytest.mark.integration
@pytest.mark.parametrize("order", ["flair-first", "reference-first"])
@pytest.mark.parametrize("case_name", [f"{g}-{k}" for g in GEOMETRIES for k in ("BINARY", "LABELMAP")])
def test_ohif_shows_the_seg(loaded: tuple[str, dict], cases: dict[str, Case], case_name: str,
                            order: str) -> None:
    version, results = loaded
    case = cases[case_name]
    got = results[f"{case_name}/{order}"]
    # OHIF attaches it to the series its frames lie on, in any order, and it loads
    assert "error" not in got, got["error"]
    assert got["attached_to"] == case.reference_uid, got
    assert got["labelmap_images"] == case.labels.shape[2]
    expected = _expected(case)
    assert sorted(int(v) for v in got["labelmap"]) == [1, 2, 3]
    for value, (voxels, centroid) in expected.items():
        shown = got["labelmap"][str(value)]
        assert shown["voxels"] == voxels, (value, shown["voxels"], voxels)
        np.testing.assert_allclose(shown["centroid_lps"], centroid, atol=0.5)
        if case.square:  # the adapter's own centroids ("jump to segment"); see below
            np.testing.assert_allclose(got["adapter_centroids"][str(value)]["world"], centroid,
                                       atol=0.5)
            assert got["adapter_centroids"][str(value)]["count"] == voxels
    pinned_labelmap_bug = case.kind == "LABELMAP" and version == "5.6.8"
    for value in (1, 2, 3):
        segment = got["segments"][str(value)]
        # adapters 5.6.8 (OHIF 3.13.2) take a labelmap value's segment by list position: value v
        # gets SegmentSequence[v-1], whose first item is segment 0 "Background" (Supplement 243,
        # written by highdicom and dcmqi alike). OHIF's bug, documented in docs/viewers.md.
        number = value - 1 if pinned_labelmap_bug else value
        assert segment["SegmentNumber"] == number, (version, case.kind, segment)
        if number == 0:
            assert segment["SegmentLabel"] == "Background"
            continue
        spec = SEGMENTS[number]
        assert segment["SegmentLabel"] == spec.label
        assert np.abs(np.subtract(segment["rgb"], spec.rgb)).max() <= 1, (segment["rgb"], spec.rgb)
    if pinned_labelmap_bug:  # and value 4 (no voxels) shows ET's colour: one entry too many
        assert got["segments"]["4"]["SegmentLabel"] == "ET"
    else:
        assert sorted(got["segments"]) == ["1", "2", "3"]
    # because the SEG references only that series (a FLAIR listed too is where OHIF may attach it)
    assert got["referenced_series"] == [case.reference_uid]
