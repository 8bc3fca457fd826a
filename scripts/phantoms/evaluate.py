#!/usr/bin/env python3
"""Reference figures for the phantom test set, with onnxruntime on the committed PNGs.

Classification: decode PNG as grey, Pillow resize 256 -> 224 BILINEAR, x / 255,
(x - 0.5) / 0.25, logits from data/models/phantom-cnn.onnx; predicted class = argmax.
Truth class = 1 ("lesion") iff the image has at least one box in labels.csv.

Localisation (class 1 "lesion", on every image that has a truth box, whatever
the prediction):
  CAM = W[1] . F  (F = the 64 x 28 x 28 feature map before GlobalAveragePool,
        W = Gemm weights; the bias is left out, it does not change the box),
  upsampled to 256 x 256 bilinear (half-pixel centres, edge clamped, i.e.
        align_corners = False),
  min-max normalised to [0, 1], mask = normalised CAM > 0.2 (strictly),
  8-connected components, box of each (half-open, pixels of the 256 image);
  "largest" = the component with the most pixels.
  CorLoc@0.5 = fraction of images with truth where the best IoU between any
  predicted box and any truth box is >= 0.5.
Baselines: one centre box of the mean truth width and height of the test set; and
two "lung prior" boxes, the mean truth box (x, y, w, h averaged) of the truth boxes
whose centre is in the left half and of those in the right half (a hit if either
has IoU >= 0.5 with a truth box; both baselines use the test truth, so they are
optimistic).

Writes reference.csv (per image logits, prediction, largest-component box and
its best IoU) and reference.json (the summary) next to labels.csv.
The preprocessing, head reading, upsampling and box extraction are in common_eval.py,
shared with evaluate_multilabel.py.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import defaultdict

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common_eval import (  # noqa: E402
    SIZE, add_outputs, bilinear_resize, cam_boxes, centre_box, gap_head, iou, preprocess)


def read_labels(path):
    boxes = defaultdict(list)
    order = []
    with open(path) as f:
        for row in csv.DictReader(f):
            pid = row["patientId"]
            if pid not in boxes:
                order.append(pid)
                boxes[pid]
            if row["Target"] == "1":
                boxes[pid].append(tuple(int(float(row[k])) for k in ("x", "y", "width", "height")))
    return order, boxes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/phantoms")
    ap.add_argument("--model", default="data/models/phantom-cnn.onnx")
    ap.add_argument("--threshold", type=float, default=0.2)
    args = ap.parse_args()

    m = onnx.load(args.model)
    (gap, _, _), W, b, _ = gap_head(m, ["GlobalAveragePool", "Flatten", "Gemm"])
    fname = gap.input[0]
    add_outputs(m, [fname])
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])

    order, truth = read_labels(os.path.join(args.data, "labels.csv"))
    all_truth = [bx for pid in order for bx in truth[pid]]
    centre = centre_box(all_truth)
    # stronger prior: two boxes, the mean truth box of each half (left / right lung)
    priors = []
    for half in (lambda b: b[0] + b[2] / 2 < SIZE / 2, lambda b: b[0] + b[2] / 2 >= SIZE / 2):
        bs = np.array([bx for bx in all_truth if half(bx)], dtype=float)
        priors.append(tuple(int(round(v)) for v in bs.mean(axis=0)))

    rows = []
    correct = 0
    tp = fp = fn = tn = 0
    hits = {"largest": 0, "any": 0, "centre": 0, "priors": 0, "largest_tp": 0}
    n_pos = n_tp = 0
    max_recon = 0.0
    for pid in order:
        x = preprocess(os.path.join(args.data, "images", pid + ".png"))
        logits, fmap = sess.run(["logits", fname], {"input": x})
        logits, fmap = logits[0], fmap[0]
        max_recon = max(max_recon, float(np.abs(W @ fmap.mean(axis=(1, 2)) + b - logits).max()))
        pred = int(np.argmax(logits))
        y = 1 if truth[pid] else 0
        correct += pred == y
        tp += pred == 1 and y == 1
        fp += pred == 1 and y == 0
        fn += pred == 0 and y == 1
        tn += pred == 0 and y == 0
        cam = np.tensordot(W[1], fmap, axes=1)
        boxes, largest = cam_boxes(bilinear_resize(cam, SIZE, SIZE), args.threshold)
        best_l = best_a = best_c = None
        if y:
            n_pos += 1
            best_l = max(iou(largest, t) for t in truth[pid])
            best_a = max(iou(p, t) for p in boxes for t in truth[pid])
            best_c = max(iou(centre, t) for t in truth[pid])
            hits["largest"] += best_l >= 0.5
            hits["any"] += best_a >= 0.5
            hits["centre"] += best_c >= 0.5
            hits["priors"] += max(iou(p, t) for p in priors for t in truth[pid]) >= 0.5
            if pred == 1:
                n_tp += 1
                hits["largest_tp"] += best_l >= 0.5
        rows.append([pid, f"{logits[0]:.6f}", f"{logits[1]:.6f}", pred, y, len(boxes),
                     *(largest if largest else ("", "", "", "")),
                     "" if best_l is None else f"{best_l:.4f}"])

    with open(os.path.join(args.data, "reference.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["patientId", "logit_none", "logit_lesion", "pred", "truth", "n_components",
                    "largest_x", "largest_y", "largest_width", "largest_height", "largest_best_iou"])
        w.writerows(rows)

    n = len(order)
    summary = {
        "images": n,
        "accuracy": correct / n,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "images_with_truth": n_pos,
        "corloc_largest": hits["largest"] / n_pos,
        "corloc_any_component": hits["any"] / n_pos,
        "corloc_centre_box": hits["centre"] / n_pos,
        "centre_box": centre,
        "corloc_two_lung_prior_boxes": hits["priors"] / n_pos,
        "lung_prior_boxes": priors,
        "corloc_largest_on_true_positives": hits["largest_tp"] / max(n_tp, 1),
        "true_positives": n_tp,
        "max_abs_W_meanF_plus_b_minus_logits": max_recon,
    }
    with open(os.path.join(args.data, "reference.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
