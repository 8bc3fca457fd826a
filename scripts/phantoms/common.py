"""Phantom drawing shared by generate.py (single finding) and generate_multilabel.py
(two findings), and imported by train.py / train_multilabel.py through them.

Each phantom is a random square crop of one of the 8 normal chest X-rays in
data/samples/chest-xray/ (CC BY 4.0, Kermany et al. 2018), randomly flipped, with
random gamma/contrast/brightness, resized to 256x256 (make_background), with
findings added inside approximate lung fields (place_ellipse, draw_finding) and
Gaussian sensor noise (add_noise).

Finding model (all in the 256x256 image, float grey levels 0..255):
    m(x, y)   = s(r) * T(x, y)           (unnormalised map, >= 0; finding_map)
    added     = A * m / max(m)           (A = peak added grey level)
    image     = clip(round(background + sum(added) + noise), 0, 255)
where r is the elliptical radius (1 at the ellipse edge), s(r) = 1 for r <= r0 and a
raised-cosine falloff to 0 at r = 1, and T is a low-frequency noise texture in
[texture_min, 1].

TRUE BOX of a finding: the tight bounding box of the pixels (integer pixel centres)
where its added intensity is >= 10% of its own peak, i.e. m >= 0.1 * max(m);
x, y, width, height in pixels of the 256x256 image, half-open (columns x .. x+width-1,
rows y .. y+height-1).

TRUTH MASK of a finding (Phantom.masks, written with --masks / --masks-only): the
pixels (integer pixel centres, as for the box) where its added intensity is > 0, on the
float map before noise, rounding and clipping; i.e. s(r) > 0, i.e. elliptical radius
r < 1 (the texture is >= texture_min > 0 inside the ellipse).  It contains the TRUE BOX's
pixels and reaches further: the box cuts the raised-cosine tail at 10 % of the peak.
Findings never overlap (place_ellipse keeps their ellipse bounding boxes apart).

Every function draws its random numbers in the order the scripts drew them before
this module existed, so data/phantoms/ and data/phantoms-multilabel/ regenerate byte
for byte.
"""
from __future__ import annotations

import argparse
import io
import math
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

SIZE = 256
BOX_LEVEL = 0.10  # box = pixels with added intensity >= 10% of the finding's peak

# Approximate lung fields per source, in source-normalised coordinates
# (cx, cy in [0, 1] of width/height; ax = semi-axis as fraction of width,
#  ay = semi-axis as fraction of height).  Image-left lung first.
# Hand-placed by eye on each radiograph; deliberately a little conservative.
LUNGS = {
    "NORMAL2-IM-1427-0001.jpeg": ((0.31, 0.46, 0.12, 0.23), (0.69, 0.46, 0.12, 0.23)),
    "NORMAL2-IM-1430-0001.jpeg": ((0.31, 0.47, 0.12, 0.23), (0.69, 0.47, 0.12, 0.23)),
    "NORMAL2-IM-1431-0001.jpeg": ((0.31, 0.45, 0.12, 0.23), (0.69, 0.45, 0.12, 0.23)),
    "NORMAL2-IM-1436-0001.jpeg": ((0.29, 0.44, 0.12, 0.24), (0.71, 0.44, 0.12, 0.24)),
    "NORMAL2-IM-1437-0001.jpeg": ((0.31, 0.48, 0.12, 0.23), (0.69, 0.48, 0.12, 0.23)),
    "NORMAL2-IM-1438-0001.jpeg": ((0.31, 0.47, 0.12, 0.23), (0.69, 0.47, 0.12, 0.23)),
    "NORMAL2-IM-1440-0001.jpeg": ((0.30, 0.51, 0.13, 0.27), (0.71, 0.50, 0.13, 0.26)),
    "NORMAL2-IM-1442-0001.jpeg": ((0.29, 0.50, 0.12, 0.26), (0.71, 0.50, 0.12, 0.26)),
}
TRAIN_SOURCES = [
    "NORMAL2-IM-1427-0001.jpeg",
    "NORMAL2-IM-1431-0001.jpeg",
    "NORMAL2-IM-1436-0001.jpeg",
    "NORMAL2-IM-1437-0001.jpeg",
    "NORMAL2-IM-1440-0001.jpeg",
    "NORMAL2-IM-1442-0001.jpeg",
]
# Held out for the test sets: two of the six radiographs of the common soft paediatric
# look.  (1440 and 1442 are the only two sharper, high-contrast ones; a first attempt
# that held out 1442 left one such source for training and scored 67 % on it.)
TEST_SOURCES = [
    "NORMAL2-IM-1430-0001.jpeg",
    "NORMAL2-IM-1438-0001.jpeg",
]

