"""Teacher, student and projector heads as one module, and the joint single-stage KD objective."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from glioedge.train.config import TrainConfig
from glioedge.train.losses import (
    DeepSupervisionLoss,
    DiceCELoss,
    Projector,
    barlow_twins_loss,
    logit_kd_loss,
)
from glioedge.train.networks import build_unet, forward_with_bottleneck
from glioedge.train.plan import NetworkPlan
from glioedge.vocabulary import NUM_CLASSES


class KDModel(nn.Module):
    """Teacher U-Net (all modalities), student U-Net (a subset) and two projector heads.

    In ``student_only`` mode the teacher and the projectors are absent.
    """

    def __init__(self, plan: NetworkPlan, config: TrainConfig) -> None:
        super().__init__()
        self.student_only = config.student_only
        self.detach_teacher = config.kd.detach_teacher
        self.student = build_unet(plan, len(config.student_modalities), NUM_CLASSES)
        self.register_buffer(
            "student_channels",
            torch.tensor(config.student_channel_indices(), dtype=torch.long),
            persistent=False,
        )
        if not self.student_only:
            self.teacher = build_unet(plan, len(config.teacher_modalities), NUM_CLASSES)
            c, d = plan.bottleneck_channels, config.kd.projector_dim
            self.proj_teacher = Projector(c, d, d)
            self.proj_student = Projector(c, d, d)

    def named_parts(self) -> dict[str, nn.Module]:
        """The modules a checkpoint stores, by file name."""
        parts: dict[str, nn.Module] = {"student": self.student}
        if not self.student_only:
            parts["teacher"] = self.teacher
            parts["projectors"] = nn.ModuleDict(
                {"teacher": self.proj_teacher, "student": self.proj_student}
            )
        return parts

    def forward(self, image: torch.Tensor) -> dict[str, object]:
        """Run both networks (and the projector heads) on one batch holding every input modality.

        Everything trainable runs inside this forward, so DDP sees every parameter used.
        The teacher side of Barlow Twins is detached by default (``kd.detach_teacher``): the
        teacher's encoder then learns only from its own segmentation loss, so the limited-input
        student cannot drag the teacher's representation towards what FLAIR+T1CE alone can
        express, and knowledge flows one way, teacher → student. The teacher projector still
        learns (it sees the detached features), so both heads find a shared space. Set it to
        False for mutual learning.
        """
        s_out, s_z = forward_with_bottleneck(self.student, image.index_select(1, self.student_channels))
        out: dict[str, object] = {"student": s_out}
        if not self.student_only:
            t_out, t_z = forward_with_bottleneck(self.teacher, image)
            t_z = t_z.detach() if self.detach_teacher else t_z
            out.update(
                teacher=t_out, teacher_proj=self.proj_teacher(t_z), student_proj=self.proj_student(s_z)
            )
        return out


@dataclass
class LossParts:
    """The total loss and its terms (detached floats for logging)."""

    total: torch.Tensor
    terms: dict[str, float]


class KDObjective(nn.Module):
    """L = DS(CE+Dice)(teacher) + DS(CE+Dice)(student) + λ_bt·BT(P_t(z_t), P_s(z_s)) [+ logit KD]."""

    def __init__(self, plan: NetworkPlan, config: TrainConfig) -> None:
        super().__init__()
        self.kd = config.kd
        self.student_only = config.student_only
        self.seg_loss = DeepSupervisionLoss(DiceCELoss(), plan.n_stages - 1)

    def forward(self, out: dict[str, object], target: torch.Tensor) -> LossParts:
        s_loss = self.seg_loss(out["student"], target)
        terms = {"student_seg": float(s_loss.detach())}
        total = s_loss
        if not self.student_only:
            t_loss = self.seg_loss(out["teacher"], target)
            bt = barlow_twins_loss(out["teacher_proj"], out["student_proj"], self.kd.lambda_offdiag)
            total = total + t_loss + self.kd.lambda_bt * bt
            terms.update(teacher_seg=float(t_loss.detach()), barlow_twins=float(bt.detach()))
            if self.kd.logit_kd:
                kd = logit_kd_loss(out["student"][0], out["teacher"][0], self.kd.temperature)
                total = total + self.kd.logit_kd_weight * kd
                terms["logit_kd"] = float(kd.detach())
        terms["total"] = float(total.detach())
        return LossParts(total=total, terms=terms)
