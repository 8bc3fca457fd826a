#!/usr/bin/env bash
# The multi-finding phantom benchmark: each image has none, one or both of two findings
# (Opacity, Nodule; data/phantoms-multilabel/README.md), the multi-label phantom CNN
# (per-class sigmoids) localises them, and `cambox eval` scores every finding on its own:
# cambox's boxes against a centre box (of each finding's average truth size) and the whole
# image, per finding and as their mean.
#
# Usage (from anywhere): scripts/bench/phantom_benchmark_multilabel.sh [OUT_PREFIX]  (default /tmp/mlph)
# The run is given the truth (--truth), so every annotated image gets boxes for its own
# findings whatever the classifier says (GT-known); the NIH box list names only images with
# boxes, so the 35 images without a finding are taken as negatives (--unannotated-negative).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/bench/phantom_common.sh
. scripts/bench/phantom_common.sh
out=${1:-/tmp/mlph}
phantom_build
truth=data/phantoms-multilabel/BBox_List.csv

rm -rf "$out" "$out"-eval*
"$bin" run --config configs/phantoms-multilabel.toml --truth "$truth" --out "$out" --quiet
phantom_evals "$out" "$truth" quiet --unannotated-negative
python3 scripts/bench/phantom_tables.py multilabel "$out"
