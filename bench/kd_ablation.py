"""Does distillation help? Student-only vs KD student (and the teacher) on one synthetic cohort.

For each seed, trains (a) the student alone on FLAIR+T1CE and (b) teacher+student with single-stage
KD, with the same budget, data, split and patch sampling seed, then evaluates on the same held-out
cases. Prints Dice (mean ± std over seeds) for WT/TC/ET and writes bench/results/kd_ablation.json.

    python bench/kd_ablation.py [--seeds 0,1,2] [--cases 16] [--epochs 10] [--iters 20] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

REGIONS = ("WT", "TC", "ET")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--spacing", type=float, default=2.0)
    ap.add_argument("--lambda-bt", type=float, default=None)
    ap.add_argument("--logit-kd", action="store_true", help="KD run adds logit distillation (KL)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny budget, to check the script runs")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.cases, args.epochs, args.iters, args.preset, args.patch = "0", 6, 1, 2, "tiny", 32
    logging.basicConfig(level=logging.WARNING)

    from dataclasses import asdict, replace

    from glioedge.data.synthetic import SyntheticConfig, generate_cohort
    from glioedge.train.config import TrainConfig
    from glioedge.train.run import train_from_folder

    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(tempfile.mkdtemp(prefix="kd_ablation_"))
    data = work / "cohort"
    generate_cohort(data, args.cases, seed=1234, config=SyntheticConfig())
    base = TrainConfig(
        preset=args.preset,
        patch_size=(args.patch,) * 3,
        epochs=args.epochs,
        iters_per_epoch=args.iters,
        val_every=args.epochs,
        val_fraction=0.25,
        target_spacing=(args.spacing,) * 3,
        num_workers=args.workers,
    )
    if args.lambda_bt is not None:
        base = replace(base, kd=replace(base.kd, lambda_bt=args.lambda_bt))
    if args.logit_kd:
        base = replace(base, kd=replace(base.kd, logit_kd=True))
    results: dict[str, list[dict]] = {"student-only": [], "KD student": [], "KD teacher": []}
    seconds: dict[str, float] = {"student-only": 0.0, "KD": 0.0}
    for seed in seeds:
        for mode in ("student-only", "KD"):
            cfg = replace(base, seed=seed, student_only=mode == "student-only")
            t0 = time.perf_counter()
            res = train_from_folder(data, work / f"{mode}-{seed}", cfg)
            seconds[mode] += time.perf_counter() - t0
            if mode == "student-only":
                results["student-only"].append(res.final_metrics["student"])
            else:
                results["KD student"].append(res.final_metrics["student"])
                results["KD teacher"].append(res.final_metrics["teacher"])
            print(f"seed {seed} {mode}: done in {time.perf_counter() - t0:.0f} s", flush=True)

    rows = []
    for name, per_seed in results.items():
        row: dict = {"model": name, "inputs": "t1,t2,flair,t1ce" if "teacher" in name else "flair,t1ce"}
        for region in REGIONS:
            vals = [r[region]["dice"]["mean"] for r in per_seed]
            spread = statistics.pstdev(vals) if len(vals) > 1 else 0.0
            row[f"{region} Dice"] = f"{statistics.mean(vals):.3f} ± {spread:.3f}"
            row[f"{region}_values"] = vals
        rows.append(row)
    print(f"\nKD ablation: {len(seeds)} seed(s), {args.cases} cases, preset {args.preset}, "
          f"patch {args.patch}³, {args.epochs}×{args.iters} steps; Dice on held-out cases\n")
    print_table(rows, ["model", "inputs", *(f"{r} Dice" for r in REGIONS)])
    deltas = {
        region: statistics.mean(
            k[region]["dice"]["mean"] - s[region]["dice"]["mean"]
            for k, s in zip(results["KD student"], results["student-only"], strict=True)
        )
        for region in REGIONS
    }
    print("\nKD student − student-only (mean over seeds): "
          + ", ".join(f"{r} {d:+.3f}" for r, d in deltas.items()))
    print(f"wall time: student-only {seconds['student-only']:.0f} s, KD {seconds['KD']:.0f} s")
    name = "kd_ablation_logit" if args.logit_kd else "kd_ablation"
    write_json(name, {"args": vars(args), "rows": rows, "delta_kd_minus_student_only": deltas,
                               "seconds": seconds, "per_seed": results, "kd": asdict(base.kd)})


if __name__ == "__main__":
    main()
