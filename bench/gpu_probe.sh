#!/usr/bin/env bash
# The GPU probe: one run, under 9 minutes, results as JSON (issue 14).
#   bash bench/gpu_probe.sh [--dry-run] [--out DIR]
# Four parts (bench/gpu_probe.py: student window, KD step, Segmenter end to end, TensorRT /
# onnxruntime-gpu when importable), each in its own process under its own timeout; a part killed
# by its timeout leaves its partial JSON. DIR (default $OUT/gpu_probe, else bench/results/gpu_probe)
# gets <part>.json, rcs.txt and summary.json; a table is printed at the end.
# Exit status: 0 when every part finished (or was skipped with a reason), 1 otherwise.
# --dry-run: tiny sizes on whatever device there is (CPU in CI), seconds per part.
# Wheels carried in .whl/ (see bench/README.md) are installed first, into /tmp/glioedge-site.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=""
OUTDIR="${OUT:+$OUT/gpu_probe}"
OUTDIR="${OUTDIR:-bench/results/gpu_probe}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY="--dry-run" ;;
    --out) OUTDIR="$2"; shift ;;
    *) echo "usage: bash bench/gpu_probe.sh [--dry-run] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUTDIR"
rm -f "$OUTDIR"/rcs.txt "$OUTDIR"/*.json
PY="${PYTHON:-python3}"
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/glioedge-site .whl/*.whl || { echo "wheel install failed" >&2; exit 1; }
  export PYTHONPATH="/tmp/glioedge-site:${PYTHONPATH:-}"
fi
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
start=$(date +%s)

echo "== environment"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader 2>/dev/null \
  || echo "nvidia-smi: no NVIDIA GPU visible"
timeout 30 "$PY" -m glioedge.cli doctor 2>&1 | tee "$OUTDIR/doctor.txt"

# part:seconds (full run: 140+140+140+80 s of parts, well under 9 minutes with start-up)
if [ -n "$DRY" ]; then
  PARTS="student:120 kd_step:120 segmenter:180 engines:120"
else
  PARTS="student:140 kd_step:140 segmenter:140 engines:80"
fi
for item in $PARTS; do
  part="${item%%:*}"; limit="${item##*:}"
  echo "== $part (timeout ${limit} s)"
  timeout -k 5 "$limit" "$PY" bench/gpu_probe.py "$part" --out "$OUTDIR" $DRY 2>&1 \
    | tee "$OUTDIR/$part.log"
  rc=${PIPESTATUS[0]}
  echo "$part $rc" >> "$OUTDIR/rcs.txt"
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "   $part: killed by its timeout; partial JSON kept"
done

echo "== summary ($(( $(date +%s) - start )) s)"
"$PY" bench/gpu_probe.py summary --out "$OUTDIR"
