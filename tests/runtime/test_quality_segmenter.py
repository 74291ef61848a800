"""The quality verdict through the Segmenter and its outputs (issue 19): the export's manifest
block from the training run's preprocessed cases, report.json, the SEG's description and
algorithm parameters, the SR finding and the QA picture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from glioedge.bundle import Bundle
from glioedge.data.brats import discover_cases
from glioedge.data.dataset import preprocess_cohort
from glioedge.data.modalities import parse_modalities
from glioedge.data.preprocess import PreprocessParams
from glioedge.runtime import Segmenter, SegmenterConfig
from glioedge.synth.cohort import SyntheticConfig, generate_cohort
from tests.helpers import dciodvfy_errors

from .conftest import NETWORK_SPACING, make_tiny_checkpoint

#: Every threshold out of reach except the entropy's review: the verdict is exactly ``review``.
FORCE_REVIEW = {"distribution_review": 1e9, "distribution_reject": 1e9, "border_review": 1e9,
                "border_reject": 1e9, "slice_thickness_factor": 1e9, "slice_thickness_review_mm": 1e9,
                "slice_thickness_reject_mm": 1e9, "entropy_review": 0.0, "entropy_reject": 1e9,
                "outside_brain_review": 1e9, "outside_brain_reject": 1e9, "isolated_et_review": 1e9,
                "components_review": 10**9, "small_fraction_review": 1e9,
                "wt_brain_fraction_reject": 1e9, "wt_max_ml_reject": 1e9, "uncovered_review": 1e9,
                "uncovered_reject": 1e9, "core_fraction_review": 0.0,
                "mirror_disagreement_review": 1e9, "mirror_disagreement_reject": 1e9,
                "enhancing_fraction_review": 0.0, "tumour_contrast_min_training": 1e9}


@pytest.fixture(scope="module")
def quality_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny bundle exported from a checkpoint inside a training run folder with three
    preprocessed cases (as ``glioedge train`` leaves them)."""
    pytest.importorskip("onnxruntime", reason="exporting a bundle needs onnxruntime")
    from glioedge.export.pipeline import export_bundle

    root = tmp_path_factory.mktemp("quality-run")
    generate_cohort(root / "data", 3, seed=5, config=SyntheticConfig(shape=(96, 96, 64)))
    cases = discover_cases(root / "data", modalities=parse_modalities(["flair", "t1ce"]))
    params = PreprocessParams(modalities=("flair", "t1ce"), target_spacing=NETWORK_SPACING)
    preprocess_cohort(cases, params, root / "run" / "preprocessed")
    (root / "run" / "split.json").write_text(json.dumps({"train": [c.case_id for c in cases[:2]],
                                                          "val": [cases[2].case_id]}))
    ckpt = make_tiny_checkpoint(root / "run" / "checkpoints" / "final")
    return export_bundle(ckpt, root / "bundle").root


def test_export_records_the_training_profile(quality_bundle: Path) -> None:
    block = Bundle.load(quality_bundle).manifest.quality
    assert block is not None and block["cases"] == 2  # the training half of split.json
    # the export's parity check ran on a training case, not on noise
    assert Bundle.load(quality_bundle).manifest.verification["case_source"].startswith("training case ")
    assert set(block["intensity"]) == {"flair", "t1ce"}
    assert block["intensity"]["t1ce"]["cases"] == 2 and len(block["intensity"]["t1ce"]["histogram"]) == 50
    assert block["training_max_spacing_mm"] == pytest.approx(2.0)
    # the labelled tumours stand out on FLAIR (oedema is hyperintense), not on T1CE
    contrast = block["tumour_contrast"]
    assert contrast["WT"]["flair"]["cases"] == 2 and contrast["WT"]["flair"]["min"] > 1.0
    assert contrast["WT"]["flair"]["min"] <= contrast["WT"]["flair"]["median"]
    assert contrast["WT"]["t1ce"]["min"] < contrast["WT"]["flair"]["min"]
    assert contrast["ET"]["t1ce"]["min"] > 1.0  # enhancing tumour: bright on T1CE


