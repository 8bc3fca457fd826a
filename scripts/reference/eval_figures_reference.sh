#!/usr/bin/env bash
# Regenerate (or check) the reference data of cambox eval's map figures in
# tests/fixtures/eval-figures/: peak, pointing game, energy-based pointing game,
# PxAP, pixel IoU counts and bootstrap 95 % intervals.
#
# Creates (or reuses) a Python venv under target/venvs/eval-figures, installs pinned numpy
# from PyPI when it is not already there (scripts/lib/venv.sh), then runs
# eval_figures_reference.py, which writes cases.json (hand-written edge cases plus cases
# from a fixed seed) and expected.json (every figure, full float64).
#
# Usage: scripts/reference/eval_figures_reference.sh            regenerate both files
#        scripts/reference/eval_figures_reference.sh --check    fail if the stored files differ
#        scripts/reference/eval_figures_reference.sh --eval F   print expected JSON for cases F
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib/venv.sh
. "$REPO_ROOT/scripts/lib/venv.sh"

NUMPY_VERSION="2.4.6"

venv_ensure eval-figures "numpy==$NUMPY_VERSION"

exec "$VENV_PY" "$REPO_ROOT/scripts/reference/eval_figures_reference.py" "$@"
