"""Real anatomy through the daemon and OHIF's SEG loader (issue 22): the semi-synthetic MNI152
tumour study (T1CE 3-D sagittal tilted 15°, FLAIR 2-D axial; a head with skull around the brain),
dropped into a real ``watch`` inbox; the SEG it writes, and a SEG of the study's own tumour truth,
loaded with the real ``@cornerstonejs/adapters`` call in node (tools/ohif/load_seg.mjs) in both
display-set orders.

The tumour network is the tiny student of the runtime tests (what it calls tumour is not the
point); what is checked is what a radiologist would see: OHIF attaches each SEG to the T1CE its
frames lie on, whatever the series order, and shows every class where the SEG puts it (voxel
counts and LPS centroids against glioedge's reader, and against the truth drawn on the T1CE).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from glioedge.dicom_io import load_series, read_seg, scan_folder, write_seg
from tests.runtime.daemon.conftest import ThreadDaemon, daemon_config, wait_until
from tests.synth.mni import mni_study_or_skip
from tests.viewers.test_ohif_seg import ADAPTERS, TOOL, _node

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def mni_study(tmp_path_factory: pytest.TempPathFactory):
    return mni_study_or_skip(tmp_path_factory.mktemp("mni-watch") / "study", seed=2, spacing_mm=2.0,
                             spacing_scale=1.5, modalities=("flair", "t1ce"))


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dcm"))


def _classes(labels: np.ndarray, affine: np.ndarray) -> dict[int, tuple[int, np.ndarray]]:
    """Class → (voxels, LPS centroid)."""
    out = {}
    for value in (1, 2, 3):
        ijk = np.argwhere(labels == value)
        if len(ijk):
            out[value] = (len(ijk), (ijk @ affine[:3, :3].T + affine[:3, 3]).mean(axis=0))
    return out


@pytest.fixture(scope="module")
def segs(mni_study, trained_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """name → (SEG file, expected classes): the daemon's SEG and a SEG of the truth."""
    root = tmp_path_factory.mktemp("mni-daemon")
    shutil.copytree(mni_study.root, root / "inbox" / "mni")
    config = daemon_config(root, trained_bundle, watch={"max_wait": 10.0})
    with ThreadDaemon(config) as daemon:
        wait_until(lambda: daemon.counts().get("done", 0) == 1, 900, "the MNI study processed")
    outputs = sorted((root / "outbox").glob("*/job-*/seg.dcm"))
    assert len(outputs) == 1, outputs
    t1ce = load_series(next(s for st in scan_folder(mni_study.series["t1ce"]) for s in st.series.values()))
    daemon_seg = read_seg(outputs[0], reference=t1ce)
    report = json.loads((outputs[0].parent / "report.json").read_text())
    assert report["series_used"]["t1ce"] == t1ce.series_instance_uid
    assert daemon_seg.array.shape == t1ce.shape  # the SEG lies on the tilted sagittal T1CE
    np.testing.assert_allclose(daemon_seg.affine, t1ce.affine, atol=1e-3)
    # what the daemon's SEG holds, as glioedge's reader places it on the T1CE (may be little:
    # the tiny student never saw a head with skull; the truth SEGs below hold every class)
    expected = {"daemon": (outputs[0], _classes(np.asarray(daemon_seg.array), t1ce.affine))}
    reference = [pydicom.dcmread(p) for p in _files(mni_study.series["t1ce"])]
    flair = [pydicom.dcmread(p, stop_before_pixels=True) for p in _files(mni_study.series["flair"])]
    truth = np.asarray(mni_study.labels.array, dtype=np.uint8)
    np.testing.assert_allclose(mni_study.labels.affine, t1ce.affine, atol=1e-3)  # the truth's grid
    assert set(np.unique(truth)) == {0, 1, 2, 3}
    for kind in ("BINARY", "LABELMAP"):
        path = root / f"truth-{kind}.dcm"
        write_seg(truth, reference, flair, segmentation_type=kind, bundle_id="mni-truth").save_as(path)
        expected[f"truth-{kind}"] = (path, _classes(truth, t1ce.affine))
    print("MNI study through watch: voxels per class, daemon SEG",
          {k: v[0] for k, v in expected["daemon"][1].items()}, "truth",
          {k: v[0] for k, v in expected["truth-BINARY"][1].items()}, "T1CE grid", t1ce.shape)
    return {"t1ce_uid": t1ce.series_instance_uid, "segs": expected}


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_ohif_shows_the_daemons_seg_on_real_anatomy(segs: dict, mni_study, adapter: str,
                                                     tmp_path: Path) -> None:
    node = _node()
    folder = TOOL / adapter
    assert (folder / "node_modules" / "@cornerstonejs" / "adapters").is_dir(), (
        f"run `npm ci --prefix {folder}` first (.ci/run does)")
    t1ce = [str(p) for p in _files(mni_study.series["t1ce"])]
    flair = [str(p) for p in _files(mni_study.series["flair"])]
    jobs = {}
    for name, (path, _) in segs["segs"].items():
        jobs[f"{name}/flair-first"] = {"seg": str(path), "series": [flair, t1ce]}
        jobs[f"{name}/t1ce-first"] = {"seg": str(path), "series": [t1ce, flair]}
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"cases": jobs}))
    run = subprocess.run([node, str(TOOL / "load_seg.mjs"), str(folder), str(request)],
                         capture_output=True, text=True, check=False, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    results = json.loads(run.stdout)["cases"]
    for job, got in results.items():
        name = job.split("/")[0]
        assert "error" not in got, (job, got["error"])
        assert got["attached_to"] == segs["t1ce_uid"], job  # the T1CE, in either order
        assert got["referenced_series"] == [segs["t1ce_uid"]], job
        expected = segs["segs"][name][1]
        assert sorted(int(v) for v in got["labelmap"]) == sorted(expected), job
        for value, (voxels, centroid) in expected.items():
            shown = got["labelmap"][str(value)]
            assert shown["voxels"] == voxels, (job, value, shown["voxels"], voxels)
            np.testing.assert_allclose(shown["centroid_lps"], centroid, atol=0.5)
