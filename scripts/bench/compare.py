#!/usr/bin/env python3
"""Prints the benchmark tables from target/bench/times, the boxes.csv files and run.json.

Table 1, for every pipeline: wall time and images/s of the whole process, cambox's speed-up
over it (reference wall time / cambox wall time, same set, same invocation; for cambox's own
variants, "before" and "dct", their wall time over the default run's), peak RSS, the
share of images whose top-1 class agrees with cambox's, the mean IoU of the top-1 boxes over
the images where both agree and found a box (half-open boxes in original pixels on both
sides), and the network's cost in core-milliseconds per image.

Network core-ms per image: cambox's workers each run one single-threaded tract plan, so it
is the worker seconds of the `network` stage (run.json `time.stage_seconds`) per image;
the references run their network with `--threads` intra-op threads, so it is the wall time
inside the network calls times those threads, per image (an upper bound: it counts a thread
as busy for the whole call). It says how far each pipeline is from its network's cost.

The pneumonia set (the Xception pneumonia classifier, Grad-CAM of PNEUMONIA on every image
whatever the prediction): top-1 agreement from images.csv (cambox's, and the one
scripts/bench/pneumonia_reference.py writes), and the box IoU of the PNEUMONIA boxes over
every image where both found one (the localised class is the same on both sides, whatever
their top-1).

Table 2: where cambox's worker time goes, stage by stage, from each cambox run's run.json.
"""
import csv
import json
import os
import re
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


def top1(out):
    """path -> top-1 class index, from images.csv (rows without a class: errors, skipped)."""
    with open(os.path.join(out, "images.csv"), newline="") as f:
        return {r["path"]: int(r["class_index"]) for r in csv.DictReader(f) if r["class_index"]}


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def stages(out):
    path = os.path.join(out, "run.json")
    if not os.path.exists(path):
        return None
    return json.load(open(path)).get("time")


def network_core_ms(label, out):
    if label.split("/")[1].startswith("cambox"):
        t = stages(out)
        return 1e3 * t["stage_seconds"]["network"] / t["images"] if t else None
    m = re.search(r"network seconds: ([0-9.]+) threads: ([0-9]+)", open(out + ".time").read())
    return 1e3 * float(m.group(1)) * int(m.group(2)) / n if m else None


NAMES = {"cambox": "cambox (CAM)", "cambox-before": "cambox before this change (CAM)",
         "cambox-dct": "cambox (CAM), jpeg_scaling = dct",
         "torch": "PyTorch + torchcam + OpenCV", "ort": "onnxruntime + numpy + OpenCV",
         "cambox-gradcam": "cambox --method gradcam", "gradcam": "PyTorch + pytorch-grad-cam GradCAM + OpenCV"}
# The Xception pneumonia rows (set "pneumonia"), by pipeline.
PNEUMONIA_NAMES = {"cambox": "cambox, Xception Grad-CAM (PNEUMONIA)",
                   "keras": "Keras + tf.GradientTape (batch 1) + OpenCV",
                   "ort": "onnxruntime + numpy Grad-CAM + OpenCV"}
# Which cambox run each pipeline is compared with.
BASE = {"gradcam": "cambox-gradcam"}
print(f"| set ({n} images) | pipeline | wall (s) | images/s | cambox speed-up | peak RSS (MB) "
      "| top-1 agrees | mean box IoU | network core-ms / image |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for label, (secs, rss) in times.items():
    s, p = label.split("/")
    out = os.path.join(work, f"out-{s}-{p}")
    net = network_core_ms(label, out)
    net = f"{net:.1f}" if net is not None else "–"
    speed = agree = miou = "–"
    if p not in ("cambox", "cambox-gradcam"):
        base = BASE.get(p, "cambox")
        speed = f"{secs / times[f'{s}/{base}'][0]:.2f}x"
        ours = boxes(os.path.join(work, f"out-{s}-{base}"))
        theirs = boxes(out)
        common = set(ours) & set(theirs)
        if s == "pneumonia":
            # boxes.csv holds the PNEUMONIA box of every image: top-1 from images.csv, IoU
            # wherever both found a box.
            t_ours, t_theirs = top1(os.path.join(work, f"out-{s}-{base}")), top1(out)
            same = sum(t_ours[k] == t_theirs[k] for k in set(t_ours) & set(t_theirs))
            agree = f"{same}/{len(set(t_ours) & set(t_theirs))}"
            ious = [iou(ours[k][1], theirs[k][1]) for k in common if ours[k][1] and theirs[k][1]]
        else:
            same = sum(ours[k][0] == theirs[k][0] for k in common)
            agree = f"{same}/{len(common)}"
            ious = [iou(ours[k][1], theirs[k][1]) for k in common
                    if ours[k][0] == theirs[k][0] and ours[k][1] and theirs[k][1]]
        miou = f"{sum(ious) / len(ious):.3f}" if ious else "–"
    name = PNEUMONIA_NAMES[p] if s == "pneumonia" else NAMES[p]
    print(f"| {s} | {name} | {secs:.1f} | {n / secs:.1f} | {speed} | {rss:.0f} | {agree} | {miou} | {net} |")

runs = [(label, stages(os.path.join(work, "out-" + label.replace("/", "-"))))
        for label in times if label.split("/")[1].startswith("cambox")]
runs = [(label, t) for label, t in runs if t]
if not runs:
    sys.exit(0)
print()
print("Where cambox's time goes (run.json `time`: worker seconds per stage, summed over images):")
print()
print("| stage | " + " | ".join(f"{label} ms / image (share)" for label, _ in runs) + " |")
print("| --- |" + " --- |" * len(runs))
for stage in ("decode", "preprocess", "network", "maps", "localise", "write"):
    cells = []
    for _, t in runs:
        total = sum(t["stage_seconds"].values())
        v = t["stage_seconds"][stage]
        cells.append(f"{1e3 * v / t['images']:.2f} ({100 * v / total:.1f} %)")
    print(f"| {stage} | " + " | ".join(cells) + " |")
cells = []
for _, t in runs:
    total = sum(t["stage_seconds"].values())
    other = total - t["stage_seconds"]["network"]
    cells.append(f"{1e3 * total / t['images']:.2f}; not network {100 * other / total:.1f} %")
print("| **total** | " + " | ".join(cells) + " |")
cells = [f"{t['wall_seconds']:.2f} s, {t['threads']} workers" for _, t in runs]
print("| pipeline wall time | " + " | ".join(cells) + " |")
# The whole process also loads and checks the model: share of its wall time during which
# the cores were not running the network (network worker seconds / workers = the wall time
# the network would take alone with every worker busy).
cells = []
for label, t in runs:
    wall = times[label][0]
    cells.append(f"{100 * (1 - t['stage_seconds']['network'] / t['threads'] / wall):.1f} % of {wall:.2f} s")
print("| not network, share of the whole process's wall time | " + " | ".join(cells) + " |")
