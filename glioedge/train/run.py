"""From a BraTS-format folder to a trained checkpoint: discover → split → preprocess → train.

Output directory layout::

    <out>/preprocessed/           cached preprocessed cases (reused when parameters match)
    <out>/checkpoints/latest/     written after every epoch (resume from here)
    <out>/checkpoints/final/      the last epoch's checkpoint (what ``glioedge export`` takes)
    <out>/history.json|csv, curves.png, split.json
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from glioedge import __version__
from glioedge.data.augment import AugmentConfig
from glioedge.data.brats import discover_cases
from glioedge.data.dataset import dataset_digest, preprocess_cohort
from glioedge.data.loader import load_preprocessed, make_train_loader
from glioedge.data.modalities import parse_modalities
from glioedge.data.preprocess import PreprocessParams
from glioedge.errors import InputError
from glioedge.fileio import atomic_write_text
from glioedge.train.checkpoint import resumable_checkpoint
from glioedge.train.config import TrainConfig
from glioedge.train.distributed import barrier, init_distributed, pick_device, shutdown
from glioedge.train.history import History
from glioedge.train.plan import NetworkPlan, get_preset
from glioedge.train.trainer import Trainer
from glioedge.train.validation import validate

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Where a run left its checkpoint and what it measured last."""

    checkpoint: Path
    history: list[dict[str, Any]]
    final_metrics: dict[str, Any]


def resolve_plan(config: TrainConfig) -> NetworkPlan:
    plan = get_preset(config.preset)
    return plan.with_patch(tuple(config.patch_size)) if config.patch_size else plan


def split_cases(case_ids: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic train/validation split (at least one validation case when asked for)."""
    ids = sorted(case_ids)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ids))
    n_val = 0 if val_fraction <= 0 else max(1, round(val_fraction * len(ids)))
    if n_val >= len(ids):
        raise InputError(
            f"{len(ids)} case(s) cannot give a training set with {n_val} held out for validation; "
            "add cases or lower --val-fraction"
        )
    val = sorted(ids[i] for i in order[:n_val])
    train = sorted(ids[i] for i in order[n_val:])
    return train, val


def train_from_folder(
    data_dir: Path, out_dir: Path, config: TrainConfig, resume: bool = False
) -> TrainResult:
    """Train teacher and student (or the student alone) on the cases under ``data_dir``.

    Raises:
        InputError: the data folder holds no usable cases or a case is malformed.
        ModelError: ``resume`` points at an incompatible checkpoint.
        ConfigError: ``resume`` without a checkpoint in ``out_dir``.
    """
    out_dir = Path(out_dir)
    latest = out_dir / "checkpoints" / "latest"
    resume_from = resumable_checkpoint(latest) if resume else None  # fail before any work
    info = init_distributed()
    device = pick_device(info)
    modalities = parse_modalities(list(config.input_modalities))
    cases = discover_cases(Path(data_dir), modalities=modalities, require_seg=True)
    if not cases:
        raise InputError(f"{data_dir}: no BraTS cases found (expected case folders or an nnU-Net dataset)")
    by_id = {c.case_id: c for c in cases}
    train_ids, val_ids = split_cases(list(by_id), config.val_fraction, config.split_seed)
    plan = resolve_plan(config)
    params = PreprocessParams(
        modalities=tuple(m.value for m in modalities), target_spacing=tuple(config.target_spacing)
    )
    digest = dataset_digest(cases)
    pre_dir = out_dir / "preprocessed"
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "split.json", json.dumps({"train": train_ids, "val": val_ids}, indent=1))
    # Rank 0 preprocesses; the others wait, then find every case cached (digests match).
    if info.is_main:
        paths = preprocess_cohort(cases, params, pre_dir, num_workers=max(1, config.num_workers))
    barrier(info)
    if not info.is_main:
        paths = preprocess_cohort(cases, params, pre_dir, num_workers=1)
    path_by_id = {p.stem: p for p in paths}
    train_paths = [path_by_id[i] for i in train_ids]
    val_cases = []
    for case_id in val_ids:
        pc = load_preprocessed(path_by_id[case_id])
        val_cases.append((pc.data, pc.label, tuple(params.target_spacing)))

    provenance = {
        "data_dir_name": Path(data_dir).name,
        "data_digest": digest,
        "label_conventions": sorted({str(c.convention.value) for c in cases}),
        "n_train": len(train_ids),
        "n_val": len(val_ids),
        "glioedge_version": __version__,
    }
    trainer = Trainer(config, plan, params.to_dict(), device, info, provenance)
    history = History(out_dir)
    if resume_from is not None:
        trainer.load(resume_from)
        history.truncate(trainer.epoch)
        log.info("resumed from %s at epoch %d", resume_from, trainer.epoch)

    last_val: dict[str, Any] = {}
    rank_offset = 1_000_003 * info.rank
    # One loader (and one set of workers) for the whole run; one iterator over it, so each epoch
    # continues the batch stream. Batch k is drawn from its own seed, so a resumed run starts at
    # batch epoch × iters_per_epoch and sees what an uninterrupted run would have seen.
    loader = make_train_loader(
        train_paths,
        patch_size=plan.patch_size,
        batch_size=config.batch_size,
        augment=AugmentConfig(enabled=config.augment),
        oversample_foreground=config.oversample_foreground,
        seed=config.seed * 10_007 + rank_offset,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        start_batch=trainer.epoch * config.iters_per_epoch,
    )
    batches = iter(loader)
    while trainer.epoch < config.epochs:
        epoch = trainer.epoch
        terms = trainer.run_epoch(batches)
        record: dict[str, Any] = {"epoch": epoch, "train": terms}
        is_last = trainer.epoch == config.epochs
        if val_cases and (trainer.epoch % config.val_every == 0 or is_last) and info.is_main:
            nets = {"student": (trainer.model.student, config.student_channel_indices())}
            if not config.student_only:
                nets["teacher"] = (trainer.model.teacher, list(range(len(config.teacher_modalities))))
            last_val = validate(nets, val_cases, plan.patch_size, device, step=config.val_step)
            record["val"] = last_val
        if info.is_main:
            history.append(record)
            if "val" in record or is_last:  # matplotlib costs ~0.3 s: only when there is news
                history.plot()
            trainer.save(latest, metrics={"val": last_val, "train": terms})
            log.info("epoch %d: %s", trainer.epoch, _fmt(record))
    final = out_dir / "checkpoints" / "final"
    if info.is_main:
        trainer.save(final, metrics={"val": last_val})
    del batches  # stops the workers before the process group goes
    trainer.release_distributed()
    shutdown(info)
    return TrainResult(checkpoint=final, history=history.records, final_metrics=last_val)


def _fmt(record: dict[str, Any]) -> str:
    parts = [f"loss {record['train']['total']:.4f}"]
    for name, summary in record.get("val", {}).items():
        dice = " ".join(f"{r} {summary[r]['dice']['mean']:.3f}" for r in ("WT", "TC", "ET") if r in summary)
        parts.append(f"{name} Dice {dice}")
    return "; ".join(parts)