# Generation parameters (documented in data/phantoms/README.md).
CROP_FRAC = (0.60, 0.95)      # crop side / shorter source side
CROP_JITTER = 0.04            # sd of crop-centre jitter, fraction of crop side
GAMMA = (0.7, 1.4)            # log-uniform
CONTRAST = (0.8, 1.2)
BRIGHTNESS = (-0.08, 0.08)    # fraction of full scale
NOISE_SD = (1.0, 3.0)         # grey levels, Gaussian sensor noise
MAJOR_FRAC = (0.15, 0.35)     # opacity: ellipse major axis (full length) / image side
ASPECT = (0.5, 1.0)           # opacity: minor / major
EDGE_R0 = (0.3, 0.6)          # opacity: flat core radius (fraction of the ellipse radius)
TEXTURE_SIGMA = (3.0, 6.0)    # opacity: px, Gaussian smoothing of the texture noise
TEXTURE_MIN = 0.55            # opacity: texture range [TEXTURE_MIN, 1]
AMPLITUDE = (30.0, 65.0)      # opacity: peak added grey level
LUNG_MARGIN = 1.10            # finding mask must lie inside lung ellipse scaled by this

# Columns of meta.csv common to both sets (after the image name).
META_COLUMNS = ["source", "crop_x", "crop_y", "crop_side", "flip", "gamma", "contrast",
                "brightness", "noise_sd"]


@dataclass
class Source:
    name: str
    image: Image.Image  # mode "L"
    lungs: tuple


@dataclass
class Phantom:
    pixels: np.ndarray                  # (256, 256) uint8
    boxes: list = field(default_factory=list)  # [(x, y, w, h)] or [(label, (x, y, w, h))]
    meta: dict = field(default_factory=dict)
    masks: list = field(default_factory=list)  # per box: (256, 256) bool, the finding's TRUTH MASK


def load_sources(src_dir: str, names: list[str], max_short: int = 768) -> list[Source]:
    """Load source radiographs as greyscale, downscaled to a shorter side of max_short
    (crops are at least 0.6 * 768 = 460 px, still downscaled to 256)."""
    out = []
    for name in names:
        im = Image.open(os.path.join(src_dir, name)).convert("L")
        w, h = im.size
        k = max_short / min(w, h)
        if k < 1:
            im = im.resize((round(w * k), round(h * k)), Image.BILINEAR)
        out.append(Source(name, im, LUNGS[name]))
    return out


def sources_for(split: str, src_dir: str) -> list[Source]:
    """The held-out test sources (split "test") or the six training ones ("train")."""
    return load_sources(src_dir, TEST_SOURCES if split == "test" else TRAIN_SOURCES)


def sample_opacity_shape(rng: np.random.Generator) -> dict:
    major = rng.uniform(*MAJOR_FRAC) * SIZE
    minor = major * rng.uniform(*ASPECT)
    return dict(major=major, minor=minor, theta=rng.uniform(0, math.pi))


def _ellipse_points(g: dict, n: int = 72):
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    a, b, th = g["major"] / 2, g["minor"] / 2, g["theta"]
    u, v = a * np.cos(t), b * np.sin(t)
    return g["cx"] + u * math.cos(th) - v * math.sin(th), g["cy"] + u * math.sin(th) + v * math.cos(th)


def _ellipse_bbox(g: dict):
    a, b, th = g["major"] / 2, g["minor"] / 2, g["theta"]
    hw = math.sqrt((a * math.cos(th)) ** 2 + (b * math.sin(th)) ** 2)
    hh = math.sqrt((a * math.sin(th)) ** 2 + (b * math.cos(th)) ** 2)
    return (g["cx"] - hw, g["cy"] - hh, g["cx"] + hw, g["cy"] + hh)


def finding_map(rng: np.random.Generator, g: dict, edge_r0: tuple = EDGE_R0,
                texture_sigma: tuple = TEXTURE_SIGMA, texture_min: float = TEXTURE_MIN):
    """Return (m, params) with m a (256,256) float map, max(m) > 0, support = ellipse g.
    The keyword ranges default to the opacity model; generate_multilabel.py passes the
    nodule model's (a sharper edge, a flatter texture)."""
    cx, cy = g["cx"], g["cy"]
    a, b, theta = g["major"] / 2, g["minor"] / 2, g["theta"]
    r0 = rng.uniform(*edge_r0)
    sigma = rng.uniform(*texture_sigma)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    dx, dy = xx - cx, yy - cy
    c, s = math.cos(theta), math.sin(theta)
    u = dx * c + dy * s
    v = -dx * s + dy * c
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    prof = np.where(r <= r0, 1.0, 0.5 * (1 + np.cos(np.pi * np.clip((r - r0) / (1 - r0), 0, 1))))
    prof[r >= 1] = 0.0
    noise = gaussian_filter(rng.standard_normal((SIZE, SIZE)), sigma, mode="reflect")
    inside = r < 1
    lo, hi = noise[inside].min(), noise[inside].max()
    tex = texture_min + (1 - texture_min) * (noise - lo) / max(hi - lo, 1e-12)
    m = prof * tex
    return m, dict(g, r0=r0, sigma=sigma)


