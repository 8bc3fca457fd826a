#!/usr/bin/env bash
# Regenerates tests/fixtures/reference/pneumonia-xception-retyped/: Keras logits and softmax
# probabilities of the Xception pneumonia classifier (trained at 150x150) run at 299x299
# and 448x448, on the 16 X-rays in data/samples/chest-xray/ (see
# scripts/reference/xception_retype_reference.py and the README.md written there).
#
# The Keras model comes from PyPI `pneumonia-model-package==0.3.0` (downloaded, not
# installed; it states no licence, so neither it nor anything but these small derived
# numbers is committed). Uses the throw-away virtualenv target/venvs/coverage-keras
# (git-ignored, made by scripts/lib/venv.sh; the same pins as scripts/coverage/setup.sh,
# so an existing one is reused and pip only runs when a pin is missing); tensorflow-cpu
# pulls several hundred MB. Runs single-threaded.
#
# Usage: scripts/reference/xception_retype_reference.sh [path/to/shared]
#   shared: argument, else CAMBOX_SHARED, else ../shared (relative to the repo). Optional:
#   when reference/pneumonia-xception/inputs_nhwc.npy is there, the 150x150
#   preprocessing is checked against it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
# shellcheck source=scripts/lib/pneumonia_model.sh
. "$ROOT/scripts/lib/pneumonia_model.sh"

SHARED="${1:-${CAMBOX_SHARED:-../shared}}"
OUT="tests/fixtures/reference/pneumonia-xception-retyped"

TENSORFLOW_VERSION="2.21.0"   # pulls keras 3.15.1
KERAS_VERSION="3.15.1"
NUMPY_VERSION="2.4.6"
PILLOW_VERSION="13.0.0"

venv_ensure coverage-keras \
    "tensorflow-cpu==${TENSORFLOW_VERSION}" \
    "keras==${KERAS_VERSION}" \
    "numpy==${NUMPY_VERSION}" \
    "pillow==${PILLOW_VERSION}"
WORK="$VENV_DIR/work"

pneumonia_keras "$WORK"

SHARED_ARGS=()
if [ -f "$SHARED/reference/pneumonia-xception/inputs_nhwc.npy" ]; then
    SHARED_ARGS=(--shared "$SHARED")
else
    echo "note: no $SHARED/reference/pneumonia-xception/inputs_nhwc.npy; 150x150 input check skipped" >&2
fi

export OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
exec "$VENV_PY" scripts/reference/xception_retype_reference.py \
    --model "$WORK/model.keras" --out "$OUT" "${SHARED_ARGS[@]}"
