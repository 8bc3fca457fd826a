#!/usr/bin/env bash
# model.explain from Python against `cambox run` and against pytorch-grad-cam's GradCAM,
# on 64 copies of the sample photos (python_explain.py says what is timed). Not a test:
# prints a table.
#
#   scripts/bench/python_explain.sh [ARGS for python_explain.py: --n 64 --repeat 5 ...]
#
# Builds the CLI (cargo build --release), installs the package (pip install ./python)
# into the `bench` venv of setup_venv.sh (torch and pytorch-grad-cam, about 5 GB from PyPI
# on the first run); SKIP_GRADCAM=1 uses a small venv with numpy alone instead.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
cargo build --release --bin cambox
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
if [ "${SKIP_GRADCAM:-0}" = 1 ]; then
  venv_ensure python-bench "numpy==2.4.6"
  extra=(--no-gradcam)
else
  bash scripts/bench/setup_venv.sh
  VENV_PY="$ROOT/target/venvs/bench/bin/python"
  extra=()
fi
"$VENV_PY" -m pip install --quiet --disable-pip-version-check ./python
"$VENV_PY" scripts/bench/python_explain.py "${extra[@]}" "$@"
