"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

Layout of a checkpoint directory::

    checkpoint.json          format version, config, plan, preprocessing, epoch, metrics, provenance
    student.safetensors      student U-Net weights
    teacher.safetensors      teacher U-Net weights (absent in --student-only runs)
    projectors.safetensors   Barlow Twins projector heads (absent in --student-only runs)
    optimizer.safetensors    optimiser tensors (momentum buffers), keyed "<param index>.<name>"
    optimizer.json           optimiser scalars and param groups

Files are written to a temporary directory and renamed into place, so a crash never leaves a
half-written checkpoint where a reader would find it. Replacing one takes two renames (the old
directory to ``.<name>.old``, the new one into place); a crash between them leaves only
``.<name>.old``, which :func:`resumable_checkpoint` finds and the next write removes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glioedge import __version__
from glioedge._optional import require
from glioedge.errors import ConfigError, ModelError
from glioedge.fileio import publish_dir
from glioedge.train.plan import NetworkPlan

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT_VERSION = 1
META_FILE = "checkpoint.json"


@dataclass
class CheckpointMeta:
    """Everything a checkpoint says about itself, besides its tensors."""

    plan: NetworkPlan
    preprocess: dict[str, Any]
    teacher_modalities: list[str]
    student_modalities: list[str]
    num_classes: int
    epoch: int
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    student_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "glioedge_version": __version__,
            "plan": self.plan.to_dict(),
            "preprocess": self.preprocess,
            "teacher_modalities": list(self.teacher_modalities),
            "student_modalities": list(self.student_modalities),
            "num_classes": self.num_classes,
            "epoch": self.epoch,
            "config": self.config,
            "metrics": self.metrics,
            "provenance": self.provenance,
            "student_only": self.student_only,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Path) -> CheckpointMeta:
        if d.get("format_version") != FORMAT_VERSION:
            raise ModelError(
                f"{source}: checkpoint format {d.get('format_version')!r}, "
                f"this glioedge reads format {FORMAT_VERSION}"
            )
        unknown = sorted(set(d) - {f.name for f in fields(cls)} - {"format_version", "glioedge_version"})
        if unknown:
            raise ModelError(f"{source}: checkpoint.json has unknown keys {unknown}")
        try:
            return cls(
                plan=NetworkPlan.from_dict(d["plan"]),
                preprocess=d["preprocess"],
                teacher_modalities=list(d["teacher_modalities"]),
                student_modalities=list(d["student_modalities"]),
                num_classes=int(d["num_classes"]),
                epoch=int(d["epoch"]),
                config=d["config"],
                metrics=d.get("metrics", {}),
                provenance=d.get("provenance", {}),
                student_only=bool(d.get("student_only", False)),
            )
        except KeyError as exc:
            raise ModelError(f"{source}: checkpoint.json lacks the key {exc.args[0]!r}") from None


def _optimizer_split(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser state into tensors (safetensors) and JSON-safe scalars."""
    torch = require("torch", "saving the optimiser")
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    out_dir: Path,
    meta: CheckpointMeta,
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer | None = None,
) -> Path:
    """Write a checkpoint atomically (temp dir + rename) and return its directory.

    Args:
        out_dir: the checkpoint directory to create or replace.
        meta: what goes into checkpoint.json.
        modules: name → module; names become ``<name>.safetensors`` (student, teacher, projectors).
        optimizer: saved when given, for exact resumption.
    """
    st = require("safetensors.torch", "saving checkpoints")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, module in modules.items():
            # save_model drops the aliases PlainConvUNet keeps (decoder.encoder, all_modules)
            st.save_model(module, str(tmp / f"{name}.safetensors"))
        if optimizer is not None:
            tensors, opt_meta = _optimizer_split(optimizer)
            st.save_file(tensors, str(tmp / "optimizer.safetensors"))
            (tmp / "optimizer.json").write_text(json.dumps(opt_meta, indent=1))
        (tmp / META_FILE).write_text(json.dumps(meta.to_dict(), indent=2))
        publish_dir(tmp, out_dir, old=_previous(out_dir))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _previous(out_dir: Path) -> Path:
    """Where :func:`save_checkpoint` parks the checkpoint it is replacing."""
    return out_dir.with_name(f".{out_dir.name}.old")


def resumable_checkpoint(ckpt_dir: Path) -> Path:
    """The checkpoint to resume from: ``ckpt_dir``, or — after a crash between the two renames of
    a write — the previous checkpoint parked as ``.<name>.old`` (read in place; the next
    :func:`save_checkpoint` writes ``ckpt_dir`` and removes it).

    Raises:
        ConfigError: neither holds a checkpoint (resuming would silently start afresh).
    """
    ckpt_dir = Path(ckpt_dir)
    for candidate in (ckpt_dir, _previous(ckpt_dir)):
        if (candidate / META_FILE).is_file():
            return candidate
    raise ConfigError(f"--resume: no checkpoint to resume from at {ckpt_dir} (nor "
                      f"{_previous(ckpt_dir).name} from an interrupted write); run without "
                      "--resume to start a new training, or point --out at the run to continue")


def read_meta(ckpt_dir: Path) -> CheckpointMeta:
    """Read ``checkpoint.json``.

    Raises:
        ModelError: the directory is not a glioedge checkpoint.
    """
    path = Path(ckpt_dir) / META_FILE
    if not path.is_file():
        raise ModelError(f"{ckpt_dir}: not a glioedge checkpoint (no {META_FILE})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: invalid JSON ({exc})") from None
    return CheckpointMeta.from_dict(data, path)


def load_module_weights(ckpt_dir: Path, name: str, module: nn.Module) -> None:
    """Load ``<name>.safetensors`` into ``module`` (strict: every key must match).

    Raises:
        ModelError: the file is missing or does not fit the module.
    """
    st = require("safetensors.torch", "loading checkpoints")
    path = Path(ckpt_dir) / f"{name}.safetensors"
    if not path.is_file():
        raise ModelError(f"{ckpt_dir}: checkpoint has no {path.name}")
    try:
        st.load_model(module, str(path), strict=True)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: weights do not fit the network of the plan: {exc}") from None


def load_optimizer_state(ckpt_dir: Path, optimizer: torch.optim.Optimizer) -> None:
    """Restore an optimiser saved by :func:`save_checkpoint`.

    Raises:
        ModelError: the optimiser files are missing.
    """
    st = require("safetensors.torch", "loading checkpoints")
    tpath = Path(ckpt_dir) / "optimizer.safetensors"
    jpath = Path(ckpt_dir) / "optimizer.json"
    if not (tpath.is_file() and jpath.is_file()):
        raise ModelError(f"{ckpt_dir}: no optimiser state to resume from")
    optimizer.load_state_dict(_optimizer_join(st.load_file(str(tpath)), json.loads(jpath.read_text())))


def load_student(ckpt_dir: Path, deep_supervision: bool = False) -> tuple[nn.Module, CheckpointMeta]:
    """Build the student network of a checkpoint and load its weights (eval mode).

    Raises:
        ModelError: the checkpoint is missing, malformed or does not fit its plan.
    """
    from glioedge.train.networks import build_unet

    meta = read_meta(ckpt_dir)
    net = build_unet(
        meta.plan, len(meta.student_modalities), meta.num_classes, deep_supervision=deep_supervision
    )
    load_module_weights(ckpt_dir, "student", net)
    net.eval()
    return net, meta
