#!/usr/bin/env bash
# Generate the tiny ONNX test fixtures in tests/fixtures/models/.
#
# Creates (or reuses) a Python venv under target/venvs/fixtures, installs
# pinned numpy / onnx / onnxruntime from PyPI when they are not already there
# (scripts/lib/venv.sh), then runs make_fixtures.py.
# Expected values are computed with numpy and cross-checked with onnxruntime.
#
# Usage: scripts/make_fixtures.sh [extra args for make_fixtures.py]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/venv.sh
. "$REPO_ROOT/scripts/lib/venv.sh"

NUMPY_VERSION="2.4.6"
ONNX_VERSION="1.23.2"
ONNXRUNTIME_VERSION="1.32.0"

venv_ensure fixtures \
    "numpy==$NUMPY_VERSION" \
    "onnx==$ONNX_VERSION" \
    "onnxruntime==$ONNXRUNTIME_VERSION"

exec "$VENV_PY" "$REPO_ROOT/scripts/make_fixtures.py" \
    --out "$REPO_ROOT/tests/fixtures/models" "$@"
