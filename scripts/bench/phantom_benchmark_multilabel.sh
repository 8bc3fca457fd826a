#!/usr/bin/env bash
# The multi-finding phantom benchmark: each image has none, one or both of two findings
# (Opacity, Nodule; data/phantoms-multilabel/README.md), the multi-label phantom CNN
# (per-class sigmoids) localises them, and `cambox eval` scores every finding on its own:
# cambox's boxes against a centre box (of each finding's average truth size) and the whole
# image, per finding and as their mean.
#
# Usage (from anywhere): scripts/bench/phantom_benchmark_multilabel.sh [OUT_PREFIX]  (default /tmp/mlph)
# The run is given the truth (--truth), so every annotated image gets boxes for its own
# findings whatever the classifier says (GT-known); the NIH box list names only images with
# boxes, so the 35 images without a finding are taken as negatives (--unannotated-negative).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/mlph}
cargo build --release --quiet
bin=target/release/cambox
truth=data/phantoms-multilabel/BBox_List.csv

rm -rf "$out" "$out"-eval*
"$bin" run --config configs/phantoms-multilabel.toml --truth "$truth" --out "$out" --quiet
"$bin" eval --run "$out" --truth "$truth" --out "$out-eval" --unannotated-negative --calibrate >/dev/null
for b in centre whole; do
    "$bin" eval --run "$out" --truth "$truth" --out "$out-eval-$b" --unannotated-negative --baseline "$b" >/dev/null
done

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
runs = [("cambox", f"{out}-eval"), ("centre box", f"{out}-eval-centre"), ("whole image", f"{out}-eval-whole")]
def f(v):
    return "-" if v is None else f"{v:.4f}"
def cx(rows, key):
    return f({r["t_iobb"]: r for r in rows}[0.5][key])
head = ["finding", "boxes", "pairs +/-", "class. acc", "CorLoc@0.5", "MaxBoxAccV2 (tau)", "RSNA", "CXR8 acc@0.5", "CXR8 FP@0.5", "Top-1 Loc"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
first = json.load(open(f"{runs[0][1]}/summary.json"))
for finding in list(first["per_class"]) + ["mean", "all pairs"]:
    for name, d in runs:
        s = json.load(open(f"{d}/summary.json"))
        if finding == "mean":
            m = s["mean_over_classes"]
            row = [f(m["classification_accuracy"]), f(m["corloc"]), f(m["max_box_acc_v2"]), f(m["rsna_score"]),
                   cx(m["chestxray8"], "accuracy_iobb"), cx(m["chestxray8"], "avg_fp"), f(m["top1_loc"])]
            pairs = ""
        else:
            m = s if finding == "all pairs" else s["per_class"][finding]
            c = m["counts"] if finding != "all pairs" else m["counts"]
            mb = m.get("max_box_acc") or {}
            tau = mb.get("calibrated_tau")
            row = [f(m["classification"]["accuracy"]), f(m["corloc"]),
                   f(mb.get("v2")) + ("" if tau is None else f" ({tau:.2f})"), f(m["rsna_score"]),
                   cx(m["chestxray8"], "accuracy_iobb"), cx(m["chestxray8"], "avg_fp"), f(m["top1_loc"])]
            pairs = f"{c['with_truth']} / {c['negatives']}"
        print("| " + " | ".join([finding, name, pairs] + row) + " |")
PY
