"""The Segmenter end to end: parity with PyTorch, SEG validity, outputs, brain mask, no torch."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pydicom
import pytest

from glioedge.errors import BackendError, ConfigError, InputError
from glioedge.runtime import Result, Segmenter, SegmenterConfig
from glioedge.runtime.postprocess import tumour_volumes_ml
from tests.helpers import dciodvfy_errors

from .conftest import study_volumes

NO_PP = SegmenterConfig(postprocess=False)


@pytest.fixture(scope="module")
def result(trained_bundle: Path, synthetic_study: Path) -> Result:
    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu",
                               SegmenterConfig(qa_png=True, sr=True)) as seg:
        return seg.segment_study(synthetic_study)


@pytest.mark.slow
def test_label_map_matches_direct_pytorch(trained_bundle: Path, trained_checkpoint: Path,
                                          synthetic_study: Path) -> None:
    """Segmenter (ORT CPU) vs predict_case (PyTorch) on the preprocessed case, restored."""
    torch = pytest.importorskip("torch")
    from glioedge.data.preprocess import PreprocessParams, preprocess, restore_to_original
    from glioedge.dicom_io import load_study
    from glioedge.train.checkpoint import load_student
    from glioedge.train.validation import predict_case

    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu", NO_PP) as seg:
        ours = seg.segment_study(synthetic_study).label_map.array
    net, meta = load_student(trained_checkpoint)
    study = load_study(synthetic_study, required=("flair", "t1ce"), reference="t1ce")
    ref = study.volumes["t1ce"]
    case = preprocess({m: v.array for m, v in study.volumes.items()}, ref.affine,
                      PreprocessParams.from_dict(meta.preprocess))
    pred = predict_case(net, case.data, meta.plan.patch_size, torch.device("cpu"))
    theirs = restore_to_original(pred, case.record, is_label=True)
    agreement = float(np.mean(ours == theirs))
    print(f"voxel agreement Segmenter(ORT CPU) vs PyTorch predict_case: {agreement:.6f}")
    assert agreement >= 0.999


def test_seg_is_valid_and_references_sources(result: Result, tmp_path: Path) -> None:
    files = result.write(tmp_path)
    assert dciodvfy_errors(files["seg"]) == []
    seg = pydicom.dcmread(files["seg"])
    assert seg.Modality == "SEG" and seg.SeriesNumber == 9901
    # only the series the frames lie on (OHIF attaches a SEG to any series it lists; docs/viewers.md)
    refs = [str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence]
    assert refs == [result.series_used["t1ce"]]
    t1ce_sops = {str(ds.SOPInstanceUID) for ds in result.sources
                 if str(ds.SeriesInstanceUID) == result.series_used["t1ce"]}
    assert {str(i.ReferencedSOPInstanceUID) for i in seg.SourceImageSequence} == t1ce_sops
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["NCR", "ED", "ET"]
    assert set(result.series_used) == {"flair", "t1ce"}
    # the FLAIR is named where it belongs: the algorithm parameters, the SR's evidence, report.json
    params = str(seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
                 .AlgorithmParameters)
    assert f"other_series={result.series_used['flair']}" in params
    assert "reference=t1ce" in params and "inputs=flair+t1ce" in params
    sr = pydicom.dcmread(files["sr"])
    evidence = {str(s.SeriesInstanceUID) for study in sr.CurrentRequestedProcedureEvidenceSequence
                for s in study.ReferencedSeriesSequence}
    assert evidence == {result.series_used["flair"], result.series_used["t1ce"],
                        str(seg.SeriesInstanceUID)}
    report = json.loads(files["report"].read_text())
    assert report["series_used"] == dict(result.series_used)


def test_sr_and_qa_png(result: Result, tmp_path: Path) -> None:
    files = result.write(tmp_path)
    assert files["qa_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert dciodvfy_errors(files["sr"]) == []
    sr = pydicom.dcmread(files["sr"])
    assert sr.Modality == "SR" and "VOLUME" in str(sr.ContentSequence).upper()


def test_write_is_atomic_and_idempotent(
    result: Result, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = result.write(tmp_path)
    uids1 = pydicom.dcmread(first["seg"]).SOPInstanceUID
    second = result.write(tmp_path)
    assert first == second and pydicom.dcmread(second["seg"]).SOPInstanceUID == uids1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.png", "report.json", "seg.dcm", "sr.dcm"]
    before = first["seg"].read_bytes()

    def boom(self: Path, target: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        result.write(tmp_path)
    assert first["seg"].read_bytes() == before  # old file intact, no temp files left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_rerun_gives_same_uids_and_config_changes_them(trained_bundle: Path, synthetic_study: Path,
                                                       result: Result) -> None:
    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu",
                               SegmenterConfig(qa_png=True)) as seg:
        again = seg.segment_study(synthetic_study)
    assert again.seg.SOPInstanceUID == result.seg.SOPInstanceUID  # qa/sr flags: same SEG
    assert again.seg.SeriesInstanceUID == result.seg.SeriesInstanceUID
    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu",
                               SegmenterConfig(segmentation_type="LABELMAP")) as seg:
        other = seg.segment_study(synthetic_study)
    assert other.seg.SeriesInstanceUID != result.seg.SeriesInstanceUID


def test_result_is_complete_and_immutable(result: Result) -> None:
    # Built once by the Segmenter: every field filled, none can be reassigned afterwards.
    assert result.seg is not None and result.sources and result.study_instance_uid
    assert set(result.series_used) == {"flair", "t1ce"} and result.windows > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.seg = None  # type: ignore[misc]


def test_volumes_and_report(result: Result) -> None:
    lab = result.label_map.array
    vox_ml = float(np.prod(result.label_map.spacing)) / 1000
    assert result.volumes_ml["WT"] == pytest.approx(np.count_nonzero(lab) * vox_ml)
    assert result.volumes_ml["ET"] == pytest.approx(np.count_nonzero(lab == 3) * vox_ml)
    assert result.volumes_ml == tumour_volumes_ml(lab, result.label_map.spacing)
    report = json.loads(json.dumps(result.report()))
    assert report["brain_mask_mode"] == "skull-stripped" and report["backend"] == "onnxruntime-cpu"
    assert set(report["timings_s"]) >= {"load", "brain_mask", "preprocess", "inference",
                                        "postprocess", "resample", "seg_write", "total"}
    text = json.dumps(report)
    assert "SYNTHETIC" not in text and "GLIOEDGE-SYN" not in text


def test_logs_carry_no_patient_identifiers(trained_bundle: Path, synthetic_study: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG"), Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu") as seg:
        seg.segment_study(synthetic_study)
    assert "SYNTHETIC" not in caplog.text and "GLIOEDGE-SYN-0001" not in caplog.text
    assert "2.25." in caplog.text  # UIDs are logged


def test_segment_volumes_makes_no_seg(trained_bundle: Path, tmp_path: Path) -> None:
    vols = study_volumes()
    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu") as seg:
        res = seg.segment_volumes(vols)
    assert res.seg is None and res.label_map.shape == vols["t1ce"].shape
    assert set(res.write(tmp_path)) == {"report"}
    with pytest.raises(InputError, match="missing modalities"), Segmenter.from_bundle(trained_bundle) as seg:
        seg.segment_volumes({"t1ce": vols["t1ce"]})


def test_bad_study_is_input_error(trained_bundle: Path, synthetic_study: Path) -> None:
    datasets = [pydicom.dcmread(p) for p in sorted((synthetic_study / "t1ce").iterdir())]
    with pytest.raises(InputError), Segmenter.from_bundle(trained_bundle) as seg:
        seg.segment_study(datasets)  # no FLAIR


MASK_SCRIPT = textwrap.dedent("""
    import sys
    import SimpleITK as sitk
    if len(sys.argv) > 3:
        sys.stderr.write("skull stripper exploded: out of memory\\n"); sys.exit(3)
    img = sitk.ReadImage(sys.argv[1])
    sitk.WriteImage(sitk.Cast(img > 0, sitk.sitkUInt8), sys.argv[2])
