#!/usr/bin/env python3
"""Independent numpy reference for cambox's box metrics.

Writes two files (default folder: tests/data/metrics/ of the repository):

  cases.json     the input: images with ground-truth boxes and scored predicted boxes,
                 made deterministically from a fixed seed plus hand-written edge cases.
  expected.json  the output: every metric under both box conventions.

Formulas, conventions and references: tests/data/metrics/README.md.

Usage:
  metrics_reference.py                 regenerate cases.json and expected.json
  metrics_reference.py --check         recompute both and fail if the stored files differ
  metrics_reference.py --eval FILE     print the expected JSON for any cases file

All box arithmetic is exact integer arithmetic (int64); every ratio is the float64
quotient of two exact integers (correctly rounded), so a faithful implementation in any
language reproduces the per-image values bit for bit. Averages are plain left-to-right
sums divided by the count (not numpy's pairwise summation), so they too are
reproducible; compare those with a small tolerance (1e-12) all the same.
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

SEED = 20240607
N_RANDOM = 20

CONVENTIONS = ("half_open", "wsol_inclusive")
BOX_ACC_DELTAS = (0.3, 0.5, 0.7)
CXR8_IOBB_THRESHOLDS = (0.1, 0.25, 0.5, 0.75, 0.9)
CXR8_IOU_THRESHOLD = 0.5
# 8 values 0.40 ... 0.75; rounding removes the drift of the float steps, so these are
# exactly the doubles nearest to the decimal literals (checked in self_checks()).
RSNA_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.4, 0.76, 0.05), 2))


def key(x: float) -> str:
    """JSON key of a threshold: Python's shortest repr, e.g. '0.3', '0.25'."""
    return repr(float(x))


# ---------------------------------------------------------------------------
# Box arithmetic (vectorised numpy)
# ---------------------------------------------------------------------------

def as_boxes(rows) -> np.ndarray:
    """(n, 4) int64 array of x1, y1, x2, y2 (scores, if any, dropped)."""
    a = np.array([r[:4] for r in rows], dtype=np.int64).reshape(-1, 4)
    return a


def areas(b: np.ndarray, conv: str) -> np.ndarray:
    plus = 1 if conv == "wsol_inclusive" else 0
    return (b[:, 2] - b[:, 0] + plus) * (b[:, 3] - b[:, 1] + plus)


