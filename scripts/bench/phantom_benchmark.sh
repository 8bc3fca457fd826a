#!/usr/bin/env bash
# The phantom benchmark: cambox's boxes against two baselines (a centre box of average
# truth size, and the whole image), all scored by the same `cambox eval`.
#
# Usage (from anywhere): scripts/bench/phantom_benchmark.sh [OUT_PREFIX]   (default /tmp/ph)
# Then the recipes side by side (scripts/bench/recipe_benchmark.sh phantoms, in OUT_PREFIX-recipes).
# Needs data/phantoms/ (images + labels.csv), data/models/phantom-cnn.onnx and
# configs/phantoms.toml with [output] maps = true and [localise] classes = ["lesion"].
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/phantom_common.sh
. scripts/bench/phantom_common.sh
out=${1:-/tmp/ph}
phantom_build
truth=data/phantoms/labels.csv

"$bin" run --config configs/phantoms.toml --out "$out" --quiet
phantom_evals "$out" "$truth" show
python3 scripts/bench/phantom_tables.py single "$out"

# How the map is computed, on the same phantoms: one pass at the training size (the rows
# above), the whole image at one larger size, and [cam] recipe = "sharp" (three sizes,
# each mirrored, maps averaged).
OUT="$out-recipes" scripts/bench/recipe_benchmark.sh phantoms
