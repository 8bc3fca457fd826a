#!/usr/bin/env bash
# Regenerate the wsolevaluation box-extraction reference data in tests/fixtures/wsol/.
#
# Creates (or reuses) a Python venv under target/venvs/wsol, installs pinned
# numpy / opencv-python-headless from PyPI when they are not already there
# (scripts/lib/venv.sh), then runs wsol_boxes.py, which
# replays compute_bboxes_from_scoremaps() of clovaai/wsolevaluation
# (evaluation.py) on a few synthetic score maps.
#
# Usage: scripts/reference/wsol_boxes.sh [extra args for wsol_boxes.py]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib/venv.sh
. "$REPO_ROOT/scripts/lib/venv.sh"

NUMPY_VERSION="2.4.6"
# 4.x line: the OpenCV major that wsolevaluation was written against
# (_CONTOUR_INDEX = 0, findContours returns (contours, hierarchy)).
OPENCV_VERSION="4.14.0.94"

venv_ensure wsol \
    "numpy==$NUMPY_VERSION" \
    "opencv-python-headless==$OPENCV_VERSION"

exec "$VENV_PY" "$REPO_ROOT/scripts/reference/wsol_boxes.py" \
    --out "$REPO_ROOT/tests/fixtures/wsol" "$@"
