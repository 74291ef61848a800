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
from glioedge.train.networks import build_unet
from glioedge.train.plan import NetworkPlan
from glioedge.vocabulary import NUM_CLASSES


def forward_with_features(
    net: nn.Module, x: torch.Tensor, n_scales: int = 1
) -> tuple[list[torch.Tensor] | torch.Tensor, list[torch.Tensor]]:
    """Run a PlainConvUNet once; also return its bottleneck and the first ``n_scales − 1``
    decoder-stage outputs (lowest resolution first).

    The decoder loop is dynamic-network-architectures' ``UNetDecoder.forward`` (0.4.x), written
    out so that the intermediate stage outputs can be kept.
    """
    skips = net.encoder(x)
    dec = net.decoder
    feats = [skips[-1]]
    seg_outputs = []
    lres = skips[-1]
    for s in range(len(dec.stages)):
        h = dec.transpconvs[s](lres)
        h = torch.cat((h, skips[-(s + 2)]), 1)
        h = dec.stages[s](h)
        if len(feats) < n_scales:
            feats.append(h)
        if dec.deep_supervision:
            seg_outputs.append(dec.seg_layers[s](h))
        elif s == len(dec.stages) - 1:
            seg_outputs.append(dec.seg_layers[-1](h))
        lres = h
    seg_outputs = seg_outputs[::-1]
    return (seg_outputs if dec.deep_supervision else seg_outputs[0]), feats


def feature_channels(plan: NetworkPlan, n_scales: int) -> list[int]:
    """Channels of the bottleneck and of the first ``n_scales − 1`` decoder stages."""
    if not 1 <= n_scales <= plan.n_stages:
        from glioedge.errors import ConfigError

        raise ConfigError(
            f"kd.bt_scales must be in 1..{plan.n_stages} for plan {plan.name!r}, got {n_scales}"
        )
    return [plan.features_per_stage[-1 - i] for i in range(n_scales)]