def box_of(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    x0, x1 = int(xs.min()), int(xs.max()) + 1
    y0, y1 = int(ys.min()), int(ys.max()) + 1
    return (x0, y0, x1 - x0, y1 - y0)


def support_of(added: np.ndarray) -> np.ndarray:
    """The TRUTH MASK of a finding from its added intensity (draw_finding): added > 0."""
    return added > 0


def draw_finding(rng: np.random.Generator, geo: dict, amplitude: tuple, **map_kw):
    """One finding on the ellipse geo: its map (finding_map(rng, geo, **map_kw)), then its
    peak amplitude A ~ U(amplitude).  Returns (added, box, A, params): added = A * m / max(m)
    to add to the image, box its TRUE BOX."""
    m, params = finding_map(rng, geo, **map_kw)
    amp = rng.uniform(*amplitude)
    peak = m.max()
    return amp * m / peak, box_of(m >= BOX_LEVEL * peak), amp, params


def _ellipse_inside(lung, scale, xs, ys):
    cx, cy, ax, ay = lung
    return ((xs - cx) / (ax * scale)) ** 2 + ((ys - cy) / (ay * scale)) ** 2 <= 1.0


def make_background(rng: np.random.Generator, sources: list[Source]):
    """Crop, flip and intensity-augment a random source.  Returns (bg, lungs, meta):
    bg the (256, 256) float background in grey levels 0..255, lungs the two lung
    ellipses (cx, cy, ax, ay) in 256-pixel coordinates, meta the drawn parameters."""
    si = int(rng.integers(len(sources)))
    src = sources[si]
    W, H = src.image.size
    # --- crop (square), roughly centred on the chest
    f = rng.uniform(*CROP_FRAC)
    side = f * min(W, H)
    (lcx, lcy, _, _), (rcx, rcy, _, _) = src.lungs
    ccx = (lcx + rcx) / 2 * W + rng.normal(0, CROP_JITTER * side)
    ccy = (lcy + rcy) / 2 * H + rng.normal(0, CROP_JITTER * side)
    x0 = float(np.clip(ccx - side / 2, 0, W - side))
    y0 = float(np.clip(ccy - side / 2, 0, H - side))
    img = src.image.resize((SIZE, SIZE), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    flip = bool(rng.random() < 0.5)
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    bg = np.asarray(img, dtype=np.float64) / 255.0
    # lung ellipses in 256-pixel coordinates (pixel centres at integer coordinates)
    k = SIZE / side
    lungs = []
    for (cx, cy, ax, ay) in src.lungs:
        px = (cx * W - x0) * k - 0.5
        py = (cy * H - y0) * k - 0.5
        if flip:
            px = SIZE - 1 - px
        lungs.append((px, py, ax * W * k, ay * H * k))
    # --- intensity augmentation
    gamma = math.exp(rng.uniform(math.log(GAMMA[0]), math.log(GAMMA[1])))
    contrast = rng.uniform(*CONTRAST)
    bright = rng.uniform(*BRIGHTNESS)
    bg = np.clip((np.clip(bg, 0, 1) ** gamma - 0.5) * contrast + 0.5 + bright, 0, 1) * 255.0
    meta = dict(source=src.name, crop=(x0, y0, side), flip=flip, gamma=gamma,
                contrast=contrast, brightness=bright)
    return bg, lungs, meta


def place_ellipse(rng: np.random.Generator, lungs: list, lung: int, sample_shape, eboxes: list):
    """Draw a shape with sample_shape(rng), then up to 30 centres for it (uniform inside
    0.8 x the lung ellipse), a new shape every 30 tries, at most 600 tries (after 300 the
    lung is drawn at random too).  A centre is kept when the whole ellipse lies inside the
    lung ellipse scaled by LUNG_MARGIN, at least 1 px inside the image, and its bounding
    box overlaps none of eboxes.  Returns (geo, lung index, ellipse bbox) or None."""
    # draw a size/shape first, then up to 30 centres for it, so that large
    # opacities are not rejected much more often than small ones
    for attempt in range(600):
        if attempt % 30 == 0:
            li = lung if attempt < 300 else int(rng.integers(2))
            shape = sample_shape(rng)
        lcx_, lcy_, lax, lay = lungs[li]
        # candidate centre uniformly inside 0.8 x the lung ellipse
        t = rng.uniform(0, 2 * math.pi)
        rr = math.sqrt(rng.uniform(0, 1)) * 0.8
        geo = dict(shape, cx=lcx_ + rr * lax * math.cos(t), cy=lcy_ + rr * lay * math.sin(t))
        # the whole ellipse (support of the finding) must lie inside the lung
        # ellipse scaled by LUNG_MARGIN and inside the image
        px, py = _ellipse_points(geo)
        if not np.all(_ellipse_inside(lungs[li], LUNG_MARGIN, px, py)):
            continue
        ebox = _ellipse_bbox(geo)
        if ebox[0] < 1 or ebox[1] < 1 or ebox[2] > SIZE - 2 or ebox[3] > SIZE - 2:
            continue
        # keep the findings apart: their ellipse bounding boxes must not overlap
        if any(not (ebox[2] < o[0] or o[2] < ebox[0] or ebox[3] < o[1] or o[3] < ebox[1])
               for o in eboxes):
            continue
        return geo, li, ebox
    return None


def add_noise(rng: np.random.Generator, image: np.ndarray):
    """Gaussian sensor noise (sd drawn from NOISE_SD), rounded and clipped to uint8."""
    noise_sd = rng.uniform(*NOISE_SD)
    out = image + rng.normal(0, noise_sd, size=(SIZE, SIZE))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), noise_sd


def rng_for(seed: int, index: int) -> np.random.Generator:
    """Each phantom has its own generator, so phantom i depends only on (seed, i)."""
    return np.random.default_rng([seed, index])


# --- the command line and files of both generators ------------------------------------


def cli(doc: str, count: int, seed: int, prefix: str, out_help: str) -> argparse.Namespace:
    """The generators' shared options (their defaults differ).  --masks also writes the
    truth masks (OUT/masks/); --masks-only writes nothing else and first checks that the
    regenerated images and box/label files are byte-identical to those already in OUT."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default="data/samples/chest-xray")
    ap.add_argument("--out", required=True, help=out_help)
    ap.add_argument("--count", type=int, default=count)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--split", choices=["test", "train"], default="test",
                    help="which source radiographs to use")
    ap.add_argument("--prefix", default=prefix)
    ap.add_argument("--masks", action="store_true",
                    help="also write the truth masks, OUT/masks/ (see the module doc)")
    ap.add_argument("--masks-only", action="store_true",
                    help="write only OUT/masks/, after checking that the regenerated images, "
                         "boxes and meta are byte-identical to the files already in OUT")
    return ap.parse_args()


def png_bytes(pixels: np.ndarray) -> bytes:
    """An 8-bit grey (256, 256) array as the optimised PNG that save_png writes."""
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def save_png(ph: Phantom, path: str):
    Image.fromarray(ph.pixels, mode="L").save(path, optimize=True)


def mask_png(mask: np.ndarray) -> bytes:
    """A boolean mask as an optimised 8-bit grey PNG: 255 foreground, 0 background."""
    return png_bytes(np.where(mask, 255, 0).astype(np.uint8))


def union_mask(masks) -> np.ndarray:
    """The union of boolean masks (all background when there are none); checks that the
    findings do not overlap."""
    out = np.zeros((SIZE, SIZE), dtype=bool)
    for m in masks:
        assert not np.any(out & m), "findings overlap"
        out |= m
    return out


def check_same_bytes(path: str, data: bytes):
    """--masks-only: the file already at path must be exactly data."""
    try:
        with open(path, "rb") as f:
            old = f.read()
    except FileNotFoundError:
        raise SystemExit(f"--masks-only: {path} is missing")
    if old != data:
        raise SystemExit(f"--masks-only: {path} differs from the regenerated one (other seed, "
                         "count, sources or package versions?); no mask written")


def write_files(files: dict):
    """Write {path: bytes}, making folders as needed."""
    for path, data in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def meta_row(name: str, m: dict) -> list:
    """The META_COLUMNS values of one phantom's meta, formatted as in meta.csv."""
    return [name, m["source"], *(f"{v:.2f}" for v in m["crop"]), int(m["flip"]),
            f"{m['gamma']:.3f}", f"{m['contrast']:.3f}", f"{m['brightness']:.3f}",
            f"{m['noise_sd']:.2f}"]
