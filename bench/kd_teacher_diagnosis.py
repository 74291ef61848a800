"""Why is the four-modality teacher weak on ET? Confusion, input statistics and gradient norms.

Trains, on one synthetic cohort with the same seed and batches, (a) teacher + student jointly
(single-stage KD, the product default), (b) the teacher alone (a 4-channel "student-only" run),
(c) the student alone, and records every ``--every`` epochs the per-class confusion matrix on
held-out cases, the per-network gradient norm of every step, and, once, the per-channel and
per-class statistics of the augmented training batches. Writes bench/results/kd_teacher_diagnosis.json.

    python bench/kd_teacher_diagnosis.py [--preset-data current] [--epochs 8] [--iters 15]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_json

CLASSES = ("bg", "NCR", "ED", "ET")


def confusion(pred: np.ndarray, ref: np.ndarray) -> list[list[int]]:
    """4×4 voxel counts, rows = reference class, columns = predicted class."""
    m = np.bincount(ref.astype(np.int64).ravel() * 4 + pred.astype(np.int64).ravel(), minlength=16)
    return m.reshape(4, 4).tolist()


def channel_stats(loader_iter, n_batches: int, names: list[str]) -> dict:
    """Mean/std of each input channel per reference class, over augmented training batches."""
    sums: dict = {}
    for _ in range(n_batches):
        b = next(loader_iter)
        img, lab = b["image"].numpy(), b["label"].numpy()[:, 0]
        for ci, name in enumerate(names):
            for k, cls in enumerate(CLASSES):
                v = img[:, ci][lab == k]
                if v.size:
                    s = sums.setdefault(name, {}).setdefault(cls, [0.0, 0.0, 0])
                    s[0] += float(v.sum())
                    s[1] += float((v.astype(np.float64) ** 2).sum())
                    s[2] += v.size
    out: dict = {}
    for name, per in sums.items():
        out[name] = {}
        for cls, (s, s2, n) in per.items():
            mean = s / n
            sd = float(np.sqrt(max(s2 / n - mean**2, 0)))
            out[name][cls] = {"mean": round(mean, 3), "std": round(sd, 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", default="current", help="synthetic preset (see glioedge.synth.cohort)")
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--every", type=int, default=2)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arms", default="joint;teacher-alone;student-alone",
                    help="; separated; alone:m1,m2 = one network on those channels")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--dropout", type=float, default=0.0, help="kd.teacher_modality_dropout")
    ap.add_argument("--out", default="kd_teacher_diagnosis")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from dataclasses import replace

    import torch

    from glioedge.data.augment import AugmentConfig
    from glioedge.data.brats import discover_cases
    from glioedge.data.dataset import preprocess_cohort
    from glioedge.data.loader import load_preprocessed, make_train_loader
    from glioedge.data.preprocess import PreprocessParams
    from glioedge.synth.cohort import cohort_config, generate_cohort
    from glioedge.train.config import TrainConfig
    from glioedge.train.run import resolve_plan, split_cases
    from glioedge.train.trainer import Trainer
    from glioedge.train.validation import predict_case

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="kd_diag_"))
    generate_cohort(work / "cohort", args.cases, seed=1234, config=cohort_config(args.cohort))
    mods = ("t1", "t2", "flair", "t1ce")
    cases = discover_cases(work / "cohort", modalities=list(mods), require_seg=True)
    train_ids, val_ids = split_cases([c.case_id for c in cases], 0.25, 0)

    base = TrainConfig(preset=args.preset, patch_size=(args.patch,) * 3, epochs=args.epochs,
                       iters_per_epoch=args.iters, num_workers=0, seed=args.seed,
                       target_spacing=(2.0, 2.0, 2.0))
    base = replace(base, kd=replace(base.kd, teacher_modality_dropout=args.dropout))
    if args.lr is not None:
        base = replace(base, optim=replace(base.optim, lr=args.lr))
    arms = {
        "joint": base,
        "teacher-alone": replace(base, student_only=True, student_modalities=mods),
        "student-alone": replace(base, student_only=True),
    }
    report: dict = {"args": vars(args), "arms": {}}
    for arm in args.arms.split(";"):
        if arm.startswith("alone:"):  # a network trained alone on the listed channels, in order
            cfg = replace(base, student_only=True, student_modalities=tuple(arm[6:].split(",")))
        else:
            cfg = arms[arm]
        params = PreprocessParams(modalities=cfg.input_modalities, target_spacing=(2.0, 2.0, 2.0))
        tag = "-".join(cfg.input_modalities)
        paths = {p.stem: p for p in preprocess_cohort(cases, params, work / f"pre-{tag}")}
        val = [load_preprocessed(paths[i]) for i in val_ids]
        plan = resolve_plan(cfg)
        trainer = Trainer(cfg, plan, params.to_dict())
        nets = {"student": trainer.model.student}
        chans = {"student": cfg.student_channel_indices()}
        if not cfg.student_only:
            nets["teacher"], chans["teacher"] = trainer.model.teacher, list(range(len(mods)))
        grad_norms: dict[str, list[float]] = {k: [] for k in nets}
        original_step = trainer.optimizer.step

        def step_with_norms(*a, _nets=nets, _gn=grad_norms, _orig=original_step, **kw):
            for k, net in _nets.items():
                g = [p.grad.norm() for p in net.parameters() if p.grad is not None]
                _gn[k].append(float(torch.norm(torch.stack(g))) if g else 0.0)
            return _orig(*a, **kw)

        trainer.optimizer.step = step_with_norms  # type: ignore[method-assign]
        curve = []
        t0 = time.perf_counter()
        stats = None
        for epoch in range(cfg.epochs):
            loader = make_train_loader([paths[i] for i in train_ids], plan.patch_size, cfg.batch_size,
                                       AugmentConfig(), cfg.oversample_foreground,
                                       seed=cfg.seed * 10_007 + epoch, num_workers=0)
            it = iter(loader)
            if stats is None:
                names = list(cfg.input_modalities)
                stats = channel_stats(iter(make_train_loader(
                    [paths[i] for i in train_ids], plan.patch_size, cfg.batch_size, AugmentConfig(),
                    cfg.oversample_foreground, seed=99, num_workers=0)), 6, names)
            terms = trainer.run_epoch(it)
            if (epoch + 1) % args.every == 0 or epoch + 1 == cfg.epochs:
                row = {"epoch": epoch + 1, "loss": terms}
                for k, net in nets.items():
                    cm = np.zeros((4, 4), dtype=np.int64)
                    for pc in val:
                        x = np.asarray(pc.data)[chans[k]]
                        pred = predict_case(net, x, plan.patch_size, torch.device("cpu"))
                        cm += np.array(confusion(pred, np.asarray(pc.label)))
                    tp = np.diag(cm)
                    dice = 2 * tp / np.maximum(cm.sum(0) + cm.sum(1), 1)
                    per_class = dict(zip(CLASSES, dice.round(3).tolist(), strict=True))
                    row[k] = {"confusion": cm.tolist(), "class_dice": per_class}
                curve.append(row)
                print(arm, epoch + 1, {k: row[k]["class_dice"] for k in nets}, flush=True)
        report["arms"][arm] = {
            "seconds": time.perf_counter() - t0,
            "curve": curve,
            "grad_norm_mean_by_epoch": {
                k: [float(np.mean(v[e * cfg.iters_per_epoch:(e + 1) * cfg.iters_per_epoch]))
                    for e in range(cfg.epochs)] for k, v in grad_norms.items()
            },
            "input_stats": stats,
        }
        norms = report["arms"][arm]["grad_norm_mean_by_epoch"]
        print(arm, "grad norms", {k: [round(x, 2) for x in v] for k, v in norms.items()})
        print(arm, "stats", stats, flush=True)
    write_json(args.out, report)


if __name__ == "__main__":
    main()
