#!/usr/bin/env bash
# The declared dependency floors, tested: resolve every direct dependency of the core and of
# [runtime] at the LOWEST version pyproject.toml allows (uv's --resolution lowest-direct), check
# that each resolved version IS the declared floor (scripts/lowest_deps.py), install that set into
# a separate venv and run the tests that exercise it: DICOM intake and DICOM-SEG writing
# (pydicom, highdicom, SimpleITK, the JPEG decoders, numpy/scipy) and the daemon's unit tests
# (TOML config, inbox scanning and its digest cache, job store, health/status page, /metrics
# through prometheus_client). The tests
# that run a model need torch and an exported bundle and stay with the main venv: a targeted
# subset, by design.
#
# The venv runs the OLDEST supported Python (3.11, requires-python): uv finds it, or downloads a
# standalone build when the machine has another one (Debian 13 ships 3.13).
#
# Usage: scripts/lowest_deps.sh [VENV]   (default .venv-lowest; VENV-tools holds uv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-lowest}
start=$(date +%s)
tools="$venv-tools"
[ -x "$tools/bin/uv" ] || { python3 -m venv "$tools" &&
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check uv; }
uv="$tools/bin/uv"
[ -x "$venv/bin/python" ] || "$uv" venv --quiet --python 3.11 "$venv"
lock=$(mktemp)
trap 'rm -f "$lock"' EXIT
"$uv" pip compile --quiet pyproject.toml --extra runtime --resolution lowest-direct \
  --python "$venv/bin/python" --no-header --no-annotate -o "$lock"
"$venv/bin/python" scripts/lowest_deps.py "$lock" runtime
echo "lowest declared versions resolved:"; sed 's/^/  /' "$lock"
"$uv" pip install --quiet --python "$venv/bin/python" -r "$lock" "pytest>=8" "pytest-timeout>=2.2"
"$uv" pip install --quiet --python "$venv/bin/python" --no-deps -e .
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/dicom_io tests/runtime/daemon/test_units.py \
  tests/runtime/daemon/test_scale.py \
  tests/runtime/daemon/test_hangs.py tests/runtime/daemon/test_metrics_exposition.py
echo "lowest-deps check finished in $(( $(date +%s) - start )) s"
