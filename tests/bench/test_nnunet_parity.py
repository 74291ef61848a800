"""glioedge against the real nnU-Net v2 (nnunetv2, installed by scripts/install.sh): the same input
after preprocessing, and the same probabilities from the same weights (bench/nnunet_parity.py)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import nnunet_adapter as A  # noqa: E402
import nnunet_parity as B  # noqa: E402

from glioedge.data.preprocess import PreprocessParams, preprocess  # noqa: E402

SPACING = 4.0  # a small grid (48×48×32) keeps nnU-Net's CPU predictor to seconds
TOL_INPUT = 1e-5


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nnunet-parity")


@pytest.fixture(scope="module")
def case(work: Path) -> Path:
    (path,) = B.make_cases(work / "cases", 1, "brats-like", SPACING, seed=11)
    return path


@pytest.fixture(scope="module")
def student(work: Path):
    from glioedge.train.checkpoint import load_student

    return load_student(B.random_checkpoint(work / "ckpt", "tiny", SPACING, seed=3))


def _holed_case(case: Path, out: Path) -> Path:
    """The case with a 3-voxel cube inside the brain set to 0 in every image (a cavity)."""
    import SimpleITK as sitk  # noqa: N813

    dst = out / case.name
    dst.mkdir(parents=True)
    for src in case.iterdir():
        img = sitk.ReadImage(str(src))
        if not src.name.endswith("_seg.nii.gz"):
            arr = sitk.GetArrayFromImage(img)
            c = [n // 2 for n in arr.shape]
            arr[c[0] - 1:c[0] + 2, c[1] - 1:c[1] + 2, c[2] - 1:c[2] + 2] = 0
            new = sitk.GetImageFromArray(arr)
            new.CopyInformation(img)
            img = new
        sitk.WriteImage(img, str(dst / src.name))
    return dst


@pytest.mark.parametrize(("spacing", "order", "interpolation"), [
    (SPACING, 3, "linear"),  # the network's own grid: no resampling
    (3.0, 1, "linear"),  # upsampled, nnU-Net order 1
    (3.0, 3, "bspline3"),  # upsampled, nnU-Net's default order 3
    (5.0, 1, "linear"),  # downsampled
])
def test_preprocessing_matches_nnunet_voxel_by_voxel(case: Path, student, work: Path, spacing: float,
                                                     order: int, interpolation: str) -> None:
    net, meta = student
    holed = _holed_case(case, work / f"holed-{spacing}-{order}")
    res = A.write_results_folder(work / f"pre-{spacing}-{order}", net, meta.plan, B.MODALITIES,
                                 (spacing,) * 3, data_order=order)
    params = PreprocessParams(B.MODALITIES, target_spacing=(spacing,) * 3, image_interpolation=interpolation)
    for c in (case, holed):
        images, affine = B.read_case(c)
        ours = preprocess(images, affine, params)
        theirs, props = A.nnunet_preprocess(res, B.case_files(c))
        assert [tuple(b) for b in reversed(props["bbox_used_for_cropping"])] == list(ours.record.crop_bbox)
        assert ours.data.shape == theirs.shape
        assert np.abs(ours.data - theirs).max() <= TOL_INPUT, c.name
    # glioedge's earlier scheme (kept for old bundles) is not nnU-Net's: this check has teeth
    legacy = replace(params, fill_holes=False, resampling="centred")
    images, affine = B.read_case(holed)
    old = preprocess(images, affine, legacy)
    theirs, _ = A.nnunet_preprocess(res, B.case_files(holed))
    assert old.data.shape != theirs.shape or np.abs(old.data - theirs).max() > 1e-2


def test_old_manifests_keep_their_preprocessing() -> None:
    recorded = {"modalities": ["flair", "t1ce"], "target_spacing": [1.0, 1.0, 1.0],
                "crop_to_nonzero": True, "normalization": "zscore_brain",
                "image_interpolation": "linear", "label_interpolation": "nearest", "crop_margin_vox": 0}
    old = PreprocessParams.from_dict(recorded)
    assert (old.fill_holes, old.resampling) == (False, "centred")
    new = PreprocessParams(("flair", "t1ce"))
    assert (new.fill_holes, new.resampling) == (True, "nnunet")
    assert PreprocessParams.from_dict(new.to_dict()) == new


def _models(work: Path, spacing: float) -> tuple[Path, Path]:
    """A TINY random-weight checkpoint whose network grid is ``spacing`` (the same weights at
    every spacing), its glioedge bundle and its nnU-Net results folder (data order 1)."""
    from glioedge.export.pipeline import ExportOptions, export_bundle
    from glioedge.train.checkpoint import load_student

    root = work / f"models-{spacing}"
    if not root.exists():
        ckpt = B.random_checkpoint(root / "ckpt", "tiny", spacing, seed=3)
        export_bundle(ckpt, root / "bundle", ExportOptions(fp16=False))
        net, meta = load_student(ckpt)
        A.write_results_folder(root / "results", net, meta.plan, B.MODALITIES, (spacing,) * 3, data_order=1)
    return root / "bundle", root / "results"


@pytest.mark.slow
@pytest.mark.parametrize(("spacing", "mirror"), [
    (SPACING, False), (SPACING, True),  # the cases' own grid
    (5.0, False),  # input resampled to 5 mm, logits resampled back
])
def test_same_weights_same_probabilities_as_nnunet_predictor(case: Path, work: Path, spacing: float,
                                                            mirror: bool) -> None:
    from glioedge.bundle import Bundle
    from glioedge.runtime.backends.ort_backend import OrtBackend
    from glioedge.train.checkpoint import load_student

    bundle_dir, results = _models(work, spacing)
    bundle = Bundle.load(bundle_dir, verify=True)
    net, _ = load_student(work / f"models-{spacing}" / "ckpt")
    predictor = A.make_predictor(results, mirror=mirror, threads=1)
    images, _ = B.read_case(case)
    brain = np.any([images[m] != 0 for m in B.MODALITIES], axis=0)

    with B.nnunet_float32_accumulation():
        nn32 = A.nnunet_predict(predictor, B.case_files(case))
    shipped = A.nnunet_predict(predictor, B.case_files(case))
    backend = OrtBackend.from_bundle(bundle, device="cpu", threads=1)
    try:
        onnx = B.glioedge_predict(bundle.manifest, backend, case, mirror)
    finally:
        backend.close()
    torch_path = B.glioedge_predict(bundle.manifest, B._TorchWindows(net), case, mirror)

    for ours in (onnx, torch_path):
        same = B.compare(ours, nn32, brain)
        assert same["max_abs_dp"] <= 1e-3, same
        assert same["labels_equal"] >= 0.9999, same
        # nnU-Net as shipped sums float16 logits (see docs/nnunet_parity.md): close, not equal
        shipped_cmp = B.compare(ours, shipped, brain)
        assert shipped_cmp["labels_equal"] >= 0.999, shipped_cmp
        assert shipped_cmp["max_abs_dp_brain"] <= 0.02, shipped_cmp
    assert (onnx[1] > 0.0).any() and not np.allclose(onnx[1][0], 1.0)  # a real prediction
