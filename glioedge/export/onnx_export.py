"""PyTorch student → ONNX: one full-resolution logits output, dynamic batch and spatial axes."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glioedge._optional import require
from glioedge.bundle import INPUT_NAME, OUTPUT_NAME
from glioedge.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

#: Lowest opset accepted: TensorRT 10 and 11 parse 17+; 17 adds nothing we need beyond 13 but is
#: the floor both TensorRT majors are tested with, and it keeps InstanceNormalization native.
MIN_OPSET = 17
DEFAULT_OPSET = 17
EXPORTERS = ("legacy", "dynamo")


@dataclass(frozen=True)
class OnnxExportInfo:
    """What :func:`export_onnx` produced."""

    path: Path
    opset: int
    exporter: str
    dynamic_spatial: bool
    seconds: float
    op_types: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "opset": self.opset,
            "exporter": self.exporter,
            "dynamic_spatial": self.dynamic_spatial,
            "export_seconds": round(self.seconds, 3),
            "op_types": list(self.op_types),
        }


def _dynamic_axes(dynamic_spatial: bool) -> dict[str, dict[int, str]]:
    spatial = {2: "x", 3: "y", 4: "z"} if dynamic_spatial else {}
    return {INPUT_NAME: {0: "batch", **spatial}, OUTPUT_NAME: {0: "batch", **spatial}}


def export_onnx(
    net: nn.Module,
    in_channels: int,
    patch_size: tuple[int, int, int],
    path: Path,
    *,
    opset: int = DEFAULT_OPSET,
    exporter: str = "legacy",
    dynamic_spatial: bool = True,
) -> OnnxExportInfo:
    """Export ``net`` (deep supervision switched off, eval mode) to ``path`` and check it.

    Args:
        net: a PlainConvUNet from :func:`glioedge.train.networks.build_unet`.
        in_channels: number of input channels (the student's modalities).
        patch_size: example spatial size; with ``dynamic_spatial`` any multiple of the plan's
            divisor runs.
        path: the ``.onnx`` file to write.
        opset: ONNX opset (≥ 17; the dynamo exporter needs ≥ 18).
        exporter: ``"legacy"`` (TorchScript-based, fast) or ``"dynamo"`` (torch.export).
        dynamic_spatial: make X, Y, Z dynamic besides the batch axis.

    Raises:
        ConfigError: opset or exporter not supported.
        ModelError: the exporter failed or the ONNX checker rejects the graph.
    """
    torch = require("torch", "exporting the student to ONNX")
    from glioedge.train.networks import set_deep_supervision

    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown ONNX exporter {exporter!r}; valid: {', '.join(EXPORTERS)}")
    if opset < MIN_OPSET or (exporter == "dynamo" and opset < 18):
        floor = 18 if exporter == "dynamo" else MIN_OPSET
        raise ConfigError(f"opset {opset} is too old for the {exporter} exporter; use ≥ {floor}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    set_deep_supervision(net, False)
    net.eval()
    example = torch.zeros((2, in_channels, *patch_size), dtype=torch.float32)
    t0 = time.perf_counter()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            # InstanceNorm always normalises with the input's statistics (no running stats),
            # so the exporter's train=True note is expected.
            warnings.filterwarnings("ignore", message=".*instance_norm.*train=True")
            warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
            if exporter == "legacy":
                torch.onnx.export(
                    net,
                    (example,),
                    str(path),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    opset_version=opset,
                    dynamic_axes=_dynamic_axes(dynamic_spatial),
                    do_constant_folding=True,
                    dynamo=False,
                )
            else:
                _export_dynamo(torch, net, example, path, opset, dynamic_spatial)
    except Exception as exc:  # exporters raise many unrelated types; report one
        raise ModelError(f"ONNX export ({exporter}, opset {opset}) failed: {exc}") from exc
    seconds = time.perf_counter() - t0
    model = check_onnx(path)
    info = OnnxExportInfo(
        path=path,
        opset=onnx_opset(model),
        exporter=exporter,
        dynamic_spatial=dynamic_spatial,
        seconds=seconds,
        op_types=tuple(sorted({n.op_type for n in model.graph.node})),
    )
    logger.info("exported %s (opset %d, %s) in %.1f s", path.name, info.opset, exporter, seconds)
    return info


def _export_dynamo(
    torch: Any, net: nn.Module, example: Any, path: Path, opset: int, dynamic_spatial: bool
) -> None:
    dim = torch.export.Dim
    shapes: dict[int, Any] = {0: dim("batch", min=1, max=1024)}
    if dynamic_spatial:
        shapes.update({2: dim.DYNAMIC, 3: dim.DYNAMIC, 4: dim.DYNAMIC})
    program = torch.onnx.export(
        net,
        (example,),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamic_shapes=({**shapes},),
        dynamo=True,
        optimize=True,
        verbose=False,
    )
    program.save(str(path))


def onnx_opset(model: Any) -> int:
    """The default-domain opset of a loaded ONNX model."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise ModelError("ONNX model declares no default-domain opset")


def check_onnx(path: Path) -> Any:
    """Load ``path`` and run the ONNX checker (full check, with shape inference).

    Returns:
        The loaded ``onnx.ModelProto``.

    Raises:
        ModelError: the file does not load, fails the checker, or lacks the image/logits tensors.
    """
    onnx = require("onnx", "checking the ONNX model")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises ValidationError, DecodeError, OSError...
        raise ModelError(f"{path}: ONNX checker rejects the model: {exc}") from exc
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
        raise ModelError(
            f"{path}: expected input [{INPUT_NAME!r}] and output [{OUTPUT_NAME!r}], "
            f"found inputs {inputs} and outputs {outputs}"
        )
    return model


def tensor_dims(model: Any, name: str) -> list[int | str]:
    """Dimensions of a graph input or output: ints for fixed axes, names for dynamic ones.

    Raises:
        ModelError: no graph input or output is called ``name``.
    """
    for vi in [*model.graph.input, *model.graph.output]:
        if vi.name == name:
            return [
                d.dim_value if d.HasField("dim_value") else d.dim_param
                for d in vi.type.tensor_type.shape.dim
            ]
    raise ModelError(f"the ONNX graph has no input or output {name!r}")
