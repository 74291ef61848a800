"""Training parity: nnU-Net v2's own trainer against ``glioedge train --student-only``, equal budget.

    nice -n 10 python bench/nnunet_training_parity.py                 # 3 seeds, 24 × 20 steps
    python bench/nnunet_training_parity.py --epochs 2 --iters 5 --seeds 0 --name ..._smoke
    ... --seeds 0,1,2,3,4 --extra-arms glioedge+bg2aug   # + glioedge with nnU-Net's augmentation
    ... --seeds 0,1,2,3,4,5,6 --finished-only             # summarise finished runs, train nothing

Both trainers get the same data and split, network plan, patch, batch and number of steps:

* **Data.** The ``brats-like`` cohort of ``bench/kd_ablation.py`` (20 cases on a 3 mm grid, cohort
  seed 1234), FLAIR + T1CE. One split: glioedge's own (``split_cases``, 25 % held out, split seed
  0: 15 train / 5 held out), written as nnU-Net's ``splits_final.json`` with one fold.
* **nnU-Net.** A raw dataset (images linked, labels as classes 0..3: label-based training with
  softmax, as glioedge trains), the plans of :mod:`nnunet_adapter` (SMALL plan, patch 24³, batch
  2, z-score with the brain mask, batch Dice as glioedge's loss), nnU-Net's own fingerprint
  extractor and ``DefaultPreprocessor``, then ``nnUNetTrainer_GlioedgeParity``
  (``bench/nnunet_trainers``: nnU-Net's trainer with only epochs, iterations, one pseudo-validation
  batch and seeds set) on the CPU, without ``torch.compile``, augmentation in-process
  (``nnUNet_n_proc_DA=0``), and no final validation (the bench predicts itself).
* **glioedge.** ``python -m glioedge.cli train --student-only`` with the same plan, patch, batch,
  epochs, iterations, split and spacing (its preprocessed cache filled before the clock starts, as
  nnU-Net's preprocessing is).
* **Held-out metrics, one code for both.** Each trained network predicts the 5 held-out cases whole
  on their original grid (step 0.5, Gaussian, no test-time mirroring on either side): nnU-Net with
  ``nnUNetPredictor`` from its ``checkpoint_final.pth``, glioedge with its own path
  (``preprocess`` → ``predict_case`` → ``restore_to_original``). Dice and HD95 per region by
  :func:`glioedge.metrics.evaluate_case` against the case's reference labels.

Every training runs in its own process (``OMP_NUM_THREADS=1``, one torch thread) and is timed
there: wall and CPU seconds (``RUSAGE_CHILDREN``). Finished runs are reused. Prints the per-seed
table, the means, the paired differences (glioedge − nnU-Net) and writes
``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nnunet_adapter as A
from _common import RESULTS, print_table, write_json

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
REGIONS = ("WT", "TC", "ET")
MODALITIES = ("flair", "t1ce")
DATASET = "Dataset990_GlioedgeParity"
TRAINER = "nnUNetTrainer_GlioedgeParity"
PLANS = "nnUNetPlans"


# -- data -------------------------------------------------------------------------------------
def make_cohort(data: Path, n_cases: int, spacing: float) -> None:
    """bench/kd_ablation.py's cohort: brats-like, seed 1234, the default grid's field of view."""
    from glioedge.synth.cohort import cohort_config, generate_cohort

    if data.exists():
        return
    fov_mm = (192.0, 192.0, 132.0)
    grid = tuple(round(f / spacing) for f in fov_mm)
    generate_cohort(data, n_cases, seed=1234, config=cohort_config(
        "brats-like", shape=grid, spacing=(spacing,) * 3))


def glioedge_split(data: Path, val_fraction: float) -> tuple[list[Any], list[str], list[str]]:
    """The cases and glioedge's own train / held-out split (what ``glioedge train`` uses)."""
    from glioedge.data.brats import discover_cases
    from glioedge.data.modalities import parse_modalities
    from glioedge.train.config import TrainConfig
    from glioedge.train.run import split_cases

    cases = discover_cases(data, modalities=parse_modalities(list(MODALITIES)), require_seg=True)
    train, val = split_cases([c.case_id for c in cases], val_fraction, TrainConfig().split_seed)
    return cases, train, val


