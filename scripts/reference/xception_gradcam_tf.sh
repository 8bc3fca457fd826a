#!/usr/bin/env bash
# Regenerates tests/fixtures/gradcam/xception/: Keras Grad-CAM (tf.GradientTape, as in
# the Keras "Grad-CAM class activation visualization" example) for the 16
# preprocessed chest X-rays of the shared reference material.
#
# The Keras model comes from PyPI `pneumonia-model-package==0.3.0` (downloaded,
# not installed; it states no licence, so neither it nor anything but these small
# derived numbers is committed). Uses its own throw-away virtualenv under
# target/venvs/tf (git-ignored, made by scripts/lib/venv.sh; pip only runs when
# the pins are not already installed); tensorflow-cpu pulls several hundred MB.
# Runs single-threaded.
#
# Usage: scripts/reference/xception_gradcam_tf.sh [path/to/shared]
#   shared: argument, else CAMBOX_SHARED, else ../shared (relative to the repo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
# shellcheck source=scripts/lib/pneumonia_model.sh
. "$ROOT/scripts/lib/pneumonia_model.sh"

SHARED="${1:-${CAMBOX_SHARED:-../shared}}"
OUT="tests/fixtures/gradcam/xception"

TENSORFLOW_VERSION="2.21.0"   # pulls keras 3.15.1
KERAS_VERSION="3.15.1"
NUMPY_VERSION="2.4.6"
PILLOW_VERSION="13.0.0"

if [ ! -f "$SHARED/reference/pneumonia-xception/inputs_nhwc.npy" ]; then
    echo "missing $SHARED/reference/pneumonia-xception/inputs_nhwc.npy (set CAMBOX_SHARED)" >&2
    exit 1
fi

venv_ensure tf \
    "tensorflow-cpu==${TENSORFLOW_VERSION}" \
    "keras==${KERAS_VERSION}" \
    "numpy==${NUMPY_VERSION}" \
    "pillow==${PILLOW_VERSION}"
WORK="$VENV_DIR/work"

pneumonia_keras "$WORK"

export OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
"$VENV_PY" scripts/reference/xception_gradcam_tf.py \
    --model "$WORK/model.keras" --shared "$SHARED" --out "$OUT"
