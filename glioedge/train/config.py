"""The training configuration: one frozen object, one source of defaults, serialised into checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from glioedge.config_keys import reject_unknown_keys
from glioedge.errors import ConfigError
from glioedge.vocabulary import WINDOW_STEP


@dataclass(frozen=True)
class KDConfig:
    """Weights of the distillation terms.

    Attributes:
        lambda_bt: weight of the Barlow Twins loss between projected bottlenecks.
        lambda_offdiag: Barlow Twins off-diagonal weight (λ_off).
        projector_dim: output channels of the projector heads (hidden = the same).
        detach_teacher: stop Barlow Twins gradients at the teacher's bottleneck (see trainer).
        logit_kd: add Hinton logit distillation (KL with temperature); off by default.
        logit_kd_weight: its weight.
        temperature: its temperature.
        bt_scales: feature scales that Barlow Twins aligns: 1 = the bottleneck only; n > 1 adds
            the outputs of the n − 1 lowest-resolution decoder stages (one projector pair each;
            the BT losses are averaged over scales).
        warmup_epochs: epochs at the start in which the distillation terms are off (both networks
            learn only their segmentation), so the student is not pulled towards an untrained
            teacher.
        teacher_modality_dropout: probability, per training sample, that the teacher's channels
            the student lacks (T1, T2) are zeroed. Without it a teacher learns the core from T2/T1
            and leaves enhancing tumour (visible only in T1CE) unlearnt for hundreds of steps
            (modality competition, docs/kd_evidence.md §1); 0.5 fixes that for a teacher trained
            alone (two-stage). Off by default: in joint training it did not help the student.
    """

    lambda_bt: float = 0.01
    lambda_offdiag: float = 5e-3
    projector_dim: int = 128
    detach_teacher: bool = True
    logit_kd: bool = False
    logit_kd_weight: float = 1.0
    temperature: float = 2.0
    bt_scales: int = 1
    warmup_epochs: int = 0
    teacher_modality_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.bt_scales < 1:
            raise ConfigError(f"kd config: bt_scales must be ≥ 1, got {self.bt_scales}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"kd config: warmup_epochs must be ≥ 0, got {self.warmup_epochs}")
        if not 0.0 <= self.teacher_modality_dropout <= 1.0:
            raise ConfigError(
                "kd config: teacher_modality_dropout must be in [0, 1], "
                f"got {self.teacher_modality_dropout}"
            )


@dataclass(frozen=True)
class OptimConfig:
    """nnU-Net's optimiser and schedule: SGD Nesterov, poly decay per epoch, gradient clipping."""

    lr: float = 1e-2
    momentum: float = 0.99
    weight_decay: float = 3e-5
    poly_exponent: float = 0.9
    grad_clip: float = 12.0


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. CLI flags override these defaults.

    Attributes:
        preset: network plan preset (``tiny``, ``small``, ``nnunet``).
        patch_size: overrides the preset's patch when given.
        student_modalities / teacher_modalities: channel order of each network's input.
        student_only: train the student alone (no teacher, no distillation): the baseline.
        epochs / iters_per_epoch / batch_size: the training budget (nnU-Net: 1000 × 250 × 2).
        val_every: validate every this many epochs (and after the last).
        val_fraction: share of cases held out for validation (at least one when > 0).
        target_spacing: preprocessing spacing in mm.
        oversample_foreground: share of patches centred on tumour (nnU-Net: 1/3).
        augment: enable data augmentation.
        num_workers: background data-loading processes.
        seed: makes the run deterministic (init, sampling, augmentation).
        split_seed: decides the train/validation split (kept apart from ``seed`` so that runs with
            different seeds are compared on the same held-out cases).
        amp: mixed precision (used on CUDA only).
        val_step: sliding-window step for validation.
        teacher_checkpoint: two-stage KD: a trained four-modality network (the teacher of a KD
            checkpoint, or a student-only checkpoint trained on the teacher's modalities) that is
            loaded and frozen; only the student and the projectors learn.
        modality_dropout_keep: the channels modality dropout never zeroes (the student's by
            default); a network trained alone on more channels (a two-stage teacher) drops the
            others with probability ``kd.teacher_modality_dropout``.
    """

    preset: str = "small"
    patch_size: tuple[int, int, int] | None = None
    student_modalities: tuple[str, ...] = ("flair", "t1ce")
    teacher_modalities: tuple[str, ...] = ("t1", "t2", "flair", "t1ce")
    student_only: bool = False
    epochs: int = 10
    iters_per_epoch: int = 25
    batch_size: int = 2
    val_every: int = 5
    val_fraction: float = 0.2
    target_spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    oversample_foreground: float = 1 / 3
    augment: bool = True
    num_workers: int = 2
    seed: int = 0
    split_seed: int = 0
    amp: bool = True
    val_step: float = WINDOW_STEP
    teacher_checkpoint: str | None = None
    modality_dropout_keep: tuple[str, ...] = ("flair", "t1ce")
    kd: KDConfig = field(default_factory=KDConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        for name in ("epochs", "iters_per_epoch", "batch_size", "val_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train config: {name} must be ≥ 1, got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"train config: val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.teacher_checkpoint is not None and self.student_only:
            raise ConfigError("train config: a teacher checkpoint needs KD mode, not student_only")
        missing = set(self.student_modalities) - set(self.teacher_modalities)
        if missing and not self.student_only:
            raise ConfigError(
                f"train config: student modalities {sorted(missing)} are not teacher inputs "
                f"{list(self.teacher_modalities)}; the teacher must see everything the student sees"
            )

    @property
    def input_modalities(self) -> tuple[str, ...]:
        """Channels the data pipeline must deliver (teacher order; student's alone if student-only)."""
        return self.student_modalities if self.student_only else self.teacher_modalities

    def student_channel_indices(self) -> list[int]:
        """Where each student modality sits in :attr:`input_modalities`."""
        return [self.input_modalities.index(m) for m in self.student_modalities]

    def dropout_channel_indices(self) -> list[int]:
        """Input channels that modality dropout may zero (those outside ``modality_dropout_keep``)."""
        return [i for i, m in enumerate(self.input_modalities) if m not in self.modality_dropout_keep]

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("patch_size", "student_modalities", "teacher_modalities", "target_spacing",
                    "modality_dropout_keep"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: unknown keys.
        """
        reject_unknown_keys(cls, d, "train config")
        d = dict(d)
        for key in ("patch_size", "student_modalities", "teacher_modalities", "target_spacing",
                    "modality_dropout_keep"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        if "kd" in d:
            d["kd"] = KDConfig(**d["kd"])
        if "optim" in d:
            d["optim"] = OptimConfig(**d["optim"])
        return cls(**d)
