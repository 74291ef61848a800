"""``glioedge demo``: the product end to end on built-in defaults, on a CPU, in minutes.

Synthesise a small BraTS-like cohort → train a small teacher+student with single-stage KD →
export the student as a verified model bundle (when the export extra is installed) → report.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from glioedge._optional import available

log = logging.getLogger(__name__)


def demo_config(quick: bool) -> tuple[dict, object]:
    """The demo's cohort and training budget (quick: the smallest that still exercises every path)."""
    from glioedge.train.config import TrainConfig

    cohort = {"n_cases": 6 if quick else 12, "seed": 0}
    config = TrainConfig(
        preset="tiny" if quick else "small",
        patch_size=(32, 32, 32) if quick else (48, 48, 48),
        epochs=2 if quick else 8,
        iters_per_epoch=3 if quick else 12,
        val_every=2 if quick else 4,
        val_fraction=0.34 if quick else 0.25,
        target_spacing=(2.0, 2.0, 2.0),
        num_workers=0 if quick else 2,
    )
    return cohort, config


def run_demo(out: Path, quick: bool = False) -> int:
    """Run the demo into ``out`` and print what it produced. Returns an exit code."""
    from glioedge.data.synthetic import SyntheticConfig, generate_cohort
    from glioedge.train.run import train_from_folder

    out = Path(out)
    t0 = time.perf_counter()
    cohort, config = demo_config(quick)
    data_dir = out / "brats_synthetic"
    generate_cohort(data_dir, cohort["n_cases"], seed=cohort["seed"], config=SyntheticConfig())
    log.info("synthesised %d cases in %s", cohort["n_cases"], data_dir)
    result = train_from_folder(data_dir, out / "run", config)
    summary: dict = {"data": str(data_dir), "checkpoint": str(result.checkpoint), "val": result.final_metrics}
    if available("onnx") and available("onnxruntime"):
        from glioedge.export.pipeline import export_bundle

        bundle = export_bundle(result.checkpoint, out / "bundle")
        summary["bundle"] = str(bundle.root)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    lines = ["", "glioedge demo finished in {seconds} s".format(**summary)]
    lines.append(f"  synthetic BraTS cohort : {summary['data']}")
    lines.append(f"  student checkpoint     : {summary['checkpoint']}")
    if "bundle" in summary:
        lines.append(f"  model bundle           : {summary['bundle']}")
    for name, metrics in summary["val"].items():
        dice = "  ".join(f"{r} {metrics[r]['dice']['mean']:.3f}" for r in ("WT", "TC", "ET") if r in metrics)
        lines.append(f"  validation Dice {name:<8}: {dice}")
    print("\n".join(lines))


__all__ = ["demo_config", "run_demo"]
