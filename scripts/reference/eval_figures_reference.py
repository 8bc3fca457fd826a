#!/usr/bin/env python3
"""Independent numpy reference for cambox eval's map figures.

Writes two files (default folder: tests/fixtures/eval-figures/ of the repository):

  cases.json     the input: carried maps with their seen rectangle, truth boxes, pointing
                 tolerance, and (some) truth masks with normalised score maps; PxAP sets
                 (maps pooled into one PxAP); bootstrap sets (per-image values, B, seed).
                 Hand-written edge cases plus cases made from a fixed numpy seed.
  expected.json  the output: per map the peak, the pointing-game hit, the energy and the
                 pixel-IoU counts; per PxAP set the pooled histograms and PxAP; per
                 bootstrap set the point value, the 95 % interval and the number of
                 defined resamples.

Definitions: tests/fixtures/eval-figures/README.md (short) and docs/localisation-and-eval.md.

Usage:
  eval_figures_reference.py                 regenerate cases.json and expected.json
  eval_figures_reference.py --check         recompute both and fail if a stored file differs
  eval_figures_reference.py --eval FILE     print the expected JSON for any cases file

Nothing here comes from cambox: box pixels, peak, pointing and energy are plain Python
loops (cross-checked against a numpy formulation and exact fractions), PxAP is numpy's
histogram followed by wsolevaluation's precision/recall arithmetic, SplitMix64 is Python
integers masked to 64 bits (cross-checked against a vectorised numpy uint64 version and
the published test vectors), the interval is numpy.percentile.

Reproducibility: every map value M is exactly representable in float32 (multiples of
1/256 or simple decimals that are), so energy sums are exact; every bootstrap value is a
multiple of 1/1024, so every mean is the correctly rounded quotient of two exact numbers
whatever the summation order. PxAP and the interval ends involve rounding (sums of
products; numpy's interpolation): compare those with a 1e-12 tolerance.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

SEED = 20240923            # random map cases
N_RANDOM = 10
BOOT_DATA_SEED = 20240924  # values of the random bootstrap sets
DEFAULT_B = 1000
DEFAULT_BOOT_SEED = 20231207  # cambox's --bootstrap-seed default
DEFAULT_TOLERANCE = 15.0
DEFAULT_STEP = 0.01

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB

FG, BG, IGNORE = 1, 0, 255


# ---------------------------------------------------------------------------
# Reading a map entry
# ---------------------------------------------------------------------------

def map_f32(rows) -> np.ndarray:
    """(H, W) float32 from JSON rows; the string "nan" is NaN. Parsed as float64 first and
    then cast, as a Rust reader parsing f64 and casting `as f32` does."""
    a = np.array([[math.nan if v == "nan" else float(v) for v in row] for row in rows],
                 dtype=np.float64)
    return a.astype(np.float32)


def box_pixels(b, W, H):
    """Inclusive pixel ranges (lo_x, hi_x, lo_y, hi_y) of a half-open float box: the pixels
    whose centre (p + 0.5) lies inside, at least the column/row lo, clamped to the image."""
    x1, y1, x2, y2 = (float(v) for v in b)

    def span(a, z, n):
        lo = math.ceil(a - 0.5)
        hi = max(lo, math.ceil(z - 0.5) - 1)
        return min(max(lo, 0), n - 1), min(max(hi, 0), n - 1)

    lx, hx = span(x1, x2, W)
    ly, hy = span(y1, y2, H)
    return lx, hx, ly, hy


def box_pixels_exact(b, W, H):
    """The same by brute force over pixel centres with exact fractions (self-check)."""
    x1, y1, x2, y2 = (Fraction(float(v)) for v in b)

    def span(a, z, n):
        half = Fraction(1, 2)
        # candidates far enough out to cover any box of these cases
        inside = [p for p in range(-64, n + 64) if a <= p + half < z]
        if inside:
            lo, hi = min(inside), max(inside)
        else:  # no centre inside: the first pixel whose centre is >= a
            lo = next(p for p in range(-64, n + 64) if p + half >= a)
            hi = lo
        return min(max(lo, 0), n - 1), min(max(hi, 0), n - 1)

    lx, hx = span(x1, x2, W)
    ly, hy = span(y1, y2, H)
    return lx, hx, ly, hy


# ---------------------------------------------------------------------------
# Peak, pointing game, energy (plain loops)
# ---------------------------------------------------------------------------

def peak(M: np.ndarray, seen):
    """Largest finite value inside seen, first in raster order on ties; None if none."""
    x0, y0, x1, y1 = seen
    best, best_v = None, None
    for y in range(y0, y1):
        for x in range(x0, x1):
            v = float(M[y, x])
            if not math.isfinite(v):
                continue
            if best_v is None or v > best_v:  # strict: an equal later value loses
                best, best_v = (x, y), v
    return best


def peak_numpy(M: np.ndarray, seen):
    """The same with numpy (self-check): argmax returns the first maximum in C order."""
    x0, y0, x1, y1 = seen
    sub = M[y0:y1, x0:x1].astype(np.float64)
    if sub.size == 0 or not np.isfinite(sub).any():
        return None
    sub = np.where(np.isfinite(sub), sub, -np.inf)
    k = int(np.argmax(sub))
    yy, xx = divmod(k, sub.shape[1])
    return (x0 + xx, y0 + yy)


def pointing_hit(pk, boxes_px, tolerance: float):
    """None without truth boxes; False without a peak; else any box within tolerance."""
    if not boxes_px:
        return None
    if pk is None:
        return False
    px, py = pk
    tol2 = float(tolerance) * float(tolerance)
    for lx, hx, ly, hy in boxes_px:
        dx = px - min(max(px, lx), hx)
        dy = py - min(max(py, ly), hy)
        if float(dx * dx + dy * dy) <= tol2:
            return True
    return False


def union_mask(boxes_px, W, H) -> np.ndarray:
    inside = np.zeros((H, W), dtype=bool)
    for lx, hx, ly, hy in boxes_px:
        inside[ly:hy + 1, lx:hx + 1] = True
    return inside


def energy(M: np.ndarray, seen, boxes_px):
    """Positive mass (NaN -> 0) of the seen pixels inside the union of the boxes over that
    of all seen pixels; 0 when there is none; None without truth boxes. Float64 sums of
    the float32 values in raster order."""
    if not boxes_px:
        return None
    H, W = M.shape
    inside = union_mask(boxes_px, W, H)
    x0, y0, x1, y1 = seen
    num = den = 0.0
    for y in range(y0, y1):
        for x in range(x0, x1):
            v = float(M[y, x])
            if math.isnan(v) or v <= 0.0:
                continue
            den += v
            if inside[y, x]:
                num += v
    return num / den if den > 0.0 else 0.0


def energy_numpy(M: np.ndarray, seen, boxes_px):
    """The same with numpy and math.fsum (self-check)."""
    if not boxes_px:
        return None
    H, W = M.shape
    x0, y0, x1, y1 = seen
    P = np.nan_to_num(M.astype(np.float64), nan=0.0)
    P = np.maximum(P, 0.0)
    seen_m = np.zeros((H, W), dtype=bool)
    seen_m[y0:y1, x0:x1] = True
    den = math.fsum(P[seen_m].tolist())
    num = math.fsum(P[seen_m & union_mask(boxes_px, W, H)].tolist())
    return num / den if den > 0 else 0.0


# ---------------------------------------------------------------------------
# PxAP and pixel IoU
# ---------------------------------------------------------------------------

def step_fraction(step: float) -> Fraction:
    """The decimal the step is written as (0.01 -> 1/100)."""
    r = repr(float(step))
    assert "e" not in r and "E" not in r, r
    return Fraction(r)


def hist_edges(step: float) -> np.ndarray:
    """[0, s, ..., 1 - s, 1, 2, 3]: t_k = k*s rounded to s's decimals (the double nearest
    the decimal k*s), k = 0 .. 1/s - 1."""
    s = step_fraction(step)
    n = 1 / s
    assert n.denominator == 1, step
    taus = [float(k * s) for k in range(int(n))]
    return np.array(taus + [1.0, 2.0, 3.0], dtype=np.float64)


def hist_counts_explicit(values: np.ndarray, edges: np.ndarray) -> list:
    """numpy.histogram's rule written out (self-check): bin i holds e_i <= v < e_{i+1},
    the last bin also v == e_last; values compared as float64."""
    e = edges.tolist()
    counts = [0] * (len(e) - 1)
    for v in values.astype(np.float64).tolist():
        if v < e[0] or v > e[-1]:
            continue
        if v == e[-1]:
            counts[-1] += 1
            continue
        counts[bisect.bisect_right(e, v) - 1] += 1  # the last i with e[i] <= v
    return counts


def map_hists(entry, edges):
    """(hist_fg, hist_bg) of one map: np.histogram of S (float32) over the foreground and
    the background pixels (ignore pixels left out)."""
    mask = np.array(entry["mask"], dtype=np.int64)
    S = np.array(entry["score"], dtype=np.float64).astype(np.float32)
    fg = S[mask == FG]
    bg = S[mask == BG]
    hf, _ = np.histogram(fg, bins=edges)
    hb, _ = np.histogram(bg, bins=edges)
    return hf.astype(np.int64), hb.astype(np.int64)


def pxap_from_hists(hf: np.ndarray, hb: np.ndarray):
    """wsolevaluation's MaskEvaluator.compute() as a fraction; the area sum left to right."""
    if int(hf.sum()) == 0:
        return None
    hf = hf.astype(np.float64)
    hb = hb.astype(np.float64)
    tp = np.cumsum(hf[::-1])
    fn = hf.sum() - tp
    fp = np.cumsum(hb[::-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
    total = 0.0
    for i in range(1, len(tp)):
        if tp[i] + fp[i] != 0:
            total += float(precision[i]) * (float(recall[i]) - float(recall[i - 1]))
    return total


def pxap_wsol_numpy(hf: np.ndarray, hb: np.ndarray):
    """wsolevaluation's own expression (numpy sum, NaNs dropped), divided by 100 (self-check)."""
    hf = hf.astype(np.float64)
    hb = hb.astype(np.float64)
    num_gt_true = hf.sum()
    tp = hf[::-1].cumsum()
    fn = num_gt_true - tp
    fp = hb[::-1].cumsum()
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        auc = precision[1:] * np.diff(recall)
    auc = auc[~np.isnan(auc)].sum()
    return float(auc * 100) / 100


def pixel_iou_counts(entry):
    """[TP, FP, FN] at tau: S > tau with S float32 and tau float64; ignore pixels left out."""
    if entry.get("mask") is None or entry.get("score") is None:
        return None
    mask = np.array(entry["mask"], dtype=np.int64)
    S = np.array(entry["score"], dtype=np.float64).astype(np.float32).astype(np.float64)
    above = S > float(entry["tau"])
    fg, bg = mask == FG, mask == BG
    return [int((above & fg).sum()), int((above & bg).sum()), int((~above & fg).sum())]


# ---------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------

class SplitMix64:
    def __init__(self, seed: int):
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + GAMMA) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * MIX1) & MASK64
        z = ((z ^ (z >> 27)) * MIX2) & MASK64
        return z ^ (z >> 31)

    def index(self, n: int) -> int:
        return (self.next() * n) >> 64


