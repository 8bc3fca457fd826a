#!/usr/bin/env bash
# Rebuilds the multi-finding (multi-label) phantom benchmark and its small sigmoid CNN:
#   data/phantoms-multilabel/{images/,BBox_List.csv,labels.csv,meta.csv}   held-out test set
#       (generate_multilabel.py, 2 held-out sources)
#   data/phantoms-multilabel/masks/{Opacity,Nodule}/   its per-label pixel truth masks (--masks)
#   data/models/phantom-multilabel.onnx, phantom-multilabel-classes.txt,
#       phantom-multilabel.train.log                                       (train_multilabel.py)
#   data/phantoms-multilabel/reference.csv, reference.json                  (evaluate_multilabel.py)
#
# Uses the same throw-away virtualenv and pins as make_phantoms.sh (target/venvs/phantoms,
# pins in scripts/lib/phantoms_venv.sh,
# git-ignored, made by scripts/lib/venv.sh; pip only runs when a pin is not installed).
# torch from PyPI pulls its CUDA wheels (several GB); training runs on the CPU, 1 thread.
# Everything is seeded (below); torch CPU training is deterministic for a given torch
# build and thread count, but not guaranteed bit-identical across machines.
#
# Usage: scripts/phantoms/make_phantoms_multilabel.sh [--skip-train]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
# shellcheck source=scripts/lib/phantoms_venv.sh
. "$ROOT/scripts/lib/phantoms_venv.sh"

TEST_SEED=1101      # test phantoms (held-out sources NORMAL2-IM-1430, NORMAL2-IM-1438)
TEST_COUNT=140      # a multiple of 4: none / Opacity / Nodule / both, 35 each
TRAIN_SEED=2101     # training phantoms (the 6 other sources), made in memory
VAL_SEED=3101       # validation phantoms (same 6 sources), made in memory
TORCH_SEED=142      # init; +1 shuffle/augmentation generator; +2 patch sampling; +3 init-bias patches
THREADS=1

phantoms_venv

PY="$VENV_PY"
export PYTHONDONTWRITEBYTECODE=1
export OMP_NUM_THREADS="$THREADS"

# 1. held-out test set
rm -rf data/phantoms-multilabel/images data/phantoms-multilabel/masks
"$PY" scripts/phantoms/generate_multilabel.py --out data/phantoms-multilabel \
    --count "$TEST_COUNT" --seed "$TEST_SEED" --split test --masks

# 2. train + export + checks + held-out figures in the log (about 6-8 minutes, 1 thread)
if [ "${1:-}" != "--skip-train" ]; then
    "$PY" scripts/phantoms/train_multilabel.py --out-dir data/models --test-data data/phantoms-multilabel \
        --train-seed "$TRAIN_SEED" --val-seed "$VAL_SEED" --torch-seed "$TORCH_SEED" --threads "$THREADS"
fi

# 3. reference figures on the committed PNGs (onnxruntime + numpy CAM boxes)
"$PY" scripts/phantoms/evaluate_multilabel.py --data data/phantoms-multilabel \
    --model data/models/phantom-multilabel.onnx

sha256sum data/models/phantom-multilabel.onnx data/phantoms-multilabel/BBox_List.csv \
    data/phantoms-multilabel/labels.csv
