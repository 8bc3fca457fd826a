#!/usr/bin/env bash
# Fetches the Keras Xception pneumonia classifier from PyPI and converts it to
# data/models/pneumonia_xception.onnx (about 84 MB).
#
# The source package (pneumonia-model-package==0.3.0) states no licence, so the
# converted file is NOT committed: data/models/pneumonia_xception.onnx is listed
# in .gitignore. Use it for demonstrations and local tests only.
#
# Uses its own throw-away virtualenv under target/venvs/export-xception
# (git-ignored, made by scripts/lib/venv.sh; pip only runs when the pins are
# not already installed); tensorflow-cpu pulls several hundred MB.
#
# Recipe (see data/models/PROVENANCE.md):
#   keras.models.load_model(path, compile=False)
#   model.export(dir, format="tf_saved_model")
#   python -m tf2onnx.convert --saved-model dir --output ... --opset 13
# Result: input `input_layer_1` N x 150 x 150 x 3 (NHWC, x/127.5 - 1),
#         output `output_0` N x 2 logits (0 NORMAL, 1 PNEUMONIA).
#
# Usage: scripts/models/fetch_pneumonia_xception.sh [path/to/shared]
#   With the shared material present (argument, CAMBOX_SHARED, default
#   ../shared), the result is also checked against its onnxruntime logits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/venv.sh
. "$ROOT/scripts/lib/venv.sh"
# shellcheck source=scripts/lib/pneumonia_model.sh
. "$ROOT/scripts/lib/pneumonia_model.sh"

SHARED="${1:-${CAMBOX_SHARED:-../shared}}"
OUT="data/models/pneumonia_xception.onnx"

venv_ensure export-xception \
    "tensorflow-cpu==2.21.0" \
    "tf2onnx==1.17.0" \
    "onnxruntime==1.32.0"
WORK="$VENV_DIR/work"

rm -rf "$WORK"
mkdir -p "$(dirname "$OUT")"
pneumonia_keras "$WORK"

"$VENV_PY" - "$WORK" <<'PY'
import os, sys
work = sys.argv[1]
path = os.path.join(work, "model.keras")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import tensorflow as tf
print(f"tensorflow {tf.__version__}, keras {keras.__version__}")
model = keras.models.load_model(path, compile=False)
model.export(os.path.join(work, "saved_model"), format="tf_saved_model")
PY

"$VENV_PY" -m tf2onnx.convert \
    --saved-model "$WORK/saved_model" \
    --output "$OUT" \
    --opset 13

# Check: onnxruntime vs Keras on the 16 reference inputs when the shared
# material is there, else on random inputs in [-1, 1].
"$VENV_PY" - "$WORK/model.keras" "$OUT" "$SHARED" <<'PY'
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import keras
import onnxruntime as ort

keras_path, onnx_path, shared = sys.argv[1:4]
ref = os.path.join(shared, "reference", "pneumonia-xception")
have_ref = os.path.exists(os.path.join(ref, "inputs_nhwc.npy"))
if have_ref:
    x = np.load(os.path.join(ref, "inputs_nhwc.npy")).astype(np.float32)
else:
    x = np.random.default_rng(0).uniform(-1, 1, (4, 150, 150, 3)).astype(np.float32)

sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
print(f"input {inp.name} {inp.shape}, output {out.name} {out.shape}")
if (inp.name, out.name) != ("input_layer_1", "output_0"):
    sys.exit("unexpected input/output names")
got = sess.run([out.name], {inp.name: x})[0]
want = keras.models.load_model(keras_path, compile=False).predict(x, verbose=0)
d = float(np.abs(got - want).max())
print(f"max |onnxruntime - keras| = {d:.3g} over {len(x)} inputs")
ok = d <= 1e-4
if have_ref:
    d_ref = float(np.abs(got - np.load(os.path.join(ref, "ort_logits.npy"))).max())
    print(f"max |onnxruntime - reference ort_logits| = {d_ref:.3g}")
    ok = ok and d_ref <= 1e-4
if not ok:
    sys.exit("FAILED: difference above 1e-4")
print("OK")
PY

sha256sum "$OUT"
