#!/usr/bin/env bash
# The phantom benchmark: cambox's boxes against two baselines (a centre box of average
# truth size, and the whole image), all scored by the same `cambox eval`.
#
# Usage (from anywhere): scripts/bench/phantom_benchmark.sh [OUT_PREFIX]   (default /tmp/ph)
# Then the recipes side by side (scripts/bench/recipe_benchmark.sh phantoms, in OUT_PREFIX-recipes).
# Needs data/phantoms/ (images + labels.csv), data/models/phantom-cnn.onnx and
# configs/phantoms.toml with [output] maps = true and [localise] classes = ["lesion"].
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/ph}
cargo build --release --quiet
bin=target/release/cambox
truth=data/phantoms/labels.csv

"$bin" run --config configs/phantoms.toml --out "$out" --quiet
"$bin" eval --run "$out" --truth "$truth" --out "$out-eval" --calibrate
for b in centre whole; do
    "$bin" eval --run "$out" --truth "$truth" --out "$out-eval-$b" --baseline "$b" >/dev/null
done

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
runs = [("cambox", f"{out}-eval"), ("centre box", f"{out}-eval-centre"), ("whole image", f"{out}-eval-whole")]
def f(v):
    return "-" if v is None else f"{v:.4f}"
rows = []
for name, d in runs:
    s = json.load(open(f"{d}/summary.json"))
    m = s.get("max_box_acc") or {}
    cx = {r["t_iobb"]: r for r in s["chestxray8"]}[0.5]
    tau = m.get("calibrated_tau")
    rows.append([name, f(s["classification"]["accuracy"]), f(s["corloc"]), f(m.get("v1")),
                 f(m.get("v2")), "-" if tau is None else f"{tau:.2f}", f(s["rsna_score"]),
                 f(cx["accuracy_iobb"]), f(cx["avg_fp"])])
head = ["boxes", "class. acc", "CorLoc@0.5", "MaxBoxAcc", "MaxBoxAccV2", "best tau", "RSNA", "CXR8 acc@0.5", "CXR8 FP@0.5"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(r) + " |")
PY

# How the map is computed, on the same phantoms: one pass at the training size (the rows
# above), the whole image at one larger size, and [cam] recipe = "sharp" (three sizes,
# each mirrored, maps averaged).
OUT="$out-recipes" scripts/bench/recipe_benchmark.sh phantoms
