"""glioedge ↔ nnU-Net v2 for the parity bench and its tests (a bench artefact, never a product format).

* :func:`write_results_folder` puts a glioedge PlainConvUNet into an nnU-Net v2 results folder
  (``dataset.json``, ``plans.json``, ``fold_0/checkpoint_final.pth``) that ``nnUNetPredictor``
  loads as if nnU-Net had trained it.
* Axis order. glioedge arrays are ``(i, j, k)`` (``glioedge.data.geometry``); nnU-Net's readers
  (SimpleITKIO, NibabelIO) give ``(k, j, i)``. The same files therefore reach the two networks
  transposed. Every convolution of a PlainConvUNet is isotropic (kernel, stride, padding), so
  permuting the three spatial axes of every kernel (``(i, j, k)`` → ``(k, j, i)``) gives the network
  that computes exactly the transposed function: the same weights, expressed in nnU-Net's axis
  order. Instance norm, LeakyReLU and the 1×1×1 heads do not care. The sliding window does not
  either for a cubic patch (window starts, padding and the Gaussian are per axis).
* :func:`nnunet_plans` writes nnU-Net's own MR recipe for the plan: ``ZScoreNormalization`` with
  ``use_mask_for_norm``, ``DefaultPreprocessor``, crop to non-zero, the network's spacing, and the
  resampling orders as given (nnU-Net's planner default: data 3, probabilities 1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: internal classes 0..3 as nnU-Net labels (consecutive, as nnU-Net requires).
NNUNET_LABELS = {"background": 0, "NCR": 1, "ED": 2, "ET": 3}
CONFIGURATION = "3d_fullres"
TRAINER = "nnUNetTrainer"


def nnunet_plans(plan: Any, spacing_ijk: Sequence[float], n_channels: int, *,
                 data_order: int = 3, probabilities_order: int = 1,
                 batch_size: int = 2, batch_dice: bool = False) -> dict[str, Any]:
    """nnU-Net v2 plans (``3d_fullres``) for a glioedge :class:`~glioedge.train.plan.NetworkPlan`.

    ``spacing_ijk`` is glioedge's target spacing; nnU-Net's is in its own (reversed) axis order.
    ``batch_dice``: the Dice loss over the whole batch (glioedge's ``SoftDiceLoss`` default; nnU-Net's
    planner sets it for 3d_fullres only when it also plans a 3d_lowres); inference ignores it.
    """
    spacing = [float(s) for s in reversed(tuple(spacing_ijk))]
    n = plan.n_stages
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": n,
            "features_per_stage": list(plan.features_per_stage),
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[plan.kernel_size] * 3] * n,
            "strides": [[s] * 3 for s in plan.strides],
            "n_conv_per_stage": [plan.n_conv_per_stage] * n,
            "n_conv_per_stage_decoder": [plan.n_conv_per_stage_decoder] * (n - 1),
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-5, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"negative_slope": plan.negative_slope, "inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }

    def resampling(is_seg: bool, order: int) -> dict[str, Any]:
        return {"is_seg": is_seg, "order": order, "order_z": 0, "force_separate_z": None}

    config = {
        "data_identifier": f"nnUNetPlans_{CONFIGURATION}",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": int(batch_size),
        "patch_size": [int(p) for p in reversed(plan.patch_size)],
        "median_image_size_in_voxels": [int(p) for p in reversed(plan.patch_size)],
        "spacing": spacing,
        "normalization_schemes": ["ZScoreNormalization"] * n_channels,
        "use_mask_for_norm": [True] * n_channels,
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": resampling(False, data_order),
        "resampling_fn_seg_kwargs": resampling(True, 1),
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": resampling(False, probabilities_order),
        "architecture": arch,
        "batch_dice": bool(batch_dice),
    }
    return {
        "dataset_name": "Dataset990_GlioedgeParity",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": spacing,
        "original_median_shape_after_transp": [int(p) for p in reversed(plan.patch_size)],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {CONFIGURATION: config},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            str(c): {"max": 1.0, "mean": 0.0, "median": 0.0, "min": 0.0, "percentile_00_5": 0.0,
                     "percentile_99_5": 1.0, "std": 1.0}
            for c in range(n_channels)
        },
    }


def dataset_json(modalities: Sequence[str], num_training: int = 1) -> dict[str, Any]:
    """nnU-Net's dataset.json: channel names (MR, so z-score), labels, file ending, reader."""
    return {
        "channel_names": {str(i): m.upper() for i, m in enumerate(modalities)},
        "labels": dict(NNUNET_LABELS),
        "numTraining": int(num_training),
        "file_ending": ".nii.gz",
        "overwrite_image_reader_writer": "SimpleITKIO",
    }