def test_bundle_without_block_says_not_available(trained_bundle: Path, synthetic_study: Path) -> None:
    assert Bundle.load(trained_bundle).manifest.quality is None  # no run folder beside its checkpoint
    with Segmenter.from_bundle(trained_bundle, "onnxruntime", "cpu") as seg:
        res = seg.segment_study(synthetic_study)
    q = res.report()["quality"]
    assert q["verdict"] in ("ok", "review", "reject") and q["verdict"] == res.verdict
    assert q["scores"]["distribution"]["available"] is False
    assert "no_training_profile" in {r["code"] for r in q["reasons"]}
    assert res.timings["quality"] > 0


def test_verdict_travels_to_every_output(quality_bundle: Path, synthetic_study: Path,
                                         tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(quality_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["quality"]["thresholds"] = FORCE_REVIEW  # not hashed: the bundle still verifies
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with Segmenter.from_bundle(bundle, "onnxruntime", "cpu", SegmenterConfig(qa_png=True, sr=True)) as seg:
        res = seg.segment_study(synthetic_study)
    files = res.write(tmp_path / "out")
    report = json.loads(files["report"].read_text())
    assert report["quality"]["verdict"] == "review", report["quality"]
    assert report["quality"]["thresholds"] == "bundle"
    assert report["quality"]["scores"]["distribution"]["available"] is True
    assert set(report["quality"]["scores"]["coverage"]["uncovered_fraction"]) == {"flair", "t1ce"}
    assert [r["code"] for r in report["quality"]["reasons"] if r["severity"] != "info"] == ["uncertain"]
    seg_ds = pydicom.dcmread(files["seg"])
    assert str(seg_ds.SeriesDescription) == "REVIEW glioedge tumour segmentation"
    params = str(seg_ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters)
    assert "quality=review" in params
    sr = pydicom.dcmread(files["sr"])
    meanings = {str(item.ConceptCodeSequence[0].CodeMeaning) for group in sr.ContentSequence
                for sub in group.get("ContentSequence", []) for item in sub.get("ContentSequence", [])
                if "ConceptCodeSequence" in item}
    assert "REVIEW: check the segmentation before use" in meanings
    assert any(m.startswith("REVIEW: the model is unsure") for m in meanings)
    assert files["qa_png"].stat().st_size > 0
    assert dciodvfy_errors(files["seg"]) == [] and dciodvfy_errors(files["sr"]) == []


def test_calibrate_stores_thresholds_that_pass_the_held_out_cases(
        trained_bundle: Path, tmp_path: Path) -> None:
    from glioedge.bundle_signing import SIGNATURE_FILE, generate_keypair, load_private_key, sign_manifest
    from glioedge.cli import main

    from .conftest import write_study

    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    private, _ = generate_keypair(tmp_path / "key.pem")
    sign_manifest(bundle, Bundle.load(bundle).manifest.to_dict(), load_private_key(private))
    assert (bundle / SIGNATURE_FILE).is_file()
    held_out = tmp_path / "held-out"
    for seed in (11, 12):
        write_study(held_out / f"case{seed}", seed=seed)
    before = Bundle.load(bundle).manifest
    scores_out = tmp_path / "scores.json"
    assert main(["quality", "calibrate", str(held_out), "--bundle", str(bundle), "--false-alarm", "0",
                 "--backend", "onnxruntime", "--device", "cpu", "--scores-out", str(scores_out)]) == 0
    written = json.loads(scores_out.read_text())
    assert [c["case"] for c in written["cases"]] == [0, 1] and "case11" not in scores_out.read_text()
    assert {"distribution", "anatomy", "support"} <= set(written["cases"][0]["scores"])
    after = Bundle.load(bundle, verify=True).manifest
    assert after.bundle_id == before.bundle_id  # the segmentation is the same model
    assert not (bundle / SIGNATURE_FILE).exists()
    block = after.quality
    assert block["calibration"]["cases"] == 2 and block["calibration"]["false_alarm"] == 0
    thresholds = block["thresholds"]
    # With a false-alarm rate of 0 the held-out cases pass the calibrated entropy signal.
    with Segmenter.from_bundle(bundle, "onnxruntime", "cpu") as seg:
        res = seg.segment_study(held_out / "case12")
    assert res.quality["thresholds"] == "bundle"
    assert res.quality["scores"]["uncertainty"]["entropy_mean"] <= thresholds["entropy_review"]
    assert "uncertain" not in {r["code"] for r in res.quality["reasons"]}
