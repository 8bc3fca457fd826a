#!/usr/bin/env bash
# Side-by-side throughput: cambox against the Python pipelines users would write instead
# (scripts/bench/reference.py), one after the other in this one invocation, so that the
# ratios are measured under the same machine load. Prints a markdown table.
#
#   scripts/bench/run.sh              # 200 images per set
#   N=64 scripts/bench/run.sh         # fewer images
#   SKIP_GRADCAM=1 scripts/bench/run.sh
#   BASELINE_BIN=/path/to/old/cambox scripts/bench/run.sh   # adds a "cambox (before)" row
#   SKIP_NETWORK=1 / SKIP_PNEUMONIA=1 scripts/bench/run.sh    # skip the sections below
#   NET_RUNS=50 scripts/bench/run.sh  # timed runs per invocation, network-alone section
#
# On the X-ray set cambox also runs with configs/bench-dct.toml ([decode] jpeg_scaling =
# "dct": JPEGs decoded at reduced scale), compared with the default exact decoding.
#
# Datasets (made by copying bundled files, no network) under target/bench/:
#   xray     N copies cycling over the 16 chest X-rays in data/samples/chest-xray
#   natural  N copies cycling over the photos in data/samples/natural
# Every pipeline: EfficientNet-Lite0, top-1 map, cam-paper boxes (20 % of max, largest
# component), mask PNGs at original size, no overlays. Whole process timed with GNU time
# (/usr/bin/time -v), which also gives the peak RSS (of the largest process: DataLoader
# and pool workers are forked and share the parent's pages). Needs python3 (venv) and GNU
# time; builds the reference environment on first use (scripts/bench/setup_venv.sh).
#
# Pneumonia Grad-CAM (SKIP_PNEUMONIA=1 skips it): the Xception pneumonia classifier
# (configs/pneumonia-xception.toml: Grad-CAM of PNEUMONIA on every image, masks on, overlays
# off here) on the xray set, whole process, against Keras + tf.GradientTape (batch 1, as
# users write it) and onnxruntime + the head's gradient in numpy
# (scripts/bench/pneumonia_reference.py). TensorFlow lives in its own venv,
# target/venvs/bench-tf (same pins as scripts/reference/xception_gradcam_tf.sh); the .keras
# model is downloaded from PyPI as scripts/lib/pneumonia_model.sh does it. The ONNX model is
# not redistributable: data/models/pneumonia_xception.onnx, else
# $CAMBOX_SHARED/models/pneumonia_xception.onnx (CAMBOX_SHARED defaults to ../shared, as in
# the other scripts); without either the section is skipped with a message.
#
# Network alone, one thread (SKIP_NETWORK=1 skips it): for EfficientNet-Lite0 and (when
# present) the Xception model, cambox's tract plan (examples/op_profile, with tract's own
# depthwise op and with cambox's) and onnxruntime (scripts/bench/network_alone.py), same
# deterministic input, interleaved three times; medians and ratios in $work/network.json,
# each variant's per-op table in $work/profile-MODEL-VARIANT.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib/venv.sh
. scripts/lib/venv.sh
# shellcheck source=scripts/lib/pneumonia_model.sh
. scripts/lib/pneumonia_model.sh
N="${N:-200}"
TORCH_WORKERS="${TORCH_WORKERS:-1}"
ORT_WORKERS="${ORT_WORKERS:-1}"
GRADCAM_WORKERS="${GRADCAM_WORKERS:-1}"
BATCH="${BATCH:-8}"
TF_WORKERS="${TF_WORKERS:-1}"
NET_RUNS="${NET_RUNS:-50}"
work=target/bench
py=target/venvs/bench/bin/python
mkdir -p "$work"
# Results of an earlier invocation must not be printed as this one's when a section is skipped.
rm -rf "$work/network.json" "$work/network-runs" "$work"/profile-*.md

# The Xception pneumonia model, wherever it is (not committed: no licence); empty if absent.
xception=data/models/pneumonia_xception.onnx
[ -f "$xception" ] || xception="${CAMBOX_SHARED:-../shared}/models/pneumonia_xception.onnx"
[ -f "$xception" ] || xception=

scripts/bench/setup_venv.sh
cargo build --release --quiet
bin=target/release/cambox

