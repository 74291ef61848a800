"""Does distillation help? Student-only vs every KD variant, same data, steps, augmentation, seeds.

For each seed every arm trains on the same synthetic cohort (``--cohort``, default the
``brats-like`` preset), the same split, the same budget and the same patch-sampling seeds, and is
evaluated on the same held-out cases:

* ``student-only``       the FLAIR+T1CE student alone (the baseline)
* ``KD``                 single-stage KD (λ_bt 0.01, bottleneck, teacher detached) with teacher
                          modality dropout 0.5 (``--teacher-dropout``), as every KD arm below
* ``KD no teacher dropout`` the same without the teacher's modality dropout: KD as shipped
* ``KD λ=…``             the Barlow Twins weight swept over two decades
* ``KD BT 3 scales``     Barlow Twins on the bottleneck and the two lowest decoder stages
* ``KD mutual``          the teacher's side of BT not detached (mutual learning)
* ``KD warm-up``         distillation terms off for the first third of the epochs
* ``KD + logit``         Hinton logit KD added to BT
* ``two-stage``          a four-modality network trained alone, then frozen as the teacher of a
                          student trained with the same losses (``glioedge train --teacher``);
                          its wall time is both stages; teacher dropout in both stages
* ``two-stage shipped``  the same as the README documents it: teacher dropout (``--teacher-dropout``)
                          in stage 1 only, stage 2 with the product default (off)

Prints Dice and HD95 (mean ± sd over seeds) per region, the wall and CPU time per arm, and the
paired difference in Dice to student-only (same seed): per seed, its mean, a 95 % paired-bootstrap
interval and a 95 % paired t interval (bench/paired_stats.py), and the verdict they give per region
("better" / "worse" when both intervals exclude 0, else "no difference shown"). Writes
bench/results/NAME.json, NAME.md, NAME.png (bars with sd error bars), NAME_curve.png (student-only
and KD validation Dice over training, to show convergence) and NAME_paired.png (the paired
differences with both intervals). Finished runs are kept under bench/results/NAME_runs/ (or
``--runs``) and reused, so an interrupted ablation continues.

    nice -n 10 python bench/kd_ablation.py            # the 240-step runs (~60 min on 2 cores)
    python bench/kd_ablation.py --quick               # checks that the script runs (~1 min)
    bash bench/kd_ablation_all.sh                     # everything in docs/kd_evidence.md
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, print_table, write_json
from paired_stats import format_interval, paired_interval

REGIONS = ("WT", "TC", "ET")
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 10_000, 0  # the paired bootstrap over seeds (fixed)
ALL_ARMS = (
    "student-only", "KD", "KD no teacher dropout", "two-stage", "KD λ=0.1", "KD BT 3 scales",
    "KD λ=0.001", "KD mutual", "KD warm-up", "KD + logit",
)


def arm_config(arm: str, base: Any) -> Any:
    """The training configuration of one arm (two-stage: of its second stage)."""
    kd = base.kd
    changes = {
        "student-only": {"student_only": True},
        "KD": {},
        "KD no teacher dropout": {"kd": replace(kd, teacher_modality_dropout=0.0)},
        "KD λ=0.001": {"kd": replace(kd, lambda_bt=0.001)},
        "KD λ=0.1": {"kd": replace(kd, lambda_bt=0.1)},
        "KD λ=1": {"kd": replace(kd, lambda_bt=1.0)},
        "KD BT 3 scales": {"kd": replace(kd, bt_scales=3)},
        "KD mutual": {"kd": replace(kd, detach_teacher=False)},
        "KD warm-up": {"kd": replace(kd, warmup_epochs=max(1, base.epochs // 3))},
        "KD + logit": {"kd": replace(kd, logit_kd=True)},
        "two-stage": {},
        # as README/docs document it: stage 1 with --teacher-dropout, stage 2 with the default (off)
        "two-stage shipped": {"kd": replace(kd, teacher_modality_dropout=0.0)},
    }
    if arm not in changes:
        raise SystemExit(f"unknown arm {arm!r}; choose from {', '.join(changes)}")
    return replace(base, **changes[arm])


def _link_preprocessed(out: Path, shared: Path) -> None:
    """Let every run reuse one preprocessed cohort (the cache is keyed by content digests)."""
    out.mkdir(parents=True, exist_ok=True)
    shared.mkdir(parents=True, exist_ok=True)
    link = out / "preprocessed"
    if not link.exists():
        link.symlink_to(shared.resolve(), target_is_directory=True)


def _run_dir(runs: Path, arm: str, seed: int) -> Path:
    return runs / f"{arm.replace(' ', '_').replace('=', '')}-seed{seed}"


def run_arm(arm: str, seed: int, base: Any, data: Path, runs: Path) -> dict[str, Any]:
    """Train one arm for one seed (or reuse a finished run); metrics, curve and seconds."""
    from glioedge.fileio import atomic_write_text
    from glioedge.train.run import train_from_folder

    out = _run_dir(runs, arm, seed)
    done = out / "ablation_result.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg = replace(arm_config(arm, base), seed=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    if arm.startswith("two-stage"):  # stage 1: the four-modality network alone, same budget and recipe
        teacher_cfg = replace(base, seed=seed, student_only=True,
                              student_modalities=base.teacher_modalities)
        _link_preprocessed(out / "teacher", runs / "pre-4ch")
        stage1 = train_from_folder(data, out / "teacher", teacher_cfg)
        cfg = replace(cfg, teacher_checkpoint=str(stage1.checkpoint))
    _link_preprocessed(out, runs / ("pre-2ch" if cfg.student_only else "pre-4ch"))
    res = train_from_folder(data, out, cfg)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0  # one thread: robust to the machine's other load
    curve = [
        {"epoch": r["epoch"] + 1, "student": {g: r["val"]["student"][g]["dice"]["mean"] for g in REGIONS}}
        for r in res.history if "val" in r
    ]
    result = {
        "arm": arm, "seed": seed, "seconds": seconds, "cpu_seconds": cpu_seconds, "curve": curve,
        "student": res.final_metrics["student"],
        "teacher": res.final_metrics.get("teacher"),
    }
    atomic_write_text(done, json.dumps(result))  # a cut-short write never leaves a broken cache
    return result


def summarise(results: dict[str, list[dict]]) -> tuple[list[dict], dict[str, Any]]:
    """Table rows (mean ± sd over seeds) and paired differences to student-only."""
    base = {r["seed"]: r for r in results.get("student-only", [])}
    rows, paired = [], {}
    for arm, per_seed in results.items():
        for who in ("student", "teacher"):
            if who == "teacher" and (arm == "student-only" or per_seed[0].get("teacher") is None):
                continue
            row: dict[str, Any] = {"arm": arm if who == "student" else f"{arm} — teacher",
                                   "network": who, "n": len(per_seed)}
            for g in REGIONS:
                for metric in ("dice", "hd95"):
                    vals = [r[who][g][metric]["mean"] for r in per_seed]
                    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                    row[f"{g} {metric}"] = f"{statistics.mean(vals):.3f} ± {sd:.3f}" if metric == "dice" \
                        else f"{statistics.mean(vals):.1f} ± {sd:.1f}"
                    row[f"{g}_{metric}_values"] = vals
            if who == "student":
                row["min/run"] = f"{statistics.mean(r['seconds'] for r in per_seed) / 60:.1f}"
                row["seconds_values"] = [r["seconds"] for r in per_seed]
                cpu = [r["cpu_seconds"] for r in per_seed if "cpu_seconds" in r]
                row["cpu min/run"] = f"{statistics.mean(cpu) / 60:.1f}" if cpu else "n/a"
            rows.append(row)
        if arm != "student-only" and base:
            deltas = {}
            for g in REGIONS:
                d = [r["student"][g]["dice"]["mean"] - base[r["seed"]]["student"][g]["dice"]["mean"]
                     for r in per_seed if r["seed"] in base]
                sd_base = statistics.stdev(
                    [base[s]["student"][g]["dice"]["mean"] for s in base]) if len(base) > 1 else 0.0
                deltas[g] = {
                    "per_seed": d,
                    "seeds": [r["seed"] for r in per_seed if r["seed"] in base],
                    "better_in_seeds": sum(x > 0 for x in d),
                    # the criterion of docs/kd_evidence.md: better in every seed and by more than
                    # the student-only spread over seeds
                    "beyond_spread": bool(d) and min(d) > 0 and statistics.mean(d) > sd_base,
                    # the criterion since issue 20: the 95 % intervals of the paired mean decide
                    **paired_interval(d, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED),
                }
            paired[arm] = deltas
    return rows, paired


def markdown(rows: list[dict], paired: dict[str, Any]) -> str:
    """The tables of docs/kd_evidence.md: Dice/HD95 mean ± sd and minutes per run, then the paired
    Δ Dice to student-only with its 95 % intervals and the verdict they give."""
    lines = ["| arm | network | n | WT Dice | TC Dice | ET Dice | WT HD95 | TC HD95 | ET HD95 | "
             "min/run (wall, CPU) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        time_cell = f"{r['min/run']}, {r['cpu min/run']}" if r["network"] == "student" else ""
        lines.append("| " + " | ".join([
            r["arm"].replace(" — teacher", ""), r["network"], str(r["n"]),
            *(r[f"{g} dice"] for g in REGIONS), *(r[f"{g} hd95"] for g in REGIONS), time_cell]) + " |")
    if paired:
        lines += ["", "Paired Δ Dice (arm − student-only, same seed): mean, 95 % paired-bootstrap interval "
                  f"({BOOTSTRAP_RESAMPLES} resamples, generator seed {BOOTSTRAP_SEED}) and 95 % paired t "
                  "interval; seeds better; verdict (both intervals above 0: better, both below: worse).", "",
                  "| arm | region | n | Δ mean | bootstrap 95 % CI | t 95 % CI | seeds better | verdict |",
                  "|---|---|---|---|---|---|---|---|"]
        for arm, d in paired.items():
            for g in REGIONS:
                x = d[g]
                ci = (f"[{x['ci_bootstrap'][0]:+.3f}, {x['ci_bootstrap'][1]:+.3f}]",
                      f"[{x['ci_t'][0]:+.3f}, {x['ci_t'][1]:+.3f}]") if x["ci_t"] else ("", "")
                lines.append(f"| {arm} | {g} | {x['n']} | {x['mean']:+.3f} | {ci[0]} | {ci[1]} | "
                             f"{x['better_in_seeds']}/{x['n']} | **{x['verdict']}** |")
    return "\n".join(lines) + "\n"


def plot(
    rows: list[dict], results: dict[str, list[dict]], path: Path, curve_path: Path, iters: int
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    students = [r for r in rows if r["network"] == "student"]
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(students)
    x = np.arange(len(REGIONS))
    for i, r in enumerate(students):
        means = [statistics.mean(r[f"{g}_dice_values"]) for g in REGIONS]
        sds = [statistics.stdev(r[f"{g}_dice_values"]) if r["n"] > 1 else 0.0 for g in REGIONS]
        ax.bar(x + (i - (len(students) - 1) / 2) * width, means, width, yerr=sds, capsize=2,
               label=r["arm"], color="black" if r["arm"] == "student-only" else None)
    lo = min(min(r[f"{g}_dice_values"]) for r in students for g in REGIONS)
    ax.set(xticks=x, xticklabels=REGIONS, ylabel="student Dice (held-out, mean ± sd over seeds)",
           ylim=(max(0.0, lo - 0.1), 1.0), title="KD ablation: FLAIR+T1CE student")
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, style in (("student-only", "-"), ("KD", "--")):
        for r in results.get(arm, []):
            for g, colour in zip(REGIONS, ("tab:blue", "tab:orange", "tab:green"), strict=True):
                ax.plot([c["epoch"] * iters for c in r["curve"]], [c["student"][g] for c in r["curve"]],
                        style, color=colour, alpha=0.7,
                        label=f"{arm} {g}" if r["seed"] == results[arm][0]["seed"] else None)
    ax.set(xlabel="training step", ylabel="validation Dice (student)", ylim=(0, 1),
           title="student validation curves, every seed")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(curve_path, dpi=100)
    plt.close(fig)


def plot_paired(paired: dict[str, Any], path: Path) -> None:
    """Paired Δ Dice per arm and region: every seed's difference, the mean, and both 95 % CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(paired)
    fig, axes = plt.subplots(1, len(REGIONS), figsize=(4 * len(REGIONS), 0.7 * len(arms) + 1.8),
                             sharey=True, squeeze=False)
    for ax, g in zip(axes[0], REGIONS, strict=True):
        ax.axvline(0.0, color="black", lw=0.8)
        for i, arm in enumerate(arms):
            x = paired[arm][g]
            ax.scatter(x["per_seed"], [i + 0.18] * len(x["per_seed"]), s=12, color="grey", alpha=0.7,
                       label="one seed" if i == 0 else None)
            if x["ci_t"]:
                ax.plot(x["ci_t"], [i - 0.12] * 2, color="tab:orange", lw=2,
                        label="95 % paired t CI" if i == 0 else None)
                ax.plot(x["ci_bootstrap"], [i] * 2, color="tab:blue", lw=3,
                        label="95 % paired bootstrap CI" if i == 0 else None)
            ax.plot([x["mean"]], [i], "o", color="black", label="mean" if i == 0 else None)
        ax.set(title=f"{g}: Δ Dice vs student-only", xlabel="Δ Dice (arm − student-only, same seed)")
    axes[0][0].set(yticks=range(len(arms)), yticklabels=[
        f"{a} (n={paired[a][REGIONS[0]]['n']})" for a in arms])
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--arms", default=",".join(ALL_ARMS))
    ap.add_argument("--cohort", default="brats-like", help="synthetic cohort preset")
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--val-every", type=int, default=3, help="validation curve of student-only and KD")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--patch", type=int, default=24)
    ap.add_argument("--spacing", type=float, default=3.0, help="cohort grid and training spacing, mm")
    ap.add_argument("--lambda-bt", type=float, default=None, help="override the default λ_bt")
    ap.add_argument("--teacher-dropout", type=float, default=0.5,
                    help="kd.teacher_modality_dropout of the KD arms (the documented runs: 0.5)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="kd_ablation", help="name of the JSON/markdown/PNG outputs")
    ap.add_argument("--runs", default=None,
                    help="cache of finished runs, bench/results/RUNS_runs/ (default: --name); runs "
                         "are reused only with the same budget and settings")
    ap.add_argument("--quick", action="store_true", help="tiny budget, to check the script runs")
    ap.add_argument("--finished-only", action="store_true",
                    help="train nothing: summarise the finished runs of every arm (an arm finished "
                         "for some seeds only is summarised on those, and listed)")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.cases, args.epochs, args.iters, args.preset = "0,1", 6, 2, 2, "tiny"
        args.val_every, args.name = 1, "kd_ablation_quick"
    logging.basicConfig(level=logging.WARNING)

    import torch

    from glioedge.fileio import atomic_write_text
    from glioedge.synth.cohort import cohort_config, generate_cohort
    from glioedge.train.config import TrainConfig

    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    runs = RESULTS / f"{args.runs or args.name}_runs"
    data = runs / "cohort"
    if not data.exists():
        fov_mm = (192.0, 192.0, 132.0)  # the default grid's field of view, at --spacing
        grid = tuple(round(f / args.spacing) for f in fov_mm)
        generate_cohort(data, args.cases, seed=1234, config=cohort_config(
            args.cohort, shape=grid, spacing=(args.spacing,) * 3))
    base = TrainConfig(
        preset=args.preset, patch_size=(args.patch,) * 3, epochs=args.epochs,
        iters_per_epoch=args.iters, val_every=args.epochs, val_fraction=0.25,
        target_spacing=(args.spacing,) * 3, num_workers=0,
    )
    kd = base.kd
    if args.lambda_bt is not None:
        kd = replace(kd, lambda_bt=args.lambda_bt)
    if args.teacher_dropout is not None:
        kd = replace(kd, teacher_modality_dropout=args.teacher_dropout)
    base = replace(base, kd=kd)
    done = {a: [s for s in seeds if (_run_dir(runs, a, s) / "ablation_result.json").is_file()]
            for a in arms}
    missing = [a for a in arms if not done[a]] if args.finished_only else []
    partial = {a: done[a] for a in arms if 0 < len(done[a]) < len(seeds)} if args.finished_only else {}
    if args.finished_only:
        arms = [a for a in arms if a not in missing]
        print("arms with no finished run (left out): " + (", ".join(missing) or "none"))
        print("arms finished for some seeds only (summarised on those, paired on the common seeds): "
              + (", ".join(f"{a} (seeds {','.join(map(str, d))})" for a, d in partial.items())
                 or "none"))
    results: dict[str, list[dict]] = {a: [] for a in arms}
    t_all = time.perf_counter()
    for seed in seeds:  # seed-major, so a cut-short run still has whole seeds
        for arm in arms:
            if args.finished_only and seed not in done[arm]:
                continue
            arm_base = replace(base, val_every=args.val_every) if arm in ("student-only", "KD") else base
            r = run_arm(arm, seed, arm_base, data, runs)
            results[arm].append(r)
            s = r["student"]
            print(f"seed {seed} {arm:16s} {r['seconds']:6.0f} s  student Dice "
                  + " ".join(f"{g} {s[g]['dice']['mean']:.3f}" for g in REGIONS)
                  + ("" if r["teacher"] is None else "  teacher " + " ".join(
                      f"{g} {r['teacher'][g]['dice']['mean']:.3f}" for g in REGIONS)), flush=True)
    rows, paired = summarise(results)
    print(f"\nKD ablation: cohort {args.cohort} ({args.cases} cases, 25 % held out), "
          f"{len(seeds)} seeds, preset {args.preset}, patch {args.patch}³, "
          f"{args.epochs}×{args.iters} steps; held-out Dice / HD95 (mm), mean ± sd over seeds\n")
    print_table(rows, ["arm", *(f"{g} dice" for g in REGIONS), *(f"{g} hd95" for g in REGIONS), "min/run",
                       "cpu min/run"])
    print("\npaired Δ Dice vs student-only: mean [95 % paired bootstrap] (t [95 % paired t]), "
          "seeds better, verdict:")
    for arm, d in paired.items():
        for g in REGIONS:
            print(f"  {arm:22s} {g}  {format_interval(d[g])}  "
                  f"{d[g]['better_in_seeds']}/{d[g]['n']}  {d[g]['verdict']}")
    total = time.perf_counter() - t_all
    print(f"\nablation wall time: {total / 60:.1f} min (runs reused from {runs} are not re-timed)")
    write_json(args.name, {"args": vars(args), "arms_left_out": missing, "arms_partial_seeds": partial,
                           "base_config": base.to_dict(), "rows": rows,
                           "paired_vs_student_only": paired, "per_seed": results,
                           "wall_seconds": total, "kd_default": asdict(base.kd)})
    atomic_write_text(RESULTS / f"{args.name}.md", markdown(rows, paired))
    plot(rows, results, RESULTS / f"{args.name}.png", RESULTS / f"{args.name}_curve.png", args.iters)
    if paired:
        plot_paired(paired, RESULTS / f"{args.name}_paired.png")
    print(f"wrote {RESULTS / (args.name + '.png')}, {RESULTS / (args.name + '_curve.png')}"
          + (f" and {RESULTS / (args.name + '_paired.png')}" if paired else ""))


if __name__ == "__main__":
    main()
