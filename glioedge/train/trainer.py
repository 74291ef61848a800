"""The training loop: one optimiser step over teacher, student and projectors per batch.

Kept small on purpose: networks, losses, schedule, data and logging live in their own modules.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from glioedge.train import checkpoint as ckpt
from glioedge.train.config import TrainConfig
from glioedge.train.distributed import DistInfo, average_terms
from glioedge.train.kd_model import KDModel, KDObjective
from glioedge.train.plan import NetworkPlan
from glioedge.train.schedule import make_optimizer, poly_lr, set_lr
from glioedge.vocabulary import NUM_CLASSES

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed torch and numpy; deterministic algorithms where they exist."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # for third-party code using the global RNG


class Trainer:
    """Owns the model, the objective and the optimiser; steps, checkpoints and resumes.

    Args:
        config: the training configuration.
        plan: the network plan (patch size already final).
        preprocess: serialised preprocessing parameters (recorded in checkpoints).
        device: where to train.
        dist_info: DDP rank information (defaults to a single process).
        provenance: data digest and the like, recorded in checkpoints.
    """

    def __init__(
        self,
        config: TrainConfig,
        plan: NetworkPlan,
        preprocess: dict[str, Any],
        device: torch.device | str = "cpu",
        dist_info: DistInfo | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.plan = plan
        self.preprocess = preprocess
        self.device = torch.device(device)
        self.dist = dist_info or DistInfo()
        self.provenance = provenance or {}
        seed_everything(config.seed)
        self.model = KDModel(plan, config).to(self.device)
        if self.model.frozen_teacher:
            self._load_frozen_teacher(Path(config.teacher_checkpoint))
        self.objective = KDObjective(plan, config).to(self.device)
        self.forward_model: nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = make_optimizer(self.model.parameters(), config.optim)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.epoch = 0  # epochs completed
        self.step_in_epoch = 0  # with ``epoch``, seeds modality dropout (so resume stays exact)
        self.dropout_seed = config.seed  # a resumed run continues the checkpoint's stream

    def release_distributed(self) -> None:
        """Drop the DDP wrapper (it holds the process group) before the group is destroyed."""
        self.forward_model = self.model

    def _load_frozen_teacher(self, path: Path) -> None:
        """Two-stage KD: load a trained four-modality network as the teacher and freeze it.

        Accepts the teacher of a KD checkpoint, or the network of a student-only checkpoint
        trained on exactly the teacher's modalities.

        Raises:
            ModelError: the checkpoint is missing or its network does not fit this teacher.
        """
        from glioedge.errors import ModelError

        meta = ckpt.read_meta(path)
        if meta.plan.with_patch(self.plan.patch_size) != self.plan:
            raise ModelError(
                f"{path}: teacher checkpoint plan {meta.plan.name} {list(meta.plan.features_per_stage)}"
                f" differs from this run's {self.plan.name} {list(self.plan.features_per_stage)}"
            )
        want = list(self.config.teacher_modalities)
        if not meta.student_only and list(meta.teacher_modalities) == want:
            part = "teacher"
        elif meta.student_only and list(meta.student_modalities) == want:
            part = "student"
        else:
            have = meta.student_modalities if meta.student_only else meta.teacher_modalities
            raise ModelError(
                f"{path}: no network on the teacher's modalities {want} (it has one on {list(have)});"
                " train one with --student-only --student-modalities " + ",".join(want)
            )
        ckpt.load_module_weights(path, part, self.model.teacher)
        self.model.freeze_teacher()
        log.info("frozen teacher: %s of %s", part, path)

    def _dropout_mask(self, batch_size: int) -> torch.Tensor | None:
        """Which samples of this step lose their teacher-only channels (deterministic per step)."""
        p = self.config.kd.teacher_modality_dropout
        if p <= 0 or self.model.dropout_channels.numel() == 0:
            return None
        g = torch.Generator().manual_seed(
            (self.dropout_seed * 1_000_003 + self.epoch) * 100_003
            + self.step_in_epoch
            + 7919 * self.dist.rank
        )
        return torch.rand(batch_size, generator=g) < p

    # ----------------------------------------------------------------------------- stepping
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimiser step on one batch; returns the loss terms."""
        self.model.train()
        image = batch["image"].to(self.device, non_blocking=True)
        label = batch["label"].to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        drop = self._dropout_mask(image.shape[0])
        self.step_in_epoch += 1
        kd_on = self.epoch >= self.config.kd.warmup_epochs
        with torch.autocast(self.device.type, enabled=self.use_amp):
            out = self.forward_model(image, drop)
            parts = self.objective(out, label, kd_on=kd_on)
        self.scaler.scale(parts.total).backward()
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return parts.terms

    def run_epoch(self, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Train ``iters_per_epoch`` steps at this epoch's poly learning rate; mean loss terms."""
        cfg = self.config
        lr = poly_lr(cfg.optim.lr, self.epoch, cfg.epochs, cfg.optim.poly_exponent)
        set_lr(self.optimizer, lr)
        sums: dict[str, float] = {}
        self.step_in_epoch = 0
        iterator = iter(batches)
        progress = _progress(cfg.iters_per_epoch, f"epoch {self.epoch + 1}/{cfg.epochs}", self.dist)
        for _ in range(cfg.iters_per_epoch):
            terms = self.train_step(next(iterator))
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            if progress is not None:
                progress.set_postfix(loss=f"{terms['total']:.3f}")
                progress.update()
        if progress is not None:
            progress.close()
        self.epoch += 1
        self.step_in_epoch = 0
        means = {k: v / cfg.iters_per_epoch for k, v in sums.items()}
        means = average_terms(means, self.dist)
        means["lr"] = lr
        return means

    # -------------------------------------------------------------------------- checkpoints
    def meta(self, metrics: dict[str, Any] | None = None) -> ckpt.CheckpointMeta:
        return ckpt.CheckpointMeta(
            plan=self.plan,
            preprocess=self.preprocess,
            teacher_modalities=list(self.config.teacher_modalities),
            student_modalities=list(self.config.student_modalities),
            num_classes=NUM_CLASSES,
            epoch=self.epoch,
            config=self.config.to_dict(),
            metrics=metrics or {},
            provenance=self.provenance,
            student_only=self.config.student_only,
        )

    def save(self, path: Path, metrics: dict[str, Any] | None = None) -> Path:
        """Write a checkpoint of the current state (main rank only)."""
        if not self.dist.is_main:
            return Path(path)
        return ckpt.save_checkpoint(path, self.meta(metrics), self.model.named_parts(), self.optimizer)

    def load(self, path: Path) -> ckpt.CheckpointMeta:
        """Restore weights, optimiser and epoch from a checkpoint of the same configuration.

        Raises:
            ModelError: the checkpoint does not match this trainer's plan or mode.
        """
        meta = ckpt.read_meta(path)
        if meta.plan != self.plan or meta.student_only != self.config.student_only:
            from glioedge.errors import ModelError

            raise ModelError(
                f"{path}: checkpoint plan/mode ({meta.plan.name}, student_only={meta.student_only})"
                f" differs from this run ({self.plan.name}, student_only={self.config.student_only})"
            )
        for name, module in self.model.named_parts().items():
            ckpt.load_module_weights(path, name, module)
        ckpt.load_optimizer_state(path, self.optimizer)
        self.epoch = meta.epoch
        self.dropout_seed = int(meta.config.get("seed", self.dropout_seed))
        return meta


def _progress(total: int, desc: str, info: DistInfo) -> Any:
    if not info.is_main or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
