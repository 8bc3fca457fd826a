#!/usr/bin/env python3
"""Independent numpy reference for cambox's box metrics.

Writes two pairs of files (default folder: tests/fixtures/metrics/ of the repository):

  cases.json     the input: images with ground-truth boxes and scored predicted boxes,
                 made deterministically from a fixed seed plus hand-written edge cases.
  expected.json  the output: every metric under both box conventions.
  cases_multiclass.json, expected_multiclass.json  (--multiclass)
                 the same for studies with many classes: a softmax and a sigmoid set,
                 each image with labelled truth boxes, every class's probability and
                 boxes per model class; per-label, macro, micro, top-1 and top-5 metrics.

Formulas, conventions and references: tests/fixtures/metrics/README.md.

Usage:
  metrics_reference.py                 regenerate cases.json and expected.json
  metrics_reference.py --multiclass    regenerate cases_multiclass.json and expected_multiclass.json
  metrics_reference.py --check         recompute all four and fail if a stored file differs
  metrics_reference.py --eval FILE     print the expected JSON for any cases file
  metrics_reference.py --eval-multiclass FILE
                                       the same for a multi-class cases file

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
# Multi-class / multi-label evaluation (cases_multiclass.json -> expected_multiclass.json)
# ---------------------------------------------------------------------------
#
# One set = {"classes", "class_map", "activation", "min_score", "images"}; each truth label
# L reduces, on every image, to the single-class case above (evaluate()):
#   k*(i, L) = the class of class_map[L] with >= 1 box on image i and the highest
#              probs[k] (ties: lower class index); none -> no predicted boxes;
#   truth    = image i's boxes labelled L (none: a negative for L);
#   p(i, L)  = the label's probability: for a softmax set the sum of probs[c] over the
#              distinct classes c of class_map[L] (mutually exclusive classes), in
#              ascending class order; for a sigmoid set probs[k*];
#   GT-known predictions = the boxes of k*, scored p(i, L) * box_score, in file order;
#   detection predictions = the same when p(i, L) >= min_score, else none.
# Definitions in full: tests/fixtures/metrics/README.md, "Multi-class evaluation".

MC_SEED = 20261129
MC_N_RANDOM = 30
TOP5 = 5


def mc_labels(mset: dict):
    """(evaluated labels, unmapped labels): labels of truth boxes, sorted (code-point order)."""
    seen = sorted({t[4] for im in mset["images"] for t in im["truth"]})
    return [lab for lab in seen if lab in mset["class_map"]], [lab for lab in seen if lab not in mset["class_map"]]


def mc_boxes(im: dict, k: int) -> list:
    return im["pred"].get(str(k), [])


def mc_k_star(im: dict, classes_of_label) -> int | None:
    """Class of class_map[L] with boxes on the image and the highest probability; ties -> lower index."""
    best = None
    for k in sorted(set(classes_of_label)):
        if mc_boxes(im, k) and (best is None or im["probs"][k] > im["probs"][best]):
            best = k
    return best


def mc_label_prob(im: dict, mset: dict, label: str, k):
    """p(i, L): the sum over the label's classes for softmax, probs[k*] for sigmoid; None
    without k* (no boxes of the label's classes on the image)."""
    if k is None:
        return None
    if mset["activation"] == "softmax":
        s = 0.0
        for c in sorted(set(mset["class_map"][label])):
            s += im["probs"][c]
        return s
    return im["probs"][k]


def mc_ranking(probs) -> list:
    """Class indices by probability, descending; ties -> lower index first."""
    return sorted(range(len(probs)), key=lambda k: (-probs[k], k))


def mc_best_iou(boxes, truths, conv):
    if not boxes or not truths:
        return None
    return float(iou_matrix(as_boxes(boxes), as_boxes(truths), conv).max())


def mc_single_class_cases(mset: dict, label: str):
    """The two single-class case lists (GT-known, detection) of one label, plus k* and its
    probability per image."""
    gt, det, ks = [], [], []
    cls = mset["class_map"][label]
    for im in mset["images"]:
        truth = [t[:4] for t in im["truth"] if t[4] == label]
        k = mc_k_star(im, cls)
        p = mc_label_prob(im, mset, label, k)
        preds = [] if k is None else [b[:4] + [p * b[4]] for b in mc_boxes(im, k)]
        detect = k is not None and p >= mset["min_score"]
        gt.append({"id": im["id"], "width": im["width"], "height": im["height"], "truth": truth, "pred": preds})
        det.append({"id": im["id"], "width": im["width"], "height": im["height"], "truth": truth,
                    "pred": preds if detect else []})
        ks.append((k, p, detect))
    return gt, det, ks


def mc_mean(values):
    """Left-to-right mean of the values that are not None; None when there are none."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    s = 0.0
    for v in vals:
        s += v
    return s / len(vals)


def evaluate_multiclass_set(mset: dict, conv: str) -> dict:
    labels, _ = mc_labels(mset)
    softmax = mset["activation"] == "softmax"
    images = mset["images"]
    per_label, per_image = {}, {im["id"]: {} for im in images}
    micro_hits = {d: 0 for d in BOX_ACC_DELTAS}
    top1 = top5 = pairs = 0
    for label in labels:
        gt, det, ks = mc_single_class_cases(mset, label)
        e_gt = evaluate({"images": gt}, conv)
        e_det = evaluate({"images": det}, conv)
        n_pos = e_gt["counts"]["with_truth"]
        per_label[label] = {
            "box_acc": e_gt["box_acc"],
            "box_acc_mean": e_gt["box_acc_mean"],
            "corloc": e_gt["corloc"],
            "rsna_score": e_det["rsna_score"],
            "chestxray8": e_det["chestxray8"],
            "counts": {
                "images": len(images),
                "positive_images": n_pos,
                "negative_images": len(images) - n_pos,
                "truth_boxes": sum(len(c["truth"]) for c in gt),
                "pairs_with_boxes": sum(k is not None for k, _, _ in ks),
                "pairs_detected": sum(d for _, _, d in ks),
                "pred_boxes_gt_known": sum(len(c["pred"]) for c in gt),
                "pred_boxes_detection": sum(len(c["pred"]) for c in det),
                "scored_rsna": e_det["counts"]["scored_rsna"],
            },
        }
        ranking_cache = {}
        for im, c_gt, (k, p, detect) in zip(images, gt, ks):
            pi_gt = e_gt["per_image"][im["id"]]
            pi_det = e_det["per_image"][im["id"]]
            t1 = t5 = None
            if c_gt["truth"]:
                pairs += 1
                for d in BOX_ACC_DELTAS:
                    micro_hits[d] += pi_gt["hits"][key(d)]
                rank = ranking_cache.setdefault(im["id"], mc_ranking(im["probs"]))
                cls = set(mset["class_map"][label])

                def hit(kk):
                    b = mc_best_iou(mc_boxes(im, kk), c_gt["truth"], conv)
                    return b is not None and b >= 0.5

                if softmax:
                    t1 = rank[0] in cls and hit(rank[0])
                    t5 = any(kk in cls and hit(kk) for kk in rank[:TOP5])
                else:
                    t1 = k is not None and detect and hit(k)
                top1 += bool(t1)
                top5 += bool(t5)
            per_image[im["id"]][label] = {
                "k_star": k,
                "prob": p,
                "detection": detect,
                "truth": len(c_gt["truth"]),
                "pred": len(c_gt["pred"]),
                "best_iou": pi_gt["best_iou"],
                "best_iobb": pi_gt["best_iobb"],
                "hits": pi_gt["hits"],
                "rsna": pi_det["rsna"],
                "top1_hit": t1,
                "top5_hit": t5,
            }
    macro = {
        "labels": len(labels),
        "box_acc": {key(d): mc_mean(per_label[lab]["box_acc"][key(d)] for lab in labels) for d in BOX_ACC_DELTAS},
        "box_acc_mean": mc_mean(per_label[lab]["box_acc_mean"] for lab in labels),
        "corloc": mc_mean(per_label[lab]["corloc"] for lab in labels),
        "rsna_score": mc_mean(per_label[lab]["rsna_score"] for lab in labels),
        "chestxray8": {
            key(T): {m: mc_mean(per_label[lab]["chestxray8"][key(T)][m] for lab in labels)
                     for m in ("accuracy_iobb", f"accuracy_iobb_or_iou_{key(CXR8_IOU_THRESHOLD)}",
                               "avg_fp", f"avg_fp_iobb_or_iou_{key(CXR8_IOU_THRESHOLD)}")}
            for T in CXR8_IOBB_THRESHOLDS},
    }
    micro_acc = {key(d): (micro_hits[d] / pairs if pairs else None) for d in BOX_ACC_DELTAS}
    micro = {
        "pairs": pairs,
        "box_acc": micro_acc,
        "box_acc_mean": mc_mean(micro_acc.values()) if pairs else None,
        "corloc": micro_acc[key(0.5)],
    }
    return {
        "per_label": per_label,
        "mean_over_classes": macro,
        "micro": micro,
        "gt_known_loc": micro_acc[key(0.5)],
        "top1_loc": top1 / pairs if pairs else None,
        "top5_loc": (top5 / pairs if pairs else None) if softmax else None,
        "counts": {"images": len(images), "pairs": pairs,
                   "images_without_truth": sum(not im["truth"] for im in images)},
        "per_image": per_image,
    }


def validate_multiclass_set(mset: dict) -> None:
    K = len(mset["classes"])
    assert mset["activation"] in ("softmax", "sigmoid"), mset["activation"]
    assert isinstance(mset["min_score"], float)
    for lab, ks in mset["class_map"].items():
        assert ks and all(isinstance(k, int) and 0 <= k < K for k in ks), (lab, ks)
    ids = set()
    for im in mset["images"]:
        assert im["id"] not in ids, im["id"]
        ids.add(im["id"])
        assert len(im["probs"]) == K and all(isinstance(p, float) and 0 <= p <= 1 for p in im["probs"]), im["id"]
        for t in im["truth"]:
            assert len(t) == 5 and all(isinstance(v, int) for v in t[:4]) and isinstance(t[4], str), (im["id"], t)
            assert t[0] <= t[2] and t[1] <= t[3], (im["id"], t)
        for k, boxes in im["pred"].items():
            assert k == str(int(k)) and 0 <= int(k) < K and boxes, (im["id"], k)
            for b in boxes:
                assert len(b) == 5 and all(isinstance(v, int) for v in b[:4]) and isinstance(b[4], float), (im["id"], b)
                assert b[0] <= b[2] and b[1] <= b[3], (im["id"], b)


def expected_multiclass_set(mset: dict) -> dict:
    validate_multiclass_set(mset)
    labels, unmapped = mc_labels(mset)
    return {
        "activation": mset["activation"],
        "min_score": mset["min_score"],
        "labels": labels,
        "unmapped_labels": unmapped,
        "conventions": {conv: evaluate_multiclass_set(mset, conv) for conv in CONVENTIONS},
    }


def expected_multiclass_for(cases: dict) -> dict:
    """cases: {"sets": {name: SET}} or a single SET (with "images")."""
    meta = {
        "generator": "scripts/reference/metrics_reference.py --multiclass",
        "numpy": np.__version__,
        "box_acc_deltas": list(BOX_ACC_DELTAS),
        "chestxray8_iobb_thresholds": list(CXR8_IOBB_THRESHOLDS),
        "chestxray8_iou_threshold": CXR8_IOU_THRESHOLD,
        "rsna_thresholds": list(RSNA_THRESHOLDS),
        "top1_top5_iou": 0.5,
    }
    if "images" in cases:
        return {"meta": meta, **expected_multiclass_set(cases)}
    return {"meta": meta, "sets": {name: expected_multiclass_set(s) for name, s in cases["sets"].items()}}


# --- cases -------------------------------------------------------------------

def _prob(x: float) -> float:
    """Probabilities are written with 4 decimals: exact in JSON and easy to tie."""
    return float(round(float(x), 4))


def _mc_random_images(rng, n, classes, class_map, truth_labels, activation, prefix):
    label_classes = {lab: class_map.get(lab, []) for lab in truth_labels}
    sizes = (64, 128, 224, 256, 512)
    images = []
    for k_img in range(n):
        W = int(rng.choice(sizes))
        H = W if rng.random() < 0.7 else int(rng.choice(sizes))
        n_t = int(rng.choice([0, 1, 1, 2, 2, 3, 4]))
        truth = []
        for _ in range(n_t):
            lab = truth_labels[int(rng.integers(len(truth_labels)))]
            truth.append(_rand_box(rng, W, H) + [lab])
        present = {c for t in truth for c in label_classes[t[4]]}
        K = len(classes)
        logits = rng.normal(0, 1, K) + np.array([2.5 if c in present else 0.0 for c in range(K)])
        if activation == "softmax":
            e = np.exp(logits - logits.max())
            probs = [_prob(v) for v in e / e.sum()]
        else:
            probs = [_prob(v) for v in 1 / (1 + np.exp(-(logits - 1.5)))]
        if rng.random() < 0.15:  # a deliberate probability tie between two classes
            a, b = (int(v) for v in rng.choice(K, 2, replace=False))
            probs[b] = probs[a]
        pred = {}
        for c in range(K):
            # classes with a truth of theirs usually get boxes; others sometimes
            if rng.random() > (0.85 if c in present else 0.35):
                continue
            boxes = []
            own = [t for t in truth if c in label_classes[t[4]]]
            for _ in range(int(rng.choice([1, 1, 2, 3]))):
                mode = rng.random()
                if own and mode < 0.55:
                    t = own[int(rng.integers(len(own)))]
                    w, h = t[2] - t[0], t[3] - t[1]
                    j = 0.12 if rng.random() < 0.7 else 0.35
                    jx, jy = max(1, round(j * w)), max(1, round(j * h))
                    b = _clip([t[0] + int(rng.integers(-jx, jx + 1)), t[1] + int(rng.integers(-jy, jy + 1)),
                               t[2] + int(rng.integers(-jx, jx + 1)), t[3] + int(rng.integers(-jy, jy + 1))], W, H)
                elif truth and mode < 0.75:
                    t = truth[int(rng.integers(len(truth)))]  # possibly another label's box
                    b = _clip([t[0] + int(rng.integers(-3, 4)), t[1] + int(rng.integers(-3, 4)),
                               t[2] + int(rng.integers(-3, 4)), t[3] + int(rng.integers(-3, 4))], W, H)
                else:
                    b = _rand_box(rng, W, H)
                if boxes and rng.random() < 0.2:
                    score = boxes[int(rng.integers(len(boxes)))][4]  # deliberate tie
                else:
                    score = int(rng.integers(1, 100)) / 100
                boxes.append(b + [float(score)])
            pred[str(c)] = boxes
        images.append({"id": f"{prefix}_{k_img:03d}", "width": W, "height": H,
                       "truth": truth, "probs": probs, "pred": pred})
    return images


def _mc_hand_softmax():
    def im(id_, note, truth, probs, pred, W=100, H=100):
        return {"id": id_, "width": W, "height": H, "note": note, "truth": truth,
                "probs": [float(p) for p in probs], "pred": pred}

    return [
        im("mc_two_classes_lower_prob_better_box",
           "cat -> classes 0 and 2: class 0 (p .5) has a box missing the cat, class 2 (p .3) a perfect "
           "one; k* = 0, so a GT-known miss; top-1 (class 0) misses, top-5 hits through class 2",
           [[10, 10, 50, 50, "cat"]], [0.5, 0.05, 0.3, 0.05, 0.05, 0.05],
           {"0": [[60, 60, 90, 90, 0.9]], "2": [[10, 10, 50, 50, 0.8]]}),
        im("mc_class_without_boxes",
           "dog -> class 1, top-1 with p .7 but no boxes: no predictions for dog (a miss, RSNA 0); "
           "top-1 and top-5 miss",
           [[20, 20, 60, 60, "dog"]], [0.1, 0.7, 0.05, 0.05, 0.05, 0.05],
           {"0": [[20, 20, 60, 60, 0.5]]}),
        im("mc_probability_tie",
           "cat -> classes 0 and 2 with equal probability .4, both with boxes: k* = 0 (lower index) whose "
           "box misses; top-1 is class 0 (tie, lower index): miss; top-5 hits through class 2",
           [[0, 0, 40, 40, "cat"]], [0.4, 0.05, 0.4, 0.05, 0.05, 0.05],
           {"0": [[50, 50, 90, 90, 0.7]], "2": [[0, 0, 40, 40, 0.7]]}),
        im("mc_top1_is_another_labels_class",
           "truth dog and cat; top-1 class 0 (cat, p .6) boxes the cat; dog -> class 1 (p .2) boxes the "
           "dog: dog is a GT-known hit but a top-1 miss; cat is a hit both ways",
           [[0, 0, 30, 30, "cat"], [60, 60, 100, 100, "dog"]], [0.6, 0.2, 0.05, 0.05, 0.05, 0.05],
           {"0": [[0, 0, 30, 30, 0.9]], "1": [[60, 60, 100, 100, 0.9]]}),
        im("mc_no_truth",
           "no truth at all: class 0 (p .9) and class 3 (p .06) have boxes; cat's box is a detection "
           "false positive (p >= 0.5), bird's is not (p < 0.5); no pair",
           [], [0.9, 0.01, 0.01, 0.06, 0.01, 0.01],
           {"0": [[10, 10, 20, 20, 0.5]], "3": [[30, 30, 40, 40, 0.5]]}),
        im("mc_unmapped_label",
           "truth fish has no class_map entry: reported as unmapped, never evaluated; bird -> classes 3, 4: "
           "class 4 (p .35) beats class 3 (p .25) and hits",
           [[5, 5, 45, 45, "fish"], [50, 50, 95, 95, "bird"]], [0.1, 0.1, 0.1, 0.25, 0.35, 0.1],
           {"3": [[0, 0, 10, 10, 0.9]], "4": [[50, 50, 95, 95, 0.6], [0, 0, 5, 5, 0.9]]}),
    ]


def _mc_hand_sigmoid():
    def im(id_, note, truth, probs, pred, W=100, H=100):
        return {"id": id_, "width": W, "height": H, "note": note, "truth": truth,
                "probs": [float(p) for p in probs], "pred": pred}

    return [
        im("ml_all_below_min_score",
           "every probability < 0.5: GT-known uses the boxes (opacity hits), detection has none (RSNA 0, "
           "ChestX-ray8 miss), top-1 (sigmoid: k* with p >= min_score) misses",
           [[10, 10, 60, 60, "opacity"]], [0.45, 0.2, 0.1, 0.3, 0.05],
           {"0": [[10, 10, 60, 60, 0.9]], "3": [[70, 70, 90, 90, 0.5]]}),
        im("ml_two_findings",
           "opacity and nodule both present, both above 0.5 with good boxes: hits for both labels",
           [[0, 0, 50, 50, "opacity"], [70, 70, 80, 80, "nodule"]], [0.9, 0.8, 0.1, 0.1, 0.1],
           {"0": [[0, 0, 50, 50, 0.8]], "1": [[70, 70, 80, 80, 0.7]]}),
        im("ml_nodule_two_classes_tie",
           "nodule -> classes 1 and 2, equal probability .7, both with boxes: k* = 1 (lower index), whose "
           "box misses",
           [[40, 40, 60, 60, "nodule"]], [0.1, 0.7, 0.7, 0.1, 0.1],
           {"1": [[0, 0, 10, 10, 0.9]], "2": [[40, 40, 60, 60, 0.9]]}),
        im("ml_no_truth",
           "no truth: opacity's boxes at p .8 are two detection false positives; nodule's at p .3 none",
           [], [0.8, 0.3, 0.1, 0.1, 0.1],
           {"0": [[0, 0, 20, 20, 0.5], [30, 30, 50, 50, 0.4]], "1": [[60, 60, 70, 70, 0.5]]}),
        im("ml_class_without_boxes",
           "effusion -> class 3 with p .9 but no boxes: no predictions, a miss everywhere",
           [[10, 60, 90, 95, "effusion"]], [0.1, 0.1, 0.1, 0.9, 0.1],
           {"0": [[10, 60, 90, 95, 0.9]]}),
        im("ml_prob_equals_min_score",
           "opacity's class has probability exactly 0.5 = min_score and a perfect box: a detection "
           "(>=), RSNA 1, top-1 hit",
           [[20, 20, 70, 70, "opacity"]], [0.5, 0.1, 0.1, 0.1, 0.1],
           {"0": [[20, 20, 70, 70, 0.6]]}),
    ]


def build_multiclass_cases(seed=MC_SEED):
    rng = np.random.default_rng(seed)
    softmax = {
        "classes": ["c0", "c1", "c2", "c3", "c4", "c5"],
        "class_map": {"bird": [3, 4], "cat": [0, 2], "dog": [1]},
        "activation": "softmax",
        "min_score": 0.5,
    }
    softmax["images"] = _mc_random_images(rng, MC_N_RANDOM, softmax["classes"], softmax["class_map"],
                                          ["bird", "cat", "dog", "fish"], "softmax", "sm") + _mc_hand_softmax()
    sigmoid = {
        "classes": ["c0", "c1", "c2", "c3", "c4"],
        "class_map": {"effusion": [3], "nodule": [1, 2], "opacity": [0]},
        "activation": "sigmoid",
        "min_score": 0.5,
    }
    sigmoid["images"] = _mc_random_images(rng, MC_N_RANDOM, sigmoid["classes"], sigmoid["class_map"],
                                          ["effusion", "mass", "nodule", "opacity"], "sigmoid", "sg") + \
        _mc_hand_sigmoid()
    return {"sets": {"softmax": softmax, "sigmoid": sigmoid}}


# --- self-checks -------------------------------------------------------------

def _exact_hit(boxes, truths, conv, thr="0.5"):
    """best IoU >= thr with exact fractions (None boxes -> False)."""
    return any(scalar_iou_iobb(b, t, conv)[0] >= Fraction(thr) for b in boxes for t in truths)


def multiclass_self_checks(cases, expected):
    for name, mset in cases["sets"].items():
        ex = expected["sets"][name]
        labels, unmapped = mc_labels(mset)
        softmax = mset["activation"] == "softmax"
        for conv in CONVENTIONS:
            e = ex["conventions"][conv]
            # 1. k*, top-1, top-5 and micro BoxAcc in a plain loop with exact fractions
            n_pairs, hits = 0, {"0.3": 0, "0.5": 0, "0.7": 0}
            t1_n = t5_n = 0
            for im in mset["images"]:
                probs = im["probs"]
                order = sorted(range(len(probs)), key=lambda c: (-Fraction(probs[c]), c))
                for lab in labels:
                    truths = [t[:4] for t in im["truth"] if t[4] == lab]
                    cand = [c for c in mset["class_map"][lab] if str(c) in im["pred"]]
                    ks = None
                    for c in sorted(cand):
                        if ks is None or probs[c] > probs[ks]:
                            ks = c
                    pe = e["per_image"][im["id"]][lab]
                    assert pe["k_star"] == ks, (name, im["id"], lab)
                    p_lab = None if ks is None else (
                        sum(Fraction(probs[c]) for c in set(mset["class_map"][lab])) if softmax else Fraction(probs[ks]))
                    assert pe["detection"] == (ks is not None and p_lab >= Fraction(mset["min_score"])), \
                        (name, im["id"], lab)
                    if not truths:
                        assert pe["hits"] is None and pe["top1_hit"] is None
                        continue
                    n_pairs += 1
                    boxes = [] if ks is None else [b[:4] for b in im["pred"][str(ks)]]
                    for d in hits:
                        h = any(scalar_iou_iobb(b, t, conv)[0] >= Fraction(d) for b in boxes for t in truths)
                        hits[d] += h
                        assert pe["hits"][d] == h, (name, im["id"], lab, d)
                    if softmax:
                        t1 = order[0] in mset["class_map"][lab] and \
                            _exact_hit([b[:4] for b in im["pred"].get(str(order[0]), [])], truths, conv)
                        t5 = any(c in mset["class_map"][lab]
                                 and _exact_hit([b[:4] for b in im["pred"].get(str(c), [])], truths, conv)
                                 for c in order[:5])
                        assert pe["top5_hit"] == t5, (name, im["id"], lab)
                        t5_n += t5
                    else:
                        t1 = ks is not None and Fraction(probs[ks]) >= Fraction(mset["min_score"]) and \
                            _exact_hit(boxes, truths, conv)
                        assert pe["top5_hit"] is None
                    assert pe["top1_hit"] == t1, (name, im["id"], lab)
                    t1_n += t1
            assert e["micro"]["pairs"] == n_pairs == e["counts"]["pairs"]
            for d in hits:
                assert e["micro"]["box_acc"][d] == hits[d] / n_pairs, (name, conv, d)
            assert e["gt_known_loc"] == e["micro"]["box_acc"]["0.5"] == e["micro"]["corloc"]
            assert e["top1_loc"] == t1_n / n_pairs
            assert e["top5_loc"] == (t5_n / n_pairs if softmax else None)
            if softmax:
                assert e["top5_loc"] >= e["top1_loc"]
            # 2. per-label RSNA again with the exact-fraction loop, detection rule applied here
            for lab in labels:
                scores = []
                for im in mset["images"]:
                    truths = [t[:4] for t in im["truth"] if t[4] == lab]
                    ks = e["per_image"][im["id"]][lab]["k_star"]
                    preds = []
                    p_lab = mc_label_prob(im, mset, lab, ks)
                    if ks is not None and Fraction(p_lab) >= Fraction(mset["min_score"]):
                        preds = [b[:4] + [p_lab * b[4]] for b in im["pred"][str(ks)]]
                    r = _exact_rsna(truths, preds, conv)
                    pe = e["per_image"][im["id"]][lab]["rsna"]
                    assert (r is None) == (pe is None) and (r is None or abs(pe - float(r)) < 1e-15), \
                        (name, conv, im["id"], lab)
                    if r is not None:
                        scores.append(r)
                want = float(sum(scores) / len(scores)) if scores else None
                got = e["per_label"][lab]["rsna_score"]
                assert (want is None and got is None) or abs(got - want) < 1e-12, (name, conv, lab)
            # 3. the macro means are means of the per-label values
            for d in ("0.3", "0.5", "0.7"):
                vals = [e["per_label"][lab]["box_acc"][d] for lab in labels]
                assert abs(e["mean_over_classes"]["box_acc"][d] - sum(vals) / len(vals)) < 1e-15
            assert e["mean_over_classes"]["labels"] == len(labels)
            assert set(e["per_label"]) == set(labels) and not set(unmapped) & set(e["per_label"])

    # 4. hand cases, worked out by hand (half-open)
    sm = expected["sets"]["softmax"]["conventions"]["half_open"]["per_image"]
    sg = expected["sets"]["sigmoid"]["conventions"]["half_open"]["per_image"]
    assert expected["sets"]["softmax"]["unmapped_labels"] == ["fish"]
    assert expected["sets"]["sigmoid"]["unmapped_labels"] == ["mass"]
    c = sm["mc_two_classes_lower_prob_better_box"]["cat"]
    assert c["k_star"] == 0 and c["best_iou"] == 0.0 and c["hits"]["0.5"] is False
    assert c["top1_hit"] is False and c["top5_hit"] is True and c["rsna"] == 0.0  # p .5 >= .5: one FP, one FN
    assert c["detection"] is True
    c = sm["mc_class_without_boxes"]["dog"]
    assert c["k_star"] is None and c["pred"] == 0 and c["hits"]["0.3"] is False and c["rsna"] == 0.0
    assert c["top1_hit"] is False and c["top5_hit"] is False
    c = sm["mc_probability_tie"]["cat"]
    assert c["k_star"] == 0 and c["hits"]["0.3"] is False and c["top1_hit"] is False and c["top5_hit"] is True
    c = sm["mc_top1_is_another_labels_class"]
    assert c["dog"]["k_star"] == 1 and c["dog"]["hits"]["0.7"] is True and c["dog"]["top1_hit"] is False
    assert c["dog"]["detection"] is False and c["dog"]["rsna"] == 0.0  # p .2 < .5: truth, no detection
    assert c["cat"]["hits"]["0.7"] is True and c["cat"]["top1_hit"] is True and c["cat"]["rsna"] == 1.0
    c = sm["mc_no_truth"]
    assert c["cat"]["k_star"] == 0 and c["cat"]["detection"] is True and c["cat"]["rsna"] == 0.0
    assert c["bird"]["k_star"] == 3 and c["bird"]["detection"] is False and c["bird"]["rsna"] is None
    assert c["dog"]["k_star"] is None and c["dog"]["hits"] is None
    c = sm["mc_unmapped_label"]
    assert "fish" not in c and c["bird"]["k_star"] == 4 and c["bird"]["best_iou"] == 1.0
    c = sg["ml_all_below_min_score"]["opacity"]
    assert c["k_star"] == 0 and c["hits"]["0.7"] is True and c["detection"] is False
    assert c["rsna"] == 0.0 and c["top1_hit"] is False and c["top5_hit"] is None
    c = sg["ml_two_findings"]
    assert c["opacity"]["rsna"] == 1.0 and c["nodule"]["rsna"] == 1.0
    assert c["opacity"]["top1_hit"] is True and c["nodule"]["top1_hit"] is True
    c = sg["ml_nodule_two_classes_tie"]["nodule"]
    assert c["k_star"] == 1 and c["best_iou"] == 0.0 and c["top1_hit"] is False
    c = sg["ml_no_truth"]
    assert c["opacity"]["detection"] is True and c["opacity"]["pred"] == 2 and c["opacity"]["rsna"] == 0.0
    assert c["nodule"]["detection"] is False and c["nodule"]["rsna"] is None
    c = sg["ml_class_without_boxes"]["effusion"]
    assert c["k_star"] is None and c["hits"]["0.3"] is False and c["top1_hit"] is False
    c = sg["ml_prob_equals_min_score"]["opacity"]
    assert c["detection"] is True and c["rsna"] == 1.0 and c["top1_hit"] is True

    # 5. ChestX-ray8 false positives of 'opacity' on a two-image sub-set, by hand: ml_no_truth
    #    gives 2 FPs at every T, ml_two_findings none (IoBB 1 > every T); 2 images -> 1.0
    sub = {k: v for k, v in cases["sets"]["sigmoid"].items() if k != "images"}
    sub["images"] = [im for im in cases["sets"]["sigmoid"]["images"] if im["id"] in ("ml_no_truth", "ml_two_findings")]
    r = expected_multiclass_set(sub)["conventions"]["half_open"]["per_label"]["opacity"]["chestxray8"]
    for T in CXR8_IOBB_THRESHOLDS:
        assert r[key(T)]["avg_fp"] == 1.0 and r[key(T)]["accuracy_iobb"] == 1.0, (T, r[key(T)])


def _exact_rsna(truths, preds, conv):
    """RSNA score of one image with exact fractions and decimal thresholds (None: left out)."""
    if not truths and not preds:
        return None
    if not truths or not preds:
        return Fraction(0)
    preds = sorted(preds, key=lambda r: -r[4])  # stable
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
    return sum(ps) / len(ps)


def dump_multiclass_cases(cases) -> str:
    """One image per block, each box on one line."""
    out = ['{"sets": {']
    names = list(cases["sets"])
    for s_i, name in enumerate(names):
        s = cases["sets"][name]
        out.append(f'  {json.dumps(name)}: {{')
        out.append(f'   "classes": {json.dumps(s["classes"])},')
        out.append(f'   "class_map": {json.dumps(s["class_map"])},')
        out.append(f'   "activation": {json.dumps(s["activation"])},')
        out.append(f'   "min_score": {json.dumps(s["min_score"])},')
        out.append('   "images": [')
        for n, im in enumerate(s["images"]):
            lines = [f'    {{"id": {json.dumps(im["id"])}, "width": {im["width"]}, "height": {im["height"]},']
            if "note" in im:
                lines.append(f'     "note": {json.dumps(im["note"])},')
            lines.append(f'     "probs": {json.dumps(im["probs"])},')
            if im["truth"]:
                lines.append('     "truth": [')
                for i, t in enumerate(im["truth"]):
                    lines.append("       " + json.dumps(t) + ("," if i + 1 < len(im["truth"]) else ""))
                lines.append("     ],")
            else:
                lines.append('     "truth": [],')
            keys = list(im["pred"])
            if not keys:
                lines.append('     "pred": {}')
            else:
                lines.append('     "pred": {')
                for i, k in enumerate(keys):
                    lines.append(f'       {json.dumps(k)}: [')
                    for j, b in enumerate(im["pred"][k]):
                        lines.append("         " + json.dumps(b) + ("," if j + 1 < len(im["pred"][k]) else ""))
                    lines.append("       ]" + ("," if i + 1 < len(keys) else ""))
                lines.append("     }")
            lines.append("    }" + ("," if n + 1 < len(s["images"]) else ""))
            out.extend(lines)
        out.append("   ]")
        out.append("  }" + ("," if s_i + 1 < len(names) else ""))
    out.append("}}")
    text = "\n".join(out) + "\n"
    assert json.loads(text) == cases
    return text


def dump_expected_multiclass(expected) -> str:
    """indent 2, but each per-image entry (one image, one label) on one line."""
    def enc(obj, ind, in_per_image=False):
        pad = " " * ind
        if isinstance(obj, dict) and obj:
            items = []
            for k, v in obj.items():
                if in_per_image:  # {id: {label: entry}}: one line per (id, label)
                    inner = ", ".join(f"{json.dumps(l)}: {json.dumps(e, allow_nan=False)}" for l, e in v.items())
                    items.append(f"{pad}  {json.dumps(k)}: {{{inner}}}")
                else:
                    items.append(f"{pad}  {json.dumps(k)}: {enc(v, ind + 2, k == 'per_image')}")
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        return json.dumps(obj, allow_nan=False)

    text = enc(expected, 0) + "\n"
    assert json.loads(text) == expected
    return text


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
                    help="folder of cases.json, expected.json, cases_multiclass.json, expected_multiclass.json")
    ap.add_argument("--check", action="store_true",
                    help="recompute all four files and compare with the stored ones; write nothing")
    ap.add_argument("--multiclass", action="store_true",
                    help="regenerate cases_multiclass.json and expected_multiclass.json (instead of the "
                         "single-class pair)")
    ap.add_argument("--eval", type=Path, metavar="CASES_JSON",
                    help="print the expected JSON of any cases file and exit")
    ap.add_argument("--eval-multiclass", type=Path, metavar="CASES_JSON",
                    help="print the expected JSON of any multi-class cases file (one set, or {\"sets\": ...}) "
                         "and exit")
    args = ap.parse_args(argv)

    if args.eval:
        cases = json.loads(args.eval.read_text())
        sys.stdout.write(dump_expected(expected_for(cases)))
        return 0
    if args.eval_multiclass:
        cases = json.loads(args.eval_multiclass.read_text())
        sys.stdout.write(dump_expected_multiclass(expected_multiclass_for(cases)))
        return 0

    outputs = []  # (path, text)
    if args.check or not args.multiclass:
        cases = build_cases()
        cases_text = dump_cases(cases)
        cases = json.loads(cases_text)  # evaluate exactly what the Rust tests will read
        expected = expected_for(cases)
        self_checks(cases, expected)
        outputs += [(args.out / "cases.json", cases_text), (args.out / "expected.json", dump_expected(expected))]
    if args.check or args.multiclass:
        mc_cases = build_multiclass_cases()
        mc_cases_text = dump_multiclass_cases(mc_cases)
        mc_cases = json.loads(mc_cases_text)
        mc_expected = expected_multiclass_for(mc_cases)
        multiclass_self_checks(mc_cases, mc_expected)
        outputs += [(args.out / "cases_multiclass.json", mc_cases_text),
                    (args.out / "expected_multiclass.json", dump_expected_multiclass(mc_expected))]

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
    if not args.multiclass:
        for conv in CONVENTIONS:
            e = expected["conventions"][conv]
            print(f"{conv}: images={e['counts']['images']} with_truth={e['counts']['with_truth']} "
                  f"BoxAcc={e['box_acc']} mean={e['box_acc_mean']:.6f} "
                  f"RSNA={e['rsna_score']:.6f} (over {e['counts']['scored_rsna']})")
    else:
        for name, ex in mc_expected["sets"].items():
            for conv in CONVENTIONS:
                e = ex["conventions"][conv]
                print(f"{name} {conv}: images={e['counts']['images']} pairs={e['counts']['pairs']} "
                      f"labels={ex['labels']} unmapped={ex['unmapped_labels']} "
                      f"gt_known_loc={e['gt_known_loc']:.6f} top1_loc={e['top1_loc']:.6f} "
                      f"top5_loc={e['top5_loc'] if e['top5_loc'] is None else round(e['top5_loc'], 6)} "
                      f"macro CorLoc={e['mean_over_classes']['corloc']:.6f} "
                      f"macro RSNA={e['mean_over_classes']['rsna_score']:.6f}")
    print("wrote " + " and ".join(str(p) for p, _ in outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