def pair_terms(pred: np.ndarray, truth: np.ndarray, conv: str):
    """Exact integer intersection, pred area, truth area, union; each (n_pred, n_truth)."""
    if conv not in CONVENTIONS:
        raise ValueError(conv)
    plus = 1 if conv == "wsol_inclusive" else 0
    p = pred[:, None, :]
    t = truth[None, :, :]
    iw = np.maximum(0, np.minimum(p[..., 2], t[..., 2]) - np.maximum(p[..., 0], t[..., 0]) + plus)
    ih = np.maximum(0, np.minimum(p[..., 3], t[..., 3]) - np.maximum(p[..., 1], t[..., 1]) + plus)
    inter = iw * ih
    ap = np.broadcast_to(areas(pred, conv)[:, None], inter.shape)
    at = np.broadcast_to(areas(truth, conv)[None, :], inter.shape)
    union = ap + at - inter
    return inter, ap, at, union


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den in float64, 0 where den <= 0 (as wsolevaluation does for the union)."""
    out = np.zeros(num.shape, dtype=np.float64)
    ok = den > 0
    out[ok] = num[ok].astype(np.float64) / den[ok].astype(np.float64)
    return out


def iou_matrix(pred, truth, conv):
    inter, _, _, union = pair_terms(pred, truth, conv)
    return safe_ratio(inter, union)


def iobb_matrix(pred, truth, conv):
    inter, ap, _, _ = pair_terms(pred, truth, conv)
    return safe_ratio(inter, ap)


# ---------------------------------------------------------------------------
# Scalar cross-check (pure Python, exact fractions): independent of the above
# ---------------------------------------------------------------------------

def scalar_iou_iobb(p, t, conv):
    plus = 1 if conv == "wsol_inclusive" else 0
    iw = max(0, min(p[2], t[2]) - max(p[0], t[0]) + plus)
    ih = max(0, min(p[3], t[3]) - max(p[1], t[1]) + plus)
    inter = iw * ih
    ap = (p[2] - p[0] + plus) * (p[3] - p[1] + plus)
    at = (t[2] - t[0] + plus) * (t[3] - t[1] + plus)
    union = ap + at - inter
    iou = Fraction(inter, union) if union > 0 else Fraction(0)
    iobb = Fraction(inter, ap) if ap > 0 else Fraction(0)
    return iou, iobb


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------

def rsna_image_score(pred_rows, truth_rows, conv):
    """RSNA Pneumonia challenge score of one image, or None when it is left out."""
    n_p, n_t = len(pred_rows), len(truth_rows)
    if n_p == 0 and n_t == 0:
        return None
    if n_p == 0 or n_t == 0:
        return 0.0
    pred = as_boxes(pred_rows)
    truth = as_boxes(truth_rows)
    scores = np.array([r[4] for r in pred_rows], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")  # descending, ties keep the given order
    iou = iou_matrix(pred, truth, conv)
    total = 0.0
    for t in RSNA_THRESHOLDS:
        matched = np.zeros(n_t, dtype=bool)
        tp = fp = 0
        for i in order:
            if matched.all():
                fp += 1
                continue
            cand = np.where(matched, -1.0, iou[i])
            j = int(np.argmax(cand))  # first index among equal IoUs
            if cand[j] > t:
                tp += 1
                matched[j] = True
            else:
                fp += 1
        fn = int(n_t - matched.sum())
        total += tp / (tp + fp + fn)
    return total / len(RSNA_THRESHOLDS)


def evaluate(cases: dict, conv: str) -> dict:
    images = cases["images"]
    per_image = {}
    n_images = len(images)
    n_with_truth = 0
    box_hits = {d: 0 for d in BOX_ACC_DELTAS}
    cxr_acc = {T: 0 for T in CXR8_IOBB_THRESHOLDS}
    cxr_acc_or = {T: 0 for T in CXR8_IOBB_THRESHOLDS}
    cxr_fp = {T: 0 for T in CXR8_IOBB_THRESHOLDS}
    cxr_fp_or = {T: 0 for T in CXR8_IOBB_THRESHOLDS}
    rsna_sum = 0.0
    rsna_n = 0

    for im in images:
        truth_rows, pred_rows = im["truth"], im["pred"]
        n_t, n_p = len(truth_rows), len(pred_rows)
        truth, pred = as_boxes(truth_rows), as_boxes(pred_rows)
        best_iou = best_iobb = None
        hits = None
        if n_t > 0:
            n_with_truth += 1
        if n_t > 0 and n_p > 0:
            iou = iou_matrix(pred, truth, conv)
            iobb = iobb_matrix(pred, truth, conv)
            best_iou = float(iou.max())
            best_iobb = float(iobb.max())
        if n_t > 0:
            hits = {key(d): (best_iou is not None and best_iou >= d) for d in BOX_ACC_DELTAS}
            for d in BOX_ACC_DELTAS:
                box_hits[d] += hits[key(d)]

        # ChestX-ray8
        for T in CXR8_IOBB_THRESHOLDS:
            if n_t == 0:
                cxr_fp[T] += n_p
                cxr_fp_or[T] += n_p
                continue
            if n_p == 0:
                continue
            ok_iobb = iobb > T                       # (n_pred, n_truth), strict
            ok_or = ok_iobb | (iou > CXR8_IOU_THRESHOLD)
            cxr_acc[T] += bool(ok_iobb.any())
            cxr_acc_or[T] += bool(ok_or.any())
            cxr_fp[T] += int((~ok_iobb.any(axis=1)).sum())
            cxr_fp_or[T] += int((~ok_or.any(axis=1)).sum())

        rsna = rsna_image_score(pred_rows, truth_rows, conv)
        if rsna is not None:
            rsna_sum += rsna
            rsna_n += 1

        per_image[im["id"]] = {
            "best_iou": best_iou,
            "best_iobb": best_iobb,
            "hits": hits,
            "rsna": rsna,
        }

    box_acc = {key(d): box_hits[d] / n_with_truth for d in BOX_ACC_DELTAS}
    acc_sum = 0.0
    for d in BOX_ACC_DELTAS:
        acc_sum += box_acc[key(d)]
    chest = {}
    for T in CXR8_IOBB_THRESHOLDS:
        chest[key(T)] = {
            "accuracy_iobb": cxr_acc[T] / n_with_truth,
            f"accuracy_iobb_or_iou_{key(CXR8_IOU_THRESHOLD)}": cxr_acc_or[T] / n_with_truth,
            "avg_fp": cxr_fp[T] / n_images,
            f"avg_fp_iobb_or_iou_{key(CXR8_IOU_THRESHOLD)}": cxr_fp_or[T] / n_images,
        }
    return {
        "per_image": per_image,
        "box_acc": box_acc,
        "box_acc_mean": acc_sum / len(BOX_ACC_DELTAS),
        "corloc": box_acc[key(0.5)],
        "chestxray8": chest,
        "rsna_score": rsna_sum / rsna_n if rsna_n else None,
        "counts": {
            "images": n_images,
            "with_truth": n_with_truth,
            "without_truth": n_images - n_with_truth,
            "scored_rsna": rsna_n,
        },
    }


def expected_for(cases: dict) -> dict:
    validate(cases)
    return {
        "meta": {
            "generator": "scripts/reference/metrics_reference.py",
            "numpy": np.__version__,
            "box_acc_deltas": list(BOX_ACC_DELTAS),
            "chestxray8_iobb_thresholds": list(CXR8_IOBB_THRESHOLDS),
            "chestxray8_iou_threshold": CXR8_IOU_THRESHOLD,
            "rsna_thresholds": list(RSNA_THRESHOLDS),
        },
        "conventions": {conv: evaluate(cases, conv) for conv in CONVENTIONS},
    }


def validate(cases: dict) -> None:
    ids = set()
    for im in cases["images"]:
        assert im["id"] not in ids, im["id"]
        ids.add(im["id"])
        for b in im["truth"]:
            assert len(b) == 4 and all(isinstance(v, int) for v in b), (im["id"], b)
            assert b[0] <= b[2] and b[1] <= b[3], (im["id"], b)
        for b in im["pred"]:
            assert len(b) == 5 and all(isinstance(v, int) for v in b[:4]), (im["id"], b)
            assert isinstance(b[4], float), (im["id"], b)
            assert b[0] <= b[2] and b[1] <= b[3], (im["id"], b)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

def _rand_box(rng, W, H, min_size=4):
    w = int(rng.integers(min_size, max(min_size + 1, W // 2) + 1))
    h = int(rng.integers(min_size, max(min_size + 1, H // 2) + 1))
    x1 = int(rng.integers(0, W - w + 1))
    y1 = int(rng.integers(0, H - h + 1))
    return [x1, y1, x1 + w, y1 + h]


def _clip(b, W, H):
    x1, y1, x2, y2 = b
    x1 = min(max(x1, 0), W - 1)
    y1 = min(max(y1, 0), H - 1)
    x2 = min(max(x2, x1 + 1), W)
    y2 = min(max(y2, y1 + 1), H)
    return [int(x1), int(y1), int(x2), int(y2)]


def _disjoint(b, truths):
    return all(min(b[2], t[2]) <= max(b[0], t[0]) or min(b[3], t[3]) <= max(b[1], t[1])
               for t in truths)


def random_images(seed=SEED, n=N_RANDOM):
    rng = np.random.default_rng(seed)
    sizes = (64, 100, 128, 224, 256, 512, 1024)
    images = []
    for k in range(n):
        W = int(rng.choice(sizes))
        H = W if rng.random() < 0.7 else int(rng.choice(sizes))
        n_t = int(rng.choice([0, 1, 1, 2, 2, 3]))
        n_p = int(rng.choice([0, 1, 2, 2, 3, 3, 4, 4]))
        truths = [_rand_box(rng, W, H) for _ in range(n_t)]
        preds = []
        for _ in range(n_p):
            modes = ["heavy", "heavy", "barely", "none", "random"] if truths else ["none", "random"]
            mode = modes[int(rng.integers(0, len(modes)))]
            if mode in ("heavy", "barely"):
                t = truths[int(rng.integers(0, len(truths)))]
                w, h = t[2] - t[0], t[3] - t[1]
                if mode == "heavy":
                    jx, jy = max(1, round(0.12 * w)), max(1, round(0.12 * h))
                    b = [t[0] + int(rng.integers(-jx, jx + 1)), t[1] + int(rng.integers(-jy, jy + 1)),
                         t[2] + int(rng.integers(-jx, jx + 1)), t[3] + int(rng.integers(-jy, jy + 1))]
                else:
                    sx = int(round(w * rng.uniform(0.75, 0.95))) * (1 if rng.random() < 0.5 else -1)
                    sy = int(round(h * rng.uniform(0.0, 0.3))) * (1 if rng.random() < 0.5 else -1)
                    b = [t[0] + sx, t[1] + sy, t[2] + sx, t[3] + sy]
                b = _clip(b, W, H)
            elif mode == "none":
                for _ in range(100):
                    b = _rand_box(rng, W, H)
                    if _disjoint(b, truths):
                        break
            else:
                b = _rand_box(rng, W, H)
            if preds and rng.random() < 0.2:
                score = preds[int(rng.integers(0, len(preds)))][4]  # deliberate tie
            else:
                score = int(rng.integers(1, 100)) / 100
            preds.append(b + [float(score)])
        images.append({"id": f"img_{k:03d}", "width": W, "height": H,
                       "truth": truths, "pred": preds})
    return images


def hand_images():
    def im(id_, note, truth, pred, W=100, H=100):
        return {"id": id_, "width": W, "height": H, "truth": truth, "pred": pred, "note": note}

    return [
        im("edge_identical", "prediction equals the truth: IoU 1, IoBB 1, RSNA 1",
           [[10, 10, 50, 50]], [[10, 10, 50, 50, 0.9]]),
        im("edge_pred_inside_truth", "25x25 prediction inside a 50x50 truth: IoU 1/4, IoBB 1",
           [[10, 10, 60, 60]], [[20, 20, 45, 45, 0.8]]),
        im("edge_truth_inside_pred", "80x80 prediction around a 40x40 truth: IoU 1/4, IoBB 1/4",
           [[20, 20, 60, 60]], [[0, 0, 80, 80, 0.8]]),
        im("edge_touching_edge", "boxes share the line x=30: IoU 0 half-open, > 0 inclusive",
           [[10, 10, 30, 30]], [[30, 10, 50, 30, 0.7]]),
        im("edge_touching_corner", "boxes share the point (30,30): IoU 0 half-open, 1/881 inclusive",
           [[10, 10, 30, 30]], [[30, 30, 50, 50, 0.7]]),
        im("edge_zero_area_pred", "prediction with x1 == x2: area 0 half-open, IoU 0 and IoBB 0",
           [[10, 10, 40, 40]], [[20, 10, 20, 40, 0.8]]),
        im("edge_zero_union", "zero-width truth and identical zero-width prediction: union 0 "
           "half-open so IoU 0; inclusive they are 1-pixel-wide boxes with IoU 1",
           [[5, 5, 5, 20]], [[5, 5, 5, 20, 0.6]]),
        im("edge_wsol_empty_box", "[0,0,0,0] is what wsolevaluation returns when no contour is "
           "found: empty half-open, one pixel inclusive", [[0, 0, 10, 10]], [[0, 0, 0, 0, 0.5]]),
        im("edge_no_truth_with_preds", "no truth, two predictions: both are ChestX-ray8 false "
           "positives, RSNA 0, not in BoxAcc", [], [[10, 10, 30, 30, 0.9], [50, 50, 90, 90, 0.4]]),
        im("edge_no_truth_no_preds", "empty image: left out of BoxAcc and RSNA, counted in the "
           "ChestX-ray8 false-positive denominator", [], []),
        im("edge_truth_no_preds", "two truths and no prediction: a BoxAcc miss, RSNA 0",
           [[10, 10, 40, 40], [50, 50, 90, 80]], []),
        im("edge_many_preds_one_truth", "five predictions on one truth: at most one RSNA TP, "
           "the rest FPs", [[20, 20, 60, 60]],
           [[20, 20, 60, 60, 0.9], [22, 22, 62, 62, 0.8], [24, 24, 64, 64, 0.7],
            [28, 28, 68, 68, 0.6], [70, 70, 95, 95, 0.5]]),
        im("edge_score_tie_order", "two predictions with equal score; given order p0, p1: "
           "p0 takes truth 0 (IoU 2/3) and p1 is left with truth 1 (IoU 1/16)",
           [[0, 0, 100, 10], [60, 0, 160, 10]],
           [[20, 0, 120, 10, 0.5], [0, 0, 70, 10, 0.5]], W=200, H=20),
        im("edge_score_tie_order_reversed", "same boxes as edge_score_tie_order in the other "
           "order: p1 takes truth 0 (IoU 7/10), p0 gets truth 1 (IoU 3/7)",
           [[0, 0, 100, 10], [60, 0, 160, 10]],
           [[0, 0, 70, 10, 0.5], [20, 0, 120, 10, 0.5]], W=200, H=20),
        im("edge_iou_tie_between_truths", "first prediction has IoU 9/11 with both truths and "
           "takes truth 0 (lowest index); the second then only has truth 1 (IoU 7/12)",
           [[0, 0, 100, 10], [20, 0, 120, 10]],
           [[10, 0, 110, 10, 0.9], [0, 0, 90, 10, 0.8]], W=200, H=20),
        im("edge_iou_exact_0.5", "IoU exactly 1/2: hit@0.5 (>=) but no RSNA TP at t=0.5 (>)",
           [[0, 0, 20, 10]], [[0, 0, 10, 10, 0.9]], W=40, H=20),
        im("edge_iou_exact_0.3", "IoU exactly 3/10: hit@0.3 (>=)",
           [[0, 0, 10, 10]], [[0, 0, 3, 10, 0.9]], W=20, H=20),
        im("edge_iou_exact_0.7", "IoU exactly 7/10: hit@0.7 (>=), no RSNA TP at t=0.7 (>)",
           [[0, 0, 10, 10]], [[0, 0, 7, 10, 0.9]], W=20, H=20),
        im("edge_iou_exact_0.45", "IoU exactly 9/20: RSNA TP at t=0.40 only",
           [[0, 0, 20, 10]], [[0, 0, 9, 10, 0.9]], W=40, H=20),
        im("edge_iobb_exact_0.5", "IoBB exactly 1/2: not > 0.5, so a ChestX-ray8 miss and a "
           "false positive at T=0.5", [[0, 0, 10, 10]], [[5, 0, 15, 10, 0.9]], W=20, H=20),
        im("edge_iobb_boundaries", "five predictions with IoBB exactly 1/2, 1/4, 1/10, 3/4, 9/10 "
           "against one truth: false positives at T are those with IoBB <= T",
           [[0, 0, 10, 10]],
           [[5, 0, 15, 10, 0.5], [0, 0, 40, 10, 0.4], [0, 0, 100, 10, 0.3],
            [7, 0, 11, 10, 0.2], [1, 0, 11, 10, 0.1]], W=100, H=10),
        im("edge_rsna_like", "1024x1024 image with two truths as in stage_2_train_labels.csv "
           "(x, y, w, h converted to x1, y1, x2, y2) and three predictions",
           [[264, 152, 477, 531], [562, 152, 818, 605]],
           [[270, 160, 480, 520, 0.93], [560, 200, 800, 640, 0.88], [100, 700, 300, 900, 0.40]],
           W=1024, H=1024),
    ]


def build_cases(seed=SEED):
    return {"images": random_images(seed) + hand_images()}


# ---------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------

def self_checks(cases, expected):
    assert RSNA_THRESHOLDS == (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75), RSNA_THRESHOLDS

    # 1. every IoU / IoBB from numpy equals the correctly rounded exact fraction
    for conv in CONVENTIONS:
        for im in cases["images"]:
            if not im["truth"] or not im["pred"]:
                continue
            pred, truth = as_boxes(im["pred"]), as_boxes(im["truth"])
            iou, iobb = iou_matrix(pred, truth, conv), iobb_matrix(pred, truth, conv)
            for i, p in enumerate(im["pred"]):
                for j, t in enumerate(im["truth"]):
                    fi, fb = scalar_iou_iobb(p, t, conv)
                    assert iou[i, j] == float(fi) and iobb[i, j] == float(fb), (im["id"], i, j)
                    assert 0 <= fi <= 1 and 0 <= fb <= 1
            pe = expected["conventions"][conv]["per_image"][im["id"]]
            assert pe["best_iou"] == float(max(scalar_iou_iobb(p, t, conv)[0]
                                               for p in im["pred"] for t in im["truth"]))

    # 1b. RSNA and BoxAcc hits again in pure Python with exact fractions and exact
    #     decimal thresholds (sorted() is stable: ties keep the given order)
    for conv in CONVENTIONS:
        for im in cases["images"]:
            pe = expected["conventions"][conv]["per_image"][im["id"]]
            truths, preds = im["truth"], sorted(im["pred"], key=lambda r: -r[4])
            if truths:
                best = max((scalar_iou_iobb(p, t, conv)[0] for p in preds for t in truths),
                           default=None)
                assert pe["hits"] == {k: best is not None and best >= Fraction(k)
                                      for k in ("0.3", "0.5", "0.7")}, im["id"]
            if not truths and not preds:
                assert pe["rsna"] is None
                continue
            ps = []
            for t_str in ("0.40", "0.45", "0.50", "0.55", "0.60", "0.65", "0.70", "0.75"):
                t = Fraction(t_str)
                free = list(range(len(truths)))
                tp = fp = 0
                for p in preds:
                    ious = [(scalar_iou_iobb(p, truths[j], conv)[0], -j) for j in free]
                    if ious and max(ious)[0] > t:
                        free.remove(-max(ious)[1])
                        tp += 1
                    else:
                        fp += 1
                ps.append(Fraction(tp, tp + fp + len(free)))
            assert abs(pe["rsna"] - float(sum(ps) / len(ps))) < 1e-15, (conv, im["id"])

    per = {c: expected["conventions"][c]["per_image"] for c in CONVENTIONS}
    ho, inc = per["half_open"], per["wsol_inclusive"]
    F = lambda a, b: float(Fraction(a, b))  # noqa: E731

    # 2. hand cases, values worked out by hand
    assert ho["edge_identical"]["best_iou"] == 1.0 and ho["edge_identical"]["rsna"] == 1.0
    assert inc["edge_identical"]["best_iou"] == 1.0
    assert ho["edge_pred_inside_truth"]["best_iou"] == 0.25
    assert ho["edge_pred_inside_truth"]["best_iobb"] == 1.0
    assert inc["edge_pred_inside_truth"]["best_iou"] == F(26 * 26, 51 * 51)
    assert ho["edge_truth_inside_pred"]["best_iobb"] == 0.25
    assert ho["edge_touching_edge"]["best_iou"] == 0.0
    assert inc["edge_touching_edge"]["best_iou"] == F(21, 21 * 21 * 2 - 21)
    assert ho["edge_touching_corner"]["best_iou"] == 0.0
    assert inc["edge_touching_corner"]["best_iou"] == F(1, 881)
    assert ho["edge_zero_area_pred"]["best_iou"] == 0.0
    assert ho["edge_zero_area_pred"]["best_iobb"] == 0.0
    assert inc["edge_zero_area_pred"]["best_iou"] == F(31, 961)
    assert inc["edge_zero_area_pred"]["best_iobb"] == 1.0
    assert ho["edge_zero_union"]["best_iou"] == 0.0 and inc["edge_zero_union"]["best_iou"] == 1.0
    assert ho["edge_wsol_empty_box"]["best_iou"] == 0.0
    assert inc["edge_wsol_empty_box"]["best_iou"] == F(1, 121)
    for c in CONVENTIONS:
        assert per[c]["edge_no_truth_with_preds"] == {
            "best_iou": None, "best_iobb": None, "hits": None, "rsna": 0.0}
        assert per[c]["edge_no_truth_no_preds"] == {
            "best_iou": None, "best_iobb": None, "hits": None, "rsna": None}
        assert per[c]["edge_truth_no_preds"] == {
            "best_iou": None, "best_iobb": None,
            "hits": {"0.3": False, "0.5": False, "0.7": False}, "rsna": 0.0}
    # many preds on one truth: IoU of the best is 1 > every t, so 1 TP, 4 FP, 0 FN
    assert abs(ho["edge_many_preds_one_truth"]["rsna"] - 0.2) < 1e-15
    # ties: order p0, p1 -> 1/3 for t in 0.40..0.65 (6 values), 0 for t in 0.70, 0.75
    assert abs(ho["edge_score_tie_order"]["rsna"] - 0.25) < 1e-15
    # reversed: t=0.40: 2 TP (1); t in 0.45..0.65: 1 TP 1 FP 1 FN (1/3); t >= 0.70: 0
    assert abs(ho["edge_score_tie_order_reversed"]["rsna"] - (1 + 5 / 3) / 8) < 1e-15
    # IoU tie between truths: t <= 0.55: 2 TP (1); t >= 0.60: 1 TP 1 FP 1 FN (1/3)
    assert abs(ho["edge_iou_tie_between_truths"]["rsna"] - (4 + 4 / 3) / 8) < 1e-15
    assert ho["edge_iou_exact_0.5"]["best_iou"] == 0.5
    assert ho["edge_iou_exact_0.5"]["hits"] == {"0.3": True, "0.5": True, "0.7": False}
    assert ho["edge_iou_exact_0.5"]["rsna"] == 0.25          # TP at 0.40, 0.45 only
    assert ho["edge_iou_exact_0.3"]["hits"] == {"0.3": True, "0.5": False, "0.7": False}
    assert ho["edge_iou_exact_0.7"]["hits"] == {"0.3": True, "0.5": True, "0.7": True}
    assert ho["edge_iou_exact_0.7"]["rsna"] == 0.75          # TP at 0.40 ... 0.65
    assert ho["edge_iou_exact_0.45"]["rsna"] == 0.125        # TP at 0.40 only
    assert ho["edge_iobb_exact_0.5"]["best_iobb"] == 0.5
    assert ho["edge_iobb_boundaries"]["best_iobb"] == 0.9

    # 3. ChestX-ray8 counting on a tiny sub-dataset, by hand
    sub = {"images": [im for im in cases["images"]
                      if im["id"] in ("edge_iobb_boundaries", "edge_no_truth_with_preds",
                                      "edge_no_truth_no_preds", "edge_iobb_exact_0.5")]}
    r = evaluate(sub, "half_open")["chestxray8"]
    # FPs: iobb_boundaries has IoBBs .5 .25 .1 .75 .9 -> #<=T = 1,2,3,4,5 at T = .1 .. .9;
    # iobb_exact_0.5 adds 1 for T >= .5; the no-truth image adds 2 always; 4 images.
    for T, fps in zip(CXR8_IOBB_THRESHOLDS, (3, 4, 6, 7, 8)):
        assert r[key(T)]["avg_fp"] == fps / 4, (T, r[key(T)])
    for T, acc in zip(CXR8_IOBB_THRESHOLDS, (1.0, 1.0, 0.5, 0.5, 0.0)):
        assert r[key(T)]["accuracy_iobb"] == acc, (T, r[key(T)])

    # 4. convention-independent invariants
    for c in CONVENTIONS:
        e = expected["conventions"][c]
        assert e["corloc"] == e["box_acc"]["0.5"]
        assert e["box_acc"]["0.3"] >= e["box_acc"]["0.5"] >= e["box_acc"]["0.7"]
        accs = [e["chestxray8"][key(T)]["accuracy_iobb"] for T in CXR8_IOBB_THRESHOLDS]
        fps = [e["chestxray8"][key(T)]["avg_fp"] for T in CXR8_IOBB_THRESHOLDS]
        assert accs == sorted(accs, reverse=True) and fps == sorted(fps)
        for T in CXR8_IOBB_THRESHOLDS:
            d = e["chestxray8"][key(T)]
            assert d["accuracy_iobb_or_iou_0.5"] >= d["accuracy_iobb"]
            assert d["avg_fp_iobb_or_iou_0.5"] <= d["avg_fp"]
        assert e["counts"]["images"] == len(cases["images"])


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def dump_cases(cases) -> str:
    """One image per block, each box on one line: readable diffs."""
    out = ['{"images": [']
    for n, im in enumerate(cases["images"]):
        lines = [f'  {{"id": {json.dumps(im["id"])}, "width": {im["width"]}, '
                 f'"height": {im["height"]},']
        if "note" in im:
            lines.append(f'   "note": {json.dumps(im["note"])},')
        for name in ("truth", "pred"):
            rows = im[name]
            if not rows:
                lines.append(f'   "{name}": []' + ("," if name == "truth" else ""))
                continue
            lines.append(f'   "{name}": [')
            for i, b in enumerate(rows):
                lines.append("     " + json.dumps(b) + ("," if i + 1 < len(rows) else ""))
            lines.append("   ]" + ("," if name == "truth" else ""))
        lines.append("  }" + ("," if n + 1 < len(cases["images"]) else ""))
        out.extend(lines)
    out.append("]}")
    text = "\n".join(out) + "\n"
    assert json.loads(text) == cases
    return text


def dump_expected(expected) -> str:
    return json.dumps(expected, indent=2, allow_nan=False) + "\n"


def main(argv=None):
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=repo / "tests" / "data" / "metrics",
                    help="folder of cases.json and expected.json")
    ap.add_argument("--check", action="store_true",
                    help="recompute and compare with the stored files; write nothing")
    ap.add_argument("--eval", type=Path, metavar="CASES_JSON",
                    help="print the expected JSON of any cases file and exit")
    args = ap.parse_args(argv)

    if args.eval:
        cases = json.loads(args.eval.read_text())
        sys.stdout.write(dump_expected(expected_for(cases)))
        return 0

    cases = build_cases()
    cases_text = dump_cases(cases)
    cases = json.loads(cases_text)  # evaluate exactly what the Rust tests will read
    expected = expected_for(cases)
    self_checks(cases, expected)
    expected_text = dump_expected(expected)

    cases_path, expected_path = args.out / "cases.json", args.out / "expected.json"
    if args.check:
        bad = [p for p, text in ((cases_path, cases_text), (expected_path, expected_text))
               if not p.exists() or p.read_text() != text]
        for p in bad:
            print(f"differs from the reference: {p}", file=sys.stderr)
        if bad:
            return 1
        print(f"ok: {cases_path} and {expected_path} match the reference")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    cases_path.write_text(cases_text)
    expected_path.write_text(expected_text)
    for conv in CONVENTIONS:
        e = expected["conventions"][conv]
        print(f"{conv}: images={e['counts']['images']} with_truth={e['counts']['with_truth']} "
              f"BoxAcc={e['box_acc']} mean={e['box_acc_mean']:.6f} "
              f"RSNA={e['rsna_score']:.6f} (over {e['counts']['scored_rsna']})")
    print(f"wrote {cases_path} and {expected_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
