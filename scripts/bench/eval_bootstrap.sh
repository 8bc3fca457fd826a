#!/usr/bin/env bash
# What the 95 % bootstrap intervals cost `cambox eval`: the same evaluation of 1,000 images
# with --bootstrap 0 and with --bootstrap 1000 (the default), interleaved, three times each,
# in one invocation; prints the median wall times and their difference.
#
# Usage: scripts/bench/eval_bootstrap.sh [N]    (N images, default 1000; OUT default /tmp/eval-bootstrap)
#
# The set: the 120 lesion phantoms copied round-robin to N files (copy k of phantom i is
# `c<k>_phantom_<i>.png`), their RSNA labels and truth masks copied alike, run once with
# configs/phantoms.toml (maps saved); every evaluation then reads the same run, with the
# truth masks, so the intervals cover every figure (MaxBoxAccV2, pointing game, energy,
# PxAP, pixel IoU, RSNA, ChestX-ray8, GT-known and Top-1 Loc), over all pairs and per class.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
n=${1:-1000}
out=${OUT:-/tmp/eval-bootstrap}
cargo build --release --quiet
bin=$root/target/release/cambox
rm -rf "$out" && mkdir -p "$out/images" "$out/masks"
echo "patientId,x,y,width,height,Target" > "$out/labels.csv"
python3 - "$root" "$out" "$n" <<'PY'
import csv, shutil, sys
from pathlib import Path
root, out, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
rows = list(csv.DictReader(open(root / "data/phantoms/labels.csv")))
stems = sorted({r["patientId"] for r in rows})
with open(out / "labels.csv", "a", newline="") as f:
    w = csv.writer(f)
    for j in range(n):
        name = f"c{j // len(stems)}_{stems[j % len(stems)]}"
        shutil.copyfile(root / "data/phantoms/images" / f"{stems[j % len(stems)]}.png", out / "images" / f"{name}.png")
        shutil.copyfile(root / "data/phantoms/masks" / f"{stems[j % len(stems)]}.png", out / "masks" / f"{name}.png")
        for r in rows:
            if r["patientId"] == stems[j % len(stems)]:
                w.writerow([name, r["x"], r["y"], r["width"], r["height"], r["Target"]])
PY
"$bin" run --config configs/phantoms.toml --out "$out/run" --quiet "$out/images"
time_eval() { # BOOTSTRAP -> seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$bin" eval --run "$out/run" --truth "$out/labels.csv" --truth-masks "$out/masks" \
        --bootstrap "$1" --out "$out/eval-$1" > /dev/null
    t1=$(date +%s.%N)
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}
declare -a without with
for rep in 1 2 3; do
    without+=("$(time_eval 0)")
    with+=("$(time_eval 1000)")
done
python3 - "$n" "${without[*]}" "${with[*]}" <<'PY'
import statistics, sys
n, a, b = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"| eval of {n} images (with truth masks) | wall s, three runs | median |")
print("|---|---|---|")
print(f"| --bootstrap 0 | {', '.join(f'{x:.2f}' for x in a)} | {ma:.2f} |")
print(f"| --bootstrap 1000 | {', '.join(f'{x:.2f}' for x in b)} | {mb:.2f} |")
print(f"\nthe intervals cost {mb - ma:.2f} s")
PY
