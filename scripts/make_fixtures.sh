#!/usr/bin/env bash
# Generate the tiny ONNX test fixtures in tests/fixtures/models/.
#
# Creates (or reuses) a Python venv under target/venvs/fixtures, installs
# pinned numpy / onnx / onnxruntime from PyPI, then runs make_fixtures.py.
# Expected values are computed with numpy and cross-checked with onnxruntime.
#
# Usage: scripts/make_fixtures.sh [extra args for make_fixtures.py]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/target/venvs/fixtures"
PYTHON="${PYTHON:-python3}"

NUMPY_VERSION="2.4.6"
ONNX_VERSION="1.23.2"
ONNXRUNTIME_VERSION="1.32.0"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv at $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
fi

# Only hit PyPI when the pinned versions are not already installed.
if ! "$VENV/bin/python" - "$NUMPY_VERSION" "$ONNX_VERSION" "$ONNXRUNTIME_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
want = dict(zip(["numpy", "onnx", "onnxruntime"], sys.argv[1:]))
sys.exit(0 if all(version(k) == v for k, v in want.items()) else 1)
PY
then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "numpy==$NUMPY_VERSION" \
        "onnx==$ONNX_VERSION" \
        "onnxruntime==$ONNXRUNTIME_VERSION"
fi

exec "$VENV/bin/python" "$REPO_ROOT/scripts/make_fixtures.py" \
    --out "$REPO_ROOT/tests/fixtures/models" "$@"
