#!/usr/bin/env bash
# Regenerates tests/fixtures/retype/ (reference logits of EfficientNet-Lite0 re-typed
# from its declared N x 3 x 224 x 224 input to 1 x 3 x 320 x 480, for cambox's
# `[model] input_size = [480, 320]`).
#
# Uses its own throw-away virtualenv under target/venvs/retype (git-ignored, made by
# scripts/lib/venv.sh; pip only runs when the pins are not already installed), with the
# same pins as scripts/fixtures/make_fixtures.sh (numpy, onnx, onnxruntime) and
# scripts/models/export_efficientnet_lite0.sh (pillow). onnxruntime runs on one thread.
#
# The PNG tests/fixtures/retype/chelsea-480x320.png is made once from
# data/samples/natural/chelsea.png and then reused; pass --remake-png to write it again.
#
# Usage: scripts/reference/retype_reference.sh [extra args for retype_reference.py]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

NUMPY_VERSION="2.4.6"
PILLOW_VERSION="13.0.0"
ONNX_VERSION="1.23.2"
ONNXRUNTIME_VERSION="1.32.0"

venv_ensure retype \
    "numpy==${NUMPY_VERSION}" \
    "pillow==${PILLOW_VERSION}" \
    "onnx==${ONNX_VERSION}" \
    "onnxruntime==${ONNXRUNTIME_VERSION}"

export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$VENV_PY" scripts/reference/retype_reference.py "$@"
