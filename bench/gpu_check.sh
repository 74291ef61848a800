#!/usr/bin/env bash
# GPU check of the export path, for the lent GPU machine (fits in 10 minutes):
#   1. what is there: GPU, driver, compute capability, TensorRT, torch, onnxruntime;
#   2. the TensorRT tests (engine build from the bundle's ONNX, parity, first-use cache);
#   3. bench/export_parity.py with --engine: ORT FP32/FP16 and TensorRT FP16 vs PyTorch FP32,
#      times on the same window batch.
# Usage (repo root):  bash bench/gpu_check.sh [preset]     (preset: tiny|small|nnunet, default small)
# Results go to $OUT (device tool) or bench/results/. Without TensorRT or a GPU the TensorRT steps
# say why they are skipped; the exit status is 1 when any step fails (0 only when all passed).
# bench/gpu_probe.sh is the broader GPU measurement (torch student, KD step, Segmenter, engines).
set -uo pipefail
cd "$(dirname "$0")/.."
PRESET="${1:-small}"
RESULTS="${OUT:-bench/results}"
mkdir -p "$RESULTS"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
# carried wheels (e.g. dynamic-network-architectures, tensorrt) if any: see .library/device/README
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
start=$(date +%s)
fail=0

echo "== environment"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader \
  || echo "nvidia-smi: no NVIDIA GPU visible"
"$PY" - <<'PY'
import importlib
for mod in ("torch", "onnx", "onnxruntime", "tensorrt", "dynamic_network_architectures"):
    try:
        m = importlib.import_module(mod)
        print(f"{mod:32s} {getattr(m, '__version__', 'present')}")
    except ImportError as exc:
        print(f"{mod:32s} MISSING ({exc})")
from glioedge.export.tensorrt import tensorrt_unavailable_reason
reason = tensorrt_unavailable_reason()
print("TensorRT path:", "available" if reason is None else f"skipped: {reason}")
PY
[ "$?" -eq 0 ] || fail=1

echo "== TensorRT tests"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests/export/test_tensorrt.py -rs 2>&1 \
  | tee "$RESULTS/gpu_check_pytest.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "TensorRT tests FAILED"; fail=1; }

echo "== export parity (${PRESET}) with --engine"
timeout 300 "$PY" bench/export_parity.py --preset "$PRESET" --engine --repeats 5 \
  --out "$RESULTS/export_parity_gpu.json" 2>&1 | tee "$RESULTS/gpu_check_bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "export parity FAILED"; fail=1; }

echo "== done in $(( $(date +%s) - start )) s: $([ "$fail" -eq 0 ] && echo all passed || echo FAILED)"
exit "$fail"