def to_nnunet_axes(state: dict[str, Any]) -> dict[str, Any]:
    """The same weights in nnU-Net's axis order: every 3-D kernel's spatial axes reversed."""
    return {k: (v.permute(0, 1, 4, 3, 2).contiguous() if v.ndim == 5 else v.clone())
            for k, v in state.items()}


def write_results_folder(out: Path, net: Any, plan: Any, modalities: Sequence[str],
                         spacing_ijk: Sequence[float], *, data_order: int = 3,
                         probabilities_order: int = 1,
                         mirror_axes: tuple[int, ...] = (0, 1, 2)) -> Path:
    """An nnU-Net v2 trained-model folder holding ``net``'s weights; returns it.

    ``net`` is a glioedge PlainConvUNet (deep supervision off or on: the heads are the same
    parameters). The checkpoint is nnU-Net's own format (a ``torch.save`` dict), read only by
    nnU-Net in the bench.
    """
    import torch

    out = Path(out)
    (out / "fold_0").mkdir(parents=True, exist_ok=True)
    (out / "dataset.json").write_text(json.dumps(dataset_json(modalities), indent=1))
    plans = nnunet_plans(plan, spacing_ijk, len(modalities), data_order=data_order,
                         probabilities_order=probabilities_order)
    (out / "plans.json").write_text(json.dumps(plans, indent=1))
    checkpoint = {
        "network_weights": to_nnunet_axes(net.state_dict()),
        "init_args": {"plans": plans, "configuration": CONFIGURATION, "fold": 0,
                      "dataset_json": dataset_json(modalities), "device": "cpu"},
        "trainer_name": TRAINER,
        "inference_allowed_mirroring_axes": tuple(mirror_axes),
        "current_epoch": 0,
    }
    torch.save(checkpoint, out / "fold_0" / "checkpoint_final.pth")
    return out


def make_predictor(results: Path, *, mirror: bool, threads: int) -> Any:
    """nnU-Net's own ``nnUNetPredictor`` on the CPU, loaded from the results folder."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.set_num_threads(threads)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror,
                                perform_everything_on_device=False, device=torch.device("cpu"),
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(results), use_folds=(0,),
                                                   checkpoint_name="checkpoint_final.pth")
    return predictor


def nnunet_predict(predictor: Any, files: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(i, j, k)`` and probabilities ``(K, i, j, k)`` of one case, nnU-Net end to end.

    nnU-Net reads the files itself (SimpleITKIO), preprocesses, predicts, resamples back and
    un-crops; the results are transposed into glioedge's axis order.
    """
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    images, props = SimpleITKIO().read_images([str(f) for f in files])
    seg, probs = predictor.predict_single_npy_array(images, props, None, None, True)
    return (np.ascontiguousarray(np.asarray(seg).transpose(2, 1, 0)),
            np.ascontiguousarray(np.asarray(probs, dtype=np.float32).transpose(0, 3, 2, 1)))


