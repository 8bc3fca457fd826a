#!/usr/bin/env bash
# Generate the DICOM test fixtures in tests/fixtures/dicom/ from the chest
# X-ray data/samples/chest-xray/person1946_bacteria_4875.jpeg.
#
# Creates (or reuses) a Python venv under target/venvs/dicom (git-ignored),
# installs pinned pydicom / numpy / pillow / imagecodecs / pylibjpeg from PyPI
# when they are not already there (scripts/lib/venv.sh), then runs
# make_dicom_fixtures.py, which writes the files, decodes each one
# back with pydicom, checks it against the reference image and prints a table.
# Output is deterministic: a rerun gives byte-identical files.
#
#   imagecodecs        encodes JPEG Lossless SV1 (libjpeg-turbo)
#   pylibjpeg(-libjpeg) lets pydicom decode JPEG Lossless and 12-bit JPEG Extended
#                      for the verification
#   pyjpegls           lets pydicom write and read JPEG-LS (CharLS)
#
# Usage: scripts/make_dicom_fixtures.sh [extra args for make_dicom_fixtures.py]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/venv.sh
. "$REPO_ROOT/scripts/lib/venv.sh"

PYDICOM_VERSION="3.0.2"
NUMPY_VERSION="2.4.6"
PILLOW_VERSION="13.0.0"
IMAGECODECS_VERSION="2026.3.6"
PYLIBJPEG_VERSION="2.1.0"
PYLIBJPEG_LIBJPEG_VERSION="2.5.0"
PYJPEGLS_VERSION="1.5.1"

venv_ensure dicom \
    "pydicom==$PYDICOM_VERSION" \
    "numpy==$NUMPY_VERSION" \
    "pillow==$PILLOW_VERSION" \
    "imagecodecs==$IMAGECODECS_VERSION" \
    "pylibjpeg==$PYLIBJPEG_VERSION" \
    "pylibjpeg-libjpeg==$PYLIBJPEG_LIBJPEG_VERSION" \
    "pyjpegls==$PYJPEGLS_VERSION"

exec "$VENV_PY" "$REPO_ROOT/scripts/make_dicom_fixtures.py" \
    --root "$REPO_ROOT" --out "$REPO_ROOT/tests/fixtures/dicom" "$@"
