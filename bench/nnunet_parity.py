"""glioedge side by side with nnU-Net v2: the same weights, the same files, the same numbers?

    python bench/nnunet_parity.py [--cases 2] [--preset small] [--checkpoint DIR] [--threads 1]

One command for the numbers in docs/nnunet_parity.md. On synthetic BraTS-format cases
(``glioedge synth --cohort brats-like``: BraTS-2021 NIfTI folders):

1. **Preprocessing.** glioedge's :func:`glioedge.data.preprocess.preprocess` against nnU-Net's
   ``DefaultPreprocessor`` with its MR plans (``ZScoreNormalization``, ``use_mask_for_norm``):
   crop box, grid shape, per-voxel |Δ|, at the network's spacing (no resampling) and, when
   resampled onto ``--resample-spacing`` (nnU-Net's data order 1 against glioedge's ``linear``,
   order 3 against ``bspline3``).
2. **Inference.** One PlainConvUNet (a glioedge checkpoint, or random He-initialised weights)
   run four ways, mirroring off and on: nnU-Net's ``nnUNetPredictor`` from an nnU-Net results
   folder (:mod:`nnunet_adapter`) as shipped; the same with its float16 logit accumulation made
   float32 (a diagnostic, see docs); glioedge's PyTorch path (``predict_case``'s sliding window,
   :func:`glioedge.train.validation.torch_predictor`) and glioedge's ONNX path (the runtime's
   :func:`glioedge.runtime.inference.run_inference` with :class:`OrtBackend`, what ``Segmenter``
   calls). Probabilities on the original grid: max |Δ| (everywhere and inside the brain) and the
   share of equal labels. With random weights (no ``--checkpoint``) also at a network spacing
   other than the cases' (``--resample-spacing``; nnU-Net data order 1, glioedge ``linear``), so
   the input is resampled and the logits resampled back.
3. **Time and memory.** Each of nnU-Net's predictor (as shipped, and with float32 accumulation)
   and glioedge's ONNX path in its own process, same thread count, on the same case: files →
   labels on the original grid (nnU-Net's label-only path, without probabilities), after one
   warm-up run; wall time and the process's peak RSS.

Prints tables and writes ``bench/results/nnunet_parity.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nnunet_adapter as A
from _common import print_table, write_json

MODALITIES = ("flair", "t1ce")


# -- inputs ---------------------------------------------------------------------------------
def make_cases(out: Path, n: int, cohort: str, spacing: float, seed: int) -> list[Path]:
    """``n`` synthetic BraTS-2021 case folders at ``spacing`` mm (the default grid's field of view)."""
    from glioedge.synth.cohort import cohort_config, generate_cohort

    fov_mm = (192.0, 192.0, 128.0)
    grid = tuple(round(f / spacing) for f in fov_mm)
    return [Path(p) for p in generate_cohort(out, n, seed=seed, config=cohort_config(
        cohort, shape=grid, spacing=(spacing,) * 3))]


def case_files(case: Path, modalities: tuple[str, ...] = MODALITIES) -> list[Path]:
    """The case's image files in channel order (BraTS-2021 names)."""
    return [case / f"{case.name}_{m}.nii.gz" for m in modalities]


def read_case(case: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """glioedge's own reader: modality → ``(i, j, k)`` float32, and the LPS affine."""
    from glioedge.data.brats import discover_cases, load_case

    (files,) = [f for f in discover_cases(case.parent) if f.case_id == case.name]
    loaded = load_case(files)
    return {str(getattr(k, "value", k)): v for k, v in loaded.images.items()}, loaded.affine


def random_checkpoint(out: Path, preset: str, spacing: float, seed: int) -> Path:
    """A student-only glioedge checkpoint with He-initialised weights (no training)."""
    import torch

    from glioedge.data.preprocess import PreprocessParams
    from glioedge.train.checkpoint import CheckpointMeta, save_checkpoint
    from glioedge.train.networks import build_unet
    from glioedge.train.plan import get_preset

    plan = get_preset(preset)
    torch.manual_seed(seed)
    net = build_unet(plan, in_channels=len(MODALITIES), num_classes=4, deep_supervision=True)
    meta = CheckpointMeta(
        plan=plan, num_classes=4, epoch=0,
        preprocess=PreprocessParams(modalities=MODALITIES, target_spacing=(spacing,) * 3).to_dict(),
        teacher_modalities=["t1", "t2", "flair", "t1ce"], student_modalities=list(MODALITIES),
        config={"preset": plan.name}, metrics={}, provenance={"note": "random init (nnunet_parity)"},
        student_only=True,
    )
    return save_checkpoint(out, meta, {"student": net})


def export_options(random: bool) -> Any:
    """FP32 ONNX only. Random He-initialised SMALL/NNUNET networks give logits in the hundreds,
    where ONNX Runtime and PyTorch differ by a few 1e-3 (export's default bound is 1e-3); for
    random weights the bound is relaxed knowingly: this bench measures the ONNX path's
    probabilities against PyTorch and nnU-Net itself."""
    from glioedge.export.pipeline import ExportOptions
    from glioedge.export.verify import Thresholds

    fp32 = Thresholds(max_abs_logit=1e-2) if random else Thresholds()
    return ExportOptions(fp16=False, force=True, fp32=fp32)


# -- the four predictors ---------------------------------------------------------------------
@contextlib.contextmanager
def nnunet_float32_accumulation() -> Iterator[None]:
    """Diagnostic only: nnU-Net's predictor with its ``torch.half`` logit and weight accumulators
    (and its float16 Gaussian) made float32; nothing else of nnU-Net changes."""
    import torch
    from nnunetv2.inference import predict_from_raw_data as P

    class _Torch(types.ModuleType):
        half = torch.float32

        def __getattr__(self, name: str) -> Any:
            return getattr(torch, name)

    saved_torch, saved_gauss = P.torch, P.compute_gaussian
    P.torch = _Torch("torch")
    P.compute_gaussian = lambda *a, **k: saved_gauss(*a, **{**k, "dtype": torch.float32})
    try:
        yield
    finally:
        P.torch, P.compute_gaussian = saved_torch, saved_gauss


class _TorchWindows:
    """glioedge's PyTorch path as ``predict_case`` runs it: numpy sliding window, torch network."""

    name = "torch-predict_case"

    def __init__(self, net: Any) -> None:
        import torch

        from glioedge.train.validation import torch_predictor

        self.predict = torch_predictor(net, torch.device("cpu"))

    def close(self) -> None:
        pass


def glioedge_predict(manifest: Any, backend: Any, case: Path, mirror: bool) -> tuple[np.ndarray, np.ndarray]:
    from glioedge.runtime.inference import run_inference

    images, affine = read_case(case)
    out = run_inference(images, affine, manifest, backend, mirror=mirror, return_probabilities=True)
    assert out.probabilities is not None
    return out.labels, out.probabilities


def compare(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
            brain: np.ndarray) -> dict[str, float]:
    """max |Δp| everywhere and inside the brain, and the share of equal labels."""
    d = np.abs(a[1] - b[1]).max(axis=0)
    return {"max_abs_dp": float(d.max()), "max_abs_dp_brain": float(d[brain].max()),
            "p9999_abs_dp": float(np.quantile(d, 0.9999)),
            "labels_equal": float((a[0] == b[0]).mean())}


def inference_parity(cases: list[Path], checkpoint: Path, bundle: Path, results: Path,
                     threads: int, setting: str = "native", mirrors: tuple[bool, ...] = (False, True),
                     ) -> list[dict[str, Any]]:
    from glioedge.bundle import Bundle
    from glioedge.runtime.backends.ort_backend import OrtBackend
    from glioedge.train.checkpoint import load_student

    net, _ = load_student(checkpoint)
    manifest = Bundle.load(bundle, verify=True).manifest
    ort = OrtBackend.from_bundle(Bundle.load(bundle, verify=True), device="cpu", threads=threads)
    rows = []
    for mirror in mirrors:
        predictor = A.make_predictor(results, mirror=mirror, threads=threads)
        for case in cases:
            images, _ = read_case(case)
            brain = np.any([images[m] != 0 for m in MODALITIES], axis=0)
            nn16 = A.nnunet_predict(predictor, case_files(case))
            with nnunet_float32_accumulation():
                nn32 = A.nnunet_predict(predictor, case_files(case))
            pt = glioedge_predict(manifest, _TorchWindows(net), case, mirror)
            ox = glioedge_predict(manifest, ort, case, mirror)
            for pair, (x, y) in {
                "glioedge ONNX vs nnU-Net": (ox, nn16),
                "glioedge PyTorch vs nnU-Net": (pt, nn16),
                "glioedge ONNX vs nnU-Net fp32-acc": (ox, nn32),
                "glioedge PyTorch vs nnU-Net fp32-acc": (pt, nn32),
                "glioedge ONNX vs glioedge PyTorch": (ox, pt),
            }.items():
                rows.append({"case": case.name, "setting": setting, "mirror": mirror, "pair": pair,
                             **compare(x, y, brain)})
    ort.close()
    return rows


# -- preprocessing -----------------------------------------------------------------------------
def preprocessing_parity(cases: list[Path], net: Any, plan: Any, work: Path, net_spacing: float,
                         resample_spacing: float | None) -> list[dict[str, Any]]:
    from glioedge.data.preprocess import PreprocessParams, preprocess

    settings = [("native", net_spacing, 3, "linear")]
    if resample_spacing:
        settings += [("resampled, order 1 / linear", resample_spacing, 1, "linear"),
                     ("resampled, order 3 / bspline3", resample_spacing, 3, "bspline3")]
    rows = []
    for name, spacing, order, interp in settings:
        res = A.write_results_folder(work / f"pre-{spacing}-{order}", net, plan, MODALITIES,
                                     (spacing,) * 3, data_order=order)
        params = PreprocessParams(modalities=MODALITIES, target_spacing=(spacing,) * 3,
                                  image_interpolation=interp)
        for case in cases:
            images, affine = read_case(case)
            ours = preprocess(images, affine, params)
            theirs, props = A.nnunet_preprocess(res, case_files(case))
            box_nn = [tuple(int(v) for v in b) for b in reversed(props["bbox_used_for_cropping"])]
            row = {"case": case.name, "setting": name, "shape_glioedge": list(ours.data.shape[1:]),
                   "shape_nnunet": list(theirs.shape[1:]),
                   "bbox_equal": box_nn == [tuple(b) for b in ours.record.crop_bbox]}
            if ours.data.shape == theirs.shape:
                d = np.abs(ours.data - theirs)
                row.update(max_abs_d=float(d.max()), mean_abs_d=float(d.mean()),
                           share_over_1e3=float((d > 1e-3).mean()))
            rows.append(row)
    return rows


# -- timing (one process per side) -----------------------------------------------------------
def peak_rss_mib() -> float:
    """This process's peak resident memory, MiB (``VmHWM``: unlike ``ru_maxrss`` it is not
    inherited from the parent across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _time_one(side: str, case: Path, model: Path, threads: int, mirror: bool,
              repeats: int) -> dict[str, Any]:
    """Runs inside a fresh process: load, warm up on the case, then time the whole case
    ``repeats`` times (``wall_s`` is the fastest: the least disturbed by a busy machine)."""
    if side.startswith("nnunet"):
        predictor = A.make_predictor(model, mirror=mirror, threads=threads)
        if side == "nnunet-fp32acc":
            stack = contextlib.ExitStack()
            stack.enter_context(nnunet_float32_accumulation())

        def run() -> np.ndarray:
            return A.nnunet_labels(predictor, case_files(case))
    else:
        from glioedge.bundle import Bundle
        from glioedge.runtime.backends.ort_backend import OrtBackend
        from glioedge.runtime.inference import run_inference

        bundle = Bundle.load(model, verify=True)
        backend = OrtBackend.from_bundle(bundle, device="cpu", threads=threads)

        def run() -> np.ndarray:
            images, affine = read_case(case)
            return run_inference(images, affine, bundle.manifest, backend, mirror=mirror).labels
    run()
    rss_before = peak_rss_mib()
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        labels = run()
        walls.append(time.perf_counter() - t0)
    return {"side": side, "mirror": mirror, "wall_s": min(walls), "wall_median_s": float(np.median(walls)),
            "walls_s": walls, "peak_rss_mib": peak_rss_mib(), "peak_rss_before_timed_run_mib": rss_before,
            "tumour_voxels": int((labels > 0).sum())}


def timing(case: Path, results: Path, bundle: Path, threads: int, mirror: bool,
           repeats: int) -> list[dict[str, Any]]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "nnUNet_def_n_proc": str(threads)}
    rows = []
    for side, model in (("nnunet", results), ("nnunet-fp32acc", results), ("glioedge-onnx", bundle)):
        proc = subprocess.run([sys.executable, __file__, "--_time", side, "--_case", str(case),
                               "--_model", str(model), "--threads", str(threads),
                               "--repeats", str(repeats)]
                              + (["--_mirror"] if mirror else []),
                              capture_output=True, text=True, env=env, check=False)
        if proc.returncode:
            raise RuntimeError(f"timing {side} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    nn = rows[0]["wall_s"]
    for r in rows:
        r["speed_vs_nnunet"] = nn / r["wall_s"]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=2)
    ap.add_argument("--cohort", default="brats-like")
    ap.add_argument("--spacing", type=float, default=2.0, help="case grid and network spacing, mm")
    ap.add_argument("--resample-spacing", type=float, default=2.5,
                    help="also compare preprocessing, and inference without mirroring, with the "
                         "network at this spacing (0: skip)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a glioedge checkpoint (default: random He-initialised weights)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--timing-only", action="store_true", help="skip the parity tables")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per side (after a warm-up)")
    ap.add_argument("--timing-mirror", action="store_true", help="time with mirroring (8x slower)")
    ap.add_argument("--work", type=Path, default=None, help="keep the cases and models here")
    ap.add_argument("--name", default="nnunet_parity")
    ap.add_argument("--_time", help=argparse.SUPPRESS)
    ap.add_argument("--_case", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_mirror", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._time:
        print(json.dumps(_time_one(args._time, args._case, args._model, args.threads, args._mirror,
                                   args.repeats)))
        return 0

    import torch

    from glioedge.export.pipeline import export_bundle
    from glioedge.train.checkpoint import load_student

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="nnunet-parity-"))
    cases = make_cases(work / "cases", args.cases, args.cohort, args.spacing, seed=1234 + args.seed)
    ckpt = args.checkpoint or random_checkpoint(work / "checkpoint", args.preset, args.spacing, args.seed)
    net, meta = load_student(ckpt)
    spacing = tuple(meta.preprocess["target_spacing"])
    bundle = export_bundle(ckpt, work / "bundle", export_options(random=args.checkpoint is None)).root
    results = A.write_results_folder(work / "nnunet_results", net, meta.plan, MODALITIES, spacing)

    print(f"nnU-Net parity: {len(cases)} {args.cohort} cases at {args.spacing} mm, plan "
          f"{meta.plan.name} (patch {meta.plan.patch_size}), weights: "
          f"{'checkpoint ' + str(ckpt) if args.checkpoint else 'random He init'}, {args.threads} thread(s)\n")
    pre: list[dict[str, Any]] = []
    inf: list[dict[str, Any]] = []
    if not args.timing_only:
        pre = preprocessing_parity(cases, net, meta.plan, work, spacing[0], args.resample_spacing or None)
        print_table(pre, ["case", "setting", "shape_glioedge", "shape_nnunet", "bbox_equal", "max_abs_d",
                          "mean_abs_d", "share_over_1e3"])
        print()
        inf = inference_parity(cases, ckpt, bundle, results, args.threads,
                               setting=f"native ({spacing[0]} mm)")
        if args.resample_spacing and not args.checkpoint:
            # the same weights with a network grid of another spacing: nnU-Net resamples the input
            # there and the logits back; so must glioedge
            rs = args.resample_spacing
            ckpt2 = random_checkpoint(work / "checkpoint-resampled", args.preset, rs, args.seed)
            bundle2 = export_bundle(ckpt2, work / "bundle-resampled", export_options(random=True)).root
            net2, _ = load_student(ckpt2)
            results2 = A.write_results_folder(work / "nnunet_results-resampled", net2, meta.plan, MODALITIES,
                                              (rs,) * 3, data_order=1)
            inf += inference_parity(cases, ckpt2, bundle2, results2, args.threads,
                                    setting=f"resampled ({rs} mm, order 1)", mirrors=(False,))
        print_table(inf, ["case", "setting", "mirror", "pair", "max_abs_dp", "max_abs_dp_brain",
                          "p9999_abs_dp", "labels_equal"])
    times: list[dict[str, Any]] = []
    if not args.no_timing:
        print()
        times = timing(cases[0], results, bundle, args.threads, args.timing_mirror, args.repeats)
        print_table(times, ["side", "mirror", "wall_s", "wall_median_s", "speed_vs_nnunet", "peak_rss_mib",
                            "peak_rss_before_timed_run_mib"])
    write_json(args.name, {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                 if not k.startswith("_")},
        "load_average": os.getloadavg(), "plan": meta.plan.to_dict(),
        "preprocessing": pre, "inference": inf, "timing": times,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
