#!/usr/bin/env bash
# Regenerate (or check) the box-metric reference data in tests/fixtures/metrics/.
#
# Creates (or reuses) a Python venv under target/venvs/metrics, installs pinned numpy
# from PyPI when it is not already there (scripts/lib/venv.sh), then runs metrics_reference.py, which writes cases.json (fixed seed plus
# hand-written edge cases) and expected.json (every metric under both box conventions).
#
# Usage: scripts/reference/metrics_reference.sh            regenerate both files
#        scripts/reference/metrics_reference.sh --check    fail if the stored files differ
#        scripts/reference/metrics_reference.sh --eval F   print expected JSON for cases F
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib/venv.sh
. "$REPO_ROOT/scripts/lib/venv.sh"

NUMPY_VERSION="2.4.6"

venv_ensure metrics "numpy==$NUMPY_VERSION"

exec "$VENV_PY" "$REPO_ROOT/scripts/reference/metrics_reference.py" "$@"
