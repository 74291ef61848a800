"""Two probes behind docs/kd_evidence.md §1, run on a finished ``bench/kd_ablation.py`` cohort.

``channels CH``: a network with len(CH) inputs fed the student's preprocessed channels CH
(e.g. ``0,1,0,1`` = FLAIR, T1CE, FLAIR, T1CE: four inputs, no new information) trained 12×20 steps
alone; validation Dice every 4 epochs. Tells channel count / fan-in apart from T1/T2 content.

``stepcost``: CPU seconds per training step (one thread, so other load hardly matters) of each
arm's network set at the ablation's size: student alone, teacher alone (stage 1 of two-stage),
joint KD, and KD with a frozen teacher (stage 2).

``clipping``: the total and per-part gradient norms of the first 40 joint KD steps, and how many
steps the joint gradient clipping (norm 12) touched.

    python bench/kd_teacher_probes.py channels 0,1,0,1
    python bench/kd_teacher_probes.py clipping
    python bench/kd_teacher_probes.py stepcost
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS

from glioedge.data.augment import AugmentConfig
from glioedge.data.loader import load_preprocessed, make_train_loader
from glioedge.train.config import TrainConfig
from glioedge.train.networks import build_unet
from glioedge.train.run import resolve_plan
from glioedge.train.schedule import make_optimizer
from glioedge.train.trainer import Trainer
from glioedge.train.validation import validate

RUNS = RESULTS / "kd_ablation_runs"
CFG = TrainConfig(preset="small", patch_size=(24,) * 3, epochs=12, iters_per_epoch=20, num_workers=0,
                  seed=0, target_spacing=(3.0,) * 3)


def channels(spec: str) -> None:
    split = json.loads((RUNS / "student-only-seed0" / "split.json").read_text())
    pre = RUNS / "pre-2ch"
    chans = [int(c) for c in spec.split(",")]
    cfg = CFG.replace(student_only=True)
    plan = resolve_plan(cfg)
    tr = Trainer(cfg, plan, {})
    torch.manual_seed(0)
    tr.model.student = build_unet(plan, len(chans))
    tr.model.student_channels = torch.tensor(chans)
    tr.optimizer = make_optimizer(tr.model.parameters(), cfg.optim)
    paths = [pre / f"{c}.npy" for c in split["train"]]
    val = [(np.asarray(p.data), np.asarray(p.label), (3.0,) * 3)
           for p in (load_preprocessed(pre / f"{c}.npy") for c in split["val"])]
    t0 = time.perf_counter()
    for e in range(cfg.epochs):
        tr.run_epoch(make_train_loader(paths, plan.patch_size, 2, AugmentConfig(), 1 / 3, seed=e,
                                       num_workers=0))
        if (e + 1) % 4 == 0:
            m = validate({"net": (tr.model.student, chans)}, val, plan.patch_size, torch.device("cpu"))
            dice = {g: round(m["net"][g]["dice"]["mean"], 3) for g in ("WT", "TC", "ET")}
            print(spec, e + 1, dice, f"{time.perf_counter() - t0:.0f}s", flush=True)


def clipping() -> None:
    split = json.loads((RUNS / "KD-seed0" / "split.json").read_text())
    paths = [RUNS / "pre-4ch" / f"{c}.npy" for c in split["train"]]
    tr = Trainer(CFG, resolve_plan(CFG), {})
    original = nn.utils.clip_grad_norm_
    log: list[tuple[float, dict[str, float]]] = []

    def spy(params, max_norm, *a, **k):
        parts = {n: float(torch.norm(torch.stack([p.grad.norm() for p in m.parameters()
                                                  if p.grad is not None])))
                 for n, m in tr.model.named_parts().items()}
        total = original(params, max_norm, *a, **k)
        log.append((float(total), parts))
        return total

    nn.utils.clip_grad_norm_ = spy
    it = iter(make_train_loader(paths, (24,) * 3, 2, AugmentConfig(), 1 / 3, seed=0, num_workers=0))
    for _ in range(40):
        tr.train_step(next(it))
    for i, (t, p) in enumerate(log):
        if i % 4 == 0:
            print(i, round(t, 2), {n: round(v, 2) for n, v in p.items()})
    print("steps clipped (norm > 12):", sum(t > CFG.optim.grad_clip for t, _ in log), "of", len(log))


def stepcost() -> None:
    import tempfile

    four = CFG.teacher_modalities
    batch4 = {"image": torch.randn(2, 4, 24, 24, 24), "label": torch.randint(0, 4, (2, 1, 24, 24, 24))}
    batch2 = {"image": batch4["image"][:, 2:].contiguous(), "label": batch4["label"]}
    teacher = Trainer(CFG.replace(student_only=True, student_modalities=four), resolve_plan(CFG), {})
    ckpt_dir = teacher.save(Path(tempfile.mkdtemp()) / "t")
    arms = {
        "student alone": (CFG.replace(student_only=True), batch2),
        "teacher alone (two-stage, stage 1)": (CFG.replace(student_only=True, student_modalities=four),
                                               batch4),
        "joint KD (single-stage)": (CFG, batch4),
        "KD, frozen teacher (two-stage, stage 2)": (CFG.replace(teacher_checkpoint=str(ckpt_dir)), batch4),
    }
    for name, (cfg, batch) in arms.items():
        tr = Trainer(cfg, resolve_plan(cfg), {})
        tr.train_step(batch)
        c0 = time.process_time()
        for _ in range(10):
            tr.train_step(batch)
        print(f"{name:42s} {(time.process_time() - c0) / 10:.3f} CPU s/step", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "channels":
        channels(sys.argv[2])
    elif sys.argv[1] == "stepcost":
        stepcost()
    else:
        clipping()
