#!/usr/bin/env bash
# Regenerates tests/data/gradcam/ (pytorch-grad-cam reference maps for a small
# seeded CNN with an MLP head, and the network itself as mlp_net.onnx).
#
# Uses its own throw-away virtualenv under target/venvs/gradcam (git-ignored).
# torch from PyPI pulls its CUDA wheels (about 5 GB); they are needed even on CPU.
# Runs single-threaded (torch.set_num_threads(1), OMP_NUM_THREADS=1).
#
# Usage: scripts/reference/gradcam_reference.sh [output dir, default tests/data/gradcam]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="target/venvs/gradcam"
OUT="${1:-tests/data/gradcam}"

TORCH_VERSION="2.15.0"
TORCHVISION_VERSION="0.29.2"   # grad-cam requires torchvision
GRAD_CAM_VERSION="1.5.7"
NUMPY_VERSION="2.4.6"
ONNX_VERSION="1.23.2"
ONNXRUNTIME_VERSION="1.32.0"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet \
    "torch==${TORCH_VERSION}" \
    "torchvision==${TORCHVISION_VERSION}" \
    "grad-cam==${GRAD_CAM_VERSION}" \
    "numpy==${NUMPY_VERSION}" \
    "onnx==${ONNX_VERSION}" \
    "onnxruntime==${ONNXRUNTIME_VERSION}"

export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TQDM_DISABLE=1
"$VENV/bin/python" scripts/reference/gradcam_reference.py --out "$OUT"
