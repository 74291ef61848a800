"""A Triton Inference Server model repository for a bundle (ONNX and, where built, the plan).

Layout written by :func:`write_triton_repository`::

    REPO/<name>_onnx/config.pbtxt        platform "onnxruntime_onnx"
    REPO/<name>_onnx/1/model.onnx
    REPO/<name>_trt/config.pbtxt         platform "tensorrt_plan" (only with an engine)
    REPO/<name>_trt/1/model.plan

With ``max_batch_size`` > 0 Triton's ``dims`` leave out the batch axis: the ONNX model takes
``[C, -1, -1, -1]`` (any spatial size that is a multiple of the plan's divisor), the plan takes
exactly ``[C, X, Y, Z]`` of the patch. ``parameters`` carry the bundle id so that a client can
check it serves the model it preprocesses for. No protobuf dependency: the text format subset
used here is written and parsed (:func:`parse_pbtxt`) by this module.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from glioedge.bundle import Bundle, EngineEntry
from glioedge.errors import ConfigError
from glioedge.fileio import atomic_write_text

DEFAULT_MODEL_NAME = "glioedge_student"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str) and re.fullmatch(r"[A-Z][A-Z0-9_]*", v):
        return v  # enum value (TYPE_FP32, KIND_GPU)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_pbtxt(msg: dict[str, Any], indent: int = 0) -> str:
    """Protobuf text format of a dict: dict → message, list of dicts → repeated message,
    list of scalars → ``[a, b]``, UPPER_CASE strings → enum values."""
    pad = "  " * indent
    lines = []
    for key, v in msg.items():
        if isinstance(v, dict):
            lines += [f"{pad}{key} {{", to_pbtxt(v, indent + 1), f"{pad}}}"]
        elif isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
            lines.append(f"{pad}{key} [")
            blocks = [f"{pad}  {{\n{to_pbtxt(i, indent + 2)}\n{pad}  }}" for i in v]
            lines += [",\n".join(blocks), f"{pad}]"]
        elif isinstance(v, list):
            lines.append(f"{pad}{key}: [ {', '.join(_value(i) for i in v)} ]")
        else:
            lines.append(f"{pad}{key}: {_value(v)}")
    return "\n".join(line for line in lines if line)


_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([{}\[\]:,])|([^\s{}\[\]:,"]+))')


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip():
                raise ConfigError(f"pbtxt: cannot parse near {text[pos:pos + 30]!r}")
            break
        pos = m.end()
        if m.group(1) is None and m.group(0).strip():
            out.append(m.group(0).strip())
    return out


def _scalar(tok: str) -> Any:
    if tok.startswith('"'):
        return tok[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if tok in ("true", "false"):
        return tok == "true"
    try:
        return int(tok)
    except ValueError:
        pass
    try:
        return float(tok)
    except ValueError:
        return tok


def parse_pbtxt(text: str) -> dict[str, Any]:
    """Parse the protobuf text format subset of Triton model configs into dicts.

    Repeated fields become lists; a field seen once stays a scalar/dict unless written as
    ``[...]``.

    Raises:
        ConfigError: the text is not well-formed.
    """
    toks = _tokens(text)
    pos = 0

    def message(end: str | None) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while pos < len(toks) and toks[pos] != end:
            key = toks[pos]
            pos += 1
            if pos < len(toks) and toks[pos] == ":":
                pos += 1
            if pos >= len(toks):
                raise ConfigError(f"pbtxt: field {key!r} has no value")
            val = value()
            if key in out:
                prev = out[key]
                out[key] = [*prev, *val] if isinstance(prev, list) else [prev, val]
            else:
                out[key] = val
        if end is not None:
            if pos >= len(toks):
                raise ConfigError(f"pbtxt: missing {end!r}")
            pos += 1
        return out

    def value() -> Any:
        nonlocal pos
        tok = toks[pos]
        if tok == "{":
            pos += 1
            return message("}")
        if tok == "[":
            pos += 1
            items = []
            while toks[pos] != "]":
                items.append(value())
                if toks[pos] == ",":
                    pos += 1
            pos += 1
            return items
        pos += 1
        return _scalar(tok)

    return message(None)


def _config(
    name: str, platform: str, bundle: Bundle, dims_in: list[int], dims_out: list[int], max_batch: int,
    filename: str, gpu: bool,
) -> dict[str, Any]:
    m = bundle.manifest
    cfg: dict[str, Any] = {
        "name": name,
        "platform": platform,
        "max_batch_size": max_batch,
        "default_model_filename": filename,
        "input": [{"name": m.input_name, "data_type": "TYPE_FP32", "dims": dims_in}],
        "output": [{"name": m.output_name, "data_type": "TYPE_FP32", "dims": dims_out}],
        "dynamic_batching": {"max_queue_delay_microseconds": 2000},
    }
    if gpu:
        cfg["instance_group"] = [{"count": 1, "kind": "KIND_GPU"}]
    cfg["parameters"] = [
        {"key": "glioedge_bundle_id", "value": {"string_value": m.bundle_id}},
        {"key": "glioedge_modalities", "value": {"string_value": ",".join(m.modalities)}},
    ]
    return cfg


def write_triton_repository(
    bundle: Bundle,
    repo: Path,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    max_batch_size: int = 8,
    engine: EngineEntry | None = None,
) -> list[Path]:
    """Write (or replace) the bundle's models in a Triton model repository.

    Args:
        bundle: a verified bundle.
        repo: the model repository directory (created if needed; other models are kept).
        model_name: prefix of the model directories (``_onnx``, ``_trt``).
        max_batch_size: largest batch of windows Triton forms (≤ the engine profile's max).
        engine: the bundle engine to serve as ``tensorrt_plan``; ``None`` writes ONNX only.

    Returns:
        The ``config.pbtxt`` files written.

    Raises:
        ConfigError: an invalid model name or batch size.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", model_name):
        raise ConfigError(f"Triton model name {model_name!r}: use letters, digits, '_', '.', '-'")
    if max_batch_size < 1:
        raise ConfigError(f"max_batch_size must be ≥ 1, got {max_batch_size}")
    m = bundle.manifest
    c, k = len(m.modalities), m.num_classes
    written = []
    models = [(f"{model_name}_onnx", "onnxruntime_onnx", "model.onnx", bundle.model_path,
               [c, -1, -1, -1], [k, -1, -1, -1], max_batch_size, False)]
    if engine is not None:
        ps = list(engine.patch_size)
        mb = min(max_batch_size, engine.batch_profile[2])
        models.append((f"{model_name}_trt", "tensorrt_plan", "model.plan", bundle.path(engine.file),
                       [c, *ps], [k, *ps], mb, True))
    for name, platform, filename, src, dims_in, dims_out, mb, gpu in models:
        model_dir = Path(repo) / name
        if model_dir.exists():
            shutil.rmtree(model_dir)
        (model_dir / "1").mkdir(parents=True)
        shutil.copy2(src, model_dir / "1" / filename)
        shutil.copy2(bundle.root / "manifest.json", model_dir / "glioedge_manifest.json")
        cfg = _config(name, platform, bundle, dims_in, dims_out, mb, filename, gpu)
        path = model_dir / "config.pbtxt"
        atomic_write_text(path, to_pbtxt(cfg) + "\n")
        written.append(path)
    return written
