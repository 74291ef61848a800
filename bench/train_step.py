"""Time and peak memory per training step: KD (teacher + student + Barlow Twins) vs student-only.

Same plan, patch and batch for both; each mode runs in its own process so that peak memory is its
own. Prints a table with the KD / student-only ratios and writes bench/results/train_step.json.

    python bench/train_step.py [--preset small] [--patch 64] [--batch 2] [--steps 6]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib, print_table, write_json


def _measure(mode: str, preset: str, patch: int, batch: int, steps: int, queue: mp.Queue) -> None:
    import torch

    from glioedge.train.config import TrainConfig
    from glioedge.train.plan import get_preset
    from glioedge.train.trainer import Trainer

    torch.set_num_threads(torch.get_num_threads())
    config = TrainConfig(preset=preset, student_only=mode == "student-only", batch_size=batch)
    plan = get_preset(preset).with_patch((patch,) * 3)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trainer = Trainer(config, plan, {}, device)
    g = torch.Generator().manual_seed(0)
    n_ch = len(config.input_modalities)
    batch_data = {
        "image": torch.randn(batch, n_ch, patch, patch, patch, generator=g),
        "label": torch.randint(0, 4, (batch, 1, patch, patch, patch), generator=g),
    }
    rss_before = peak_rss_mib()
    trainer.train_step(batch_data)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        trainer.train_step(batch_data)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in trainer.model.parameters())
    queue.put(
        {
            "mode": mode,
            "device": device,
            "step_s_median": statistics.median(times),
            "step_s_min": min(times),
            "peak_rss_mib": peak_rss_mib(),
            "rss_growth_mib": peak_rss_mib() - rss_before,
            "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
            "parameters": params,
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for mode in ("student-only", "kd"):
        q: mp.Queue = ctx.Queue()
        p = ctx.Process(target=_measure, args=(mode, args.preset, args.patch, args.batch, args.steps, q))
        p.start()
        rows.append(q.get())
        p.join()
    base, kd = rows
    ratio = {
        "mode": "kd / student-only",
        "step_s_median": kd["step_s_median"] / base["step_s_median"],
        "peak_rss_mib": kd["peak_rss_mib"] / base["peak_rss_mib"],
        "parameters": kd["parameters"] / base["parameters"],
    }
    if kd["cuda_peak_mib"]:
        ratio["cuda_peak_mib"] = kd["cuda_peak_mib"] / base["cuda_peak_mib"]
    print(f"\ntraining step, preset {args.preset}, patch {args.patch}³, batch {args.batch}\n")
    cols = ["mode", "device", "step_s_median", "step_s_min", "peak_rss_mib", "cuda_peak_mib", "parameters"]
    print_table([*rows, ratio], cols)
    write_json("train_step", {"args": vars(args), "rows": rows, "ratio": ratio})


if __name__ == "__main__":
    main()