def nnunet_env(runs: Path, seed: int | None = None) -> dict[str, str]:
    """nnU-Net's folders and CPU settings; ``nnUNet_results`` only for a seed (one folder each)."""
    env = {
        "nnUNet_raw": str(runs / "nnunet" / "raw"),
        "nnUNet_preprocessed": str(runs / "nnunet" / "preprocessed"),
        "nnUNet_compile": "f",
        "nnUNet_n_proc_DA": "0",
        "nnUNet_def_n_proc": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    if seed is not None:
        env["nnUNet_results"] = str(runs / f"nnunet_results_seed{seed}")
    return env


def prepare_nnunet(runs: Path, cases: list[Any], train: list[str], val: list[str], args: Any) -> None:
    """Raw dataset, plans, splits, fingerprint and nnU-Net's own preprocessing (once)."""
    pre = runs / "nnunet" / "preprocessed" / DATASET
    if (pre / f"{PLANS}_3d_fullres").is_dir() and (pre / "splits_final.json").is_file():
        return
    os.environ.update(nnunet_env(runs))
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import (
        DatasetFingerprintExtractor,
    )
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    from glioedge.train.plan import get_preset

    raw = A.write_raw_dataset(runs / "nnunet" / "raw" / DATASET, cases, MODALITIES)
    verify_dataset_integrity(str(raw), num_processes=1)
    pre.mkdir(parents=True, exist_ok=True)
    (pre / "dataset.json").write_text((raw / "dataset.json").read_text())
    DatasetFingerprintExtractor(DATASET, num_processes=1).run(overwrite_existing=True)
    plan = get_preset(args.preset).with_patch((args.patch,) * 3)
    plans = A.nnunet_plans(plan, (args.spacing,) * 3, len(MODALITIES), batch_size=args.batch,
                           batch_dice=True)
    plans["dataset_name"] = DATASET
    plans["plans_name"] = PLANS
    (pre / f"{PLANS}.json").write_text(json.dumps(plans, indent=1))
    (pre / "splits_final.json").write_text(json.dumps(A.splits_final(train, val), indent=1))
    DefaultPreprocessor(verbose=False).run(DATASET, A.CONFIGURATION, PLANS, 1)


def prepare_glioedge(runs: Path, cases: list[Any], args: Any) -> Path:
    """glioedge's preprocessed cache, filled before any run is timed (shared by all runs)."""
    from glioedge.data.dataset import preprocess_cohort
    from glioedge.data.preprocess import PreprocessParams

    shared = runs / "glioedge_preprocessed"
    params = PreprocessParams(modalities=MODALITIES, target_spacing=(args.spacing,) * 3)
    preprocess_cohort(cases, params, shared, num_workers=1)
    return shared


# -- one training per process -------------------------------------------------------------------
def timed(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """Run ``cmd`` to completion; its wall and CPU seconds (user + system, children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT,
                              cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed (exit {proc.returncode}); see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def nnunet_results_dir(runs: Path, seed: int) -> Path:
    return (runs / f"nnunet_results_seed{seed}" / DATASET
            / f"{TRAINER}__{PLANS}__{A.CONFIGURATION}")


def train_nnunet(runs: Path, seed: int, args: Any) -> dict[str, float]:
    done = runs / f"nnunet_seed{seed}.time.json"
    if done.is_file():
        return json.loads(done.read_text())
    env = {**nnunet_env(runs, seed), "GLIOEDGE_PARITY_EPOCHS": str(args.epochs),
           "GLIOEDGE_PARITY_ITERS": str(args.iters), "GLIOEDGE_PARITY_SEED": str(seed)}
    t = timed([sys.executable, str(Path(__file__).resolve()), "--child-nnunet"], env,
              runs / f"nnunet_seed{seed}.log")
    t["epoch_loop_s"] = nnunet_epoch_seconds(nnunet_results_dir(runs, seed))
    done.write_text(json.dumps(t))
    return t


def trainer_class() -> Any:
    """The parity trainer, imported from its folder (nnU-Net's own search by name would import
    every trainer module of nnunetv2, some of which need ``timm``)."""
    sys.path.insert(0, str(BENCH / "nnunet_trainers"))
    from nnUNetTrainer_GlioedgeParity import nnUNetTrainer_GlioedgeParity

    return nnUNetTrainer_GlioedgeParity


def nnunet_epoch_seconds(results: Path) -> float:
    """Seconds inside nnU-Net's epochs (training steps + pseudo-validation), from its own log in
    the checkpoint: the wall time less start-up, dataset unpacking and per-epoch checkpointing."""
    import torch

    log = torch.load(results / "fold_0" / "checkpoint_final.pth", map_location="cpu",
                     weights_only=False)["logging"]
    return float(sum(e - s for s, e in zip(log["epoch_start_timestamps"],
                                           log["epoch_end_timestamps"], strict=True)))


def child_nnunet() -> Any:
    """In the training process: nnU-Net's trainer as ``nnUNetv2_train`` builds it (plans with
    ``continue_training``, configuration, fold 0, dataset.json, device), minus the final validation
    (``perform_actual_validation`` is not called; the bench predicts the held-out cases itself)."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json

    torch.set_num_threads(1)
    pre = Path(os.environ["nnUNet_preprocessed"]) / DATASET  # noqa: SIM112 (nnU-Net's name)
    plans = load_json(str(pre / f"{PLANS}.json"))
    plans["continue_training"] = False
    trainer = trainer_class()(plans=plans, configuration=A.CONFIGURATION, fold=0,
                            dataset_json=load_json(str(pre / "dataset.json")),
                            device=torch.device("cpu"))
    trainer.run_training()
    return trainer


#: glioedge-side arms: the recipe as shipped, and one component swapped (bench/nnunet_augment_swap.py)
GLIOEDGE_ARMS = {"glioedge": ["-m", "glioedge.cli"],
                 "glioedge+bg2aug": [str(BENCH / "nnunet_augment_swap.py")]}


def train_glioedge(runs: Path, seed: int, shared_pre: Path, data: Path, args: Any,
                   arm: str = "glioedge") -> dict[str, float]:
    out = runs / f"{arm}_seed{seed}"
    done = runs / f"{arm}_seed{seed}.time.json"
    if done.is_file():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    link = out / "preprocessed"
    if not link.exists():
        link.symlink_to(shared_pre.resolve(), target_is_directory=True)
    cmd = [sys.executable, *GLIOEDGE_ARMS[arm], "train", "--data", str(data), "--out", str(out),
           "--student-only", "--student-modalities", ",".join(MODALITIES), "--preset", args.preset,
           "--patch", ",".join([str(args.patch)] * 3), "--epochs", str(args.epochs),
           "--iters-per-epoch", str(args.iters), "--batch-size", str(args.batch),
           "--val-every", str(args.epochs), "--val-fraction", str(args.val_fraction),
           "--spacing", ",".join([str(args.spacing)] * 3), "--workers", "0", "--seed", str(seed)]
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    t = timed(cmd, env, runs / f"{arm}_seed{seed}.log")
    done.write_text(json.dumps(t))
    return t


# -- held-out evaluation, the same code for both ---------------------------------------------------
def evaluate(runs: Path, seed: int, held_out: list[Any], side: str) -> dict[str, Any]:
    """Dice / HD95 of one trained network on the held-out cases, whole, on the original grid:
    nnU-Net's by its ``nnUNetPredictor``, glioedge's by its own path; the metric code is one."""
    import torch

    from glioedge.data.brats import load_case
    from glioedge.data.preprocess import PreprocessParams, preprocess, restore_to_original
    from glioedge.metrics import evaluate_case, summarise
    from glioedge.train.checkpoint import load_student
    from glioedge.train.validation import predict_case

    torch.set_num_threads(1)
    if side == "nnunet":
        os.environ.update(nnunet_env(runs, seed))
        predictor = A.make_trained_predictor(nnunet_results_dir(runs, seed), trainer_class(),
                                             mirror=False, threads=1)
    else:
        net, meta = load_student(runs / f"{side}_seed{seed}" / "checkpoints" / "final")
        params = PreprocessParams.from_dict(meta.preprocess)
    per_case = []
    for cf in held_out:
        case = load_case(cf)
        if side == "nnunet":
            files = [cf.images[m] for m in sorted(cf.images, key=lambda k: MODALITIES.index(k.value))]
            labels = A.nnunet_labels(predictor, files)
        else:
            pre = preprocess(case.images, case.affine, params)
            labels = restore_to_original(
                predict_case(net, pre.data, meta.plan.patch_size, torch.device("cpu")),
                pre.record, is_label=True)
        per_case.append(evaluate_case(labels, case.label, case.spacing))
    return {"summary": summarise(per_case), "per_case": per_case}


# -- report ---------------------------------------------------------------------------------------
def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def train_loss_curve(runs: Path, seed: int, arm: str) -> list[float]:
    """Mean training loss per epoch (CE + soft Dice with deep supervision on both sides; nnU-Net
    from its checkpoint's log, glioedge from history.json): is it still falling at the end?"""
    import torch

    if arm == "nnunet":
        log = torch.load(nnunet_results_dir(runs, seed) / "fold_0" / "checkpoint_final.pth",
                         map_location="cpu", weights_only=False)["logging"]
        return [float(x) for x in log["train_losses"]]
    history = json.loads((runs / f"{arm}_seed{seed}" / "history.json").read_text())
    return [float(r["train"]["total"]) for r in history]


def _t_interval(d: list[float]) -> list[float] | None:
    """95 % t-interval of the mean paired difference (None for fewer than 2 seeds)."""
    from scipy import stats

    if len(d) < 2:
        return None
    half = float(stats.t.ppf(0.975, len(d) - 1)) * _sd(d) / len(d) ** 0.5
    return [statistics.mean(d) - half, statistics.mean(d) + half]


def dice_of(result: dict[str, Any], side: str, region: str) -> float:
    return float(result["metrics"][side]["summary"][region]["dice"]["mean"])


def report(per_seed: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    """Per-seed table; means; paired differences of every glioedge arm to nnU-Net."""
    rows = []
    for r in per_seed:
        for side in (a for a in arms if a in r["metrics"]):
            s = r["metrics"][side]["summary"]
            rows.append({"seed": r["seed"], "trainer": side,
                         **{f"{g} Dice": round(s[g]["dice"]["mean"], 3) for g in REGIONS},
                         **{f"{g} HD95": round(s[g]["hd95"]["mean"], 1) for g in REGIONS},
                         "wall min": round(r["time"][side]["wall_s"] / 60, 2),
                         "CPU min": round(r["time"][side]["cpu_s"] / 60, 2)})
    print_table(rows, ["seed", "trainer", *(f"{g} Dice" for g in REGIONS),
                       *(f"{g} HD95" for g in REGIONS), "wall min", "CPU min"])
    summary: dict[str, Any] = {}
    print("\nmean over seeds (sd); Δ = arm − nnU-Net, paired by seed (seeds where both ran):")
    for arm in arms:
        mine = [r for r in per_seed if arm in r["metrics"]]
        if not mine:
            continue
        times = [r["time"][arm] for r in mine]
        summary[arm] = {"seeds": [r["seed"] for r in mine],
                        "wall_s_mean": statistics.mean(t["wall_s"] for t in times),
                        "cpu_s_mean": statistics.mean(t["cpu_s"] for t in times)}
        if arm == "nnunet" and "epoch_loop_s" in times[0]:
            summary[arm]["epoch_loop_s_mean"] = statistics.mean(t["epoch_loop_s"] for t in times)
        paired = [r for r in mine if "nnunet" in r["metrics"]]
        for g in REGIONS:
            v = [dice_of(r, arm, g) for r in mine]
            summary[arm][g] = {"mean": statistics.mean(v), "sd": _sd(v), "per_seed": v}
            if arm != "nnunet" and paired:
                d = [dice_of(r, arm, g) - dice_of(r, "nnunet", g) for r in paired]
                summary[arm][g].update({"paired_seeds": [r["seed"] for r in paired],
                                        "delta_per_seed": d, "delta_mean": statistics.mean(d),
                                        "delta_sd": _sd(d), "delta_ci95": _t_interval(d),
                                        "within_0.01_or_better": statistics.mean(d) >= -0.01})
        print(f"  {arm:16s} " + "  ".join(
            f"{g} {summary[arm][g]['mean']:.3f} ({summary[arm][g]['sd']:.3f})"
            + (f" Δ {summary[arm][g]['delta_mean']:+.3f} "
               f"[{', '.join(f'{x:+.3f}' for x in summary[arm][g]['delta_per_seed'])}]"
               + (" 95% CI [{:+.3f}, {:+.3f}]".format(*summary[arm][g]["delta_ci95"])
                  if summary[arm][g]["delta_ci95"] else "")
               if "delta_mean" in summary[arm][g] else "") for g in REGIONS))
    return summary


def markdown(per_seed: list[dict[str, Any]], arms: list[str], summary: dict[str, Any]) -> str:
    """The tables of docs/nnunet_parity.md §4: Dice per seed, then means and paired Δ."""
    lines = ["| seed | " + " | ".join(f"{a} {g}" for g in REGIONS for a in arms) + " |",
             "|---|" + "---|" * (len(arms) * len(REGIONS))]
    for r in per_seed:
        cells = [f"{dice_of(r, a, g):.3f}" if a in r["metrics"] else "" for g in REGIONS for a in arms]
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + " |")
    lines += ["", "| arm | seeds | " + " | ".join(f"{g} Dice (sd)" for g in REGIONS) + " | "
              + " | ".join(f"Δ {g} vs nnU-Net [95 % CI]" for g in REGIONS)
              + " | wall / CPU min per run |", "|---|---|" + "---|" * 7]
    for a in arms:
        if a not in summary:
            continue
        m = summary[a]
        delta = [(f"{m[g]['delta_mean']:+.3f} [{m[g]['delta_ci95'][0]:+.3f}, {m[g]['delta_ci95'][1]:+.3f}]"
                  if m[g].get("delta_ci95") else f"{m[g]['delta_mean']:+.3f}")
                 if "delta_mean" in m[g] else "" for g in REGIONS]
        lines.append(f"| {a} | {len(m['seeds'])} | "
                     + " | ".join(f"{m[g]['mean']:.3f} ({m[g]['sd']:.3f})" for g in REGIONS)
                     + " | " + " | ".join(delta)
                     + f" | {m['wall_s_mean'] / 60:.1f} / {m['cpu_s_mean'] / 60:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--val-fraction", type=float, default=0.25)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--patch", type=int, default=24)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--spacing", type=float, default=3.0)
    ap.add_argument("--name", default="nnunet_training_parity")
    ap.add_argument("--extra-arms", default="", help="glioedge with one component swapped: "
                    + ", ".join(a for a in GLIOEDGE_ARMS if a != "glioedge"))
    ap.add_argument("--finished-only", action="store_true",
                    help="train nothing: summarise the runs finished (each arm over its seeds)")
    ap.add_argument("--child-nnunet", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_nnunet:
        child_nnunet()
        return

    import torch

    torch.set_num_threads(1)
    base = RESULTS / "nnunet_training_parity_runs"  # data and preprocessing shared by budgets
    runs = base / f"{args.epochs}x{args.iters}"
    runs.mkdir(parents=True, exist_ok=True)
    data = base / "cohort"
    make_cohort(data, args.cases, args.spacing)
    cases, train, val = glioedge_split(data, args.val_fraction)
    print(f"{len(cases)} cases: {len(train)} train, {len(val)} held out ({', '.join(val)})", flush=True)
    for sub in ("nnunet", "glioedge_preprocessed"):  # budget-independent: one copy
        target = base / sub
        target.mkdir(exist_ok=True)
        if not (runs / sub).exists():
            (runs / sub).symlink_to(target.resolve(), target_is_directory=True)
    prepare_nnunet(runs, cases, train, val, args)
    shared_pre = prepare_glioedge(runs, cases, args)
    held_out = [c for c in cases if c.case_id in set(val)]
    arms = ["nnunet", "glioedge", *args.extra_arms.split(",")] if args.extra_arms else \
        ["nnunet", "glioedge"]
    per_seed = []
    for seed in (int(s) for s in args.seeds.split(",")):
        done = runs / f"result_seed{seed}.json"
        r = json.loads(done.read_text()) if done.is_file() else {"seed": seed, "time": {}, "metrics": {}}
        for arm in arms:
            if arm in r["metrics"] or args.finished_only:
                continue
            if arm == "nnunet":
                t = train_nnunet(runs, seed, args)
            else:
                t = train_glioedge(runs, seed, shared_pre, data, args, arm)
            print(f"seed {seed} {arm:16s} trained: {t['wall_s'] / 60:.1f} min wall, "
                  f"{t['cpu_s'] / 60:.1f} min CPU", flush=True)
            r["time"][arm] = t
            r["metrics"][arm] = evaluate(runs, seed, held_out, arm)
            done.write_text(json.dumps(r))
        if not r["metrics"]:
            continue
        print(f"seed {seed}: " + "  ".join(
            f"{g} " + " ".join(f"{a} {dice_of(r, a, g):.3f}" for a in arms if a in r["metrics"])
            for g in REGIONS), flush=True)
        per_seed.append(r)
    print(f"\nheld-out Dice / HD95 (mm), {len(held_out)} cases, {args.epochs} × {args.iters} steps, "
          f"batch {args.batch}, patch {args.patch}³, preset {args.preset}\n")
    summary = report(per_seed, arms)
    curves = {a: {r["seed"]: train_loss_curve(runs, r["seed"], a) for r in per_seed
                  if a in r["metrics"]} for a in arms}
    print("\nmean training loss per quarter of the epochs (mean over seeds):")
    for a, by_seed in curves.items():
        if by_seed:
            q = max(1, args.epochs // 4)
            quarters = [statistics.mean(statistics.mean(c[i:i + q]) for c in by_seed.values())
                        for i in range(0, args.epochs - q + 1, q)]
            print(f"  {a:16s} " + "  ".join(f"{x:+.3f}" for x in quarters))
    (RESULTS / f"{args.name}.md").write_text(markdown(per_seed, arms, summary))
    load = os.getloadavg()
    write_json(args.name, {
        "args": {k: v for k, v in vars(args).items() if k != "child_nnunet"},
        "split": {"train": train, "held_out": val}, "summary": summary,
        "train_loss_curves": curves,
        "per_seed": per_seed,
        "load_average_at_end": load,
        "nnunet_version": _version("nnunetv2"), "batchgeneratorsv2": _version("batchgeneratorsv2"),
    })


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
