#!/usr/bin/env python3
"""Multi-finding chest X-ray phantoms: none, one or both of two kinds of finding.

Built on common.py, shared with generate.py (same sources, crops, intensity
augmentation, lung fields, placement rule, finding model, box rule and noise):

  Opacity  large diffuse consolidation-like opacities, exactly generate.py's model
           (ellipse, full major axis U(0.15, 0.35) x 256 px, soft raised-cosine edge,
           smooth texture in [0.55, 1], peak U(30, 65) grey levels).
  Nodule   small dense round nodules: a near-circular ellipse, full diameter
           U(14, 24) px, minor/major U(0.85, 1.0), a flat core out to r0 U(0.6, 0.8)
           then a short raised-cosine edge (sharper), a flatter texture in
           [0.85, 1] (sigma U(1.5, 3) px), peak U(55, 95) grey levels (brighter).

Finding combination of phantom i: i % 4 = 0 none, 1 Opacity only, 2 Nodule only,
3 both (exactly balanced over a multiple of 4).  A present finding has 1 or 2
instances (p = 0.6 / 0.4).  Opacities are placed first (a random lung, the second in
the other lung), then nodules (first in a random lung, then alternating); every
finding's ellipse bounding box must be clear of all the others' (common.place_ellipse).

TRUE BOX of a finding: as generate.py (common.py), the tight bounding box of the pixels where its
added intensity is >= 10 % of its own peak, half-open, in pixels of the 256 x 256 image.

Writes (the test set, from the 2 held-out sources):
  images/<prefix>NNNN.png   256 x 256 8-bit grey
  BBox_List.csv             NIH ChestX-ray8 format: Image Index,Finding Label,Bbox [x,y,w,h],,,
                            one row per box, x, y, w, h as floats (pixels); no row for negatives
  labels.csv                path,Opacity,Nodule (0/1 image-level truth, every image)
  meta.csv                  per image: source, crop, flip, gamma, contrast, brightness, noise,
                            findings with their amplitudes and boxes
  masks/<label>/<prefix>NNNN.png   with --masks or --masks-only: per label (Opacity, Nodule)
                            and image, 256 x 256 8-bit grey, 255 where a finding of that label
                            adds intensity > 0 (s(r) > 0, i.e. elliptical radius r < 1, at
                            integer pixel centres, before noise), else 0 (all 0 when the image
                            has no such finding).  --masks-only writes only masks/, after
                            checking that the regenerated images, BBox_List.csv, labels.csv
                            and meta.csv are byte-identical to those in --out.

The same module is imported by train_multilabel.py to make training / validation
phantoms in memory from the 6 training sources.

Usage (test set):
    python generate_multilabel.py --out data/phantoms-multilabel --count 140 --seed 1101 --split test [--masks]
    python generate_multilabel.py --out data/phantoms-multilabel --count 140 --seed 1101 --split test --masks-only
"""
from __future__ import annotations

import csv
import io
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CLASSES = ("Opacity", "Nodule")
COMBOS = ((0, 0), (1, 0), (0, 1), (1, 1))   # phantom i gets COMBOS[i % 4]
N_INSTANCES_P = (0.6, 0.4)                  # P(1), P(2) instances of a present finding

OPACITY_AMPLITUDE = common.AMPLITUDE        # (30, 65) grey levels
NODULE_DIAMETER = (14.0, 24.0)              # px, full major axis
NODULE_ASPECT = (0.85, 1.0)                 # minor / major
NODULE_EDGE_R0 = (0.6, 0.8)                 # flat core radius: a short, sharp edge
NODULE_TEXTURE_SIGMA = (1.5, 3.0)
NODULE_TEXTURE_MIN = 0.85                   # nearly uniform density
NODULE_AMPLITUDE = (55.0, 95.0)             # brighter than the opacities
NODULE_MAP = dict(edge_r0=NODULE_EDGE_R0, texture_sigma=NODULE_TEXTURE_SIGMA, texture_min=NODULE_TEXTURE_MIN)


def _sample_nodule(rng: np.random.Generator) -> dict:
    major = rng.uniform(*NODULE_DIAMETER)
    minor = major * rng.uniform(*NODULE_ASPECT)
    return dict(major=major, minor=minor, theta=rng.uniform(0, math.pi))


