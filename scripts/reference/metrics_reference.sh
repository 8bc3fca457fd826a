#!/usr/bin/env bash
# Regenerate (or check) the box-metric reference data in tests/data/metrics/.
#
# Creates (or reuses) a Python venv under target/venvs/metrics, installs pinned numpy
# from PyPI, then runs metrics_reference.py, which writes cases.json (fixed seed plus
# hand-written edge cases) and expected.json (every metric under both box conventions).
#
# Usage: scripts/reference/metrics_reference.sh            regenerate both files
#        scripts/reference/metrics_reference.sh --check    fail if the stored files differ
#        scripts/reference/metrics_reference.sh --eval F   print expected JSON for cases F
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO_ROOT/target/venvs/metrics"
PYTHON="${PYTHON:-python3}"

NUMPY_VERSION="2.4.6"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv at $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
fi

# Only hit PyPI when the pinned version is not already installed.
if ! "$VENV/bin/python" - "$NUMPY_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("numpy") == sys.argv[1] else 1)
PY
then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "numpy==$NUMPY_VERSION"
fi

exec "$VENV/bin/python" "$REPO_ROOT/scripts/reference/metrics_reference.py" "$@"
