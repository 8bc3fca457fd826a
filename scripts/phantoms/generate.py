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

TRUTH MASK of an image (--masks, --masks-only; for pixel-level figures such as PxAP):
masks/<name>.png, 256x256 8-bit grey, 255 where any opacity's added intensity is > 0
(s(r) > 0, i.e. elliptical radius r < 1, at integer pixel centres, before noise), else 0;
all 0 for an image without opacity.  --masks-only writes only masks/, after checking that
the regenerated images, labels.csv and meta.csv are byte-identical to those in --out.

The same module is imported by train.py to make training/validation phantoms
in memory (from the 6 training sources only).

Usage (test set):
    python generate.py --out data/phantoms --count 120 --seed 1001 --split test [--masks]
    python generate.py --out data/phantoms --count 120 --seed 1001 --split test --masks-only
"""
from __future__ import annotations

import csv
import io
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
    boxes, ops, eboxes, masks = [], [], [], []
    lung_order = list(rng.permutation(2))
    for j in range(n_opacities):
        placed = common.place_ellipse(rng, lungs, lung_order[j % 2], common.sample_opacity_shape, eboxes)
        if placed is None:
            break
        geo, li, ebox = placed
        added, bx, amp, params = common.draw_finding(rng, geo, amplitude)
        added_total += added
        boxes.append(bx)
        masks.append(common.support_of(added))
        eboxes.append(ebox)
        params.update(lung=li, amplitude=amp, box=bx)
        ops.append(params)
    pixels, noise_sd = common.add_noise(rng, bg + added_total)
    meta = dict(bmeta, planned=n_opacities, noise_sd=noise_sd, opacities=ops)
    return Phantom(pixels, boxes, meta, masks)


def generate(sources, seed: int, count: int, amplitude: tuple = AMPLITUDE):
    for i in range(count):
        yield i, make_phantom(common.rng_for(seed, i), sources, amplitude=amplitude)


def labels_csv(rows) -> str:
    """rows: iterable of (patientId, boxes). RSNA stage_2_train_labels.csv format."""
    f = io.StringIO(newline="")
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["patientId", "x", "y", "width", "height", "Target"])
    for pid, boxes in rows:
        if not boxes:
            w.writerow([pid, "", "", "", "", 0])
        for (x, y, bw, bh) in boxes:
            w.writerow([pid, x, y, bw, bh, 1])
    return f.getvalue()


def main():
    args = common.cli(__doc__, count=120, seed=1001, prefix="phantom_",
                      out_help="output folder (images/, labels.csv, meta.csv; masks/ with --masks)")
    sources = common.sources_for(args.split, args.src)
    img_dir = os.path.join(args.out, "images")
    mask_dir = os.path.join(args.out, "masks")
    rows, meta_rows, masks = [], [], {}
    for i, ph in generate(sources, args.seed, args.count):
        pid = f"{args.prefix}{i:04d}"
        if args.masks_only:
            common.check_same_bytes(os.path.join(img_dir, pid + ".png"), common.png_bytes(ph.pixels))
        else:
            os.makedirs(img_dir, exist_ok=True)
            common.save_png(ph, os.path.join(img_dir, pid + ".png"))
        if args.masks or args.masks_only:
            masks[os.path.join(mask_dir, pid + ".png")] = common.mask_png(common.union_mask(ph.masks))
        rows.append((pid, ph.boxes))
        m = ph.meta
        meta_rows.append([*common.meta_row(pid, m), len(ph.boxes),
                          ";".join(f"{o['amplitude']:.1f}" for o in m["opacities"])])
    meta = io.StringIO(newline="")
    w = csv.writer(meta, lineterminator="\n")
    w.writerow(["patientId", *common.META_COLUMNS, "n_opacities", "amplitudes"])
    w.writerows(meta_rows)
    texts = {"labels.csv": labels_csv(rows), "meta.csv": meta.getvalue()}
    if args.masks_only:
        for name, text in texts.items():
            common.check_same_bytes(os.path.join(args.out, name), text.encode())
    else:
        common.write_files({os.path.join(args.out, k): v.encode() for k, v in texts.items()})
    common.write_files(masks)
    counts = [0, 0, 0]
    for _, b in rows:
        counts[len(b)] += 1
    if args.masks_only:
        what = f"the truth masks of {len(rows)} phantoms (images, labels.csv, meta.csv: byte-identical)"
    else:
        what = f"{len(rows)} phantoms" + (" and their truth masks" if masks else "")
    print(f"wrote {what} to {args.out} (seed {args.seed}); "
          f"images with 0/1/2 boxes: {counts[0]}/{counts[1]}/{counts[2]}")


if __name__ == "__main__":
    main()