def splitmix_indices_numpy(seed: int, n: int, count: int) -> np.ndarray:
    """The first `count` values of index(n), vectorised in uint64 (self-check): state_i =
    seed + (i + 1) * gamma wrapping, the same mix, and (z * n) >> 64 from 32-bit halves."""
    i = np.arange(1, count + 1, dtype=np.uint64)
    z = i * np.uint64(GAMMA) + np.uint64(seed & MASK64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
    z = z ^ (z >> np.uint64(31))
    assert 0 < n < (1 << 32)
    hi, lo = z >> np.uint64(32), z & np.uint64(0xFFFFFFFF)
    nn = np.uint64(n)
    return (hi * nn + ((lo * nn) >> np.uint64(32))) >> np.uint64(32)


def unit_sums(units):
    """Per unit: (sum of the non-null values, number of them)."""
    out = []
    for u in units:
        vals = [float(v) for v in u if v is not None]
        s = 0.0
        for v in vals:
            s += v
        out.append((s, len(vals)))
    return out


def statistic(sums, chosen):
    """Mean over the non-null values of the chosen units (a multiset); None when none."""
    s, c = 0.0, 0
    for i in chosen:
        s += sums[i][0]
        c += sums[i][1]
    return s / c if c else None


def draws(seed: int, n: int, B: int) -> list:
    rng = SplitMix64(seed)
    return [[rng.index(n) for _ in range(n)] for _ in range(B)]


def percentile_spec(v, q):
    """The spec's formula of numpy's linear percentile (self-check)."""
    d = len(v)
    pos = q / 100 * (d - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, d - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def bootstrap(bset):
    units = bset["units"]
    assert bset["statistic"] == "mean", bset["statistic"]
    B, seed = int(bset["resamples"]), int(bset["seed"])
    n = len(units)
    sums = unit_sums(units)
    point = statistic(sums, range(n))
    values = []
    for idx in draws(seed, n, B):
        v = statistic(sums, idx)
        if v is not None:
            values.append(v)
    d = len(values)
    ci = None
    if 2 * d >= B and d > 0:
        v = np.sort(np.array(values, dtype=np.float64))
        lo, hi = np.percentile(v, [2.5, 97.5])
        ci = [float(lo), float(hi)]
    return {"point": point, "ci95": ci, "defined": d}


# ---------------------------------------------------------------------------
# Expected values
# ---------------------------------------------------------------------------

def evaluate_map(entry):
    W, H = entry["width"], entry["height"]
    M = map_f32(entry["map"])
    boxes = [box_pixels(b, W, H) for b in entry["truth"]]
    pk = peak(M, entry["seen"])
    return {
        "peak": None if pk is None else [pk[0], pk[1]],
        "pointing_hit": pointing_hit(pk, boxes, entry["tolerance"]),
        "energy": energy(M, entry["seen"], boxes),
        "pixel_iou_counts": pixel_iou_counts(entry),
    }


def evaluate_pxap_set(pset, maps_by_id):
    edges = hist_edges(pset["step"])
    hf = np.zeros(len(edges) - 1, dtype=np.int64)
    hb = np.zeros(len(edges) - 1, dtype=np.int64)
    for mid in pset["members"]:
        f, b = map_hists(maps_by_id[mid], edges)
        hf += f
        hb += b
    return {"pxap": pxap_from_hists(hf, hb), "hist_fg": [int(x) for x in hf],
            "hist_bg": [int(x) for x in hb]}


def splitmix_meta():
    r = SplitMix64(DEFAULT_BOOT_SEED)
    first = [r.next() for _ in range(5)]
    r = SplitMix64(DEFAULT_BOOT_SEED)
    idx60 = [r.index(60) for _ in range(10)]
    return {"seed": DEFAULT_BOOT_SEED, "first_next": first, "first_index_60": idx60}


def expected_for(cases: dict) -> dict:
    validate(cases)
    maps_by_id = {m["id"]: m for m in cases["maps"]}
    return {
        "meta": {
            "generator": "scripts/reference/eval_figures_reference.py",
            "numpy": np.__version__,
            "splitmix64": splitmix_meta(),
        },
        "maps": {m["id"]: evaluate_map(m) for m in cases["maps"]},
        "pxap_sets": {p["id"]: evaluate_pxap_set(p, maps_by_id) for p in cases["pxap_sets"]},
        "bootstrap": {b["id"]: bootstrap(b) for b in cases["bootstrap"]},
    }


def validate(cases: dict) -> None:
    ids = set()
    for m in cases["maps"]:
        assert m["id"] not in ids, m["id"]
        ids.add(m["id"])
        W, H = m["width"], m["height"]
        assert len(m["map"]) == H and all(len(r) == W for r in m["map"]), m["id"]
        for r in m["map"]:
            for v in r:
                assert v == "nan" or (isinstance(v, (int, float)) and math.isfinite(v)), (m["id"], v)
                if v != "nan":  # every map value exact in float32: energy sums reproducible
                    assert float(np.float32(v)) == float(v), (m["id"], v)
        x0, y0, x1, y1 = m["seen"]
        assert 0 <= x0 <= x1 <= W and 0 <= y0 <= y1 <= H, m["id"]
        for b in m["truth"]:
            assert len(b) == 4 and b[0] <= b[2] and b[1] <= b[3], (m["id"], b)
        assert m["tolerance"] >= 0
        assert (m["mask"] is None) == (m["score"] is None), m["id"]
        if m["mask"] is not None:
            assert len(m["mask"]) == H and all(len(r) == W for r in m["mask"]), m["id"]
            assert len(m["score"]) == H and all(len(r) == W for r in m["score"]), m["id"]
            assert all(v in (FG, BG, IGNORE) for r in m["mask"] for v in r), m["id"]
            assert all(0.0 <= v <= 1.0 for r in m["score"] for v in r), m["id"]
            assert isinstance(m["tau"], float), m["id"]
    pids = set()
    for p in cases["pxap_sets"]:
        assert p["id"] not in pids, p["id"]
        pids.add(p["id"])
        for mid in p["members"]:
            assert mid in ids, (p["id"], mid)
        hist_edges(p["step"])
    bids = set()
    for b in cases["bootstrap"]:
        assert b["id"] not in bids, b["id"]
        bids.add(b["id"])
        assert b["statistic"] == "mean" and b["resamples"] >= 1
        assert 0 <= b["seed"] <= MASK64
        for u in b["units"]:
            for v in u:
                # multiples of 1/1024 below 2^20: every sum exact, every mean one rounding
                assert v is None or (float(v * 1024).is_integer() and abs(v) < 2 ** 20), (b["id"], v)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

def _rows(a: np.ndarray):
    """JSON rows: floats, NaN as the string "nan"."""
    return [["nan" if math.isnan(v) else float(v) for v in row] for row in a.tolist()]


def entry(id_, note, M, truth, tolerance=DEFAULT_TOLERANCE, seen=None, mask=None, score=None,
          tau=0.5):
    M = np.asarray(M, dtype=np.float64)
    H, W = M.shape
    return {
        "id": id_, "note": note, "width": W, "height": H,
        "seen": list(seen) if seen is not None else [0, 0, W, H],
        "map": _rows(M),
        "truth": [list(b) for b in truth],
        "tolerance": float(tolerance),
        "mask": None if mask is None else np.asarray(mask, dtype=np.int64).tolist(),
        "score": None if score is None else [[float(v) for v in r] for r in np.asarray(score, dtype=np.float64)],
        "tau": float(tau),
    }


def hand_maps():
    out = []
    Z = lambda W, H: np.zeros((H, W))  # noqa: E731

    # -- a box [2, 2, 6, 5): pixels x 2..5, y 2..4, in a 10 x 8 image --
    box = [2, 2, 6, 5]
    M = Z(10, 8); M[3, 5] = 1.0; M[6, 8] = 0.5
    out.append(entry("edge_peak_last_column_tol0",
                     "peak (5,3) on the box's last column x2-1=5: hit at tolerance 0; energy 1/1.5",
                     M, [box], 0))
    M = Z(10, 8); M[4, 4] = 1.0
    out.append(entry("edge_peak_last_row_tol0",
                     "peak (4,4) on the box's last row y2-1=4: hit at tolerance 0; energy 1",
                     M, [box], 0))
    M = Z(10, 8); M[1, 3] = 1.0
    out.append(entry("edge_peak_above_box_tol0",
                     "peak (3,1) one row above the box (y = y1-1): miss at tolerance 0; energy 0",
                     M, [box], 0))
    M = Z(10, 8); M[3, 6] = 1.0; M[3, 4] = 0.25
    out.append(entry("edge_peak_right_of_box_tol0",
                     "peak (6,3) at x = x2, one pixel right of the box: miss at tolerance 0; "
                     "energy 0.25/1.25 = 0.2", M, [box], 0))
    out.append(entry("edge_peak_right_of_box_tol1",
                     "same map: distance 1, hit at tolerance 1; energy 0.2", M, [box], 1))
    M = Z(10, 8); M[5, 6] = 1.0
    out.append(entry("edge_peak_diagonal_tol1",
                     "peak (6,5) diagonal to the corner pixel (5,4): squared distance 2 > 1, miss "
                     "at tolerance 1; energy 0", M, [box], 1))
    out.append(entry("edge_peak_diagonal_tol1.5",
                     "same map: 2 <= 2.25, hit at tolerance 1.5", M, [box], 1.5))

    # -- tolerance 15 --
    M = Z(40, 10); M[5, 19] = 1.0; M[3, 2] = 0.5
    out.append(entry("edge_tolerance_15_hit",
                     "box x 0..4, y 2..7; peak (19,5) 15 px right of the last column: hit at 15 "
                     "(225 <= 225); energy 0.5/1.5", M, [[0, 2, 5, 8]], 15))
    out.append(entry("edge_tolerance_14_miss", "same map: miss at 14 (225 > 196)",
                     M, [[0, 2, 5, 8]], 14))
    M = Z(40, 30); M[19, 13] = 1.0
    out.append(entry("edge_tolerance_15_diagonal_hit",
                     "box x 0..4, y 0..7; peak (13,19): dx 9, dy 12, squared distance exactly 225: "
                     "hit at the default 15; energy 0", M, [[0, 0, 5, 8]]))
    M = Z(40, 30); M[19, 14] = 1.0
    out.append(entry("edge_tolerance_15_diagonal_miss",
                     "peak (14,19): dx 10, dy 12, 244 > 225: miss at 15", M, [[0, 0, 5, 8]]))

    # -- ties, seen --
    M = Z(10, 6); M[1, 6] = 2.0; M[1, 3] = 2.0; M[4, 0] = 2.0; M[0, 7] = 1.5
    out.append(entry("edge_peak_tie_raster_order",
                     "2.0 at (6,1), (3,1), (0,4): the first in raster order is (3,1), 2 px left of "
                     "the box x 5..7, y 0..2, so a miss at tolerance 0 (the last tie (0,4) or "
                     "column-major order would pick another pixel); energy 3.5/7.5",
                     M, [[5, 0, 8, 3]], 0))
    M = Z(12, 8); M[0, 0] = 9.0; M[4, 4] = 3.0; M[2, 2] = 1.0; M[7, 11] = 5.0
    out.append(entry("edge_peak_outside_seen",
                     "seen [2,1,10,7); 9 at (0,0) and 5 at (11,7) are outside it and ignored: peak "
                     "(4,4), squared distance 8 to the box's pixel (2,2), miss at 0; energy counts "
                     "seen pixels only: 1/4", M, [[0, 0, 3, 3]], 0, seen=[2, 1, 10, 7]))
    out.append(entry("edge_empty_map_zeros",
                     "all zeros, seen [1,1,5,4): peak is the first seen pixel (1,1), inside the "
                     "box: hit at 0; no positive mass: energy 0",
                     Z(6, 5), [[0, 0, 2, 2]], 0, seen=[1, 1, 5, 4]))
    M = Z(6, 5); M[2, 3] = 1.0
    out.append(entry("edge_seen_empty",
                     "seen [3,1,3,4) holds no pixel: peak null, miss; energy 0 (the 1 at (3,2) "
                     "is outside seen)", M, [[0, 0, 6, 5]], 15, seen=[3, 1, 3, 4]))

    # -- NaN, negative --
    out.append(entry("edge_all_nan", "every value NaN: peak null, miss, energy 0",
                     np.full((4, 5), np.nan), [[1, 1, 3, 3]], 15))
    M = Z(6, 4)
    M[0, :] = [np.nan, np.nan, 0.5, 0.5, 0, 0]
    M[1, :] = [np.nan, 0, 0.5, 0.5, 0, 2.0]
    M[3, 3] = np.nan
    out.append(entry("edge_nan_mixed",
                     "NaNs skipped: peak (5,1) = 2, 2 px right of the box x 2..3, y 0..1: hit at "
                     "tolerance 2; energy 2/4 = 0.5", M, [[2, 0, 4, 2]], 2))
    M = np.full((4, 6), np.nan); M[2, 4] = -0.5; M[3, 1] = -0.25
    out.append(entry("edge_nan_and_negative",
                     "all NaN but -0.5 at (4,2) and -0.25 at (1,3): peak (1,3) (the largest finite "
                     "value), inside the box: hit at 0; no positive mass: energy 0",
                     M, [[0, 3, 2, 4]], 0))
    M = Z(8, 6); M[1:4, 1:4] = -5.0; M[2, 2] = 1.0; M[4, 6] = 3.0; M[0, 7] = -2.0
    out.append(entry("edge_negative_values",
                     "box x 1..3, y 1..3 holds -5 (x8) and 1; 3 at (6,4), -2 at (7,0): energy "
                     "counts positive mass only: 1/4; peak (6,4), squared distance 10 to (3,3): "
                     "miss at tolerance 3", M, [[1, 1, 4, 4]], 3))
    M = np.full((4, 5), -1.0); M[2, 3] = -0.125
    out.append(entry("edge_all_negative",
                     "all negative, the maximum -0.125 at (3,2): peak (3,2), inside the box: hit "
                     "at 0; energy 0", M, [[3, 2, 4, 3]], 0))
    M = Z(6, 4); M[1, 2] = 1.0
    out.append(entry("edge_no_truth",
                     "no truth boxes: peak (2,1), pointing_hit null, energy null", M, []))

    # -- float (NIH-style) boxes --
    M = np.full((8, 10), 0.25); M[1, 7] = 1.0
    nih = [2.4, 1.5, 6.6, 4.49]
    out.append(entry("edge_float_box_nih_tol0",
                     "box [2.4,1.5,6.6,4.49): pixel centres inside give x 2..6, y 1..3; peak "
                     "(7,1) 1 px right: miss at 0; energy 15*0.25 / (79*0.25 + 1) = 3.75/20.75",
                     M, [nih], 0))
    out.append(entry("edge_float_box_nih_tol1", "same map: hit at 1", M, [nih], 1))
    M = Z(10, 6); M[1, 6] = 1.0; M[2, 2] = 0.5
    out.append(entry("edge_float_box_half_pixel",
                     "box [2.5,1.5,6.5,3.5): centre 2.5 is inside (closed left), 6.5 is not "
                     "(open right): x 2..5, y 1..2; peak (6,1): miss at 0; energy 0.5/1.5",
                     M, [[2.5, 1.5, 6.5, 3.5]], 0))
    M = Z(8, 6); M[2, 3] = 1.0; M[2, 4] = 1.0
    out.append(entry("edge_float_box_no_centre",
                     "box [3.6,2.2,4.4,2.4) holds no pixel centre: it keeps pixel (4,2) "
                     "(lo = ceil(x1 - 0.5)); tie 1.0 at (3,2), (4,2): peak (3,2), miss at 0; "
                     "energy 1/2", M, [[3.6, 2.2, 4.4, 2.4]], 0))
    out.append(entry("edge_float_box_outside_image",
                     "boxes [-3.2,-1,2.7,3) -> x 0..2, y 0..2 and [8.5,4.2,20,9.9) -> x 8..9, "
                     "y 4..5 after clamping; uniform map: peak (0,0), hit at 0; energy "
                     "(9 + 4)/60", np.ones((6, 10)), [[-3.2, -1.0, 2.7, 3.0], [8.5, 4.2, 20.0, 9.9]], 0))
    M = Z(10, 6); M[3, 9] = 1.0; M[0, 0] = 0.5
    out.append(entry("edge_box_beyond_image",
                     "box [12,0,15,2) lies right of the 10-px-wide image: clamping keeps column 9, "
                     "rows 0..1; peak (9,3), 2 rows below: hit at tolerance 2; energy 0",
                     M, [[12, 0, 15, 2]], 2))

    # -- several boxes --
    out.append(entry("edge_overlapping_boxes",
                     "uniform 8x8 map, boxes [1,1,5,5), [3,3,7,7) and a duplicate of the first: "
                     "union 16 + 16 - 4 = 28 pixels, energy 28/64 = 0.4375 (not double counted); "
                     "peak (0,0), squared distance 2: miss at tolerance 1",
                     np.ones((8, 8)), [[1, 1, 5, 5], [3, 3, 7, 7], [1, 1, 5, 5]], 1))
    M = Z(12, 6); M[4, 7] = 1.0; M[0, 0] = 0.5
    out.append(entry("edge_second_box_hits",
                     "peak (7,4): far from box 0 [0,0,2,2), 1 px left of box 1 [8,3,11,5): hit at 1; "
                     "energy 0.5/1.5", M, [[0, 0, 2, 2], [8, 3, 11, 5]], 1))

    # -- PxAP / pixel IoU --
    mask = np.zeros((4, 6), dtype=np.int64); mask[1:3, 1:4] = FG; mask[:, 5] = IGNORE
    S = np.full((4, 6), 0.25); S[1:3, 1:4] = 0.75; S[:, 5] = [1.0, 0.0, 1.0, 0.0]
    out.append(entry("px_perfect_a",
                     "foreground x 1..3, y 1..2 scored 0.75, background 0.25, ignore column 5 "
                     "scored 1/0 (ignored): pixel IoU counts at 0.5 [6, 0, 0]; M = S: peak (5,0), "
                     "squared distance 5 to the box: hit at 15; energy 4.5/10",
                     S, [[1, 1, 4, 3]], mask=mask, score=S, tau=0.5))
    mask = np.zeros((5, 5), dtype=np.int64); mask[3:5, 0:2] = FG; mask[0, :] = IGNORE
    S = np.zeros((5, 5)); S[3:5, 0:2] = 1.0; S[0, :] = 0.5
    out.append(entry("px_perfect_b",
                     "foreground x 0..1, y 3..4 scored 1.0, background 0.0, ignore row 0 scored 0.5: "
                     "counts at 0.5 [4, 0, 0]; M = S: peak (0,3), hit; energy 4/6.5",
                     S, [[0, 3, 2, 5]], mask=mask, score=S, tau=0.5))
    mask = np.array([[1, 1, 0, 0], [0, 255, 255, 0], [0, 0, 0, 0]])
    S = np.array([[1.0, 0.5, 0.5, 0.0], [0.0, 1.0, 0.75, 0.0], [0.0, 0.0, 0.0, 0.0]])
    out.append(entry("px_edges",
                     "scores on bin edges: foreground 1.0 (bin [1,2)) and 0.5 (bin [0.5,0.51)), "
                     "background 0.5 and 7 x 0.0, ignore 1.0 and 0.75; PxAP = 1*0.5 + (2/3)*0.5 = "
                     "5/6; counts at tau 0.5 (strict >) [1, 0, 1]; peak (0,0) in the box: hit at 0; "
                     "energy 1.5/3.75 = 0.4", S, [[0, 0, 2, 1]], 0, mask=mask, score=S, tau=0.5))
    S = np.array([[0.07, 0.29, 0.57, 0.58, 0.99, 0.01, 0.5, 1.0, 0.3, 0.7]])
    mask = np.array([[1, 0, 1, 0, 1, 0, 1, 0, 1, 0]])
    out.append(entry("px_float32_decimals",
                     "scores written as decimals that float32 cannot hold, compared as float64 "
                     "against float64 edges: f32(0.07) > 0.07 (bin 7 at step 0.01), f32(0.29) < 0.29 "
                     "(bin 28), 0.57 -> 56, 0.58 -> 57, 0.99 -> 99, 0.01 -> 0, 0.5 -> 50, 1.0 -> 100, "
                     "0.3 -> 30, 0.7 -> 69; at step 0.1: f32(0.3) > 0.3 (bin 3), f32(0.7) < 0.7 (bin 6); "
                     "counts at tau 0.07: f32(0.07) > 0.07, so [5, 4, 0]; the map M is all zeros",
                     np.zeros((1, 10)), [[0, 0, 1, 1]], mask=mask, score=S, tau=0.07))
    mask = np.zeros((3, 4), dtype=np.int64); mask[0, 0] = IGNORE; mask[2, 3] = IGNORE
    S = np.array([[1.0, 0.25, 0.5, 0.75], [0.0, 0.5, 0.5, 0.5], [0.25, 0.25, 0.0, 1.0]])
    out.append(entry("px_no_foreground",
                     "background and ignore only: PxAP null; counts at tau 0.25 [0, 5, 0] (background "
                     "scores above 0.25: 0.5, 0.75, 0.5, 0.5, 0.5; the 1.0s are ignored, 0.25 is not > 0.25)",
                     S, [], mask=mask, score=S, tau=0.25))
    out.append(entry("px_all_ignore", "every pixel ignored: PxAP null, counts [0, 0, 0], empty "
                     "histograms", np.full((2, 3), 0.5), [[0, 0, 1, 1]],
                     mask=np.full((2, 3), IGNORE), score=np.full((2, 3), 0.5), tau=0.5))
    return out


def random_maps(seed=SEED, n=N_RANDOM):
    rng = np.random.default_rng(seed)
    sizes = [(20, 16), (16, 20), (24, 24), (32, 20), (20, 16), (12, 18), (20, 16), (28, 14),
             (20, 16), (18, 18)]
    out = []
    for k in range(n):
        W, H = sizes[k % len(sizes)]
        if rng.random() < 0.4:
            seen = [0, 0, W, H]
        else:  # letterbox-like: some columns or rows at the edges unseen
            x0, x1 = int(rng.integers(0, W // 4 + 1)), W - int(rng.integers(0, W // 4 + 1))
            y0, y1 = int(rng.integers(0, H // 4 + 1)), H - int(rng.integers(0, H // 4 + 1))
            seen = [x0, y0, x1, y1]
        n_t = int(rng.choice([0, 1, 1, 2, 3])) if k not in (0, 5) else 1
        truth = []
        for _ in range(n_t):
            w = int(rng.integers(2, W // 2 + 1))
            h = int(rng.integers(2, H // 2 + 1))
            x1, y1 = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
            if rng.random() < 0.5:
                truth.append([x1, y1, x1 + w, y1 + h])
            else:  # NIH-style float box, one decimal
                truth.append([round(x1 + rng.uniform(-0.5, 0.5), 1), round(y1 + rng.uniform(-0.5, 0.5), 1),
                              round(x1 + w + rng.uniform(-0.5, 0.5), 1), round(y1 + h + rng.uniform(-0.5, 0.5), 1)])

        yy, xx = np.mgrid[0:H, 0:W]
        v = rng.normal(0.0, 0.15, size=(H, W))
        blobs = [(rng.uniform(0, W), rng.uniform(0, H)) for _ in range(int(rng.integers(1, 4)))]
        if truth and rng.random() < 0.7:  # a blob near the first truth box: a useful map
            b = truth[0]
            blobs[0] = ((b[0] + b[2]) / 2 + rng.normal(0, 1.5), (b[1] + b[3]) / 2 + rng.normal(0, 1.5))
        for cx, cy in blobs:
            sx, sy = rng.uniform(1.5, W / 3), rng.uniform(1.5, H / 3)
            v += rng.uniform(0.5, 3.0) * np.exp(-((xx - cx) ** 2 / (2 * sx * sx)
                                                   + (yy - cy) ** 2 / (2 * sy * sy)))
        if k == 5:
            v -= 1.0  # mostly negative map
        M = np.round(v * 256) / 256  # multiples of 1/256: exact in float32
        if k == 3:  # a few NaNs inside seen
            for _ in range(6):
                M[int(rng.integers(seen[1], seen[3])), int(rng.integers(seen[0], seen[2]))] = np.nan
        outside = np.ones((H, W), dtype=bool)
        outside[seen[1]:seen[3], seen[0]:seen[2]] = False
        M[outside] = 0.0
        tolerance = float(rng.choice([0.0, 1.0, 2.5, 4.0, 15.0]))

        mask = score = None
        tau = 0.5
        if k % 3 != 2:
            mask = np.zeros((H, W), dtype=np.int64)
            for b in truth:  # foreground: the ellipse inscribed in each truth box
                bx1, by1, bx2, by2 = (float(c) for c in b)
                ccx, ccy = (bx1 + bx2) / 2, (by1 + by2) / 2
                rx, ry = max((bx2 - bx1) / 2, 0.5), max((by2 - by1) / 2, 0.5)
                inside = ((xx + 0.5 - ccx) / rx) ** 2 + ((yy + 0.5 - ccy) / ry) ** 2 <= 1.0
                mask[inside] = FG
            if rng.random() < 0.7:  # an ignore band (foreground wins)
                ix = int(rng.integers(0, W - 2))
                band = np.zeros((H, W), dtype=bool)
                band[:, ix:ix + int(rng.integers(1, 4))] = True
                mask[band & (mask != FG)] = IGNORE
            Mf = np.nan_to_num(M[seen[1]:seen[3], seen[0]:seen[2]], nan=-np.inf)
            lo = np.min(np.where(np.isfinite(Mf), Mf, np.inf))
            hi = np.max(Mf)
            S = np.zeros((H, W))
            Mn = np.nan_to_num(M, nan=lo)
            S[~outside] = (Mn[~outside] - lo) / (hi - lo)
            score = np.round(np.clip(S, 0.0, 1.0) * 256) / 256
            tau = float(rng.choice([0.25, 0.5, 0.75]))
        out.append(entry(f"rand_{k:02d}", f"random map (seed {seed}, case {k})", M, truth, tolerance,
                         seen=seen, mask=mask, score=score, tau=tau))
    return out


def pxap_sets(maps):
    rand_px = [m["id"] for m in maps if m["id"].startswith("rand_") and m["mask"] is not None]
    return [
        {"id": "pxap_perfect", "members": ["px_perfect_a", "px_perfect_b"], "step": 0.01},
        {"id": "pxap_edges", "members": ["px_edges"], "step": 0.01},
        {"id": "pxap_float32_step0.01", "members": ["px_float32_decimals"], "step": 0.01},
        {"id": "pxap_float32_step0.1", "members": ["px_float32_decimals"], "step": 0.1},
        {"id": "pxap_no_foreground", "members": ["px_no_foreground"], "step": 0.01},
        {"id": "pxap_all_ignore", "members": ["px_all_ignore"], "step": 0.01},
        {"id": "pxap_pooled", "members": ["px_perfect_a", "px_edges", "px_no_foreground",
                                          "px_float32_decimals"], "step": 0.01},
        {"id": "pxap_random", "members": rand_px, "step": 0.01},
        {"id": "pxap_random_step0.001", "members": rand_px, "step": 0.001},
        {"id": "pxap_random_step0.05", "members": rand_px, "step": 0.05},
    ]


def bootstrap_sets(seed=BOOT_DATA_SEED):
    rng = np.random.default_rng(seed)
    binary60 = [[float(v)] for v in (rng.random(60) < 0.4).astype(int)]
    mixed = []
    for _ in range(80):
        r = rng.random()
        if r < 0.2:
            mixed.append([])
        else:
            u = []
            for _ in range(int(rng.integers(1, 4))):
                u.append(None if rng.random() < 0.15 else int(rng.integers(0, 1025)) / 1024)
            mixed.append(u)
    sparse = [[] for _ in range(40)]
    sparse[17] = [0.5, 0.25]
    constant = [[0.75] if i % 5 else ([0.75, 0.75] if i % 2 else []) for i in range(50)]

    def b(id_, note, units, B=DEFAULT_B, seed_=DEFAULT_BOOT_SEED):
        return {"id": id_, "note": note, "units": units, "statistic": "mean",
                "resamples": B, "seed": seed_}

    return [
        b("constant", "every value 0.75 (some units have two, some none): point 0.75, interval "
          "[0.75, 0.75], all 1000 resamples defined", constant),
        b("binary_60", "60 units with one 0/1 value each, B 1000, default seed", binary60),
        b("binary_60_seed7", "the same units with seed 7: same point, another interval",
          binary60, seed_=7),
        b("binary_600_tiled", "binary_60 tiled 10 times: same point, narrower interval",
          binary60 * 10),
        b("mixed_pairs", "80 units with 0-3 values (multiples of 1/1024), nulls (not scored) and "
          "empty units", mixed),
        b("mixed_pairs_B200_seed1", "the same, B 200, seed 1", mixed, B=200, seed_=1),
        b("sparse_B1000", "40 units, only unit 17 has values (0.5, 0.25): a resample is undefined "
          "when it misses unit 17, probability (39/40)^40 = 0.36, so about 637 defined (>= 500): "
          "interval [0.375, 0.375]", sparse),
        b("sparse_B10_null", "the sparse units with B 10 and a seed giving 4 defined resamples: "
          "2*4 < 10, no interval", sparse, B=10, seed_=SPARSE_SEED_NULL),
        b("sparse_B10_half", "the sparse units with B 10 and a seed giving exactly 5 defined "
          "resamples: 2*5 >= 10, interval [0.375, 0.375]", sparse, B=10, seed_=SPARSE_SEED_HALF),
        b("all_empty", "no unit has a value (empty or null only): point null, 0 defined, no "
          "interval (with at least one value somewhere fewer than B/2 defined is all but "
          "impossible at B 1000: P(undefined) <= (1 - 1/n)^n < 1/e)", [[], [None], [], [None, None]]),
        b("single_unit_B9", "one unit (0.25, 0.5): every resample draws it, mean 0.375; B 9 odd",
          [[0.25, 0.5]], B=9),
    ]


# Seeds for the B = 10 sparse sets, found by search_sparse_seeds() and checked in self_checks().
SPARSE_SEED_NULL = 28
SPARSE_SEED_HALF = 17


def search_sparse_seeds():
    sparse = [[] for _ in range(40)]
    sparse[17] = [0.5, 0.25]
    found = {}
    for s in range(1, 1000):
        d = sum(1 for idx in draws(s, 40, 10) if 17 in idx)
        if d in (4, 5) and d not in found:
            found[d] = s
        if len(found) == 2:
            break
    return found


def build_cases():
    maps = hand_maps() + random_maps()
    return {"maps": maps, "pxap_sets": pxap_sets(maps), "bootstrap": bootstrap_sets()}


# ---------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------

def self_checks(cases, expected):
    maps_by_id = {m["id"]: m for m in cases["maps"]}
    E = expected["maps"]

    # 1. independent formulations agree on every map
    for m in cases["maps"]:
        W, H = m["width"], m["height"]
        M = map_f32(m["map"])
        for b in m["truth"]:
            assert box_pixels(b, W, H) == box_pixels_exact(b, W, H), (m["id"], b)
        pk = peak_numpy(M, m["seen"])
        assert E[m["id"]]["peak"] == (None if pk is None else list(pk)), m["id"]
        boxes = [box_pixels_exact(b, W, H) for b in m["truth"]]
        e = energy_numpy(M, m["seen"], boxes)
        assert e == E[m["id"]]["energy"], (m["id"], e)  # exact: dyadic float32 values
        if boxes and pk is not None:  # pointing by brute force over the union of box pixels
            tol2 = Fraction(m["tolerance"]) ** 2
            d2 = min((pk[0] - x) ** 2 + (pk[1] - y) ** 2
                     for lx, hx, ly, hy in boxes for x in range(lx, hx + 1) for y in range(ly, hy + 1))
            assert E[m["id"]]["pointing_hit"] == (d2 <= tol2), m["id"]
        if m["mask"] is not None:
            c = E[m["id"]]["pixel_iou_counts"]
            mask = np.array(m["mask"])
            n_fg = int((mask == FG).sum())
            assert c[0] + c[2] == n_fg and c[1] <= int((mask == BG).sum())
            # the explicit histogram rule equals numpy.histogram (float32 S vs float64 edges)
            S = np.array(m["score"], dtype=np.float64).astype(np.float32)
            for step in (0.01, 0.1, 0.05, 0.001):
                edges = hist_edges(step)
                for sel in (FG, BG):
                    got = np.histogram(S[mask == sel], bins=edges)[0].tolist()
                    assert got == hist_counts_explicit(S[mask == sel], edges), (m["id"], step)

    # 2. hand cases
    def chk(id_, peak_, hit, en, counts=None):
        e = E[id_]
        assert e["peak"] == peak_, (id_, e)
        assert e["pointing_hit"] is hit, (id_, e)
        if en is None:
            assert e["energy"] is None, (id_, e)
        else:
            assert abs(e["energy"] - en) <= 1e-15 * max(1.0, abs(en)), (id_, e, en)
        if counts is not None:
            assert e["pixel_iou_counts"] == counts, (id_, e)

    chk("edge_peak_last_column_tol0", [5, 3], True, 1 / 1.5)
    chk("edge_peak_last_row_tol0", [4, 4], True, 1.0)
    chk("edge_peak_above_box_tol0", [3, 1], False, 0.0)
    chk("edge_peak_right_of_box_tol0", [6, 3], False, 0.2)
    chk("edge_peak_right_of_box_tol1", [6, 3], True, 0.2)
    chk("edge_peak_diagonal_tol1", [6, 5], False, 0.0)
    chk("edge_peak_diagonal_tol1.5", [6, 5], True, 0.0)
    chk("edge_tolerance_15_hit", [19, 5], True, 0.5 / 1.5)
    chk("edge_tolerance_14_miss", [19, 5], False, 0.5 / 1.5)
    chk("edge_tolerance_15_diagonal_hit", [13, 19], True, 0.0)
    chk("edge_tolerance_15_diagonal_miss", [14, 19], False, 0.0)
    chk("edge_peak_tie_raster_order", [3, 1], False, 3.5 / 7.5)
    chk("edge_peak_outside_seen", [4, 4], False, 0.25)
    chk("edge_empty_map_zeros", [1, 1], True, 0.0)
    chk("edge_seen_empty", None, False, 0.0)
    chk("edge_all_nan", None, False, 0.0)
    chk("edge_nan_mixed", [5, 1], True, 0.5)
    chk("edge_nan_and_negative", [1, 3], True, 0.0)
    chk("edge_negative_values", [6, 4], False, 0.25)
    chk("edge_all_negative", [3, 2], True, 0.0)
    chk("edge_no_truth", [2, 1], None, None, None)
    assert E["edge_no_truth"]["energy"] is None and E["edge_no_truth"]["pixel_iou_counts"] is None
    assert box_pixels([2.4, 1.5, 6.6, 4.49], 10, 8) == (2, 6, 1, 3)
    chk("edge_float_box_nih_tol0", [7, 1], False, 3.75 / 20.75)
    chk("edge_float_box_nih_tol1", [7, 1], True, 3.75 / 20.75)
    assert box_pixels([2.5, 1.5, 6.5, 3.5], 10, 6) == (2, 5, 1, 2)
    chk("edge_float_box_half_pixel", [6, 1], False, 0.5 / 1.5)
    assert box_pixels([3.6, 2.2, 4.4, 2.4], 8, 6) == (4, 4, 2, 2)
    chk("edge_float_box_no_centre", [3, 2], False, 0.5)
    assert box_pixels([-3.2, -1.0, 2.7, 3.0], 10, 6) == (0, 2, 0, 2)
    assert box_pixels([8.5, 4.2, 20.0, 9.9], 10, 6) == (8, 9, 4, 5)
    chk("edge_float_box_outside_image", [0, 0], True, 13 / 60)
    assert box_pixels([12, 0, 15, 2], 10, 6) == (9, 9, 0, 1)
    chk("edge_box_beyond_image", [9, 3], True, 0.0)
    chk("edge_overlapping_boxes", [0, 0], False, 0.4375)
    chk("edge_second_box_hits", [7, 4], True, 0.5 / 1.5)
    chk("px_perfect_a", [5, 0], True, 4.5 / 10, [6, 0, 0])
    chk("px_perfect_b", [0, 3], True, 4 / 6.5, [4, 0, 0])
    chk("px_edges", [0, 0], True, 0.4, [1, 0, 1])
    assert E["px_float32_decimals"]["pixel_iou_counts"] == [5, 4, 0]
    assert E["px_no_foreground"]["pixel_iou_counts"] == [0, 5, 0]
    assert E["px_all_ignore"]["pixel_iou_counts"] == [0, 0, 0]

    # 3. PxAP
    P = expected["pxap_sets"]
    edges001 = hist_edges(0.01)
    assert len(edges001) == 103 and edges001[7] == 0.07 and edges001[29] == 0.29
    assert edges001.tolist() == (np.round(np.arange(100) * 0.01, 2).tolist() + [1.0, 2.0, 3.0])
    assert hist_edges(0.001).tolist() == (np.round(np.arange(1000) * 0.001, 3).tolist() + [1.0, 2.0, 3.0])
    assert hist_edges(0.05).tolist() == (np.round(np.arange(20) * 0.05, 2).tolist() + [1.0, 2.0, 3.0])

    def nz(h):
        return {i: c for i, c in enumerate(h) if c}

    assert P["pxap_perfect"]["pxap"] == 1.0
    assert nz(P["pxap_perfect"]["hist_fg"]) == {75: 6, 100: 4}
    assert nz(P["pxap_perfect"]["hist_bg"]) == {25: 14, 0: 16}
    assert abs(P["pxap_edges"]["pxap"] - 5 / 6) < 1e-15
    assert nz(P["pxap_edges"]["hist_fg"]) == {100: 1, 50: 1}
    assert nz(P["pxap_edges"]["hist_bg"]) == {50: 1, 0: 7}
    assert float(np.float32(0.07)) > 0.07 and float(np.float32(0.29)) < 0.29
    assert nz(P["pxap_float32_step0.01"]["hist_fg"]) == {7: 1, 56: 1, 99: 1, 50: 1, 30: 1}
    assert nz(P["pxap_float32_step0.01"]["hist_bg"]) == {28: 1, 57: 1, 0: 1, 100: 1, 69: 1}
    assert nz(P["pxap_float32_step0.1"]["hist_fg"]) == {0: 1, 5: 2, 9: 1, 3: 1}
    assert nz(P["pxap_float32_step0.1"]["hist_bg"]) == {2: 1, 5: 1, 0: 1, 10: 1, 6: 1}
    assert P["pxap_no_foreground"]["pxap"] is None and sum(P["pxap_no_foreground"]["hist_fg"]) == 0
    assert P["pxap_all_ignore"]["pxap"] is None
    assert sum(P["pxap_all_ignore"]["hist_fg"]) + sum(P["pxap_all_ignore"]["hist_bg"]) == 0
    for p in cases["pxap_sets"]:
        r = P[p["id"]]
        edges = hist_edges(p["step"])
        assert len(r["hist_fg"]) == len(r["hist_bg"]) == len(edges) - 1
        # pooled = the sum of the members' histograms; counts = pixel counts
        fg = sum(int((np.array(maps_by_id[i]["mask"]) == FG).sum()) for i in p["members"])
        bg = sum(int((np.array(maps_by_id[i]["mask"]) == BG).sum()) for i in p["members"])
        assert sum(r["hist_fg"]) == fg and sum(r["hist_bg"]) == bg, p["id"]
        if r["pxap"] is not None:
            w = pxap_wsol_numpy(np.array(r["hist_fg"]), np.array(r["hist_bg"]))
            assert abs(w - r["pxap"]) < 1e-12, (p["id"], w, r["pxap"])
            assert 0.0 <= r["pxap"] <= 1.0 + 1e-15
    # PxAP from an exact-fraction evaluation of the same formula
    for p in cases["pxap_sets"]:
        r = P[p["id"]]
        hf, hb = r["hist_fg"], r["hist_bg"]
        if sum(hf) == 0:
            continue
        tp = fp = 0
        prev_recall = Fraction(0)
        total = Fraction(0)
        for i, (f, b) in enumerate(zip(hf[::-1], hb[::-1])):
            tp += f
            fp += b
            recall = Fraction(tp, sum(hf))
            if i >= 1 and tp + fp:
                total += Fraction(tp, tp + fp) * (recall - prev_recall)
            prev_recall = recall
        assert abs(float(total) - r["pxap"]) < 1e-12, (p["id"], float(total), r["pxap"])

    # 4. SplitMix64 against published vectors and the vectorised numpy version
    r = SplitMix64(1234567)
    assert [r.next() for _ in range(5)] == [6457827717110365317, 3203168211198807973,
                                            9817491932198370423, 4593380528125082431,
                                            16408922859458223821]
    assert SplitMix64(0).next() == 0xE220A8397B1DCDAF
    r = SplitMix64(MASK64)  # the state wraps
    assert [r.next(), r.next()] == [0xE4D971771B652C20, 0xE99FF867DBF682C9]
    for bset in cases["bootstrap"]:
        n, B, s = len(bset["units"]), bset["resamples"], bset["seed"]
        if n == 0:
            continue
        flat = [i for row in draws(s, n, B) for i in row]
        assert flat == splitmix_indices_numpy(s, n, n * B).tolist(), bset["id"]

    # 5. bootstrap
    Bx = expected["bootstrap"]
    for bset in cases["bootstrap"]:
        r = Bx[bset["id"]]
        vals = [v for u in bset["units"] for v in u if v is not None]
        assert r["point"] == (float(Fraction(sum(Fraction(v) for v in vals), len(vals))) if vals else None)
        assert (r["ci95"] is None) == (2 * r["defined"] < bset["resamples"] or r["defined"] == 0)
        if r["ci95"] is not None:
            # numpy.percentile equals the spec's formula (to an ulp) on the same values
            sums = unit_sums(bset["units"])
            v = sorted(x for x in (statistic(sums, idx) for idx in
                                   draws(bset["seed"], len(bset["units"]), bset["resamples"]))
                       if x is not None)
            for q, got in zip((2.5, 97.5), r["ci95"]):
                want = percentile_spec(v, q)
                assert abs(got - want) <= 1e-12, (bset["id"], q, got, want)
            assert r["ci95"][0] <= r["ci95"][1]
    assert Bx["constant"] == {"point": 0.75, "ci95": [0.75, 0.75], "defined": 1000}
    assert Bx["binary_60"]["point"] == Bx["binary_600_tiled"]["point"] == Bx["binary_60_seed7"]["point"]
    w60 = Bx["binary_60"]["ci95"][1] - Bx["binary_60"]["ci95"][0]
    w600 = Bx["binary_600_tiled"]["ci95"][1] - Bx["binary_600_tiled"]["ci95"][0]
    assert w600 < w60 / 2, (w60, w600)  # ~ 1/sqrt(10) as wide
    assert Bx["binary_60_seed7"]["ci95"] != Bx["binary_60"]["ci95"]
    assert Bx["binary_60"]["defined"] == Bx["binary_600_tiled"]["defined"] == 1000
    assert Bx["sparse_B1000"]["point"] == 0.375 and Bx["sparse_B1000"]["ci95"] == [0.375, 0.375]
    assert 500 <= Bx["sparse_B1000"]["defined"] < 1000
    assert Bx["sparse_B10_null"] == {"point": 0.375, "ci95": None, "defined": 4}
    assert Bx["sparse_B10_half"] == {"point": 0.375, "ci95": [0.375, 0.375], "defined": 5}
    assert Bx["all_empty"] == {"point": None, "ci95": None, "defined": 0}
    assert Bx["single_unit_B9"] == {"point": 0.375, "ci95": [0.375, 0.375], "defined": 9}
    assert Bx["mixed_pairs"]["defined"] == 1000
    for k in ("mixed_pairs", "binary_60", "binary_600_tiled"):
        lo, hi = Bx[k]["ci95"]
        assert lo < Bx[k]["point"] < hi, k


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def dump_cases(cases) -> str:
    """One map per block, each row of map/mask/score on one line: readable diffs."""
    out = ['{"maps": [']
    for n, m in enumerate(cases["maps"]):
        L = [f'  {{"id": {json.dumps(m["id"])},',
             f'   "note": {json.dumps(m["note"])},',
             f'   "width": {m["width"]}, "height": {m["height"]}, "seen": {json.dumps(m["seen"])},',
             f'   "truth": {json.dumps(m["truth"])}, "tolerance": {json.dumps(m["tolerance"])}, '
             f'"tau": {json.dumps(m["tau"])},']
        for name in ("map", "mask", "score"):
            rows = m[name]
            last = name == "score"
            if rows is None:
                L.append(f'   "{name}": null' + ("" if last else ","))
                continue
            L.append(f'   "{name}": [')
            for i, r in enumerate(rows):
                L.append("     " + json.dumps(r, allow_nan=False) + ("," if i + 1 < len(rows) else ""))
            L.append("   ]" + ("" if last else ","))
        L.append("  }" + ("," if n + 1 < len(cases["maps"]) else ""))
        out.extend(L)
    out.append(' ],')
    out.append(' "pxap_sets": [')
    for n, p in enumerate(cases["pxap_sets"]):
        out.append("  " + json.dumps(p) + ("," if n + 1 < len(cases["pxap_sets"]) else ""))
    out.append(' ],')
    out.append(' "bootstrap": [')
    for n, b in enumerate(cases["bootstrap"]):
        head = {k: b[k] for k in ("id", "note", "statistic", "resamples", "seed")}
        out.append("  " + json.dumps(head)[:-1] + ',')
        out.append('   "units": ' + json.dumps(b["units"]) + "}"
                   + ("," if n + 1 < len(cases["bootstrap"]) else ""))
    out.append(' ]')
    out.append('}')
    text = "\n".join(out) + "\n"
    assert json.loads(text) == cases
    return text


def dump_expected(expected) -> str:
    """Each map, PxAP set and bootstrap set on one line."""
    out = ["{", f' "meta": {json.dumps(expected["meta"])},']
    sections = ("maps", "pxap_sets", "bootstrap")
    for s_i, sec in enumerate(sections):
        out.append(f' "{sec}": {{')
        items = list(expected[sec].items())
        for n, (k, v) in enumerate(items):
            out.append(f"  {json.dumps(k)}: {json.dumps(v, allow_nan=False)}"
                       + ("," if n + 1 < len(items) else ""))
        out.append(" }" + ("," if s_i + 1 < len(sections) else ""))
    out.append("}")
    text = "\n".join(out) + "\n"
    assert json.loads(text) == expected
    return text


def main(argv=None):
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=repo / "tests" / "fixtures" / "eval-figures",
                    help="folder of cases.json and expected.json")
    ap.add_argument("--check", action="store_true",
                    help="recompute both files and compare with the stored ones; write nothing")
    ap.add_argument("--eval", type=Path, metavar="CASES_JSON",
                    help="print the expected JSON of any cases file and exit")
    ap.add_argument("--search-sparse-seeds", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.search_sparse_seeds:
        print(search_sparse_seeds())
        return 0
    if args.eval:
        cases = json.loads(args.eval.read_text())
        sys.stdout.write(dump_expected(expected_for(cases)))
        return 0

    cases = build_cases()
    cases_text = dump_cases(cases)
    cases = json.loads(cases_text)  # evaluate exactly what the Rust tests will read
    expected = expected_for(cases)
    self_checks(cases, expected)
    outputs = [(args.out / "cases.json", cases_text), (args.out / "expected.json", dump_expected(expected))]

    if args.check:
        bad = [p for p, text in outputs if not p.exists() or p.read_text() != text]
        for p in bad:
            print(f"differs from the reference: {p}", file=sys.stderr)
        if bad:
            return 1
        print("ok: " + ", ".join(str(p) for p, _ in outputs) + " match the reference")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    for p, text in outputs:
        p.write_text(text)
    print(f"maps={len(cases['maps'])} pxap_sets={len(cases['pxap_sets'])} "
          f"bootstrap={len(cases['bootstrap'])} -> {args.out}")
    for k, v in expected["pxap_sets"].items():
        print(f"  {k}: pxap={v['pxap']}")
    for k, v in expected["bootstrap"].items():
        print(f"  {k}: point={v['point']} ci95={v['ci95']} defined={v['defined']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
