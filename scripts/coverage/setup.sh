#!/usr/bin/env bash
# Makes (or checks) the two pinned virtualenvs of the exporter coverage sweep:
#
#   target/venvs/coverage-torch   torch + torchvision + timm, both ONNX exporters
#                                 (dynamo via onnxscript, TorchScript), onnxruntime
#   target/venvs/coverage-keras   TensorFlow (CPU) + Keras 3 + tf2onnx, onnxruntime
#
# pip only runs when a pin is not already installed (scripts/lib/venv.sh).
# The torch wheel from PyPI pulls its CUDA wheels (about 5 GB); they are needed
# even on CPU. Needs network access to PyPI, nothing else.
#
# Usage: scripts/coverage/setup.sh            (both venvs)
#        scripts/coverage/setup.sh torch|keras (one of them)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

WHICH="${1:-all}"

# Shared pins.
ONNX_VERSION="1.23.2"
ONNXRUNTIME_VERSION="1.32.0"
NUMPY_VERSION="2.4.6"
PILLOW_VERSION="13.0.0"

# torch side. torchvision 0.29.2 is the newest on PyPI and declares torch>=2.14.0;
# it is the release that goes with torch 2.14/2.15 (there is no 0.30 yet).
TORCH_VERSION="2.15.0"
TORCHVISION_VERSION="0.29.2"
TIMM_VERSION="1.0.31"
ONNXSCRIPT_VERSION="0.7.2"

# Keras side. Keras 3's model.export(format="onnx") under the TensorFlow backend
# converts through tf2onnx; tensorflow-cpu 2.21 declares keras>=3.12.
TENSORFLOW_VERSION="2.21.0"
KERAS_VERSION="3.15.1"
TF2ONNX_VERSION="1.17.0"

if [ "$WHICH" = all ] || [ "$WHICH" = torch ]; then
    venv_ensure coverage-torch \
        "torch==${TORCH_VERSION}" \
        "torchvision==${TORCHVISION_VERSION}" \
        "timm==${TIMM_VERSION}" \
        "onnx==${ONNX_VERSION}" \
        "onnxscript==${ONNXSCRIPT_VERSION}" \
        "onnxruntime==${ONNXRUNTIME_VERSION}" \
        "numpy==${NUMPY_VERSION}" \
        "pillow==${PILLOW_VERSION}"
fi

if [ "$WHICH" = all ] || [ "$WHICH" = keras ]; then
    venv_ensure coverage-keras \
        "tensorflow-cpu==${TENSORFLOW_VERSION}" \
        "keras==${KERAS_VERSION}" \
        "tf2onnx==${TF2ONNX_VERSION}" \
        "onnx==${ONNX_VERSION}" \
        "onnxruntime==${ONNXRUNTIME_VERSION}" \
        "numpy==${NUMPY_VERSION}" \
        "pillow==${PILLOW_VERSION}"
fi
