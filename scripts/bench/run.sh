#!/usr/bin/env bash
# Side-by-side throughput: cambox against the Python pipelines users would write instead
# (scripts/bench/reference.py), one after the other in this one invocation, so that the
# ratios are measured under the same machine load. Prints a markdown table.
#
#   scripts/bench/run.sh              # 200 images per set
#   N=64 scripts/bench/run.sh         # fewer images
#   SKIP_GRADCAM=1 scripts/bench/run.sh
#   BASELINE_BIN=/path/to/old/cambox scripts/bench/run.sh   # adds a "cambox (before)" row
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
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${N:-200}"
TORCH_WORKERS="${TORCH_WORKERS:-1}"
ORT_WORKERS="${ORT_WORKERS:-1}"
GRADCAM_WORKERS="${GRADCAM_WORKERS:-1}"
BATCH="${BATCH:-8}"
work=target/bench
py=target/venvs/bench/bin/python
mkdir -p "$work"

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

"$py" scripts/bench/compare.py "$work" "$N"
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -m);" \
  "date: $(date -u +%Y-%m-%d); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg);" \
  "workers: torch $TORCH_WORKERS, ort $ORT_WORKERS, gradcam $GRADCAM_WORKERS; batch $BATCH"
