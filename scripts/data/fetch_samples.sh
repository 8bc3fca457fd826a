#!/usr/bin/env bash
# Reproduces data/samples/natural/ from scikit-image's bundled sample images.
#
# Installs the pinned scikit-image from PyPI (unless already there) into a
# throw-away virtualenv under target/venvs/skimage (git-ignored, made by
# scripts/lib/venv.sh) and copies the chosen files byte for byte
# (no re-encoding) out of its skimage/data/ folder, then checks their SHA-256.
# Licences: see data/samples/natural/README.md (all CC0 or public domain).
#
# Usage: scripts/data/fetch_samples.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"

SKIMAGE_VERSION="0.26.0"
DEST="data/samples/natural"

venv_ensure skimage "scikit-image==${SKIMAGE_VERSION}"

SRC="$("$VENV_PY" -c 'import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), "data"))')"
mkdir -p "$DEST"

# file name, SHA-256 (identical to skimage/data/_registry.py of 0.26.0)
sums="$(mktemp)"
trap 'rm -f "$sums"' EXIT
cat > "$sums" <<'SUMS'
596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb  chelsea.png
cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7  coffee.png
88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5  astronaut.png
c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c  rocket.jpg
b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a  camera.png
3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4  hubble_deep_field.jpg
SUMS

while read -r _ name; do
    cp "$SRC/$name" "$DEST/$name"
    chmod 644 "$DEST/$name"
done < "$sums"

(cd "$DEST" && sha256sum -c "$sums")