""")


@pytest.fixture
def mask_tool(tmp_path: Path) -> Path:
    script = tmp_path / "strip.py"
    script.write_text(MASK_SCRIPT)
    return script


def test_brain_mask_command(trained_bundle: Path, mask_tool: Path) -> None:
    vols = study_volumes()
    cfg = SegmenterConfig(brain_mask="command",
                          brain_mask_command=f"{sys.executable} {mask_tool} {{input}} {{output}}")
    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu", cfg) as seg:
        res = seg.segment_volumes(vols)
    assert res.brain_mask_mode == "command" and res.report()["brain_mask_mode"] == "command"
    assert res.timings["brain_mask"] > 0


def test_brain_mask_command_failures(trained_bundle: Path, mask_tool: Path) -> None:
    vols = study_volumes()
    failing = SegmenterConfig(brain_mask="command",
                              brain_mask_command=f"{sys.executable} {mask_tool} {{input}} {{output}} x")
    with pytest.raises(BackendError, match="exploded"), \
            Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu", failing) as seg:
        seg.segment_volumes(vols)
    missing = SegmenterConfig(brain_mask="command", brain_mask_command="no-such-bet {input} {output}")
    with pytest.raises(BackendError, match="no-such-bet"), \
            Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu", missing) as seg:
        seg.segment_volumes(vols)
    with pytest.raises(ConfigError, match="brain_mask_command"):
        SegmenterConfig(brain_mask="command")


def test_config_round_trip() -> None:
    cfg = SegmenterConfig(mirror=True, segmentation_type="labelmap")
    assert SegmenterConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.segmentation_type == "LABELMAP"
    with pytest.raises(ConfigError, match="unknown keys"):
        SegmenterConfig.from_dict({"stepsize": 0.5})


def test_cli_segment(trained_bundle: Path, synthetic_study: Path, tmp_path: Path,
                     caplog: pytest.LogCaptureFixture) -> None:
    import argparse
    import logging

    from glioedge.runtime.commands import add_segment_parser

    caplog.set_level(logging.INFO, logger="glioedge.progress")
    parser = argparse.ArgumentParser()
    add_segment_parser(parser.add_subparsers())
    args = parser.parse_args(["segment", str(synthetic_study), "--bundle", str(trained_bundle), "--out",
                              str(tmp_path / "out"), "--backend", "onnxruntime", "--qa-png"])
    assert args.func(args) == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"seg.dcm", "report.json", "qa.png"}
    # progress for a person waiting (plain log lines: pytest's capture is not a terminal)
    lines = [r.getMessage() for r in caplog.records if r.name == "glioedge.progress"]
    stages = [ln.removeprefix("stage: ") for ln in lines if ln.startswith("stage: ")]
    assert stages == ["loading model", "reading", "brain extraction", "segmentation",
                      "post-processing", "writing SEG", "writing files"]
    counts = [ln.split("windows ")[1].split(" of ") for ln in lines if ln.startswith("segmentation: windows")]
    assert counts and counts[-1][0] == counts[-1][1] and int(counts[-1][1]) > 0
    assert lines[-1].startswith("done in ") and "segmentation" in lines[-1]


def test_runtime_runs_without_torch(trained_bundle: Path, synthetic_study: Path, tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any "import torch" now raises ImportError
        import json
        from pathlib import Path
        import glioedge.runtime
        from glioedge.runtime import Segmenter
        seg = Segmenter.from_bundle({str(trained_bundle)!r}, backend="auto")
        res = seg.segment_study(Path({str(synthetic_study)!r}))
        files = res.write(Path({str(tmp_path)!r}))
        assert sys.modules["torch"] is None
        print(json.dumps({{"backend": res.backend, "files": sorted(files)}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["backend"].startswith("onnxruntime") and info["files"] == ["report", "seg"]