def nnunet_labels(predictor: Any, files: Sequence[Path]) -> np.ndarray:
    """Labels ``(i, j, k)`` of one case by nnU-Net's label-only path (no probabilities kept)."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    images, props = SimpleITKIO().read_images([str(f) for f in files])
    seg = predictor.predict_single_npy_array(images, props, None, None, False)
    return np.ascontiguousarray(np.asarray(seg).transpose(2, 1, 0))


def nnunet_preprocess(results: Path, files: Sequence[Path]) -> tuple[np.ndarray, dict[str, Any]]:
    """nnU-Net's ``DefaultPreprocessor`` output ``(C, i, j, k)`` (glioedge axis order) and its
    properties (``bbox_used_for_cropping`` in nnU-Net's order)."""
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = PlansManager(load_json(str(Path(results) / "plans.json")))
    ds = load_json(str(Path(results) / "dataset.json"))
    data, _seg, props = DefaultPreprocessor(verbose=False).run_case(
        [str(f) for f in files], None, plans, plans.get_configuration(CONFIGURATION), ds)
    return np.ascontiguousarray(np.asarray(data, np.float32).transpose(0, 3, 2, 1)), props


def write_raw_dataset(out: Path, cases: Sequence[Any], modalities: Sequence[str]) -> Path:
    """An nnU-Net v2 raw dataset (``imagesTr``, ``labelsTr``, ``dataset.json``) from glioedge cases.

    ``cases`` are :class:`glioedge.data.brats.CaseFiles` with a segmentation. Images are linked
    (nnU-Net reads them as they are, with SimpleITK); labels are rewritten with glioedge's internal
    classes 0..3 (BraTS-2021's ET = 4 becomes 3: nnU-Net needs consecutive labels), on the same
    geometry. The case identifiers stay glioedge's, so one split names the same cases for both.
    """
    import SimpleITK as sitk  # noqa: N813

    from glioedge.data.labels import map_labels

    out = Path(out)
    (out / "imagesTr").mkdir(parents=True, exist_ok=True)
    (out / "labelsTr").mkdir(parents=True, exist_ok=True)
    for case in cases:
        if case.seg is None:
            raise ValueError(f"{case.case_id}: no segmentation; nnU-Net training needs one")
        for c, m in enumerate(modalities):
            src = next(p for k, p in case.images.items() if str(getattr(k, "value", k)) == m)
            link = out / "imagesTr" / f"{case.case_id}_{c:04d}.nii.gz"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(Path(src).resolve())
        seg = sitk.ReadImage(str(case.seg))
        labels = map_labels(sitk.GetArrayFromImage(seg), case.mapping(), source=str(case.seg),
                            what="the case's label convention")
        img = sitk.GetImageFromArray(labels.astype(np.uint8))
        img.CopyInformation(seg)
        sitk.WriteImage(img, str(out / "labelsTr" / f"{case.case_id}.nii.gz"))
    (out / "dataset.json").write_text(json.dumps(dataset_json(modalities, len(cases)), indent=1))
    return out


def splits_final(train: Sequence[str], val: Sequence[str]) -> list[dict[str, list[str]]]:
    """nnU-Net's ``splits_final.json`` with one fold (fold 0): exactly this train / held-out split."""
    overlap = set(train) & set(val)
    if overlap:
        raise ValueError(f"cases both in train and held out: {sorted(overlap)}")
    return [{"train": sorted(train), "val": sorted(val)}]


def make_trained_predictor(results: Path, trainer_class: Any, *, mirror: bool, threads: int,
                           checkpoint_name: str = "checkpoint_final.pth") -> Any:
    """``nnUNetPredictor`` for a model nnU-Net trained with ``trainer_class`` (fold 0), on the CPU.

    What ``initialize_from_trained_model_folder`` does, with the trainer class given instead of
    searched for: nnU-Net's search imports every trainer module of the package, and some need
    ``timm``, which the bench does not install. The network is the trainer's own
    ``build_network_architecture`` (deep supervision off), the weights are the checkpoint's, and the
    predictor is set up by ``manual_initialization``, as nnU-Net's trainer does for its validation.
    """
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    results = Path(results)
    torch.set_num_threads(threads)
    dataset = load_json(str(results / "dataset.json"))
    plans = PlansManager(load_json(str(results / "plans.json")))
    checkpoint = torch.load(results / "fold_0" / checkpoint_name, map_location="cpu",
                            weights_only=False)  # nnU-Net's own checkpoint, written by this bench
    config = plans.get_configuration(checkpoint["init_args"]["configuration"])
    network = trainer_class.build_network_architecture(
        plans, config, determine_num_input_channels(plans, config, dataset),
        plans.get_label_manager(dataset).num_segmentation_heads, enable_deep_supervision=False)
    network.load_state_dict(checkpoint["network_weights"])
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror,
                                perform_everything_on_device=False, device=torch.device("cpu"),
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(network, plans, config, [checkpoint["network_weights"]], dataset,
                                    checkpoint["trainer_name"],
                                    checkpoint.get("inference_allowed_mirroring_axes"))
    return predictor
