#!/usr/bin/env bash
# Peak RSS of `cambox run`.
#
#   scripts/bench/bench-memory.sh            # at 1,000 and 10,000 images: memory stays flat as
#                                      # the dataset grows (the walk streams; work in
#                                      # flight is bounded)
#   scripts/bench/bench-memory.sh --large    # on large images (20-100 MP photos and a 100 MP
#                                      # grey PNG, made by scripts/bench/large_images.py)
#                                      # and on the 16 sample X-rays, with the default
#                                      # [run] memory_budget and without one
#
# Both print markdown tables.
# The datasets are copies of the bundled sample photos (EfficientNet-Lite0 demo config,
# masks and overlays on), made under target/bench-memory/. Needs GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
bin=target/release/cambox
work=target/bench-memory
mkdir -p "$work"

# peak RSS (MB) and wall seconds of one run: rss_run LOG ARGS...
rss_run() {
  local log=$1
  shift
  /usr/bin/time -v "$bin" "$@" 2> "$log" >/dev/null || true
  rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$log")
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$log")
  secs=$(echo "$wall" | awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
}

if [ "${1:-}" = "--large" ]; then
  # shellcheck source=scripts/lib/venv.sh
  . scripts/lib/venv.sh
  venv_ensure bench-images numpy==2.4.6 pillow==13.0.0
  "$VENV_PY" scripts/bench/large_images.py "$work/large"
  echo "| images | config | memory_budget | wall time (s) | peak RSS (MB) |"
  echo "| --- | --- | --- | --- | --- |"
  for set in large xrays; do
    dir=$work/large
    [ "$set" = xrays ] && dir=data/samples/chest-xray
    for cfg in demo bench; do
      for budget in default none; do
        conf=$work/$cfg-$budget.toml
        sed -e 's#"\.\./#"'"$PWD"'/#g' "configs/$cfg.toml" >"$conf"
        if [ "$budget" = none ]; then
          printf '\n[run]\nmemory_budget = "1000 GB"\n' >>"$conf"
        fi
        out=$work/out-$set-$cfg-$budget
        rm -rf "$out"
        rss_run "$work/time-$set-$cfg-$budget.txt" run -q -c "$conf" -o "$out" "$dir"
        what=$([ "$cfg" = demo ] && echo "demo (masks + overlays)" || echo "bench (masks)")
        label=$([ "$budget" = default ] && echo "768 MiB (default)" || echo "none")
        printf "| %s | %s | %s | %.1f | %.0f |\n" "$set" "$what" "$label" "$secs" "$(echo "$rss_kb / 1024" | bc -l)"
      done
    done
  done
  echo
  echo "large: $(ls "$work/large" | tr '\n' ' '); xrays: data/samples/chest-xray (16 JPEGs, 1-3 MP)"
  echo "machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d)"
  exit 0
fi

make_set() {
  local n=$1 dir=$work/set-$1
  if [ -f "$dir/.complete" ]; then return; fi
  rm -rf "$dir"
  local samples=(data/samples/natural/chelsea.png data/samples/natural/coffee.png data/samples/natural/camera.png data/samples/natural/astronaut.png)
  for ((i = 0; i < n; i++)); do
    local sub=$dir/d$((i % 100))
    mkdir -p "$sub"
    local s=${samples[$((i % 4))]}
    cp "$s" "$sub/$(printf %05d "$i")_$(basename "$s")"
  done
  touch "$dir/.complete"
}

echo "| images | wall time (s) | images/s | peak RSS (MB) |"
echo "| --- | --- | --- | --- |"
for n in 1000 10000; do
  make_set "$n"
  out=$work/out-$n
  rm -rf "$out"
  log=$work/time-$n.txt
  /usr/bin/time -v "$bin" run -q -c configs/demo.toml -o "$out" "$work/set-$n" 2> "$log" || true
  rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$log")
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$log")
  secs=$(echo "$wall" | awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
  rows=$(($(wc -l < "$out/images.csv") - 1))
  printf "| %d | %.1f | %.1f | %.0f |\n" "$rows" "$secs" "$(echo "$rows / $secs" | bc -l)" "$(echo "$rss_kb / 1024" | bc -l)"
done
echo
echo "machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d)"
