"""The GPU probe's parts, one per process (``bench/gpu_probe.sh`` runs them, each under its own
timeout). Every part rewrites ``<out>/<part>.json`` after each measurement, so a part killed by
its timeout leaves what it had measured (``"status": "running"`` then tells it was cut short).

    python bench/gpu_probe.py student|kd_step|segmenter|engines --out DIR [--dry-run]
    python bench/gpu_probe.py summary --out DIR        # table of all parts + summary.json

Parts (the issue's four):
  student    the nnU-Net BraTS student (6 stages 32→320, 2 ch, 4 classes) on 128³ windows:
             FP32 (TF32), + cudnn.benchmark, FP16 autocast, + CUDA graph, + torch.compile;
             ms per window, peak GPU memory, max |Δlogit| and argmax agreement vs strict FP32.
  kd_step    a full KD training step (teacher 4 ch + student 2 ch + Barlow Twins), AMP, 128³,
             batch 2, vs a student-only step: s/step, peak memory, ratio.
  segmenter  Segmenter with the torch back-end on CUDA (skull-stripped mode) on a synthetic
             240×240×155 case from volumes, after one warm-up: stage timings, peak memory.
  engines    the same window through TensorRT and/or onnxruntime-gpu when importable.
``--dry-run``: tiny plan, 32³ windows, small case, CPU allowed: seconds, for CI.
The networks are randomly initialised: Δlogit/agreement measure numerics, not accuracy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARTS = ("student", "kd_step", "segmenter", "engines")


class Recorder:
    """``<out>/<part>.json``, rewritten atomically after every row."""

    def __init__(self, out: Path, part: str, config: dict[str, Any]) -> None:
        self.path = Path(out) / f"{part}.json"
        self.data: dict[str, Any] = {"part": part, "status": "running", "config": config, "rows": []}
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)

    def row(self, **values: Any) -> None:
        self.data["rows"].append(values)
        print(json.dumps(values, default=str), flush=True)
        self._write()

    def done(self, status: str = "done", **extra: Any) -> None:
        self.data.update(status=status, **extra)
        self._write()


def _sizes(dry: bool) -> dict[str, Any]:
    if dry:
        return {"preset": "tiny", "patch": 16, "windows": 2, "iters": 1, "warmup": 1,
                "case_shape": (40, 40, 24), "steps": 1}
    return {"preset": "nnunet", "patch": 128, "windows": 2, "iters": 20, "warmup": 3,
            "case_shape": (240, 240, 155), "steps": 5}


def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: Any) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _time(fn: Callable[[], Any], device: Any, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _student(preset: str, patch: int) -> Any:
    from glioedge.train.networks import build_unet
    from glioedge.train.plan import get_preset

    plan = get_preset(preset).with_patch((patch,) * 3)
    return build_unet(plan, 2, 4, deep_supervision=False).eval()


# ------------------------------------------------------------------------------------ parts
def part_student(out: Path, dry: bool) -> None:
    import torch

    s = _sizes(dry)
    device = _device()
    rec = Recorder(out, "student", {**s, "device": str(device), "torch": torch.__version__})
    torch.manual_seed(0)
    net = _student(s["preset"], s["patch"]).to(device)
    x = torch.randn(s["windows"], 2, *(s["patch"],) * 3, device=device)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.inference_mode():
        reference = net(x).float()
    half = torch.float16 if device.type == "cuda" else torch.bfloat16  # CPU autocast: bfloat16

    def variant(name: str, call: Callable[[], Any], **flags: Any) -> None:
        _reset_peak(device)
        with torch.inference_mode():
            times = _time(call, device, s["warmup"], s["iters"])
            y = call().float()
        delta = float((y - reference).abs().max())
        agree = float((y.argmax(1) == reference.argmax(1)).float().mean())
        rec.row(variant=name, ms_per_window=1e3 * statistics.median(times) / s["windows"],
                peak_gpu_mib=_peak_mib(device), max_abs_dlogit=delta, argmax_agreement=agree, **flags)

    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.benchmark = False
    variant("fp32-tf32", lambda: net(x), cudnn_benchmark=False)
    torch.backends.cudnn.benchmark = True
    variant("fp32-tf32", lambda: net(x), cudnn_benchmark=True)

    def amp() -> Any:
        with torch.autocast(device.type, dtype=half):
            return net(x)

    variant(f"{str(half).split('.')[-1]}-autocast", amp, cudnn_benchmark=True)
    if device.type == "cuda":
        static_x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(3):
                with torch.autocast("cuda", dtype=torch.float16, cache_enabled=False):
                    net(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # autocast's weight-cast cache must be off while capturing (PyTorch's CUDA-graph notes)
        with torch.no_grad(), torch.cuda.graph(graph), \
                torch.autocast("cuda", dtype=torch.float16, cache_enabled=False):
            static_y = net(static_x)

        def replay() -> Any:
            graph.replay()
            return static_y

        variant("float16-autocast+cuda-graph", replay, cudnn_benchmark=True)
        compiled = torch.compile(net)

        def comp() -> Any:
            with torch.autocast("cuda", dtype=torch.float16):
                return compiled(x)

        t0 = time.perf_counter()
        with torch.inference_mode():
            comp()  # compilation
        rec.data["compile_s"] = time.perf_counter() - t0
        variant("float16-autocast+torch.compile", comp, cudnn_benchmark=True)
    else:
        rec.data["skipped"] = {"cuda-graph": "CUDA only", "torch.compile": "CUDA only in this probe"}
    rec.done()


def part_kd_step(out: Path, dry: bool) -> None:
    import torch

    from glioedge.train.config import TrainConfig
    from glioedge.train.plan import get_preset
    from glioedge.train.trainer import Trainer

    s = _sizes(dry)
    device = _device()
    batch = 2
    rec = Recorder(out, "kd_step", {**s, "batch": batch, "device": str(device), "amp": device.type == "cuda"})
    plan = get_preset(s["preset"]).with_patch((s["patch"],) * 3)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    medians = {}
    for mode in ("student-only", "kd"):
        config = TrainConfig(preset=s["preset"], student_only=mode == "student-only", batch_size=batch,
                             amp=True)
        trainer = Trainer(config, plan, {}, device)
        g = torch.Generator().manual_seed(0)
        n_ch = len(config.input_modalities)
        data = {"image": torch.randn(batch, n_ch, *(s["patch"],) * 3, generator=g),
                "label": torch.randint(0, 4, (batch, 1, *(s["patch"],) * 3), generator=g)}
        if device.type == "cuda":
            data = {k: v.pin_memory() for k, v in data.items()}
        _reset_peak(device)
        times = _time(lambda trainer=trainer, data=data: trainer.train_step(data), device, 1, s["steps"])
        medians[mode] = statistics.median(times)
        rec.row(mode=mode, s_per_step=medians[mode], peak_gpu_mib=_peak_mib(device),
                parameters=sum(p.numel() for p in trainer.model.parameters()))
        del trainer
    rec.done(kd_over_student=medians["kd"] / medians["student-only"])


def _torch_bundle(root: Path, preset: str, patch: int) -> Any:
    """A bundle for the torch back-end: a real manifest; its ``model.onnx`` is a placeholder
    (the torch back-end runs the network itself and never reads it)."""
    from glioedge import __version__
    from glioedge.bundle import (
        Bundle,
        Manifest,
        PostprocessParams,
        compute_bundle_id,
        sha256_file,
        write_manifest,
    )
    from glioedge.data.labels import CLASS_NAMES, label_mapping
    from glioedge.data.preprocess import PreprocessParams
    from glioedge.train.plan import get_preset

    root.mkdir(parents=True, exist_ok=True)
    (root / "model.onnx").write_bytes(b"placeholder: gpu_probe measures the torch back-end")
    plan = get_preset(preset).with_patch((patch,) * 3)
    fields = {
        "glioedge_version": __version__, "modalities": ("flair", "t1ce"),
        "preprocess": PreprocessParams(modalities=("flair", "t1ce"),
                                       target_spacing=(1.0, 1.0, 1.0)).to_dict(),
        "patch_size": (patch,) * 3, "num_classes": 4, "class_names": tuple(CLASS_NAMES),
        "label_convention": "brats2021",
        "label_map": {str(i): f for f, i in label_mapping("brats2021").items()},
        "network_plan": plan.to_dict(),
        "onnx": {"file": "model.onnx", "fp16_file": None, "input_name": "image", "output_name": "logits"},
        "exporters": {}, "provenance": {"note": "gpu_probe: random weights"}, "verification": {},
        "postprocess": PostprocessParams().to_dict(),
    }
    files = {"model.onnx": sha256_file(root / "model.onnx")}
    manifest = Manifest(bundle_id=compute_bundle_id(files["model.onnx"], fields), files=files, **fields)
    write_manifest(root, manifest)
    return Bundle.load(root, verify=True)


def part_segmenter(out: Path, dry: bool) -> None:
    import torch

    from glioedge.dicom_io import Volume
    from glioedge.runtime.backends.torch_backend import TorchBackend
    from glioedge.runtime.segmenter import Segmenter, SegmenterConfig
    from glioedge.synth.cohort import SyntheticConfig, make_case

    s = _sizes(dry)
    device = _device()
    rec = Recorder(out, "segmenter", {**s, "device": str(device)})
    case = make_case(3, SyntheticConfig(shape=tuple(s["case_shape"]), spacing=(1.0, 1.0, 1.0)))
    volumes = {m.value: Volume(case.images[m], case.affine) for m in case.images}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = _torch_bundle(Path(tmp) / "bundle", s["preset"], s["patch"])
        torch.manual_seed(0)
        net = _student(s["preset"], s["patch"])
        for fp16 in (False, True):
            if fp16 and device.type != "cuda":
                rec.data.setdefault("skipped", {})["fp16"] = "CUDA only"
                continue
            backend = TorchBackend(net, str(device), fp16=fp16)
            seg = Segmenter(bundle, backend, SegmenterConfig(brain_mask="skull-stripped"), device=str(device))
            seg.segment_volumes(volumes)  # warm-up (cuDNN autotuning, allocator)
            _reset_peak(device)
            _sync(device)
            t0 = time.perf_counter()
            result = seg.segment_volumes(volumes)
            _sync(device)
            wall = time.perf_counter() - t0
            rec.row(backend=backend.name, wall_s=wall, peak_gpu_mib=_peak_mib(device),
                    timings={k: round(v, 4) for k, v in result.timings.items()},
                    wt_ml=result.volumes_ml.get("WT"))
    rec.done()


def part_engines(out: Path, dry: bool) -> None:
    import importlib.util

    import numpy as np
    import torch

    s = _sizes(dry)
    rec = Recorder(out, "engines", dict(s))
    have_trt = importlib.util.find_spec("tensorrt") is not None
    providers: list[str] = []
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        providers = list(onnxruntime.get_available_providers())
    ort_gpu = "CUDAExecutionProvider" in providers
    if not (have_trt or ort_gpu or dry):
        rec.done("skipped", reason="neither tensorrt nor onnxruntime-gpu is importable here "
                                   f"(onnxruntime providers: {providers or 'none'})")
        return
    if importlib.util.find_spec("onnx") is None:
        rec.done("skipped", reason="the onnx package is missing (needed to export the window model)")
        return
    from glioedge.export.fp16 import convert_to_mixed_fp16
    from glioedge.export.onnx_export import export_onnx

    torch.manual_seed(0)
    net = _student(s["preset"], s["patch"])
    x = np.random.default_rng(0).normal(size=(s["windows"], 2, *(s["patch"],) * 3)).astype(np.float32)
    with torch.inference_mode():
        reference = net(torch.from_numpy(x)).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        fp16 = Path(tmp) / "model.fp16.onnx"
        export_onnx(net, 2, (s["patch"],) * 3, fp32)
        convert_to_mixed_fp16(fp32, fp16)

        def measure(name: str, run: Callable[[np.ndarray], np.ndarray]) -> None:
            times = _time(lambda: run(x), torch.device("cpu"), s["warmup"], s["iters"])
            y = run(x)
            rec.row(engine=name, ms_per_window=1e3 * statistics.median(times) / s["windows"],
                    max_abs_dlogit=float(np.abs(y - reference).max()),
                    argmax_agreement=float((y.argmax(1) == reference.argmax(1)).mean()))

        if providers:
            from glioedge.runtime.backends.ort_backend import OrtBackend
            from glioedge.runtime.backends.ort_providers import segmentation_providers

            device = "cuda" if ort_gpu else "cpu"
            chosen = segmentation_providers(providers, device, channels=2, patch=(s["patch"],) * 3,
                                            cache_dir=Path(tmp) / "ort-cache")
            backend = OrtBackend(fp16 if ort_gpu else fp32, chosen)
            measure(backend.name, backend.predict)
        if have_trt:
            try:
                from glioedge.gpu.trt_build import EngineSpec, build_engine
                from glioedge.runtime.backends.tensorrt_backend import TensorRTBackend

                spec = EngineSpec(in_channels=2, patch_size=(s["patch"],) * 3,
                                  batch_profile=(1, s["windows"], max(4, s["windows"])),
                                  timing_cache_dir=Path(tmp))
                t0 = time.perf_counter()
                build_engine(fp32, fp16, Path(tmp) / "model.engine", spec)
                rec.data["trt_build_s"] = time.perf_counter() - t0
                trt_backend = TensorRTBackend(Path(tmp) / "model.engine", "cuda:0")
                measure(trt_backend.name, trt_backend.predict)
                trt_backend.close()
            except Exception as exc:  # report, do not hide: the probe's job is to find this
                rec.data["tensorrt_error"] = f"{type(exc).__name__}: {exc}"
                rec.done("failed")
                raise
    rec.done()


def summary(out: Path) -> int:
    """Print every part's rows and write ``summary.json`` (exit 1 when a part did not finish)."""
    rcs = {}
    rc_file = Path(out) / "rcs.txt"
    if rc_file.is_file():
        for line in rc_file.read_text().split("\n"):
            if line.strip():
                part, rc = line.split()
                rcs[part] = int(rc)
    parts = {}
    ok = True
    for part in PARTS:
        path = Path(out) / f"{part}.json"
        data = json.loads(path.read_text()) if path.is_file() else {"status": "missing", "rows": []}
        rc = rcs.get(part)
        if rc in (124, 137):
            data["status"] = f"killed by its timeout (partial: {len(data['rows'])} rows)"
        parts[part] = {**data, "rc": rc}
        ok &= data["status"] in ("done", "skipped") and rc in (0, None)
        print(f"\n== {part}: {data['status']} (rc {rc})")
        for row in data["rows"]:
            print("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items()))
        for key in ("kd_over_student", "compile_s", "trt_build_s", "reason", "skipped", "tensorrt_error"):
            if key in data:
                print(f"  {key}: {_fmt(data[key])}")
    (Path(out) / "summary.json").write_text(json.dumps(parts, indent=1, default=str))
    print(f"\nwrote {Path(out) / 'summary.json'}")
    return 0 if ok else 1


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=[*PARTS, "summary"])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dry-run", action="store_true", help="tiny sizes, CPU allowed (seconds)")
    a = p.parse_args()
    if a.part == "summary":
        return summary(a.out)
    if a.dry_run:
        import torch

        torch.set_num_threads(min(2, torch.get_num_threads()))
    {"student": part_student, "kd_step": part_kd_step, "segmenter": part_segmenter,
     "engines": part_engines}[a.part](a.out, a.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
