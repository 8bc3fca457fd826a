#!/usr/bin/env bash
# Exporter coverage sweep: exports torchvision, timm and keras.applications
# classifiers (random weights, BatchNorm statistics from the sample images)
# with every exporter (torch.onnx dynamo + TorchScript, Keras 3 / tf2onnx),
# computes onnxruntime reference outputs on a fixed input, and writes
# OUT/manifest.json. See scripts/coverage/README.md.
#
# Usage: scripts/coverage/export.sh [OUT]        (default target/coverage)
# Extra arguments after OUT go to both export scripts (e.g. --timeout 600).
# The heavy Python runs are niced (NICE, default 10) so that a compiler
# running beside them keeps its core.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

OUT="${1:-target/coverage}"
shift || true
NICE="${NICE:-10}"
mkdir -p "$OUT"

"$ROOT/scripts/coverage/setup.sh"

start=$(date +%s)
nice -n "$NICE" "$ROOT/target/venvs/coverage-torch/bin/python" \
    scripts/coverage/export_torch.py --out "$OUT" "$@"
nice -n "$NICE" "$ROOT/target/venvs/coverage-keras/bin/python" \
    scripts/coverage/export_keras.py --out "$OUT" "$@"
end=$(date +%s)

echo "coverage sweep: $((end - start)) s; $(du -sh "$OUT" | cut -f1) in $OUT"
echo "manifest: $OUT/manifest.json"
