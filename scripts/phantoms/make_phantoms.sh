#!/usr/bin/env bash
# Rebuilds the synthetic X-ray lesion benchmark and its small CNN:
#   data/phantoms/{images/,labels.csv,meta.csv}      held-out test set (generate.py)
#   data/phantoms/masks/                              its pixel truth masks (generate.py --masks)
#   data/models/phantom-cnn.onnx, phantom-classes.txt, phantom-cnn.train.log (train.py)
#   data/phantoms/reference.csv + printed reference figures (evaluate.py)
#
# Uses its own throw-away virtualenv under target/venvs/phantoms (git-ignored,
# made by scripts/lib/venv.sh with the pins of scripts/lib/phantoms_venv.sh; pip only runs
# when the pins are not already installed).
# torch from PyPI pulls its CUDA wheels (several GB); training runs on the CPU.
# Everything is seeded (seeds below and in the scripts' defaults); torch CPU
# training is deterministic for a given torch build and thread count, but not
# guaranteed bit-identical across machines.
#
# Usage: scripts/phantoms/make_phantoms.sh [--skip-train]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
# shellcheck source=scripts/lib/phantoms_venv.sh
. "$ROOT/scripts/lib/phantoms_venv.sh"

TEST_SEED=1001      # test phantoms (held-out sources NORMAL2-IM-1430, NORMAL2-IM-1438)
TEST_COUNT=120
TRAIN_SEED=2001     # training phantoms (6 other sources), made in memory
VAL_SEED=3001       # validation phantoms (same 6 sources), made in memory
TORCH_SEED=42       # init; +1 shuffle/flip generator; +2 patch sampling
THREADS=1          # 1 thread: deterministic and much faster than 2 on a shared, busy machine

phantoms_venv

PY="$VENV_PY"
export PYTHONDONTWRITEBYTECODE=1

# 1. held-out test set
rm -rf data/phantoms/images data/phantoms/masks
"$PY" scripts/phantoms/generate.py --out data/phantoms --count "$TEST_COUNT" --seed "$TEST_SEED" --split test --masks

# 2. train + export + checks (about 12 minutes, 1 thread)
if [ "${1:-}" != "--skip-train" ]; then
    "$PY" scripts/phantoms/train.py --out-dir data/models \
        --train-seed "$TRAIN_SEED" --val-seed "$VAL_SEED" --torch-seed "$TORCH_SEED" --threads "$THREADS"
fi

# 3. reference figures on the committed PNGs (onnxruntime)
"$PY" scripts/phantoms/evaluate.py --data data/phantoms --model data/models/phantom-cnn.onnx

sha256sum data/models/phantom-cnn.onnx data/phantoms/labels.csv
