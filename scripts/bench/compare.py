#!/usr/bin/env python3
"""Prints the benchmark table from target/bench/times and the boxes.csv files.

For every reference pipeline: images/s, cambox's speed-up over it (cambox images/s /
reference images/s, same set, same invocation), peak RSS, the share of images whose top-1
class agrees with cambox's, and the mean IoU of the top-1 boxes over the images where both
found a box (half-open boxes in original pixels on both sides).
"""
import csv
import os
import sys

work, n = sys.argv[1], int(sys.argv[2])
times = {}
with open(os.path.join(work, "times")) as f:
    for line in f:
        label, secs, rss = line.split()
        times[label] = (float(secs), float(rss))


def boxes(out):
    rows = {}
    with open(os.path.join(out, "boxes.csv"), newline="") as f:
        for r in csv.DictReader(f):
            if r["path"] in rows:
                continue  # first (largest) box of the top-1 class only
            box = tuple(int(r[k]) for k in ("x1", "y1", "x2", "y2")) if r["x1"] else None
            rows[r["path"]] = (int(r["class_index"]), box)
    return rows


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


NAMES = {"cambox": "cambox (CAM)", "cambox-before": "cambox before this branch (CAM)", "torch": "PyTorch + torchcam + OpenCV", "ort": "onnxruntime + numpy + OpenCV",
         "cambox-gradcam": "cambox --method gradcam", "gradcam": "PyTorch + pytorch-grad-cam GradCAM + OpenCV"}
print(f"| set ({n} images) | pipeline | wall (s) | images/s | cambox speed-up | peak RSS (MB) "
      "| top-1 agrees | mean box IoU |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for label, (secs, rss) in times.items():
    s, p = label.split("/")
    base = "cambox-gradcam" if p == "gradcam" else "cambox"
    bsecs = times[f"{s}/{base}"][0]
    speed = f"{secs / bsecs:.2f}x" if p != base else "–"
    agree = miou = "–"
    if p != base:
        ours = boxes(os.path.join(work, f"out-{s}-{base}"))
        theirs = boxes(os.path.join(work, f"out-{s}-{p}"))
        common = set(ours) & set(theirs)
        same = sum(ours[k][0] == theirs[k][0] for k in common)
        agree = f"{same}/{len(common)}"
        ious = [iou(ours[k][1], theirs[k][1]) for k in common
                if ours[k][0] == theirs[k][0] and ours[k][1] and theirs[k][1]]
        miou = f"{sum(ious) / len(ious):.3f}" if ious else "–"
    print(f"| {s} | {NAMES[p]} | {secs:.1f} | {n / secs:.1f} | {speed} | {rss:.0f} | {agree} | {miou} |")
