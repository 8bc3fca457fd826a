#!/usr/bin/env python3
"""Synthetic chest X-ray "lesion" phantoms with exactly known boxes.

Each phantom is a random square crop of one of the 8 normal chest X-rays in
data/samples/chest-xray/ (CC BY 4.0, Kermany et al. 2018), randomly flipped,
with random gamma/contrast/brightness, resized to 256x256 and given 0, 1 or 2
synthetic "opacities" (smooth, textured, soft-edged elliptical brightenings,
like consolidation) placed inside approximate lung fields.  The drawing
(background, placement, opacity model, box rule, noise) is in common.py, shared
with generate_multilabel.py.

Opacity model (all in the 256x256 image, float grey levels 0..255):
    m(x, y)   = s(r) * T(x, y)           (unnormalised opacity map, >= 0)
    added     = A * m / max(m)           (A = peak added grey level)
    image     = clip(round(background + sum(added) + noise), 0, 255)
where r is the elliptical radius (1 at the ellipse edge), s(r) = 1 for
r <= r0 and a raised-cosine falloff to 0 at r = 1, and T is a low-frequency
noise texture in [0.55, 1].

TRUE BOX of an opacity: the tight bounding box of the pixels (integer pixel
centres) where its added intensity is >= 10% of its own peak, i.e.
m >= 0.1 * max(m).  Written RSNA style as x, y, width, height in pixels of the
256x256 image, (x, y) = top-left corner, half-open: the box covers columns
x .. x+width-1 and rows y .. y+height-1 (x2 = x + width, y2 = y + height).

The same module is imported by train.py to make training/validation phantoms
in memory (from the 6 training sources only).

Usage (test set):
    python generate.py --out data/phantoms --count 120 --seed 1001 --split test
"""
from __future__ import annotations

import csv
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import AMPLITUDE, SIZE, Phantom  # noqa: E402

N_OPACITY_P = (0.5, 0.3, 0.2)  # P(0), P(1), P(2) opacities


def make_phantom(rng: np.random.Generator, sources: list, n_opacities: int | None = None,
                 amplitude: tuple = AMPLITUDE) -> Phantom:
    bg, lungs, bmeta = common.make_background(rng, sources)
    # --- opacities
    if n_opacities is None:
        n_opacities = int(rng.choice(3, p=N_OPACITY_P))
    added_total = np.zeros((SIZE, SIZE))
    boxes, ops, eboxes = [], [], []
    lung_order = list(rng.permutation(2))
    for j in range(n_opacities):
        placed = common.place_ellipse(rng, lungs, lung_order[j % 2], common.sample_opacity_shape, eboxes)
        if placed is None:
            break
        geo, li, ebox = placed
        added, bx, amp, params = common.draw_finding(rng, geo, amplitude)
        added_total += added
        boxes.append(bx)
        eboxes.append(ebox)
        params.update(lung=li, amplitude=amp, box=bx)
        ops.append(params)
    pixels, noise_sd = common.add_noise(rng, bg + added_total)
    meta = dict(bmeta, planned=n_opacities, noise_sd=noise_sd, opacities=ops)
    return Phantom(pixels, boxes, meta)


def generate(sources, seed: int, count: int, amplitude: tuple = AMPLITUDE):
    for i in range(count):
        yield i, make_phantom(common.rng_for(seed, i), sources, amplitude=amplitude)


def write_labels(path: str, rows):
    """rows: iterable of (patientId, boxes). RSNA stage_2_train_labels.csv format."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["patientId", "x", "y", "width", "height", "Target"])
        for pid, boxes in rows:
            if not boxes:
                w.writerow([pid, "", "", "", "", 0])
            for (x, y, bw, bh) in boxes:
                w.writerow([pid, x, y, bw, bh, 1])


def main():
    args = common.cli(__doc__, count=120, seed=1001, prefix="phantom_",
                      out_help="output folder (images/ and labels.csv)")
    sources = common.sources_for(args.split, args.src)
    img_dir = os.path.join(args.out, "images")
    os.makedirs(img_dir, exist_ok=True)
    rows, meta_rows = [], []
    for i, ph in generate(sources, args.seed, args.count):
        pid = f"{args.prefix}{i:04d}"
        common.save_png(ph, os.path.join(img_dir, pid + ".png"))
        rows.append((pid, ph.boxes))
        m = ph.meta
        meta_rows.append([*common.meta_row(pid, m), len(ph.boxes),
                          ";".join(f"{o['amplitude']:.1f}" for o in m["opacities"])])
    write_labels(os.path.join(args.out, "labels.csv"), rows)
    with open(os.path.join(args.out, "meta.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["patientId", *common.META_COLUMNS, "n_opacities", "amplitudes"])
        w.writerows(meta_rows)
    counts = [0, 0, 0]
    for _, b in rows:
        counts[len(b)] += 1
    print(f"wrote {len(rows)} phantoms to {args.out} (seed {args.seed}); "
          f"images with 0/1/2 boxes: {counts[0]}/{counts[1]}/{counts[2]}")


if __name__ == "__main__":
    main()
