# shellcheck shell=bash
# The virtualenv of the phantom scripts, target/venvs/phantoms, with its pins in one
# place: scripts/phantoms/make_phantoms.sh, scripts/phantoms/make_phantoms_multilabel.sh
# and scripts/fixtures/make_multilabel_fixtures.sh all use it (torch from PyPI pulls its
# CUDA wheels, several GB: one venv for the three).
#
# Meant to be sourced after scripts/lib/venv.sh:
#
#   phantoms_venv     # -> VENV_DIR, VENV_PY (venv_ensure: pip only runs when a pin is missing)

PHANTOMS_TORCH_VERSION="2.15.0"
PHANTOMS_ONNX_VERSION="1.23.2"
PHANTOMS_ONNXRUNTIME_VERSION="1.32.0"
PHANTOMS_NUMPY_VERSION="2.4.6"
PHANTOMS_PILLOW_VERSION="13.0.0"
PHANTOMS_SCIPY_VERSION="1.17.1"

phantoms_venv() {
    venv_ensure phantoms \
        "torch==${PHANTOMS_TORCH_VERSION}" \
        "onnx==${PHANTOMS_ONNX_VERSION}" \
        "onnxruntime==${PHANTOMS_ONNXRUNTIME_VERSION}" \
        "numpy==${PHANTOMS_NUMPY_VERSION}" \
        "pillow==${PHANTOMS_PILLOW_VERSION}" \
        "scipy==${PHANTOMS_SCIPY_VERSION}"
}
