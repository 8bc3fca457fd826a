#!/usr/bin/env bash
# Regenerates tests/fixtures/gradcam/ (pytorch-grad-cam reference maps for a small
# seeded CNN with an MLP head, and the network itself as mlp_net.onnx).
#
# Uses its own throw-away virtualenv under target/venvs/gradcam (git-ignored,
# made by scripts/lib/venv.sh; pip only runs when the pins are not already installed).
# torch from PyPI pulls its CUDA wheels (about 5 GB); they are needed even on CPU.
# Runs single-threaded (torch.set_num_threads(1), OMP_NUM_THREADS=1).
#
# Usage: scripts/reference/gradcam_reference.sh [output dir, default tests/fixtures/gradcam]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

OUT="${1:-tests/fixtures/gradcam}"

TORCH_VERSION="2.15.0"
TORCHVISION_VERSION="0.29.2"   # grad-cam requires torchvision
GRAD_CAM_VERSION="1.5.7"
NUMPY_VERSION="2.4.6"
ONNX_VERSION="1.23.2"
ONNXRUNTIME_VERSION="1.32.0"

venv_ensure gradcam \
    "torch==${TORCH_VERSION}" \
    "torchvision==${TORCHVISION_VERSION}" \
    "grad-cam==${GRAD_CAM_VERSION}" \
    "numpy==${NUMPY_VERSION}" \
    "onnx==${ONNX_VERSION}" \
    "onnxruntime==${ONNXRUNTIME_VERSION}"

export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TQDM_DISABLE=1
"$VENV_PY" scripts/reference/gradcam_reference.py --out "$OUT"
