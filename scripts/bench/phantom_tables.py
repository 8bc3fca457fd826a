#!/usr/bin/env python3
"""The markdown tables of the phantom benchmarks, from the three `cambox eval` folders
that scripts/bench/phantom_common.sh writes beside a run OUT: OUT-eval (cambox's boxes),
OUT-eval-centre and OUT-eval-whole (the baselines).

  phantom_tables.py single OUT       scripts/bench/phantom_benchmark.sh (one finding)
  phantom_tables.py multilabel OUT   scripts/bench/phantom_benchmark_multilabel.sh
                                     (per finding, their mean, and all pairs)

Needs only the Python standard library.
"""
import json
import sys


def f(v):
    return "-" if v is None else f"{v:.4f}"


def cx(rows, key):
    """ChestX-ray8 figure key at T(IoBB) = 0.5."""
    return f({r["t_iobb"]: r for r in rows}[0.5][key])


def print_table(head, rows):
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


def single(runs):
    rows = []
    for name, s in runs:
        m = s.get("max_box_acc") or {}
        tau = m.get("calibrated_tau")
        rows.append([name, f(s["classification"]["accuracy"]), f(s["corloc"]), f(m.get("v1")),
                     f(m.get("v2")), "-" if tau is None else f"{tau:.2f}", f(s["rsna_score"]),
                     cx(s["chestxray8"], "accuracy_iobb"), cx(s["chestxray8"], "avg_fp")])
    print_table(["boxes", "class. acc", "CorLoc@0.5", "MaxBoxAcc", "MaxBoxAccV2", "best tau", "RSNA",
                 "CXR8 acc@0.5", "CXR8 FP@0.5"], rows)


def multilabel(runs):
    rows = []
    for finding in list(runs[0][1]["per_class"]) + ["mean", "all pairs"]:
        for name, s in runs:
            if finding == "mean":
                m = s["mean_over_classes"]
                row = [f(m["classification_accuracy"]), f(m["corloc"]), f(m["max_box_acc_v2"]), f(m["rsna_score"]),
                       cx(m["chestxray8"], "accuracy_iobb"), cx(m["chestxray8"], "avg_fp"), f(m["top1_loc"])]
                pairs = ""
            else:
                m = s if finding == "all pairs" else s["per_class"][finding]
                c = m["counts"]
                mb = m.get("max_box_acc") or {}
                tau = mb.get("calibrated_tau")
                row = [f(m["classification"]["accuracy"]), f(m["corloc"]),
                       f(mb.get("v2")) + ("" if tau is None else f" ({tau:.2f})"), f(m["rsna_score"]),
                       cx(m["chestxray8"], "accuracy_iobb"), cx(m["chestxray8"], "avg_fp"), f(m["top1_loc"])]
                pairs = f"{c['with_truth']} / {c['negatives']}"
            rows.append([finding, name, pairs] + row)
    print_table(["finding", "boxes", "pairs +/-", "class. acc", "CorLoc@0.5", "MaxBoxAccV2 (tau)", "RSNA",
                 "CXR8 acc@0.5", "CXR8 FP@0.5", "Top-1 Loc"], rows)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("single", "multilabel"):
        sys.exit(__doc__)
    out = sys.argv[2]
    runs = [(name, json.load(open(f"{d}/summary.json")))
            for name, d in (("cambox", f"{out}-eval"), ("centre box", f"{out}-eval-centre"),
                            ("whole image", f"{out}-eval-whole"))]
    (single if sys.argv[1] == "single" else multilabel)(runs)


if __name__ == "__main__":
    main()
