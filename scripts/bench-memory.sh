#!/usr/bin/env bash
# Peak RSS of `cambox run` at 1,000 and 10,000 images, to show that memory stays flat as
# the dataset grows (the walk streams; work in flight is bounded).
#
#   scripts/bench-memory.sh            # prints a markdown table
#
# The datasets are copies of the bundled sample photos (EfficientNet-Lite0 demo config,
# masks and overlays on), made under target/bench-memory/. Needs GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/cambox
work=target/bench-memory
mkdir -p "$work"

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
