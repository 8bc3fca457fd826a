#!/usr/bin/env python3
"""Reference figures for the multi-label phantom test set, with onnxruntime on the committed PNGs.

Classification: decode PNG as grey, Pillow resize 256 -> 224 BILINEAR, x / 255,
(x - 0.5) / 0.25, probabilities from data/models/phantom-multilabel.onnx (a final
Sigmoid, one independent probability per finding); a finding is predicted present
when its probability is >= 0.5.  Truth: labels.csv (image level, every image).
Per finding: AUROC (Mann-Whitney, ties counted 1/2), accuracy at 0.5, confusion.

Localisation, per finding k, on every image that has a truth box of k, whatever the
prediction (GT-known, as evaluate.py does for the single-finding set):
  CAM_k = W[k] . F  (F = the 64 x 28 x 28 input of GlobalAveragePool, W the Gemm
          weights; bias left out),
  upsampled to 256 x 256 bilinear (half-pixel centres, edge clamped),
  min-max normalised, mask = normalised CAM > 0.2 (strictly), 8-connected components,
  half-open box of each; "largest" = the component with the most pixels.
  CorLoc@0.5 = fraction of those images where the best IoU between the predicted
  box(es) and the truth boxes of k is >= 0.5 (BoxAcc at 0.3 and 0.7 likewise).
Baselines, per finding: one centre box of the mean truth width and height of that
finding on this test set (optimistic: fitted on the test truth), and the whole image.

Writes reference.csv (per image: probabilities, truth, per finding the largest-component
box and its best IoU) and reference.json (the summary) next to labels.csv.
The preprocessing, head reading, upsampling and box extraction are in common_eval.py,
shared with evaluate.py.
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

DELTAS = (0.3, 0.5, 0.7)


def auroc(scores, labels) -> float | None:
    """Area under the ROC curve = P(score of a positive > score of a negative) + 1/2 P(tie)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    gt = (pos[:, None] > neg[None, :]).sum()
    eq = (pos[:, None] == neg[None, :]).sum()
    return float((gt + 0.5 * eq) / (len(pos) * len(neg)))


def read_truth(data_dir):
    """labels.csv (order and image-level truth) and BBox_List.csv (boxes x, y, w, h)."""
    with open(os.path.join(data_dir, "labels.csv")) as f:
        rd = csv.reader(f)
        header = next(rd)
        classes = header[1:]
        order, labels = [], {}
        for row in rd:
            order.append(row[0])
            labels[row[0]] = [int(v) for v in row[1:]]
    boxes = defaultdict(lambda: defaultdict(list))
    with open(os.path.join(data_dir, "BBox_List.csv")) as f:
        rd = csv.reader(f)
        next(rd)
        for row in rd:
            x, y, w, h = (float(v) for v in row[2:6])
            assert all(v == int(v) for v in (x, y, w, h)), row
            boxes[row[0]][row[1]].append((int(x), int(y), int(w), int(h)))
    for name in order:  # image-level truth and boxes agree
        for k, c in enumerate(classes):
            assert labels[name][k] == int(bool(boxes[name][c])), (name, c)
    return classes, order, labels, boxes


class Model:
    """The ONNX model with F and the pre-sigmoid logits added as outputs (in memory only)."""

    def __init__(self, path):
        m = onnx.load(path)
        (gap, _, gemm, sig), W, b, attrs = gap_head(m, ["GlobalAveragePool", "Flatten", "Gemm", "Sigmoid"])
        self.W = W.astype(np.float64) * attrs.get("alpha", 1.0)
        self.b = b.astype(np.float64) * attrs.get("beta", 1.0)
        self.feature = gap.input[0]
        self.logits = gemm.output[0]
        self.output = sig.output[0]
        add_outputs(m, [self.feature, self.logits])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x):
        probs, logits, fmap = self.sess.run([self.output, self.logits, self.feature], {"input": x})
        return probs[0], logits[0], fmap[0]


