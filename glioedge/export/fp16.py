"""Mixed-precision FP16 ONNX: FP16 convolutions, FP32 inputs/outputs and FP32 normalisation.

FP16 InstanceNormalization is the known source of wrong output in 3-D U-Nets: the variance of a
large 3-D feature map overflows or loses precision in half (TensorRT issue #2691, onnxruntime
issue #10079). The converter therefore blocks those operators, which stay FP32 with Casts around
them; :func:`fp32_op_report` inspects the result so that a test, and the export, can prove it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glioedge._optional import require
from glioedge.errors import ModelError

logger = logging.getLogger(__name__)

#: Operators kept in FP32 in the mixed-precision model.
FP32_OPS: tuple[str, ...] = (
    "InstanceNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "BatchNormalization",
    "Softmax",
    "LogSoftmax",
)

_FLOAT = 1  # onnx.TensorProto.FLOAT
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16


def _toposort(graph: Any) -> None:
    """Sort nodes topologically in place (the converter appends its input/output Casts last)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in available})
            raise ModelError(f"FP16 graph has unresolvable inputs {missing[:5]}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def _inline_identities(graph: Any) -> int:
    """Drop Identity nodes by renaming their consumers' inputs (the legacy exporter shares
    equal initializers, e.g. untrained norm weights, through Identity nodes; the converter
    would make those FP16 while InstanceNorm needs them FP32)."""
    outputs = {o.name for o in graph.output}
    alias = {}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.output[0] not in outputs:
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
        else:
            keep.append(node)
    for node in keep:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del graph.node[:]
    graph.node.extend(keep)
    return len(alias)


def _unshare_fp32_initializers(graph: Any, fp32_ops: Sequence[str]) -> int:
    """Give FP32 operators their own copy of initializers that FP16 nodes also read (the
    exporter deduplicates equal tensors: zero conv biases and zero norm biases become one)."""
    inits = {t.name: t for t in graph.initializer}
    users: dict[str, set[bool]] = {}
    for node in graph.node:
        for name in node.input:
            if name in inits:
                users.setdefault(name, set()).add(node.op_type in fp32_ops)
    shared = {name for name, kinds in users.items() if len(kinds) == 2}
    for node in graph.node:
        if node.op_type not in fp32_ops:
            continue
        for i, name in enumerate(node.input):
            if name in shared:
                copy = graph.initializer.add()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}__fp32_{node.name or i}"
                node.input[i] = copy.name
    return len(shared)


def convert_to_mixed_fp16(
    src: Path, dst: Path, fp32_ops: Sequence[str] = FP32_OPS
) -> dict[str, Any]:
    """Write a mixed-precision copy of ``src`` to ``dst``.

    Uses ``onnxruntime.transformers.float16.convert_float_to_float16`` with
    ``keep_io_types=True`` (the graph's inputs and outputs stay FP32, so callers feed and read
    the same arrays as for the FP32 model) and ``op_block_list=fp32_ops``.

    Returns:
        :func:`fp32_op_report` of the written model.

    Raises:
        ModelError: the converted model fails the checker or an FP32 operator ended up in FP16.
    """
    onnx = require("onnx", "converting the model to FP16")
    f16 = require("onnxruntime.transformers.float16", "converting the model to FP16")
    model = onnx.load(str(src))
    _inline_identities(model.graph)
    _unshare_fp32_initializers(model.graph, fp32_ops)
    converted = f16.convert_float_to_float16(
        model, keep_io_types=True, op_block_list=list(fp32_ops), disable_shape_infer=False
    )
    _toposort(converted.graph)
    converted.doc_string = "glioedge mixed precision: FP16 with FP32 I/O and FP32 " + ",".join(
        fp32_ops
    )
    try:
        onnx.checker.check_model(converted, full_check=True)
    except Exception as exc:  # checker raises ValidationError / InferenceError
        raise ModelError(f"{dst}: converted FP16 model fails the ONNX checker: {exc}") from exc
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(converted, str(dst))
    report = fp32_op_report(converted, fp32_ops)
    if report["violations"]:
        raise ModelError(
            f"{dst}: operators that must stay FP32 run in FP16: {report['violations'][:5]}"
        )
    logger.info("wrote %s (%d FP32 islands)", Path(dst).name, report["fp32_nodes"])
    return report


def tensor_types(model: Any) -> dict[str, int]:
    """Element type of every tensor of the graph (after shape inference)."""
    onnx = require("onnx", "inspecting an ONNX model")
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.value_info, *g.input, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    for node in g.node:  # Constant nodes and Cast outputs that inference left untyped
        if node.op_type == "Cast":
            to = next(a.i for a in node.attribute if a.name == "to")
            types.setdefault(node.output[0], to)
    return types


def fp32_op_report(model: Any, fp32_ops: Sequence[str] = FP32_OPS) -> dict[str, Any]:
    """Which nodes of ``fp32_ops`` types compute in FP32, and the graph's I/O types.

    Returns:
        ``{"fp32_nodes": n, "violations": [node names not all-FP32], "op_counts": {...},
        "io_types": {name: "float32"|"float16"}, "fp16_nodes": n}``.
    """
    types = tensor_types(model)
    names = {_FLOAT: "float32", _FLOAT16: "float16"}
    violations: list[str] = []
    fp32_nodes = fp16_nodes = 0
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
        tensors = [t for t in [*node.input, *node.output] if t]
        if node.op_type in fp32_ops:
            if all(types.get(t) == _FLOAT for t in tensors):
                fp32_nodes += 1
            else:
                violations.append(node.name or node.output[0])
        elif node.op_type in ("Conv", "ConvTranspose") and types.get(node.output[0]) == _FLOAT16:
            fp16_nodes += 1
    io_types = {
        vi.name: names.get(vi.type.tensor_type.elem_type, str(vi.type.tensor_type.elem_type))
        for vi in [*model.graph.input, *model.graph.output]
    }
    return {
        "fp32_nodes": fp32_nodes,
        "fp16_conv_nodes": fp16_nodes,
        "violations": violations,
        "op_counts": dict(sorted(counts.items())),
        "io_types": io_types,
        "fp32_ops": list(fp32_ops),
    }
