#!/usr/bin/env python3
"""Generate data/pasted/: natural object crops pasted on procedural textures, exact boxes.

A small evaluation set for cambox's localisation recipes whose ground truth is known
exactly: each image is a texture generated with numpy onto which one object crop is
pasted (hard, no feathering), and its Pascal VOC box is the pasted rectangle.

Objects: the hand-drawn VOC boxes of data/annotations/natural-voc/*.xml cut out of the
scikit-image sample photos in data/samples/natural/ (CC0 / public domain); see SOURCES.
For every image (seeded RNG, see below):

  1. the object and the background kind come from shuffled, balanced lists (each object
     and each kind 60/5 = 12 times); the canvas size is drawn from SIZES;
  2. the crop is the half-open box [xmin-1, xmax) x [ymin-1, ymax) of the VOC box,
     converted to RGB;
  3. it is rescaled (Pillow LANCZOS, aspect kept, sides rounded to whole pixels) so that
     it covers a fraction a ~ U(0.10, 0.45) of the canvas; when the object cannot cover
     that much while staying inside the canvas (the thin rocket always, the tall shuttle
     or tripod on some canvases) it is instead scaled to U(0.75, 1.0) times the largest
     size that fits, so it covers less than drawn (the rocket mostly under 10 %);
  4. it is pasted at a uniformly drawn position fully inside the canvas (pixel-aligned,
     it may touch the border);
  5. the image is saved as 8-bit RGB JPEG (quality 90, 4:2:0) and the box as VOC XML
     (1-based inclusive: xmin = x0 + 1, ymin = y0 + 1, xmax = x0 + w, ymax = y0 + h);
  6. its pixel truth mask (for PxAP, `cambox eval --truth-masks data/pasted/masks`) as
     masks/pNN.png: 8-bit grey PNG of the image's size, 255 on the pixels whose value
     comes from the pasted crop, i.e. exactly the half-open rectangle
     [x0, x0 + w) x [y0, y0 + h) (one opaque object per image, nothing overlaps it), 0
     elsewhere.

All random draws come from numpy's PCG64 (np.random.default_rng): one generator seeded
with SEED for the shuffles, and one seeded with [SEED, i] for image i.  After writing,
the script reads every XML, JPEG and mask back and checks the box and the mask against the
placement and the decoded pixels inside the box against the pasted crop; it then writes data/pasted/README.md
(procedure, provenance and a per-image table).

Run through scripts/data/make_pasted_set.sh, which pins numpy and Pillow.
"""

from __future__ import annotations

import argparse
import colorsys
import math
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = 20261201
COUNT = 60
JPEG_QUALITY = 90
AREA_RANGE = (0.10, 0.45)  # wanted fraction of the canvas covered by the object
FIT_RANGE = (0.75, 1.0)  # scale, relative to the largest that fits, when the area cannot be reached
SIZES = [(480, 320), (512, 384), (400, 400), (320, 480), (384, 512)]  # (width, height)
KINDS = ["clouds", "stripes", "checker", "gradient", "weave"]
MAX_MEAN_ABS_ERR = 6.0  # JPEG round trip inside the box, grey levels (a wrong box gives ~30+)


@dataclass(frozen=True)
class Source:
    key: str  # short name
    image: str  # under data/samples/natural/
    voc: str  # under data/annotations/natural-voc/
    label: str  # VOC <name> of the object, also a truth_label of natural-imagenet-map.csv


SOURCES = [
    Source("cat", "chelsea.png", "chelsea.xml", "cat"),
    Source("cup", "coffee.png", "coffee.xml", "cup"),
    Source("shuttle", "astronaut.png", "astronaut.xml", "space shuttle"),
    Source("rocket", "rocket.jpg", "rocket.xml", "rocket"),
    Source("tripod", "camera.png", "camera.xml", "tripod"),
]


# --------------------------------------------------------------------------
# sources


