#!/usr/bin/env python3
"""Reference boxes from wsolevaluation's score-map -> box extraction.

Writes, in the output directory (default tests/fixtures/wsol/):

  map_<i>.npy     float32 (H, W) score maps in [0, 1], min exactly 0, max exactly 1
  expected.json   per map and per threshold tau: the boxes that
                  wsolevaluation's compute_bboxes_from_scoremaps() returns
                  (multi_contour_eval False and True), plus cross-checks
                  (mask pixel count, 8-connected components and their boxes)
  README.md is hand-written (tests/fixtures/wsol/README.md), not generated.

The box extraction below is a copy of compute_bboxes_from_scoremaps() from
clovaai/wsolevaluation, evaluation.py (Choe et al., "Evaluating Weakly
Supervised Object Localization Methods Right", CVPR 2020), as of commit
b98c7d1198e48423b9289ee032a52d2cc0f0f53a (the version with
multi_contour_eval), MIT licence, Copyright (c) 2020-present NAVER Corp.
Only changes: it returns plain lists, handles one threshold per call, and the
dtype check of util.check_scoremap_validity (which insists on np.float, i.e.
float64) is dropped because our maps are float32; the range/NaN checks stay.
No normalisation is applied: the caller passes a map already in [0, 1].

Run through scripts/reference/wsol_boxes.sh, which pins numpy and
opencv-python-headless.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import cv2
import numpy as np

# evaluation.py: OpenCV 3 returned (image, contours, hierarchy).
_CONTOUR_INDEX = 1 if cv2.__version__.split('.')[0] == '3' else 0

TAUS = [0.0, 0.2, 0.5, 0.8, 0.95]


# --------------------------------------------------------------------------
# wsolevaluation code (see module docstring for provenance)
# --------------------------------------------------------------------------

def check_scoremap_validity(scoremap):
    """util.check_scoremap_validity minus the float64 dtype check."""
    if not isinstance(scoremap, np.ndarray):
        raise TypeError("Scoremap must be a numpy array; it is {}."
                        .format(type(scoremap)))
    if len(scoremap.shape) != 2:
        raise ValueError("Scoremap must be a 2D array; it is {}D."
                         .format(len(scoremap.shape)))
    if np.isnan(scoremap).any():
        raise ValueError("Scoremap must not contain nans.")
    if (scoremap > 1).any() or (scoremap < 0).any():
        raise ValueError("Scoremap must be in range [0, 1]."
                         "scoremap.min()={}, scoremap.max()={}."
                         .format(scoremap.min(), scoremap.max()))


def compute_bboxes_from_scoremaps(scoremap, threshold, multi_contour_eval):
    """wsolevaluation evaluation.compute_bboxes_from_scoremaps, one threshold.

    Returns (boxes, number_of_boxes, debug) where boxes is a list of
    [x0, y0, x1, y1] exactly as wsolevaluation computes them and debug holds
    the intermediate values (uint8 image, threshold, raw contours, hierarchy).
    """
    check_scoremap_validity(scoremap)
    height, width = scoremap.shape
    scoremap_image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)

    thresh = int(threshold * np.max(scoremap_image))
    _, thr_gray_heatmap = cv2.threshold(
        src=scoremap_image,
        thresh=thresh,
        maxval=255,
        type=cv2.THRESH_BINARY)
    found = cv2.findContours(
        image=thr_gray_heatmap,
        mode=cv2.RETR_TREE,
        method=cv2.CHAIN_APPROX_SIMPLE)
    contours = found[_CONTOUR_INDEX]
    hierarchy = found[_CONTOUR_INDEX + 1]
    debug = dict(image=scoremap_image[:, :, 0], thresh=thresh,
                 binary=thr_gray_heatmap, contours=list(contours),
                 hierarchy=hierarchy)

    if len(contours) == 0:
        return [[0, 0, 0, 0]], 1, debug

    if not multi_contour_eval:
        contours = [max(contours, key=cv2.contourArea)]

    estimated_boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        x0, y0, x1, y1 = x, y, x + w, y + h
        x1 = min(x1, width - 1)
        y1 = min(y1, height - 1)
        estimated_boxes.append([x0, y0, x1, y1])

    return estimated_boxes, len(contours), debug


# --------------------------------------------------------------------------
# synthetic maps
# --------------------------------------------------------------------------

def _grid(h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    return yy, xx


def _gauss(h, w, cy, cx, sy, sx, theta=0.0):
    """Anisotropic Gaussian, axes rotated by theta (radians), float64."""
    yy, xx = _grid(h, w)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(theta), np.sin(theta)
    u = c * dx + s * dy
    v = -s * dx + c * dy
    return np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))


def _minmax(m):
    """float64 min-max normalisation, then float32 (max 1.0, min 0.0 exactly)."""
    m = np.asarray(m, dtype=np.float64)
    m = (m - m.min()) / (m.max() - m.min())
    out = m.astype(np.float32)
    assert out.max() == np.float32(1.0) and out.min() == np.float32(0.0)
    return out


def make_maps():
    """[(description, float32 map)], deterministic."""
    maps = []

    # 0: one Gaussian blob, off-centre, 224x224 (the CAM resize size).
    maps.append(("single Gaussian blob, 224x224",
                 _minmax(_gauss(224, 224, 100.0, 130.0, 28.0, 22.0))))

    # 1: two well separated blobs of different sizes and peaks.
    h, w = 100, 80
    m = (_gauss(h, w, 25.0, 20.0, 9.0, 7.0)
         + 0.7 * _gauss(h, w, 72.0, 55.0, 5.0, 4.0))
    maps.append(("two separated blobs (big one peak 1, small one ~0.7)",
                 _minmax(m)))

    # 2: blob whose support runs off the right and bottom borders.
    h, w = 64, 48
    maps.append(("blob centred near the bottom-right corner (touches right"
                 " and bottom borders: exercises x1/y1 clipping)",
                 _minmax(_gauss(h, w, 58.0, 44.0, 10.0, 8.0))))

    # 3: blob in the top-left corner, odd sizes.
    h, w = 37, 53
    maps.append(("blob centred at the top-left corner",
                 _minmax(_gauss(h, w, 1.0, 2.0, 7.0, 9.0))))

    # 4: elongated diagonal ridge.
    h, w = 96, 128
    maps.append(("elongated diagonal blob (rotated anisotropic Gaussian)",
                 _minmax(_gauss(h, w, 48.0, 64.0, 3.0, 40.0,
                                theta=np.deg2rad(35.0)))))

    # 5: smooth random field: seeded sum of a few Gaussians.
    h, w = 80, 100
    rng = np.random.default_rng(20200610)
    m = np.zeros((h, w))
    for _ in range(6):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        sy, sx = rng.uniform(3, 12), rng.uniform(3, 12)
        amp = rng.uniform(0.3, 1.0)
        th = rng.uniform(0, np.pi)
        m += amp * _gauss(h, w, cy, cx, sy, sx, theta=th)
    maps.append(("smooth random field: 6 seeded random Gaussians"
                 " (numpy default_rng(20200610))", _minmax(m)))

    # 6: ring / annulus: RETR_TREE returns the hole as an extra contour.
    h, w = 72, 72
    yy, xx = _grid(h, w)
    r = np.hypot(yy - 35.5, xx - 36.0)
    maps.append(("ring (annulus), radius 20, width sigma 4: has a hole",
                 _minmax(np.exp(-0.5 * ((r - 20.0) / 4.0) ** 2))))

    # 7: plateaus at and around the uint8 threshold values.
    maps.append(("piecewise-constant plateaus at/around the uint8 thresholds"
                 " (51, 127, 204, 242): strict '>' and truncation",
                 make_plateau_map()))

    # 8: thin line vs compact squares: contourArea vs pixel count.
    maps.append(("thin 1-px line (most pixels, zero contourArea), two equal"
                 " squares (tie), a larger lower square, a diagonal line and"
                 " corner-touching squares (8-connectivity)",
                 make_line_map()))
    return maps


def make_plateau_map():
    h, w = 40, 60
    m = np.zeros((h, w), dtype=np.float32)
    f = np.float32
    # Row of columns, one per uint8 threshold level k in (51, 127, 204, 242):
    #   a: value exactly float32(tau)        -> u8 == k   (not > k)
    #   b: value slightly above tau, same u8 -> u8 == k   (float > tau, u8 not)
    #   c: value (k + 1) / 255               -> u8 == k+1 (> k)
    #   d: value just below k / 255          -> u8 == k-1 (truncation)
    levels = [(0.2, 51), (0.5, 127), (0.8, 204), (0.95, 242)]
    for row, (tau, k) in enumerate(levels):
        y0 = 2 + row * 7
        vals = [f(tau), f(tau + 0.4 / 255), f((k + 1) / 255),
                f((k - 1e-3) / 255)]
        for col, v in enumerate(vals):
            x0 = 2 + col * 8
            m[y0:y0 + 5, x0:x0 + 6] = v
    # Wedding cake (nested plateaus) in the right part, touching the right
    # border: outer ring u8 51, then 127, 204, 255 at the centre.
    m[4:36, 36:60] = f(51 / 255)
    m[9:31, 41:60] = f(127 / 255)
    m[14:26, 46:60] = f(204 / 255)
    m[18:22, 50:56] = f(1.0)
    assert m.max() == 1.0 and m.min() == 0.0
    return m


def make_line_map():
    h, w = 64, 64
    m = np.zeros((h, w), dtype=np.float32)
    f = np.float32
    m[4, 5:55] = f(1.0)              # 1x50 line: 50 px, contourArea 0
    m[12:17, 8:13] = f(1.0)          # 5x5 square: 25 px, area 16
    m[12:17, 30:35] = f(1.0)         # identical 5x5 square: tie on area
    m[30:38, 6:14] = f(0.85)         # 8x8 square, u8 216: area 49
    for i in range(12):              # diagonal 1-px line, 8-connected only
        m[26 + i, 30 + i] = f(0.6)
    m[46:49, 40:43] = f(0.6)         # two 3x3 squares touching at a corner
    m[49:52, 43:46] = f(0.6)
    m[56:60, 52:64] = f(0.3)         # 4x12 bar touching the right border
    assert m.max() == 1.0 and m.min() == 0.0
    return m


# --------------------------------------------------------------------------
# cross-checks
# --------------------------------------------------------------------------

def contour_info(contours, hierarchy, width, height):
    out = []
    hier = hierarchy[0] if hierarchy is not None else np.zeros((0, 4), int)
    for i, c in enumerate(contours):
        depth, p = 0, int(hier[i][3])
        while p >= 0:
            depth += 1
            p = int(hier[p][3])
        x, y, w, h = cv2.boundingRect(c)
        out.append(dict(
            box=[x, y, min(x + w, width - 1), min(y + h, height - 1)],
            box_unclipped=[x, y, x + w, y + h],
            area=float(cv2.contourArea(c)),
            is_hole=bool(depth % 2 == 1),
            parent=int(hier[i][3]),
            n_points=int(len(c)),
        ))
    return out


def components_8(binary):
    mask = (binary > 0).astype(np.uint8)
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    comps = []
    for lab in range(1, n):
        ys, xs = np.nonzero(labels == lab)
        comps.append(([int(xs.min()), int(ys.min()),
                       int(xs.max()) + 1, int(ys.max()) + 1], int(len(xs))))
    comps.sort()
    return n - 1, comps


def run_case(scoremap, tau):
    height, width = scoremap.shape
    v1, n1, dbg = compute_bboxes_from_scoremaps(scoremap, tau, False)
    allb, nall, _ = compute_bboxes_from_scoremaps(scoremap, tau, True)
    img, thresh, binary = dbg["image"], dbg["thresh"], dbg["binary"]
    cinfo = contour_info(dbg["contours"], dbg["hierarchy"], width, height)

    ncomp, comps = components_8(binary)
    comp_boxes = [b for b, _ in comps]
    comp_pix = [p for _, p in comps]

    outer_unclipped = sorted(c["box_unclipped"] for c in cinfo
                             if not c["is_hole"])
    n_holes = sum(c["is_hole"] for c in cinfo)

    case = dict(
        tau=tau,
        thresh_u8=thresh,
        max_u8=int(img.max()),
        n_contours=len(dbg["contours"]),
        n_hole_contours=n_holes,
        v1_boxes=v1,
        all_boxes=allb,
        all_boxes_sorted=sorted(allb),
        mask_pixels=int((img > thresh).sum()),
        components_8=ncomp,
        component_boxes_8=comp_boxes,
        component_pixels_8=comp_pix,
        contours=cinfo,
    )

    # Sanity: what cv2.threshold produced is exactly u8 > thresh.
    assert np.array_equal(binary[:, :, 0] if binary.ndim == 3 else binary,
                          np.where(img > thresh, 255, 0).astype(np.uint8))
    assert case["mask_pixels"] == sum(comp_pix)
    assert nall == max(1, len(dbg["contours"]))

    # Which contour did V1 pick, and is it the most-pixel component?
    notes = []
    if cinfo:
        areas = [c["area"] for c in cinfo]
        amax = max(areas)
        first = areas.index(amax)      # max() keeps the first maximal item
        case["v1_contour_index"] = first
        case["v1_area_tie"] = areas.count(amax) > 1
        assert cinfo[first]["box"] == v1[0]
        pmax = max(comp_pix)
        biggest = [comp_boxes[i] for i, p in enumerate(comp_pix) if p == pmax]
        case["v1_is_most_pixels_component"] = \
            cinfo[first]["box_unclipped"] in biggest
        if not case["v1_is_most_pixels_component"]:
            notes.append("V1 (max contourArea) is not the component with the"
                         " most pixels")
        if case["v1_area_tie"]:
            notes.append("several contours share the max contourArea; V1 is"
                         " the first of them in cv2's order")
    else:
        case["v1_contour_index"] = None
        case["v1_area_tie"] = False
        case["v1_is_most_pixels_component"] = None
    case["outer_contour_boxes_match_components_8"] = \
        outer_unclipped == comp_boxes
    if not case["outer_contour_boxes_match_components_8"]:
        notes.append("outer-contour boxes differ from 8-connected component"
                     " boxes")
    if n_holes:
        notes.append("{} hole contour(s) included in all_boxes".format(n_holes))
    case["notes"] = notes
    return case


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    entries = []
    for i, (desc, m) in enumerate(make_maps()):
        assert m.dtype == np.float32 and m.ndim == 2
        assert m.max() == 1.0 and m.min() == 0.0
        name = "map_{}.npy".format(i)
        np.save(args.out / name, np.ascontiguousarray(m, dtype="<f4"))
        h, w = m.shape

        u8 = (m * 255).astype(np.uint8)
        u8_f64 = (m.astype(np.float64) * 255).astype(np.uint8)
        cases = [run_case(m, tau) for tau in TAUS]

        # Would the original float64 pipeline (map upcast before * 255) see
        # other boxes?  Record it so the Rust side knows which product to use.
        same64 = True
        for c in cases:
            b64, _, _ = compute_bboxes_from_scoremaps(
                m.astype(np.float64), c["tau"], True)
            v64, _, _ = compute_bboxes_from_scoremaps(
                m.astype(np.float64), c["tau"], False)
            c["same_boxes_with_f64_product"] = (b64 == c["all_boxes"]
                                                and v64 == c["v1_boxes"])
            same64 &= c["same_boxes_with_f64_product"]

        entries.append(dict(
            map=name,
            description=desc,
            height=h,
            width=w,
            has_hole=any(c["n_hole_contours"] > 0 for c in cases),
            u8_sum=int(u8.astype(np.int64).sum()),
            u8_f32_vs_f64_product_mismatch_pixels=int((u8 != u8_f64).sum()),
            cases=cases,
        ))

    # The brief asks for a bare list of map entries; versions go to README.
    with open(args.out / "expected.json", "w") as fh:
        json.dump(entries, fh, indent=1)
        fh.write("\n")
    print("python {} numpy {} opencv {}".format(
        platform.python_version(), np.__version__, cv2.__version__))

    # Short summary on stdout.
    for e in entries:
        print("{map} {height}x{width} hole={has_hole} "
              "u8 f32/f64 mismatches={u8_f32_vs_f64_product_mismatch_pixels}"
              .format(**e))
        for c in e["cases"]:
            print("  tau={tau:<4} thr={thresh_u8:<3} px={mask_pixels:<5} "
                  "cnt={n_contours} holes={n_hole_contours} "
                  "cc8={components_8} v1={v1_boxes} {notes}".format(**c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