class KDModel(nn.Module):
    """Teacher U-Net (all modalities), student U-Net (a subset) and two projector heads.

    In ``student_only`` mode the teacher and the projectors are absent. With
    ``config.teacher_checkpoint`` (two-stage KD) the teacher is frozen: no gradients, no
    segmentation loss; call :meth:`freeze_teacher` after loading its weights.
    """

    def __init__(self, plan: NetworkPlan, config: TrainConfig) -> None:
        super().__init__()
        self.student_only = config.student_only
        self.detach_teacher = config.kd.detach_teacher
        self.frozen_teacher = config.teacher_checkpoint is not None and not config.student_only
        self.n_scales = 1 if config.student_only else config.kd.bt_scales
        self.register_buffer(
            "dropout_channels",
            torch.tensor(config.dropout_channel_indices(), dtype=torch.long),
            persistent=False,
        )
        self.student = build_unet(plan, len(config.student_modalities), NUM_CLASSES)
        self.register_buffer(
            "student_channels",
            torch.tensor(config.student_channel_indices(), dtype=torch.long),
            persistent=False,
        )
        if not self.student_only:
            self.teacher = build_unet(plan, len(config.teacher_modalities), NUM_CLASSES)
            d = config.kd.projector_dim
            chans = feature_channels(plan, self.n_scales)
            # scale 0 keeps the original attribute names, so bottleneck-only checkpoints still load
            self.proj_teacher = Projector(chans[0], d, d)
            self.proj_student = Projector(chans[0], d, d)
            self.extra_proj = nn.ModuleList(
                nn.ModuleDict({"teacher": Projector(c, d, d), "student": Projector(c, d, d)})
                for c in chans[1:]
            )

    def freeze_teacher(self) -> None:
        """Stop every gradient into the teacher (two-stage KD)."""
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def projector_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(teacher, student) projector heads per feature scale, bottleneck first."""
        pairs = [(self.proj_teacher, self.proj_student)]
        pairs += [(m["teacher"], m["student"]) for m in self.extra_proj]
        return pairs

    def named_parts(self) -> dict[str, nn.Module]:
        """The modules a checkpoint stores, by file name."""
        parts: dict[str, nn.Module] = {"student": self.student}
        if not self.student_only:
            parts["teacher"] = self.teacher
            heads: dict[str, nn.Module] = {"teacher": self.proj_teacher, "student": self.proj_student}
            if len(self.extra_proj):
                heads["decoder"] = self.extra_proj
            parts["projectors"] = nn.ModuleDict(heads)
        return parts

    def drop_modalities(self, image: torch.Tensor, drop: torch.Tensor | None) -> torch.Tensor:
        """Zero the dropout channels of the samples flagged in ``drop`` (B,) (training only)."""
        if drop is None or not self.training or self.dropout_channels.numel() == 0:
            return image
        keep = torch.ones(image.shape[:2], dtype=image.dtype, device=image.device)
        keep[drop.to(image.device).nonzero().flatten()[:, None], self.dropout_channels[None, :]] = 0.0
        return image * keep.view(*image.shape[:2], *([1] * (image.ndim - 2)))

    def forward(self, image: torch.Tensor, drop: torch.Tensor | None = None) -> dict[str, object]:
        """Run both networks (and the projector heads) on one batch holding every input modality.

        Everything trainable runs inside this forward, so DDP sees every parameter used.
        The teacher side of Barlow Twins is detached by default (``kd.detach_teacher``): the
        teacher's encoder then learns only from its own segmentation loss, so the limited-input
        student cannot drag the teacher's representation towards what FLAIR+T1CE alone can
        express, and knowledge flows one way, teacher → student. The teacher projector still
        learns (it sees the detached features), so both heads find a shared space. Set it to
        False for mutual learning.

        ``drop`` flags the samples whose teacher-only channels are zeroed (modality dropout, see
        ``KDConfig.teacher_modality_dropout``); the student's channels are never dropped.
        """
        if self.student_only:
            s_out, _ = forward_with_features(self.student, self.drop_modalities(image, drop).index_select(
                1, self.student_channels))
            return {"student": s_out}
        s_out, s_feats = forward_with_features(
            self.student, image.index_select(1, self.student_channels), self.n_scales
        )
        t_image = self.drop_modalities(image, drop)
        if self.frozen_teacher:
            with torch.no_grad():
                t_out, t_feats = forward_with_features(self.teacher, t_image, self.n_scales)
        else:
            t_out, t_feats = forward_with_features(self.teacher, t_image, self.n_scales)
        if self.detach_teacher:
            t_feats = [f.detach() for f in t_feats]
        pairs = self.projector_pairs()
        return {
            "student": s_out,
            "teacher": t_out,
            "teacher_proj": [pt(f) for (pt, _), f in zip(pairs, t_feats, strict=True)],
            "student_proj": [ps(f) for (_, ps), f in zip(pairs, s_feats, strict=True)],
        }


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
        self.frozen_teacher = config.teacher_checkpoint is not None
        self.seg_loss = DeepSupervisionLoss(DiceCELoss(), plan.n_stages - 1)

    def forward(self, out: dict[str, object], target: torch.Tensor, kd_on: bool = True) -> LossParts:
        """The loss of one batch; ``kd_on=False`` (warm-up) leaves out the distillation terms,
        which are still computed and logged (and enter the graph at weight 0, for DDP)."""
        s_loss = self.seg_loss(out["student"], target)
        terms = {"student_seg": float(s_loss.detach())}
        total = s_loss
        if not self.student_only:
            t_loss = self.seg_loss(out["teacher"], target)
            bts = [
                barlow_twins_loss(t, s, self.kd.lambda_offdiag)
                for t, s in zip(out["teacher_proj"], out["student_proj"], strict=True)
            ]
            bt = torch.stack(bts).mean()
            weight = 1.0 if kd_on else 0.0
            if not self.frozen_teacher:
                total = total + t_loss
            total = total + weight * self.kd.lambda_bt * bt
            terms.update(teacher_seg=float(t_loss.detach()), barlow_twins=float(bt.detach()))
            if len(bts) > 1:
                terms.update({f"barlow_twins_{i}": float(b.detach()) for i, b in enumerate(bts)})
            if self.kd.logit_kd:
                kd = logit_kd_loss(out["student"][0], out["teacher"][0], self.kd.temperature)
                total = total + weight * self.kd.logit_kd_weight * kd
                terms["logit_kd"] = float(kd.detach())
        terms["total"] = float(total.detach())
        return LossParts(total=total, terms=terms)