def voc_box(path: Path, label: str) -> tuple[int, int, int, int]:
    """The (only) box labelled `label` in a VOC XML, as 1-based inclusive (xmin, ymin, xmax, ymax)."""
    root = ET.parse(path).getroot()
    found = []
    for obj in root.iter("object"):
        if obj.findtext("name", "").strip() == label:
            bb = obj.find("bndbox")
            found.append(tuple(int(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")))
    if len(found) != 1:
        raise SystemExit(f"{path}: expected one '{label}' object, found {len(found)}")
    return found[0]


def map_labels(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    assert lines[0].strip() == "truth_label,model_class", path
    return {line.split(",")[0] for line in lines[1:] if line.strip()}


def load_crops(root: Path) -> dict[str, tuple[Image.Image, tuple[int, int, int, int], tuple[int, int]]]:
    """key -> (RGB crop, VOC box, source size)."""
    labels = map_labels(root / "data/annotations/natural-imagenet-map.csv")
    crops = {}
    for s in SOURCES:
        if s.label not in labels:
            raise SystemExit(f"label '{s.label}' is not in natural-imagenet-map.csv")
        box = voc_box(root / "data/annotations/natural-voc" / s.voc, s.label)
        with Image.open(root / "data/samples/natural" / s.image) as im:
            im.load()
            size = im.size
            xmin, ymin, xmax, ymax = box
            crop = im.convert("RGB").crop((xmin - 1, ymin - 1, xmax, ymax))
        assert crop.size == (xmax - xmin + 1, ymax - ymin + 1)
        crops[s.key] = (crop, box, size)
    return crops


# --------------------------------------------------------------------------
# procedural backgrounds (float64 H x W x 3, 0..255)


def smooth_noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """White noise low-passed by a (periodic) Gaussian of `sigma` px, zero mean, unit std."""
    n = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    g = np.exp(-2.0 * math.pi**2 * sigma**2 * (fx**2 + fy**2))
    out = np.fft.irfft2(np.fft.rfft2(n) * g, s=(h, w))
    out -= out.mean()
    return out / (out.std() + 1e-12)


def colour(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    h = rng.uniform(0.0, 1.0) if hue is None else hue % 1.0
    s = rng.uniform(0.15, 0.75)
    v = rng.uniform(0.30, 0.92)
    return np.array(colorsys.hsv_to_rgb(h, s, v)) * 255.0


def palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two colours: analogous or complementary hues, never equal in brightness by construction."""
    c1 = colour(rng)
    h1 = colorsys.rgb_to_hsv(*(c1 / 255.0))[0]
    shift = rng.choice([rng.uniform(0.04, 0.15), rng.uniform(0.4, 0.6)])
    c2 = colour(rng, h1 + shift)
    return c1, c2


def mix(t: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)[..., None]
    return c1 * (1.0 - t) + c2 * t


def smoothstep(x: np.ndarray, edge: float) -> np.ndarray:
    """0 -> 1 around 0 over +-edge."""
    t = np.clip(x / (2.0 * edge) + 0.5, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def rotated_coords(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray, float]:
    theta = rng.uniform(0.0, math.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u = x * math.cos(theta) + y * math.sin(theta)
    v = -x * math.sin(theta) + y * math.cos(theta)
    return u, v, theta


def bg_clouds(rng, h, w):
    c1, c2 = palette(rng)
    n = smooth_noise(rng, h, w, rng.uniform(18, 45)) + 0.5 * smooth_noise(rng, h, w, rng.uniform(5, 10))
    return mix(0.5 + 0.3 * n, c1, c2)


def bg_stripes(rng, h, w):
    c1, c2 = palette(rng)
    u, _, _ = rotated_coords(rng, h, w)
    period = rng.uniform(10, 48)
    duty = rng.uniform(0.3, 0.7)
    phase = (u / period) % 1.0
    # signed distance (px) to the nearest stripe edge, positive inside the stripe
    d = np.where(phase < duty, np.minimum(phase, duty - phase), -np.minimum(phase - duty, 1.0 - phase)) * period
    t = smoothstep(d, 1.0)
    img = mix(t, c1, c2)
    return img * (1.0 + 0.08 * smooth_noise(rng, h, w, rng.uniform(20, 40)))[..., None]


def bg_checker(rng, h, w):
    c1, c2 = palette(rng)
    u, v, _ = rotated_coords(rng, h, w)
    cell = rng.uniform(16, 56)
    su = np.sin(math.pi * u / cell)
    sv = np.sin(math.pi * v / cell)
    t = smoothstep(su * sv * cell / math.pi, 1.0)  # sign of the product, softened over ~1 px
    img = mix(t, c1, c2)
    return img * (1.0 + 0.10 * smooth_noise(rng, h, w, rng.uniform(15, 35)))[..., None]


def bg_gradient(rng, h, w):
    c1, c2 = palette(rng)
    u, _, _ = rotated_coords(rng, h, w)
    t = (u - u.min()) / (u.max() - u.min())
    t = t + 0.12 * smooth_noise(rng, h, w, rng.uniform(25, 60))
    return mix(t, c1, c2)


def bg_weave(rng, h, w):
    """Plain-weave fabric: warp and weft threads alternating over and under."""
    c1, c2 = palette(rng)
    p = rng.uniform(5, 12)  # thread pitch, px
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    warp = np.abs(np.sin(math.pi * x / p))  # bright in the middle of each vertical thread
    weft = np.abs(np.sin(math.pi * y / p))
    over = ((np.floor(x / p) + np.floor(y / p)) % 2) == 0
    shade = np.where(over, 0.55 + 0.45 * warp, 0.55 + 0.45 * weft)
    colour_t = np.where(over, 0.0, 1.0) * rng.uniform(0.3, 1.0)  # warp and weft dyed differently
    img = mix(colour_t, c1, c2) * shade[..., None]
    slub = 1.0 + 0.07 * smooth_noise(rng, h, w, rng.uniform(2, 4))  # uneven yarn
    return img * slub[..., None]


BACKGROUNDS = {
    "clouds": bg_clouds,
    "stripes": bg_stripes,
    "checker": bg_checker,
    "gradient": bg_gradient,
    "weave": bg_weave,
}


def background(rng: np.random.Generator, kind: str, w: int, h: int) -> np.ndarray:
    img = BACKGROUNDS[kind](rng, h, w)
    img = img + rng.normal(0.0, rng.uniform(1.5, 4.0), size=img.shape)  # sensor-like grain
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# one image


@dataclass
class Item:
    name: str  # pNN
    source: str  # Source.key
    kind: str
    width: int
    height: int
    x0: int  # half-open box [x0, x0 + w) x [y0, y0 + h)
    y0: int
    w: int
    h: int
    scale: float
    wanted_area: float
    fitted: bool  # the wanted area did not fit; scaled relative to the largest fit instead
    pasted: np.ndarray | None = None  # the resized crop (uint8 h x w x 3), for the check

    @property
    def area(self) -> float:
        return self.w * self.h / (self.width * self.height)

    @property
    def voc(self) -> tuple[int, int, int, int]:
        return self.x0 + 1, self.y0 + 1, self.x0 + self.w, self.y0 + self.h

    @property
    def centre_square_share(self) -> float:
        """Share of the box inside the centred min(W, H) square (what a centre crop keeps)."""
        s = min(self.width, self.height)
        cx0, cy0 = (self.width - s) / 2, (self.height - s) / 2
        ix = max(0.0, min(self.x0 + self.w, cx0 + s) - max(self.x0, cx0))
        iy = max(0.0, min(self.y0 + self.h, cy0 + s) - max(self.y0, cy0))
        return ix * iy / (self.w * self.h)


def make_item(i: int, name: str, src_key: str, kind: str, crop: Image.Image, seed: int) -> tuple[Item, np.ndarray]:
    rng = np.random.default_rng([seed, i])
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    cw, ch = crop.size
    wanted = float(rng.uniform(*AREA_RANGE))
    fit_u = float(rng.uniform(*FIT_RANGE))  # drawn always, so the stream does not depend on the branch
    s_fit = min(width / cw, height / ch)
    s = math.sqrt(wanted * width * height / (cw * ch))
    fitted = s > s_fit
    if fitted:
        s = s_fit * fit_u
    w = min(width, max(1, round(cw * s)))
    h = min(height, max(1, round(ch * s)))
    x0 = int(rng.integers(0, width - w + 1))
    y0 = int(rng.integers(0, height - h + 1))
    img = background(rng, kind, width, height)
    pasted = np.asarray(crop.resize((w, h), Image.Resampling.LANCZOS), dtype=np.uint8)
    img[y0 : y0 + h, x0 : x0 + w] = pasted
    item = Item(name, src_key, kind, width, height, x0, y0, w, h, s, wanted, fitted, pasted)
    return item, img


VOC_TEMPLATE = """<annotation>
  <folder>images</folder>
  <filename>{filename}</filename>
  <source>
    <database>cambox data/pasted (object crops of data/samples/natural pasted on procedural textures)</database>
    <annotation>generated, scripts/data/make_pasted_set.py seed {seed}: the pasted rectangle</annotation>
  </source>
  <size>
    <width>{width}</width>
    <height>{height}</height>
    <depth>3</depth>
  </size>
  <segmented>0</segmented>
  <object>
    <name>{label}</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <bndbox>
      <xmin>{xmin}</xmin>
      <ymin>{ymin}</ymin>
      <xmax>{xmax}</xmax>
      <ymax>{ymax}</ymax>
    </bndbox>
  </object>
</annotation>
"""


# --------------------------------------------------------------------------
# check


def mask_of(item: Item) -> np.ndarray:
    """The truth mask: 255 where the final pixel comes from the pasted crop, else 0."""
    mask = np.zeros((item.height, item.width), dtype=np.uint8)
    mask[item.y0 : item.y0 + item.h, item.x0 : item.x0 + item.w] = 255
    return mask


def check(out: Path, items: list[Item], labels: dict[str, str]) -> list[float]:
    """Read every XML, JPEG and mask back; return the mean abs error inside each box."""
    errs = []
    for it in items:
        root = ET.parse(out / "voc" / f"{it.name}.xml").getroot()
        assert root.findtext("filename") == f"{it.name}.jpg"
        size = root.find("size")
        assert (int(size.findtext("width")), int(size.findtext("height"))) == (it.width, it.height)
        objs = root.findall("object")
        assert len(objs) == 1 and objs[0].findtext("name") == labels[it.source]
        bb = objs[0].find("bndbox")
        xmin, ymin, xmax, ymax = (int(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        x1, y1, x2, y2 = xmin - 1, ymin - 1, xmax, ymax  # half-open, as cambox reads it
        assert (x1, y1, x2 - x1, y2 - y1) == (it.x0, it.y0, it.w, it.h), it.name
        assert 0 <= x1 < x2 <= it.width and 0 <= y1 < y2 <= it.height, it.name
        with Image.open(out / "images" / f"{it.name}.jpg") as im:
            assert im.mode == "RGB" and im.size == (it.width, it.height), it.name
            a = np.asarray(im, dtype=np.float64)
        with Image.open(out / "masks" / f"{it.name}.png") as im:
            assert im.mode == "L" and im.size == (it.width, it.height), it.name
            m = np.asarray(im)
        ys, xs = np.nonzero(m)
        assert set(np.unique(m).tolist()) <= {0, 255}, it.name
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2), it.name
        assert len(xs) == (x2 - x1) * (y2 - y1), it.name  # the whole rectangle, nothing else
        err = float(np.abs(a[y1:y2, x1:x2] - it.pasted).mean())
        if err > MAX_MEAN_ABS_ERR:
            raise SystemExit(f"{it.name}: decoded pixels inside the box differ from the crop by {err:.2f}")
        errs.append(err)
    return errs


# --------------------------------------------------------------------------
# README


def readme(items, crops, seed, errs, total_bytes, mask_bytes) -> str:
    by_key = {s.key: s for s in SOURCES}
    n_per = {s.key: sum(it.source == s.key for it in items) for s in SOURCES}
    L = []
    a = L.append
    a("# Pasted objects on procedural textures (exact boxes)")
    a("")
    a(f"{len(items)} images with one object each, whose ground-truth box is known exactly: an object")
    a("crop cut out of a bundled photo is pasted (hard edges, no feathering or blending) onto a")
    a("texture generated with numpy, and the box is the pasted rectangle. Made for measuring")
    a("cambox's localisation recipes (`cambox run` + `cambox eval`) with the ImageNet classifier")
    a("EfficientNet-Lite0 (`configs/demo.toml`).")
    a("")
    a("Generated by `scripts/data/make_pasted_set.sh` (which pins the Python packages and runs")
    a("`scripts/data/make_pasted_set.py`); do not edit by hand, run it again:")
    a("")
    a("```sh")
    a("scripts/data/make_pasted_set.sh            # writes data/pasted/ (images/, voc/, masks/, this README)")
    a("```")
    a("")
    a(f"Seed: `{seed}` (`--seed`). Packages: numpy {pkg_version('numpy')}, Pillow {pkg_version('pillow')}.")
    a("A rerun with the same pins on the same platform gives byte-identical files. Everything")
    a("about the boxes (object, canvas size, scale, position) comes from integer and uniform")
    a("draws and is the same on any platform; the texture pixels go through numpy's FFT.")
    a("")
    a("- `images/pNN.jpg`: 8-bit RGB JPEG, quality 90, 4:2:0, canvases of "
      + ", ".join(f"{w}x{h}" for w, h in SIZES) + " (width x height).")
    a("- `voc/pNN.xml`: one Pascal VOC XML per image, in the format of")
    a("  `data/annotations/natural-voc/*.xml` (`<folder>images</folder>`, `<filename>pNN.jpg</filename>`),")
    a("  one `<object>` with `<truncated>0</truncated>` and `<difficult>0</difficult>`.")
    a("  Labels are truth labels of `data/annotations/natural-imagenet-map.csv`.")
    a("- `masks/pNN.png`: the pixel truth mask of `images/pNN.jpg` for PxAP and pixel figures")
    a("  (`cambox eval --truth-masks data/pasted/masks`): 8-bit greyscale PNG of the image's size,")
    a("  **255 on the pasted rectangle, 0 elsewhere**; no `.ignore.png` files")
    a(f"  ({mask_bytes / 1e3:.1f} kB in all). See \"Truth masks\" below.")
    a("")
    a("## Coordinate convention")
    a("")
    a("VOC's own: **1-based inclusive** pixel indices. `xmin` is the first column of the pasted")
    a("crop counting from 1, `xmax` its last column (likewise `ymin`, `ymax` for rows). cambox reads")
    a("them as the half-open box `[xmin - 1, xmax) x [ymin - 1, ymax)` (`parse_voc`), which is")
    a("exactly the pixel rectangle that was overwritten by the crop: `xmax - xmin + 1` is its width.")
    a("Every object lies fully inside its image (it may touch the border), so no box is clipped.")
    a("")
    a("The box is the pasted *rectangle*, i.e. the rescaled hand-drawn VOC box of the source photo,")
    a("including whatever background of the source photo that box contained (little for the cup,")
    a("more for the cat, the rocket's sky and the tripod's grass). It is exact as a paste; it is as")
    a("tight around the object as the hand-drawn source box was. JPEG coding smears colour over a few")
    a("pixels across the rectangle's edges (8x8 and 16x16 chroma blocks); the generator checks that the")
    a(f"decoded pixels inside each box match the pasted crop (mean absolute error {min(errs):.2f} to {max(errs):.2f}")
    a("grey levels per image).")
    a("")
    a("## Truth masks")
    a("")
    a("A pixel is foreground exactly when its value in the composed image (before JPEG coding)")
    a("comes from the pasted crop. Each image has one object, pasted once onto the texture, with no")
    a("alpha channel, feathering or blending, so nothing overlaps or occludes it and the mask is")
    a("its box rectangle `[xmin - 1, xmax) x [ymin - 1, ymax)`: the mask's bounding box is the VOC")
    a("box and it fills it (the generator reads every mask back and checks both). Like the box, it")
    a("includes the background of the source photo inside the hand-drawn source box, and it")
    a("ignores the JPEG smear across the rectangle's edges.")
    a("")
    a("## Object crops: provenance")
    a("")
    a("The crops come from the scikit-image 0.26.0 sample photos in `data/samples/natural/`")
    a("(CC0 or public domain, see `data/samples/natural/README.md`), cut out with the hand-drawn")
    a("boxes of `data/annotations/natural-voc/` (see `data/annotations/README.md`): the crop is the")
    a("half-open box `[xmin - 1, xmax) x [ymin - 1, ymax)` of the source, converted to RGB.")
    a("The textures are generated, so the whole set is as free as its sources.")
    a("")
    a("| object | label | source photo | VOC file | VOC box (xmin, ymin, xmax, ymax) | crop w x h | images |")
    a("| --- | --- | --- | --- | --- | --- | --- |")
    for s in SOURCES:
        crop, box, size = crops[s.key]
        a(f"| {s.key} | `{s.label}` | `data/samples/natural/{s.image}` ({size[0]}x{size[1]}) "
          f"| `data/annotations/natural-voc/{s.voc}` | {', '.join(map(str, box))} "
          f"| {crop.size[0]} x {crop.size[1]} | {n_per[s.key]} |")
    a("")
    a("`camera.png` is greyscale, so the tripod is grey (R = G = B) on coloured textures.")
    a("")
    a("Which objects: those of the VOC files whose label is in `natural-imagenet-map.csv` and which")
    a("EfficientNet-Lite0 recognises out of context. Before choosing, every VOC crop was pasted")
    a("centred on a plain grey 400x400 canvas at 15 % and 30 % of its area and run through")
    a("`cambox run --config configs/demo.toml`; top-1 classes:")
    a("")
    a("- cat: Egyptian cat (285) 0.67 / 0.77; cup: espresso (967) 0.54 / 0.76;")
    a("  tripod: tripod (872) 0.94 / 0.90 — used.")
    a("- space shuttle: space shuttle (812) 0.75 at 15 %, microphone (650, shuttle 0.17 second) at 30 % — used.")
    a("- rocket: pole (733) 0.14, with missile (657) second at 0.09 and projectile (744) in the top 5 —")
    a("  used anyway as the thin-object case (25 x 283 px; GT-known localisation is still meaningful,")
    a("  top-1 localisation will mostly fail).")
    a("- left out: camera (camera.xml, 68 x 52 px, grey: rotisserie 0.17 / 0.10, no camera class in")
    a("  the top 5); helmet (loudspeaker 0.28); flag (flagpole 0.15-0.21, but its box is mostly the")
    a("  astronaut's orange sleeve); person (not a label of the map CSV, no ImageNet class).")
    a("")
    a("Note on the class map: in `natural-imagenet-map.csv` the label `rocket` maps to 657 missile,")
    a("744 projectile *and* 812 space shuttle, and `space shuttle` to 812. With")
    a("`--class-map data/annotations/natural-imagenet-map.csv`, a shuttle image whose model output")
    a("is space shuttle therefore also counts as a (false) rocket detection.")
    a("")
    a("## Procedure")
    a("")
    a(f"For image i = 1..{len(items)} (named `p{{i:02d}}`), with numpy's PCG64 generators:")
    a("")
    a(f"1. Object and background kind: the lists of the {len(SOURCES)} objects and of the {len(KINDS)} kinds, each")
    a(f"   repeated {len(items) // len(SOURCES)} times, shuffled by `default_rng({seed})` (first objects, then kinds).")
    a(f"2. Everything else from `default_rng([{seed}, i])`, in this order: the canvas size (uniform")
    a(f"   over the {len(SIZES)} sizes); the wanted area fraction a ~ U{AREA_RANGE}; u ~ U{FIT_RANGE}; the position; the texture.")
    a("3. Scale s = sqrt(a W H / (w h)) for a w x h crop on a W x H canvas. If the object would then")
    a("   not fit (s > min(W / w, H / h): the thin rocket always, the tall shuttle or tripod on")
    a("   some canvases), s = u min(W / w, H / h) instead, so such objects cover less than a")
    a("   (the rocket mostly less than 10 %; marked \"(fit)\" in the table below).")
    a("   The crop is resized with Pillow's LANCZOS filter to round(w s) x round(h s) (aspect kept")
    a("   up to rounding).")
    a("4. Position: top-left x0 ~ uniform integer in [0, W - w'], y0 in [0, H - h'] (fully inside).")
    a("5. Texture (then Gaussian grain of std U(1.5, 4) grey levels, rounded to 8 bits):")
    a("   - `clouds`: two octaves of Gaussian-smoothed noise mapped between two colours;")
    a("   - `stripes`: soft-edged stripes of random angle, period 10-48 px and duty cycle, brightness")
    a("     modulated by smooth noise;")
    a("   - `checker`: a rotated checkerboard (cells 16-56 px), brightness modulated by smooth noise;")
    a("   - `gradient`: a linear two-colour gradient at a random angle, warped by smooth noise;")
    a("   - `weave`: plain-weave fabric, threads 5-12 px, warp and weft dyed differently, uneven yarn.")
    a("   Colours: random HSV (saturation 0.15-0.75, value 0.30-0.92), the second analogous or")
    a("   complementary to the first.")
    a("6. The crop's pixels replace the canvas's in the rectangle (hard paste); JPEG quality 90.")
    a("7. The truth mask: 255 on that rectangle, 0 elsewhere; 8-bit grey PNG (Pillow, optimize).")
    a("")
    a("## Summary")
    a("")
    a(f"- {len(items)} images, {total_bytes / 1e6:.2f} MB of JPEG in total.")
    for s in SOURCES:
        its = [it for it in items if it.source == s.key]
        ar = [it.area for it in its]
        a(f"- {s.key} (`{s.label}`): {len(its)} images, object area {min(ar) * 100:.1f}-{max(ar) * 100:.1f} % of the image"
          + (f", {sum(it.fitted for it in its)} of them scaled to fit" if any(it.fitted for it in its) else "") + ".")
    ks = ", ".join(f"{k} {sum(it.kind == k for it in items)}" for k in KINDS)
    a(f"- Backgrounds: {ks}.")
    sz = ", ".join(f"{w}x{h} {sum((it.width, it.height) == (w, h) for it in items)}" for w, h in SIZES)
    a(f"- Canvas sizes: {sz}.")
    partial = [it for it in items if it.centre_square_share < 0.999]
    a(f"- {len(partial)} objects lie partly outside the image's centred square, which is all that a")
    a("  `shorter-side-then-center-crop` preprocessing (as in `configs/demo.toml`) shows the model;")
    a("  column \"in centre\" below is the share of the box inside that square.")
    a("")
    a("## Images")
    a("")
    a("| image | size | object | background | scale | area % | VOC box (xmin, ymin, xmax, ymax) | in centre |")
    a("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for it in items:
        fit = " (fit)" if it.fitted else ""
        a(f"| `{it.name}.jpg` | {it.width}x{it.height} | {by_key[it.source].label} | {it.kind} | {it.scale:.3f}{fit} "
          f"| {it.area * 100:.1f} | {', '.join(map(str, it.voc))} | {it.centre_square_share * 100:.0f} % |")
    a("")
    return "\n".join(L)


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "data/pasted", help="output folder (default data/pasted)")
    ap.add_argument("--seed", type=int, default=SEED, help=f"RNG seed (default {SEED})")
    args = ap.parse_args()

    crops = load_crops(REPO_ROOT)
    labels = {s.key: s.label for s in SOURCES}
    per = COUNT // len(SOURCES)
    assert per * len(SOURCES) == COUNT and COUNT % len(KINDS) == 0

    rng = np.random.default_rng(args.seed)
    objects = [s.key for s in SOURCES for _ in range(per)]
    kinds = [k for k in KINDS for _ in range(COUNT // len(KINDS))]
    objects = [objects[j] for j in rng.permutation(COUNT)]
    kinds = [kinds[j] for j in rng.permutation(COUNT)]

    out = args.out
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "voc").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    olds = [*(out / "images").glob("p*.jpg"), *(out / "voc").glob("p*.xml"), *(out / "masks").glob("p*.png")]
    for old in olds:
        old.unlink()

    items = []
    total = 0
    mask_total = 0
    for i in range(1, COUNT + 1):
        name = f"p{i:02d}"
        key, kind = objects[i - 1], kinds[i - 1]
        item, img = make_item(i, name, key, kind, crops[key][0], args.seed)
        path = out / "images" / f"{name}.jpg"
        Image.fromarray(img, "RGB").save(path, "JPEG", quality=JPEG_QUALITY, subsampling="4:2:0", optimize=True)
        total += path.stat().st_size
        mask_path = out / "masks" / f"{name}.png"
        Image.fromarray(mask_of(item), "L").save(mask_path, optimize=True)
        mask_total += mask_path.stat().st_size
        xmin, ymin, xmax, ymax = item.voc
        (out / "voc" / f"{name}.xml").write_text(
            VOC_TEMPLATE.format(
                filename=f"{name}.jpg", seed=args.seed, width=item.width, height=item.height,
                label=labels[key], xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax,
            )
        )
        items.append(item)

    errs = check(out, items, labels)
    (out / "README.md").write_text(readme(items, crops, args.seed, errs, total, mask_total))

    print(f"{'image':6} {'size':>8} {'object':8} {'background':10} {'area%':>6} {'box (VOC xmin,ymin,xmax,ymax)':>30} {'MAE':>5}")
    for it, e in zip(items, errs):
        print(f"{it.name:6} {it.width:>4}x{it.height:<4} {it.source:8} {it.kind:10} {it.area * 100:6.1f} "
              f"{','.join(map(str, it.voc)):>30} {e:5.2f}")
    print(f"{len(items)} images, {total / 1e6:.2f} MB of JPEG, {mask_total / 1e3:.1f} kB of masks; "
          f"boxes, masks and pixels checked; written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