def evaluate(data_dir, model_path, threshold=0.2, write=True, log=print):
    classes, order, labels, truth = read_truth(data_dir)
    model = Model(model_path)
    K = len(classes)
    assert model.W.shape[0] == K, (model.W.shape, classes)

    # baselines: per finding, a centre box of the mean truth size; the whole image
    centre = {}
    for c in classes:
        centre[c] = centre_box([bx for name in order for bx in truth[name][c]])
    whole = (0, 0, SIZE, SIZE)

    probs_all = np.zeros((len(order), K))
    rows = []
    max_recon = max_prob = 0.0
    hits = {c: {m: {d: 0 for d in DELTAS} for m in ("largest", "any", "centre", "whole")} for c in classes}
    n_pos = {c: 0 for c in classes}
    tp_hits = {c: [0, 0] for c in classes}  # [hits@0.5 of largest on true positives, true positives]
    for i, name in enumerate(order):
        x = preprocess(os.path.join(data_dir, "images", name))
        probs, logits, fmap = model(x)
        recon = model.W @ fmap.astype(np.float64).mean(axis=(1, 2)) + model.b
        max_recon = max(max_recon, float(np.abs(recon - logits).max()))
        max_prob = max(max_prob, float(np.abs(1 / (1 + np.exp(-recon)) - probs).max()))
        probs_all[i] = probs
        row = [name, *(f"{p:.6f}" for p in probs), *labels[name]]
        for k, c in enumerate(classes):
            tb = truth[name][c]
            if not tb:
                row += ["", "", "", "", ""]
                continue
            n_pos[c] += 1
            cam = np.tensordot(model.W[k], fmap.astype(np.float64), axes=1)
            boxes, largest = cam_boxes(bilinear_resize(cam, SIZE, SIZE), threshold)
            best = {
                "largest": max(iou(largest, t) for t in tb) if largest else 0.0,
                "any": max((iou(p, t) for p in boxes for t in tb), default=0.0),
                "centre": max(iou(centre[c], t) for t in tb),
                "whole": max(iou(whole, t) for t in tb),
            }
            for m, v in best.items():
                for d in DELTAS:
                    hits[c][m][d] += v >= d
            if probs[k] >= 0.5:
                tp_hits[c][1] += 1
                tp_hits[c][0] += best["largest"] >= 0.5
            row += [*(largest if largest else ("", "", "", "")), f"{best['largest']:.4f}"]
        rows.append(row)

    y = np.array([labels[n] for n in order])
    summary = {"images": len(order), "classes": classes, "model": os.path.basename(model_path),
               "cam_threshold": threshold,
               "max_abs_W_meanF_plus_b_minus_logits": max_recon,
               "max_abs_sigmoid_of_recon_minus_probs": max_prob,
               "centre_boxes": {c: centre[c] for c in classes},
               "per_finding": {}}
    for k, c in enumerate(classes):
        pred = probs_all[:, k] >= 0.5
        yk = y[:, k].astype(bool)
        n = n_pos[c]
        summary["per_finding"][c] = {
            "positives": int(yk.sum()),
            "negatives": int((~yk).sum()),
            "auroc": auroc(probs_all[:, k], yk),
            "accuracy": float((pred == yk).mean()),
            "confusion": {"tp": int((pred & yk).sum()), "fp": int((pred & ~yk).sum()),
                          "fn": int((~pred & yk).sum()), "tn": int((~pred & ~yk).sum())},
            "images_with_boxes": n,
            "boxes": int(sum(len(truth[name][c]) for name in order)),
            "corloc_largest": hits[c]["largest"][0.5] / n,
            "box_acc_largest": {str(d): hits[c]["largest"][d] / n for d in DELTAS},
            "corloc_any_component": hits[c]["any"][0.5] / n,
            "corloc_centre_box": hits[c]["centre"][0.5] / n,
            "box_acc_centre_box": {str(d): hits[c]["centre"][d] / n for d in DELTAS},
            "corloc_whole_image": hits[c]["whole"][0.5] / n,
            "box_acc_whole_image": {str(d): hits[c]["whole"][d] / n for d in DELTAS},
            "corloc_largest_on_true_positives": tp_hits[c][0] / max(tp_hits[c][1], 1),
            "true_positives": tp_hits[c][1],
        }
    both = y.all(axis=1)
    summary["exact_match_accuracy"] = float(((probs_all >= 0.5) == y.astype(bool)).all(axis=1).mean())
    summary["images_with_both"] = int(both.sum())

    if write:
        with open(os.path.join(data_dir, "reference.csv"), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            head = ["path", *(f"prob_{c}" for c in classes), *(f"truth_{c}" for c in classes)]
            for c in classes:
                head += [f"{c}_largest_x", f"{c}_largest_y", f"{c}_largest_width", f"{c}_largest_height",
                         f"{c}_largest_best_iou"]
            w.writerow(head)
            w.writerows(rows)
        with open(os.path.join(data_dir, "reference.json"), "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
    for c in classes:
        s = summary["per_finding"][c]
        log(f"held-out {c}: AUROC {s['auroc']:.4f}  accuracy@0.5 {s['accuracy']:.4f}  "
            f"(tp {s['confusion']['tp']} fp {s['confusion']['fp']} fn {s['confusion']['fn']} "
            f"tn {s['confusion']['tn']})  CAM CorLoc largest {s['corloc_largest']:.4f} "
            f"any {s['corloc_any_component']:.4f}  centre box {s['corloc_centre_box']:.4f}  "
            f"whole image {s['corloc_whole_image']:.4f}  ({s['images_with_boxes']} images with boxes)")
    log(f"held-out exact-match accuracy {summary['exact_match_accuracy']:.4f}; "
        f"max |W.mean(F)+b - logits| {max_recon:.2e}; max |sigmoid - probs| {max_prob:.2e}")
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/phantoms-multilabel")
    ap.add_argument("--model", default="data/models/phantom-multilabel.onnx")
    ap.add_argument("--threshold", type=float, default=0.2)
    args = ap.parse_args()
    evaluate(args.data, args.model, args.threshold)
    print(f"wrote {os.path.join(args.data, 'reference.csv')} and reference.json")


if __name__ == "__main__":
    main()