make_set() { # name source-dir
  local dir=$work/$1-$N
  if [ -f "$dir/.complete" ]; then return; fi
  rm -rf "$dir" && mkdir -p "$dir"
  local src=() f
  for f in "$2"/*; do
    case "${f,,}" in *.jpg | *.jpeg | *.png) src+=("$f") ;; esac
  done
  for ((i = 0; i < N; i++)); do
    f=${src[$((i % ${#src[@]}))]}
    cp "$f" "$dir/$(printf %04d "$i")_$(basename "$f")"
  done
  touch "$dir/.complete"
}
make_set xray data/samples/chest-xray
make_set natural data/samples/natural

# measure LABEL OUTDIR CMD...: runs CMD under GNU time; appends "label secs rss_mb" to $work/times.
measure() {
  local label=$1 out=$2
  shift 2
  rm -rf "$out" && mkdir -p "$out"
  /usr/bin/time -v "$@" 2> "$out.time" > /dev/null || { cat "$out.time" >&2; exit 1; }
  local wall rss
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$out.time" |
    awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2 / 1024}' "$out.time")
  echo "$label $wall $rss" >> "$work/times"
}

: > "$work/times"
export OMP_NUM_THREADS=2 TQDM_DISABLE=1
for set in xray natural; do
  imgs=$work/$set-$N
  measure "$set/cambox" "$work/out-$set-cambox" "$bin" run -q -c configs/bench.toml -o "$work/out-$set-cambox" "$imgs"
  if [ "$set" = xray ]; then
    measure "$set/cambox-dct" "$work/out-$set-cambox-dct" "$bin" run -q -c configs/bench-dct.toml \
      -o "$work/out-$set-cambox-dct" "$imgs"
  fi
  if [ -n "${BASELINE_BIN:-}" ]; then
    measure "$set/cambox-before" "$work/out-$set-cambox-before" "$BASELINE_BIN" run -q -c configs/bench.toml \
      -o "$work/out-$set-cambox-before" "$imgs"
  fi
  measure "$set/torch" "$work/out-$set-torch" "$py" scripts/bench/reference.py --backend torch \
    --workers "$TORCH_WORKERS" --batch "$BATCH" --images "$imgs" --out "$work/out-$set-torch"
  measure "$set/ort" "$work/out-$set-ort" "$py" scripts/bench/reference.py --backend ort \
    --workers "$ORT_WORKERS" --batch "$BATCH" --images "$imgs" --out "$work/out-$set-ort"
done
if [ -z "${SKIP_GRADCAM:-}" ]; then
  imgs=$work/xray-$N
  measure "xray/cambox-gradcam" "$work/out-xray-cambox-gradcam" "$bin" run -q -c configs/bench.toml \
    --method gradcam -o "$work/out-xray-cambox-gradcam" "$imgs"
  measure "xray/gradcam" "$work/out-xray-gradcam" "$py" scripts/bench/reference.py --backend gradcam \
    --workers "$GRADCAM_WORKERS" --batch "$BATCH" --images "$imgs" --out "$work/out-xray-gradcam"
fi

if [ -n "${SKIP_PNEUMONIA:-}" ]; then
  :
elif [ -z "$xception" ]; then
  echo "pneumonia gradcam: skipped, no data/models/pneumonia_xception.onnx nor" \
    "${CAMBOX_SHARED:-../shared}/models/pneumonia_xception.onnx (scripts/models/fetch_pneumonia_xception.sh)" >&2
else
  # Keras and TensorFlow in their own venv: they pin their own numpy/protobuf ranges, and
  # the bench venv's torch must not meet them. Pins as scripts/reference/xception_gradcam_tf.sh,
  # plus OpenCV (reference.py's helpers) as in setup_venv.sh.
  venv_ensure bench-tf \
    "tensorflow-cpu==2.21.0" \
    "keras==3.15.1" \
    "numpy==2.4.6" \
    "pillow==13.0.0" \
    "opencv-python-headless==5.0.0.93"
  tfpy=$VENV_PY
  pneumonia_keras "$VENV_DIR/work" # -> $VENV_DIR/work/model.keras (PyPI wheel, extracted once)
  keras_model=$VENV_DIR/work/model.keras
  # cambox has no --model flag and resolves config paths against the config file: a copy of
  # the config in $work with every "../" path made absolute, the model wherever it was
  # found, and overlays off (the references write none).
  cfg=$work/pneumonia-xception.toml
  sed -e "s#\"\.\./#\"$PWD/#g" \
    -e "s#^path = \".*pneumonia_xception\.onnx\"#path = \"$(realpath "$xception")\"#" \
    -e "s#^overlays = true#overlays = false#" configs/pneumonia-xception.toml > "$cfg"
  # Fail loudly if configs/pneumonia-xception.toml changed under the substitutions above.
  if ! grep -q "^path = \"$(realpath "$xception")\"" "$cfg" || ! grep -q '^overlays = false' "$cfg"; then
    echo "could not rewrite configs/pneumonia-xception.toml into $cfg" >&2
    exit 1
  fi
  imgs=$work/xray-$N # the 16 X-rays cycled to N images, as above
  measure "pneumonia/cambox" "$work/out-pneumonia-cambox" "$bin" run -q -c "$cfg" \
    -o "$work/out-pneumonia-cambox" "$imgs"
  measure "pneumonia/keras" "$work/out-pneumonia-keras" "$tfpy" scripts/bench/pneumonia_reference.py \
    --backend tf --keras "$keras_model" --workers "$TF_WORKERS" --images "$imgs" \
    --out "$work/out-pneumonia-keras"
  measure "pneumonia/ort" "$work/out-pneumonia-ort" "$py" scripts/bench/pneumonia_reference.py \
    --backend ort --onnx "$xception" --workers "$ORT_WORKERS" --batch "$BATCH" --images "$imgs" \
    --out "$work/out-pneumonia-ort"
fi

if [ -z "${SKIP_NETWORK:-}" ]; then
  # The network alone on one thread, no decoding or maps: cambox's tract plan as op_profile
  # builds it (tract's own ops; cambox's depthwise kernel only; all of cambox's kernels:
  # depthwise, pointwise, max pooling) against onnxruntime, same input.
  # Interleaved (the three cambox variants, onnxruntime; three times) so that a change in machine load
  # hits every variant alike; each invocation warms up, then times NET_RUNS runs.
  cargo build --release --quiet --example op_profile
  prof=target/release/examples/op_profile
  mkdir -p "$work/network-runs"
  network_alone() { # NAME MODEL SIZE(WxH, or - for the model's declared size)
    local raw=$work/network-runs/$1 rep
    for rep in 1 2 3; do
      RAYON_NUM_THREADS=1 "$prof" "$2" "$3" "$NET_RUNS" tract > "$raw-cambox-tract.$rep.md"
      RAYON_NUM_THREADS=1 "$prof" "$2" "$3" "$NET_RUNS" depthwise > "$raw-cambox-depthwise.$rep.md"
      RAYON_NUM_THREADS=1 "$prof" "$2" "$3" "$NET_RUNS" cambox > "$raw-cambox.$rep.md"
      "$py" scripts/bench/network_alone.py "$2" --runs "$NET_RUNS" > "$raw-onnxruntime.$rep.json"
    done
  }
  network_alone efficientnet-lite0 data/models/efficientnet-lite0.onnx 224x224
  if [ -n "$xception" ]; then
    network_alone pneumonia-xception "$xception" - # its declared 150 x 150
  else
    echo "network alone: Xception skipped, no data/models/pneumonia_xception.onnx nor" \
      "${CAMBOX_SHARED:-../shared}/models/pneumonia_xception.onnx" >&2
  fi
fi

"$py" scripts/bench/compare.py "$work" "$N"
if [ -d "$work/network-runs" ]; then
  echo
  # Writes $work/network.json and $work/profile-MODEL-VARIANT.md, prints the table.
  "$py" scripts/bench/network_table.py "$work"
fi
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -m);" \
  "date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg);" \
  "cambox binary of $(date -u -r "$bin" '+%Y-%m-%d %H:%M UTC') (another build may replace it between runs);" \
  "workers: torch $TORCH_WORKERS, ort $ORT_WORKERS, gradcam $GRADCAM_WORKERS, keras $TF_WORKERS; batch $BATCH" \
  "(keras: 1 image per step); network alone: $NET_RUNS timed runs per invocation"
