#!/usr/bin/env bash
# Generate the multi-label (sigmoid) ONNX fixtures in tests/fixtures/models/:
#   multilabel_sigmoid.onnx, multilabel_logits.onnx, multilabel.{inputs,probs,logits,features,
#   maps,weight,bias}.npy, multilabel.json, multilabel-classes.txt
#
# Reuses the virtualenv of scripts/phantoms/make_phantoms.sh (target/venvs/phantoms, same
# pins; made by scripts/lib/venv.sh when missing, pip only called when a pin is not
# installed), since torch from PyPI is several GB. torch builds and exports the network
# (weights drawn with numpy from a fixed seed, so the same on any torch version); the
# stored outputs are onnxruntime's, cross-checked against numpy and torch.
# Output is deterministic: running it again gives the same bytes (multilabel.json also
# records the package versions and the check residuals).
#
# Usage: scripts/make_multilabel_fixtures.sh [extra args for make_multilabel_fixtures.py]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/venv.sh
. "$REPO_ROOT/scripts/lib/venv.sh"

TORCH_VERSION="2.15.0"
ONNX_VERSION="1.23.2"
ONNXRUNTIME_VERSION="1.32.0"
NUMPY_VERSION="2.4.6"
PILLOW_VERSION="13.0.0"
SCIPY_VERSION="1.17.1"

# the same pin set as scripts/phantoms/make_phantoms.sh, so that the two share one venv
venv_ensure phantoms \
    "torch==${TORCH_VERSION}" \
    "onnx==${ONNX_VERSION}" \
    "onnxruntime==${ONNXRUNTIME_VERSION}" \
    "numpy==${NUMPY_VERSION}" \
    "pillow==${PILLOW_VERSION}" \
    "scipy==${SCIPY_VERSION}"

export PYTHONDONTWRITEBYTECODE=1
export OMP_NUM_THREADS=1
exec "$VENV_PY" -W ignore::DeprecationWarning "$REPO_ROOT/scripts/make_multilabel_fixtures.py" \
    --out "$REPO_ROOT/tests/fixtures/models" "$@"
