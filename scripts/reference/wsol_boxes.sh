#!/usr/bin/env bash
# Regenerate the wsolevaluation box-extraction reference data in tests/data/wsol/.
#
# Creates (or reuses) a Python venv under target/venvs/wsol, installs pinned
# numpy / opencv-python-headless from PyPI, then runs wsol_boxes.py, which
# replays compute_bboxes_from_scoremaps() of clovaai/wsolevaluation
# (evaluation.py) on a few synthetic score maps.
#
# Usage: scripts/reference/wsol_boxes.sh [extra args for wsol_boxes.py]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO_ROOT/target/venvs/wsol"
PYTHON="${PYTHON:-python3}"

NUMPY_VERSION="2.4.6"
# 4.x line: the OpenCV major that wsolevaluation was written against
# (_CONTOUR_INDEX = 0, findContours returns (contours, hierarchy)).
OPENCV_VERSION="4.14.0.94"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv at $VENV" >&2
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
fi

# Only hit PyPI when the pinned versions are not already installed.
if ! "$VENV/bin/python" - "$NUMPY_VERSION" "$OPENCV_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
want = dict(zip(["numpy", "opencv-python-headless"], sys.argv[1:]))
sys.exit(0 if all(version(k) == v for k, v in want.items()) else 1)
PY
then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "numpy==$NUMPY_VERSION" \
        "opencv-python-headless==$OPENCV_VERSION"
fi

exec "$VENV/bin/python" "$REPO_ROOT/scripts/reference/wsol_boxes.py" \
    --out "$REPO_ROOT/tests/data/wsol" "$@"
