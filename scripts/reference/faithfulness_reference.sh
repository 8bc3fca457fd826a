#!/usr/bin/env bash
# Regenerate (or check) the faithfulness reference data in tests/fixtures/faithfulness/.
#
# Creates (or reuses) a Python venv under target/venvs/faithfulness, installs pinned numpy,
# scipy and onnxruntime from PyPI when they are not already there (scripts/lib/venv.sh),
# then runs faithfulness_reference.py, which writes the cases (x_<id>.npy, map_<id>.npy,
# cases.json, from a fixed seed) and expected.json (deletion, insertion, ROAD, confidence
# drop and increase, computed with numpy, scipy's spsolve and onnxruntime).
#
# Usage: scripts/reference/faithfulness_reference.sh            regenerate the files
#        scripts/reference/faithfulness_reference.sh --check    fail if the stored files differ
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib/venv.sh
. "$REPO_ROOT/scripts/lib/venv.sh"

NUMPY_VERSION="2.4.6"
SCIPY_VERSION="1.17.1"
ONNXRUNTIME_VERSION="1.32.0"

venv_ensure faithfulness "numpy==$NUMPY_VERSION" "scipy==$SCIPY_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION"

exec "$VENV_PY" "$REPO_ROOT/scripts/reference/faithfulness_reference.py" "$@"