def make_multilabel_phantom(rng: np.random.Generator, sources, combo: tuple,
                            opacity_amplitude: tuple = OPACITY_AMPLITUDE,
                            nodule_amplitude: tuple = NODULE_AMPLITUDE) -> common.Phantom:
    """A phantom with the findings of combo = (want Opacity, want Nodule).
    Phantom.boxes is a list of (label, (x, y, w, h)), Phantom.masks their truth masks;
    meta['findings'] their parameters."""
    bg, lungs, bmeta = common.make_background(rng, sources)
    n_op = (1 + int(rng.random() >= N_INSTANCES_P[0])) if combo[0] else 0
    n_nod = (1 + int(rng.random() >= N_INSTANCES_P[0])) if combo[1] else 0
    op_order = list(rng.permutation(2))
    nod_order = list(rng.permutation(2))
    plan = [("Opacity", op_order[j % 2]) for j in range(n_op)] + \
           [("Nodule", nod_order[j % 2]) for j in range(n_nod)]
    added_total = np.zeros((common.SIZE, common.SIZE))
    boxes, findings, eboxes, masks = [], [], [], []
    for label, lung in plan:
        shape = common.sample_opacity_shape if label == "Opacity" else _sample_nodule
        placed = common.place_ellipse(rng, lungs, lung, shape, eboxes)
        if placed is None:
            continue  # never happened for the committed set (see README counts)
        geo, li, ebox = placed
        if label == "Opacity":
            added, bx, amp, params = common.draw_finding(rng, geo, opacity_amplitude)
        else:
            added, bx, amp, params = common.draw_finding(rng, geo, nodule_amplitude, **NODULE_MAP)
        added_total += added
        boxes.append((label, bx))
        masks.append(common.support_of(added))
        eboxes.append(ebox)
        params.update(label=label, lung=li, amplitude=amp, box=bx)
        findings.append(params)
    pixels, noise_sd = common.add_noise(rng, bg + added_total)
    meta = dict(bmeta, planned=(n_op, n_nod), noise_sd=noise_sd, findings=findings)
    return common.Phantom(pixels, boxes, meta, masks)


def labels_of(ph: common.Phantom) -> tuple:
    """Image-level truth (Opacity, Nodule) from the boxes actually placed."""
    return tuple(int(any(lab == c for lab, _ in ph.boxes)) for c in CLASSES)


def generate(sources, seed: int, count: int, opacity_amplitude: tuple = OPACITY_AMPLITUDE,
             nodule_amplitude: tuple = NODULE_AMPLITUDE):
    """Phantom i uses its own generator numpy.random.default_rng([seed, i]) and the
    combination COMBOS[i % 4], so it depends only on (seed, i)."""
    for i in range(count):
        yield i, make_multilabel_phantom(common.rng_for(seed, i), sources, COMBOS[i % 4],
                                         opacity_amplitude, nodule_amplitude)


def fmt_float(v) -> str:
    return repr(float(v))


def csv_text(header, rows) -> bytes:
    f = io.StringIO(newline="")
    if header is not None:
        f.write(header)
    csv.writer(f, lineterminator="\n").writerows(rows)
    return f.getvalue().encode()


def main():
    args = common.cli(__doc__, count=140, seed=1101, prefix="mlphantom_",
                      out_help="output folder (images/, BBox_List.csv, labels.csv, meta.csv; "
                               "masks/ with --masks)")
    sources = common.sources_for(args.split, args.src)
    img_dir = os.path.join(args.out, "images")
    bbox_rows, label_rows, meta_rows, masks = [], [], [], {}
    for i, ph in generate(sources, args.seed, args.count):
        name = f"{args.prefix}{i:04d}.png"
        if args.masks_only:
            common.check_same_bytes(os.path.join(img_dir, name), common.png_bytes(ph.pixels))
        else:
            os.makedirs(img_dir, exist_ok=True)
            common.save_png(ph, os.path.join(img_dir, name))
        if args.masks or args.masks_only:
            for c in CLASSES:
                union = common.union_mask(m for (lab, _), m in zip(ph.boxes, ph.masks) if lab == c)
                masks[os.path.join(args.out, "masks", c, name)] = common.mask_png(union)
        for label, (x, y, w, h) in ph.boxes:
            bbox_rows.append([name, label, fmt_float(x), fmt_float(y), fmt_float(w), fmt_float(h)])
        label_rows.append([name, *labels_of(ph)])
        m = ph.meta
        meta_rows.append([*common.meta_row(name, m),
                          sum(f["label"] == "Opacity" for f in m["findings"]),
                          sum(f["label"] == "Nodule" for f in m["findings"]),
                          ";".join(f"{f['label']}:{f['amplitude']:.1f}:{' '.join(map(str, f['box']))}"
                                   for f in m["findings"])])
    files = {
        "BBox_List.csv": csv_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n", bbox_rows),
        "labels.csv": csv_text(None, [["path", *CLASSES], *label_rows]),
        "meta.csv": csv_text(None, [["path", *common.META_COLUMNS, "n_opacity", "n_nodule",
                                     "findings_label_amplitude_box"], *meta_rows]),
    }
    if args.masks_only:
        for fname, data in files.items():
            common.check_same_bytes(os.path.join(args.out, fname), data)
    else:
        common.write_files({os.path.join(args.out, k): v for k, v in files.items()})
    common.write_files(masks)
    combos = [0, 0, 0, 0]
    for _, o, n in label_rows:
        combos[o + 2 * n] += 1
    if args.masks_only:
        what = (f"the truth masks of {len(label_rows)} phantoms "
                "(images, BBox_List.csv, labels.csv, meta.csv: byte-identical)")
    else:
        what = f"{len(label_rows)} phantoms" + (" and their truth masks" if masks else "")
    print(f"wrote {what} to {args.out} (seed {args.seed}); "
          f"none / Opacity only / Nodule only / both: {combos[0]}/{combos[1]}/{combos[2]}/{combos[3]}; "
          f"boxes: {sum(r[1] == 'Opacity' for r in bbox_rows)} Opacity, "
          f"{sum(r[1] == 'Nodule' for r in bbox_rows)} Nodule")


if __name__ == "__main__":
    main()
