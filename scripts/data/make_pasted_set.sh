#!/usr/bin/env bash
# Generate the pasted-object evaluation set in data/pasted/: 60 JPEGs of object crops
# (cut out of data/samples/natural/ with the hand-drawn boxes of
# data/annotations/natural-voc/) pasted on numpy-generated textures, one Pascal VOC XML
# per image whose box is exactly the pasted rectangle, one truth mask per image
# (masks/pNN.png: 8-bit grey PNG, 255 on the pasted rectangle, 0 elsewhere) and
# data/pasted/README.md.
#
# Creates (or reuses) a Python venv under target/venvs/pasted (git-ignored), installs
# pinned numpy / pillow from PyPI when they are not already there (scripts/lib/venv.sh),
# then runs make_pasted_set.py, which writes the files, reads every XML, JPEG and mask back
# to check the boxes and masks, and prints a table.
# Output is deterministic (fixed seed): a rerun gives byte-identical files.
#
# Usage: scripts/data/make_pasted_set.sh [extra args for make_pasted_set.py, e.g. --seed N --out DIR]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/lib/venv.sh
. "$REPO_ROOT/scripts/lib/venv.sh"

NUMPY_VERSION="2.4.6"
PILLOW_VERSION="13.0.0"

venv_ensure pasted \
    "numpy==$NUMPY_VERSION" \
    "pillow==$PILLOW_VERSION"

export PYTHONDONTWRITEBYTECODE=1
exec "$VENV_PY" "$REPO_ROOT/scripts/data/make_pasted_set.py" \
    --out "$REPO_ROOT/data/pasted" "$@"
