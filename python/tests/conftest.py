"""Shared fixtures: the repository's data, configurations written for the tests, and the
folders `cambox run` wrote for them (by the command-line binary when it is built, else by
`cambox.run`, the same library call)."""

import csv
import os
import subprocess
from pathlib import Path

import pytest

import cambox

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "data" / "models" / "efficientnet-lite0.onnx"
LABELS = ROOT / "data" / "models" / "imagenet-classes.txt"
NATURAL = ROOT / "data" / "samples" / "natural"
PHOTOS = sorted(p for p in NATURAL.iterdir() if p.suffix in (".png", ".jpg"))
VOC = ROOT / "data" / "annotations" / "natural-voc"
CLASS_MAP = ROOT / "data" / "annotations" / "natural-imagenet-map.csv"
FIXTURES = ROOT / "tests" / "fixtures"
CLI = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "cambox"

_COMMON = f"""
[input]
paths = ["{NATURAL}"]

[model]
path = "{MODEL}"
labels = "{LABELS}"

[output]
top_k = 5
masks = true
maps = true
probabilities = true
overlays = false
"""

_TORCHVISION = """
[preprocess]
resize = "shorter-side-then-center-crop"
resize_to = 256
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
"""

#: The recipes the comparison with `cambox run` covers: one pass with two classes, the
#: sharp recipe's six passes averaged on a re-typed 480x320 network, and Grad-CAM with
#: wsolevaluation's quantised thresholds.
CONFIGS = {
    "demo": _COMMON + _TORCHVISION + '\n[localise]\nclasses = "topk:2"\npreset = "cam-paper"\n',
    "sharp": _COMMON.replace("[model]\n", "[model]\ninput_size = [480, 320]\n")
    + '\n[preprocess]\nresize = "stretch"\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n'
    + '\n[cam]\nrecipe = "sharp"\n',
    "gradcam-wsol": _COMMON + _TORCHVISION + '\n[cam]\nmethod = "gradcam"\n\n[localise]\npreset = "wsol"\ntau = 0.25\n',
}


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class CliRun:
    """A configuration file and the folder `cambox run` wrote with it."""

    def __init__(self, config, out):
        self.config, self.out = config, out
        self.images = {r["path"]: r for r in read_csv(out / "images.csv")}
        self.boxes = read_csv(out / "boxes.csv")
        self.probabilities = {r["path"]: r for r in read_csv(out / "probabilities.csv")}


def cambox_run(config, out):
    """`cambox run --config CONFIG --out OUT`, by the binary when there is one."""
    if CLI.is_file():
        done = subprocess.run([str(CLI), "run", "--config", str(config), "--out", str(out), "--quiet"],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    else:
        assert cambox.run(config, out=out, quiet=True).status == 0


@pytest.fixture(scope="session", params=sorted(CONFIGS))
def cli_run(request, tmp_path_factory):
    """Each configuration, run once by `cambox run`."""
    d = tmp_path_factory.mktemp(request.param)
    config = d / "config.toml"
    config.write_text(CONFIGS[request.param], encoding="utf-8")
    cambox_run(config, d / "out")
    return CliRun(config, d / "out")


@pytest.fixture(scope="session")
def demo_model():
    """The demo's model and preprocessing, configured by keywords only."""
    return cambox.Model(
        MODEL,
        labels=LABELS,
        resize="shorter-side-then-center-crop",
        resize_to=256,
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        top_k=5,
    )
