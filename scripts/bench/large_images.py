#!/usr/bin/env python3
"""Writes a folder of large images for the memory benchmark (scripts/bench/bench-memory.sh
--large): photographs of 20 to 100 megapixels as JPEG and PNG, and a 100-megapixel grey
PNG (a large radiograph), each a smooth pattern with some texture (deterministic, seeded).

Usage: large_images.py OUT_DIR
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None

# name, width, height, colour, format
SET = [
    ("photo_20mp.jpg", 5472, 3648, True, "JPEG"),
    ("photo_50mp.jpg", 8660, 5774, True, "JPEG"),
    ("photo_100mp.jpg", 12247, 8165, True, "JPEG"),
    ("photo_100mp.png", 12247, 8165, True, "PNG"),
    ("xray_100mp.png", 10000, 10000, False, "PNG"),
]


def picture(w: int, h: int, colour: bool, rng: np.random.Generator) -> Image.Image:
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    a = 0.5 + 0.3 * np.sin(6 * x + 3 * y) * np.cos(4 * y)
    # A bright blob off centre, something for a class map to find.
    cx, cy, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.05, 0.15)
    a += 0.3 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    a = (np.clip(a, 0, 1) * 255).astype(np.uint8)
    if colour:
        return Image.fromarray(np.stack([a, 255 - a, a // 2], axis=-1))
    return Image.fromarray(a)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261129)
    for name, w, h, colour, fmt in SET:
        p = out / name
        im = picture(w, h, colour, rng)
        if p.exists():
            continue
        if fmt == "JPEG":
            im.save(p, fmt, quality=90)
        else:
            im.save(p, fmt, compress_level=1)
        print(f"{name}: {w} x {h} ({w * h / 1e6:.0f} MP)", file=sys.stderr)


if __name__ == "__main__":
    main()
