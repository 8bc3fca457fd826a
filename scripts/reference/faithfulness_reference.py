#!/usr/bin/env python3
"""Independent numpy + scipy + onnxruntime reference for cambox's faithfulness metrics.

Writes tests/fixtures/faithfulness/ (default; see --out):

  x_<id>.npy, map_<id>.npy   the inputs: a float32 1xCxHxW network input (standard normal,
                             as a normalised image) and a float32 HxW map in [0, 1]
  cases.json                 per case: model, class, steps, fill, black, seed, road
  expected.json              per case: every figure `cambox faithfulness` reports

Definitions (ported from the sources, not from cambox's Rust):
- Deletion / insertion: RISE's CausalMetric (Petsiuk et al. 2018, eclique/RISE
  evaluation.py): pixels by decreasing map value, ceil(N / steps) pixels a step,
  ceil(N / per) steps, the class probability before the first step and after each, area
  (sum - first/2 - last/2) / n_steps. Deletion starts from x and copies the filler's
  pixels in; insertion starts from the blurred x and copies x's pixels in.
- ROAD: pytorch-grad-cam's RemoveMostRelevantFirst / RemoveLeastRelevantFirst with
  NoisyLinearImputer (metrics/road.py, metrics/perturbation_confidence.py): the
  threshold is numpy.percentile of the (float32) map, pixels with map >= threshold
  (float32 comparison, as torch compares a float32 tensor with a scalar) are removed,
  and imputed by solving the sparse system that `setup_sparse_system` builds, with
  scipy.sparse.linalg.spsolve, plus noise. Result: probability after - before.
- Confidence drop / increase: pytorch-grad-cam's CamMultImageConfidenceChange
  (metrics/cam_mult_image.py): O = probability of x * map; drop = max(0, Y - O) / Y,
  increase = O > Y.

cambox's own choices, copied from its definition (src/faith/*.rs):
- the blur: 11 taps exp(-d^2 / 50) normalised, rows then columns, edges replicated, in
  float64 from the float32 input, stored as float32 (here scipy.ndimage.correlate1d with
  mode='nearest', cross-checked against a hand-written loop);
- ties of the order broken by pixel index (NaN last);
- ROAD's noise: 0.01 x standard normals from SplitMix64 + Box-Muller (the Normals of
  src/faith/impute.rs), one stream per ROAD call seeded derive_seed([seed, percentile,
  morf]), drawn channel by channel over the removed pixels in ascending index (the
  order of pytorch-grad-cam's torch.randn_like(res.t()));
- imputation in float64 (also the right-hand side), stored float32;
- the score: softmax (float64) of the float32 logits; for a model whose graph ends in a
  Softmax (gap_gemm_softmax) the model's output itself.

Usage:
  faithfulness_reference.py            regenerate the files
  faithfulness_reference.py --check    regenerate in memory and fail if a stored file
                                       differs (inputs byte for byte; expected.json as
                                       text, or else every number within 1e-10)
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from scipy import ndimage
from scipy.sparse import csc_matrix, lil_matrix
from scipy.sparse.linalg import spsolve

REPO = Path(__file__).resolve().parents[2]
SEED = 20261207
ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
ROAD_NOISE = 0.01

# (case model path, output kind): "logits" are softmaxed, "probabilities" used as they are.
# gap_gemm_softmax ends in Softmax -> `probs` (tests/fixtures/models/README.md).
MODELS = {
    "transb1": ("tests/fixtures/models/gap_gemm_transb1.onnx", "logits"),
    "softmax": ("tests/fixtures/models/gap_gemm_softmax.onnx", "probabilities"),
    "oddsize": ("tests/fixtures/models/odd_size_gemm.onnx", "logits"),
}

# Per model: (map kind, steps, fill, road) for its three cases.
PLAN = {
    "transb1": [("smooth", 7, "black", True), ("ties", 16, "mean", True), ("onepixel", 7, "blur", True)],
    "softmax": [("smooth", 16, "blur", True), ("ties", 7, "black", False), ("onepixel", 16, "mean", True)],
    "oddsize": [("smooth", 16, "mean", True), ("ties", 7, "blur", True), ("onepixel", 16, "black", True)],
}

# The network's value of a black pixel under ImageNet mean / std, as float32.
BLACK = [float(np.float32((0.0 - m) / s)) for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]

U64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


# ---------------------------------------------------------------------------
# SplitMix64, seeds, normals
# ---------------------------------------------------------------------------

def _mix(z):
    """SplitMix64's output function on Python ints (mod 2^64)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
    return z ^ (z >> 31)


def splitmix64_first(seed: int) -> int:
    """The first output of SplitMix64 seeded `seed`."""
    return _mix((seed + GAMMA) & U64)


def derive_seed(parts) -> int:
    h = 0x243F6A8885A308D3
    for p in parts:
        h = splitmix64_first((h ^ int(p)) & U64)
    return h


def splitmix64_stream(seed: int, count: int) -> np.ndarray:
    """The first `count` outputs of SplitMix64 seeded `seed`, vectorised (uint64 wraps)."""
    with np.errstate(over="ignore"):
        z = np.arange(1, count + 1, dtype=np.uint64) * np.uint64(GAMMA) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def standard_normals(seed: int, count: int) -> np.ndarray:
    """`count` standard normals: Box-Muller on pairs of SplitMix64 outputs, cos then sin."""
    pairs = (count + 1) // 2
    u = (splitmix64_stream(seed, 2 * pairs) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    u1, u2 = 1.0 - u[0::2], u[1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    t = 2.0 * np.pi * u2
    out = np.empty(2 * pairs)
    out[0::2], out[1::2] = r * np.cos(t), r * np.sin(t)
    return out[:count]


# ---------------------------------------------------------------------------
# Perturbations
# ---------------------------------------------------------------------------

def gaussian_taps() -> np.ndarray:
    d = np.arange(-5, 6, dtype=np.float64)
    k = np.exp(-d * d / 50.0)
    return k / k.sum()


def blur(x: np.ndarray) -> np.ndarray:
    """(C, H, W) float32 -> blurred float32: rows (along W), then columns, edges replicated."""
    k = gaussian_taps()
    a = ndimage.correlate1d(x.astype(np.float64), k, axis=2, mode="nearest")
    a = ndimage.correlate1d(a, k, axis=1, mode="nearest")
    return a.astype(np.float32)


def blur_by_hand(x: np.ndarray) -> np.ndarray:
    """The same blur written out with padding and shifts (a self-check of `blur`)."""
    k = gaussian_taps()
    _, h, w = x.shape
    p = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (5, 5)), mode="edge")
    rows = sum(k[t] * p[:, :, t:t + w] for t in range(11))
    p = np.pad(rows, ((0, 0), (5, 5), (0, 0)), mode="edge")
    return sum(k[t] * p[:, t:t + h, :] for t in range(11)).astype(np.float32)


def order_by(m: np.ndarray) -> np.ndarray:
    """Flat pixel indices by decreasing map value, ties by index, NaN last."""
    key = np.where(np.isnan(m), -np.inf, m.astype(np.float64)).ravel()
    return np.argsort(-key, kind="stable")


def schedule(n: int, steps: int):
    per = max(1, -(-n // max(1, steps)))
    return per, -(-n // per)


def curve_inputs(start: np.ndarray, source: np.ndarray, order: np.ndarray, steps: int):
    """RISE's perturbed inputs: `start` with the first i*per pixels of `order` taken from
    `source`, for i = 0 .. n_steps."""
    c, h, w = start.shape
    per, n_steps = schedule(h * w, steps)
    rank = np.empty(h * w, dtype=np.int64)
    rank[order] = np.arange(h * w)
    step_of = (rank // per).reshape(h, w)  # replaced once more than step_of steps are done
    for i in range(n_steps + 1):
        yield np.where((step_of < i)[None], source, start)


def auc(curve) -> float:
    a = np.asarray(curve, dtype=np.float64)
    if len(a) == 1:
        return float(a[0])
    return float((a.sum() - a[0] / 2 - a[-1] / 2) / (len(a) - 1))


def road_removed(m: np.ndarray, percentile: float, morf: bool) -> np.ndarray:
    """pytorch-grad-cam: binary_mask = mask < np.percentile(mask, p) keeps; the rest goes.
    LeRF does the same on 1 - mask. Everything in float32, as there."""
    mm = m if morf else np.float32(1.0) - m
    threshold = np.percentile(mm, percentile)  # float32 for a float32 map
    return ~(mm < threshold)


def road_removed_f64(m: np.ndarray, percentile: float, morf: bool) -> np.ndarray:
    """The same with the threshold and the comparison in float64 (cambox's wording): used
    only to check that the cases do not depend on the difference."""
    mm = (m if morf else np.float32(1.0) - m).astype(np.float64)
    return mm >= np.percentile(mm, percentile)


# pytorch-grad-cam's neighbors_weights, in its order.
NEIGHBOURS_WEIGHTS = [((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
                      ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6)]


def add_offset_to_indices(indices, offset, mask_shape):
    cord1 = indices % mask_shape[1]
    cord0 = indices // mask_shape[1]
    cord0 = cord0 + offset[0]
    cord1 = cord1 + offset[1]
    invalid = (cord0 < 0) | (cord1 < 0) | (cord0 >= mask_shape[0]) | (cord1 >= mask_shape[1])
    return ~invalid, indices + offset[0] * mask_shape[1] + offset[1]


def setup_sparse_system(mask, img, neighbors_weights):
    """pytorch-grad-cam's NoisyLinearImputer.setup_sparse_system, on numpy arrays.
    mask: (H, W), 1 = kept, 0 = to impute; img: (C, H, W). Returns A (N x N, lil) and b
    (N x C) with A x = b for the N pixels to impute."""
    maskflt = mask.flatten()
    imgflat = img.reshape((img.shape[0], -1))
    indices = np.argwhere(maskflt == 0).flatten()
    coords_to_vidx = np.zeros(len(maskflt), dtype=int)
    coords_to_vidx[indices] = np.arange(len(indices))
    num_equations = len(indices)
    A = lil_matrix((num_equations, num_equations))
    b = np.zeros((num_equations, img.shape[0]))
    sum_neighbors = np.ones(num_equations)
    for offset, weight in neighbors_weights:
        valid, new_coords = add_offset_to_indices(indices, offset, mask.shape)
        valid_coords = new_coords[valid]
        valid_ids = np.argwhere(valid == 1).flatten()
        has_values_coords = valid_coords[maskflt[valid_coords] > 0.5]
        has_values_ids = valid_ids[maskflt[valid_coords] > 0.5]
        b[has_values_ids, :] -= weight * imgflat[:, has_values_coords].T
        has_no_values = valid_coords[maskflt[valid_coords] < 0.5]
        variable_ids = coords_to_vidx[has_no_values]
        has_no_values_ids = valid_ids[maskflt[valid_coords] < 0.5]
        A[has_no_values_ids, variable_ids] = weight
        invalid_ids = np.argwhere(valid == 0).flatten()
        sum_neighbors[invalid_ids] = sum_neighbors[invalid_ids] - weight
    A[np.arange(num_equations), np.arange(num_equations)] = -sum_neighbors
    return A, b


def impute_noiseless(x: np.ndarray, removed: np.ndarray):
    """(indices, solution N x C in float64) of the linear imputation of `removed`."""
    mask = (~removed).astype(np.float32)
    # Float64 image: the right-hand side in float64 (pytorch-grad-cam multiplies float32).
    A, b = setup_sparse_system(mask, x.astype(np.float64), NEIGHBOURS_WEIGHTS)
    idx = np.argwhere(mask.ravel() == 0).ravel()
    sol = spsolve(csc_matrix(A), b)
    return idx, np.asarray(sol, dtype=np.float64).reshape(len(idx), x.shape[0]), A, b


def impute(x: np.ndarray, removed: np.ndarray, noise: float, seed: int):
    """x (C, H, W) float32 with `removed` (H, W) pixels imputed, plus noise; None when every
    pixel is removed (the system is singular: nothing to impute from)."""
    if removed.all():
        return None
    c = x.shape[0]
    idx, sol, _, _ = impute_noiseless(x, removed)
    z = standard_normals(seed, c * len(idx)).reshape(c, len(idx))
    out = x.reshape(c, -1).copy()
    out[:, idx] = (sol.T + noise * z).astype(np.float32)
    return out.reshape(x.shape)


# ---------------------------------------------------------------------------
# Model and figures
# ---------------------------------------------------------------------------

def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class Scorer:
    """The class probabilities of one (C, H, W) float32 input."""

    def __init__(self, path: Path, kind: str, threads: int = 1):
        self.sess = session(path, threads)
        self.name = self.sess.get_inputs()[0].name
        self.kind = kind
        self.calls = 0

    def probs(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        out = self.sess.run(None, {self.name: np.ascontiguousarray(x[None], dtype=np.float32)})[0][0]
        if self.kind == "probabilities":
            return out.astype(np.float64)
        z = out.astype(np.float64)
        e = np.exp(z - z.max())
        return e / e.sum()

    def probs_batch(self, xs: np.ndarray) -> np.ndarray:
        """(B, C, H, W) -> (B, K) (for the benchmark peer)."""
        self.calls += 1
        out = self.sess.run(None, {self.name: np.ascontiguousarray(xs, dtype=np.float32)})[0]
        if self.kind == "probabilities":
            return out.astype(np.float64)
        z = out.astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def filler(x: np.ndarray, fill: str, black) -> np.ndarray:
    c = x.shape[0]
    if fill == "black":
        v = np.asarray(black[:c], dtype=np.float32)
    elif fill == "mean":
        v = x.reshape(c, -1).astype(np.float64).mean(axis=1).astype(np.float32)
    elif fill == "blur":
        return blur(x)
    else:
        raise ValueError(fill)
    return np.broadcast_to(v[:, None, None], x.shape).astype(np.float32)


def deletion_insertion(x, m, k, steps, fill, black, score):
    """(deletion curve, insertion curve) of class k."""
    order = order_by(m)
    blurred = blur(x)
    deletion = [float(score(y)[k]) for y in curve_inputs(x, filler(x, fill, black), order, steps)]
    insertion = [float(score(y)[k]) for y in curve_inputs(blurred, x, order, steps)]
    return deletion, insertion


def measure(x: np.ndarray, m: np.ndarray, case: dict, score) -> dict:
    """Every figure of one case. x (C, H, W) float32, m (H, W) float32 in [0, 1]."""
    k = case["class"]
    deletion, insertion = deletion_insertion(x, m, k, case["steps"], case["fill"], case["black"], score)
    y = deletion[0]

    def road(morf):
        if not case["road"]:
            return []
        out = []
        for p in ROAD_PERCENTILES:
            imputed = impute(x, road_removed(m, p, morf), ROAD_NOISE, derive_seed([case["seed"], p, int(morf)]))
            out.append(None if imputed is None else float(score(imputed)[k]) - y)
        return out

    road_morf, road_lerf = road(True), road(False)
    o = float(score(x * m[None])[k])
    return {
        "probability": y,
        "deletion": deletion,
        "insertion": insertion,
        "deletion_auc": auc(deletion),
        "insertion_auc": auc(insertion),
        "road_morf": road_morf,
        "road_lerf": road_lerf,
        "drop": max(0.0, y - o) / y if y > 0 else 0.0,
        "increase": bool(o > y),
        "_after": o,  # dropped before writing; for the self-checks
    }


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

def minmax(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return ((a - a.min()) / (a.max() - a.min())).astype(np.float32)


def build_cases():
    """[(case dict, x (1, C, H, W) float32, map (H, W) float32)], from the fixed seed."""
    rng = np.random.default_rng(SEED)
    out = []
    for short, (rel, kind) in MODELS.items():
        sess = session(REPO / rel)
        shape = [1 if isinstance(d, str) else d for d in sess.get_inputs()[0].shape]
        _, c, h, w = shape
        scorer = Scorer(REPO / rel, kind)
        for map_kind, steps, fill, road in PLAN[short]:
            x = rng.standard_normal((1, c, h, w)).astype(np.float32)
            if map_kind == "smooth":
                m = minmax(ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma=2.0))
            elif map_kind == "ties":
                m = (np.round(minmax(ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma=2.0)) * 4) / 4)
                m = m.astype(np.float32)
            else:
                m = np.full((h, w), 0.3, dtype=np.float32)
                p = int(rng.integers(h * w))
                # transb1 and oddsize: one pixel above the rest; softmax: one below.
                m.flat[p] = 0.0 if short == "softmax" else 1.0
            probs = scorer.probs(x[0])
            ranked = sorted(range(len(probs)), key=lambda j: (-probs[j], j))
            k = {"smooth": ranked[0], "ties": ranked[1], "onepixel": ranked[-1]}[map_kind]
            case = {
                "id": f"{short}_{map_kind}",
                "model": rel,
                "class": int(k),
                "steps": steps,
                "fill": fill,
                "black": BLACK,
                "seed": int(rng.integers(0, 2**64, dtype=np.uint64)),
                "road": road,
            }
            out.append((case, x, m))
    return out


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def dump(obj: dict) -> str:
    """One key per line at the top two levels, values compact."""
    lines = ["{"]
    items = list(obj.items())
    for i, (key, val) in enumerate(items):
        end = "," if i < len(items) - 1 else ""
        if isinstance(val, dict):
            lines.append(f"  {json.dumps(key)}: {{")
            sub = list(val.items())
            for j, (k2, v2) in enumerate(sub):
                e2 = "," if j < len(sub) - 1 else ""
                lines.append(f"    {json.dumps(k2)}: {json.dumps(v2, allow_nan=False)}{e2}")
            lines.append("  }" + end)
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(val, allow_nan=False)}{end}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dump_cases(cases) -> str:
    body = ",\n".join("  " + json.dumps(c, allow_nan=False) for c in cases)
    return "[\n" + body + "\n]\n"


# ---------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------

class _Scalar:
    """SplitMix64 + Box-Muller one value at a time, as impute.rs's Normals reads."""

    def __init__(self, seed):
        self.state, self.spare = seed, None

    def u64(self):
        self.state = (self.state + GAMMA) & U64
        return _mix(self.state)

    def next(self):
        if self.spare is not None:
            z, self.spare = self.spare, None
            return z
        u1 = 1.0 - (self.u64() >> 11) * 2.0**-53
        u2 = (self.u64() >> 11) * 2.0**-53
        r = np.sqrt(-2.0 * np.log(u1))
        t = 2.0 * np.pi * u2
        self.spare = r * np.sin(t)
        return r * np.cos(t)


def self_checks(built, expected):
    # SplitMix64: the published first outputs for seed 1234567 (Vigna's splitmix64.c).
    assert [int(v) for v in splitmix64_stream(1234567, 3)] == [
        6457827717110365317, 3203168211198807973, 9817491932198370423]
    g = _Scalar(99)
    assert np.array_equal(standard_normals(99, 7), np.array([g.next() for _ in range(7)]))
    z = standard_normals(7, 20000)
    assert abs(z.mean()) < 0.03 and abs(z.var() - 1) < 0.05
    assert derive_seed([]) == 0x243F6A8885A308D3

    # Blur: scipy against the hand-written shifts; constants stay.
    x = np.random.default_rng(3).standard_normal((3, 9, 14)).astype(np.float32)
    assert np.abs(blur(x).astype(np.float64) - blur_by_hand(x)).max() <= 2e-7
    assert np.abs(blur(np.full((2, 3, 4), 0.25, np.float32)) - 0.25).max() < 1e-7

    # Order, schedule, auc by hand (as in perturb.rs's tests, worked out independently).
    assert order_by(np.array([0.1, 0.5, np.nan, 0.5, 0.2], np.float32)).tolist() == [1, 3, 4, 0, 2]
    assert schedule(10, 3) == (4, 3) and schedule(50176, 50) == (1004, 50) and schedule(195, 16) == (13, 15)
    assert auc([1.0, 0.5, 0.0]) == 0.5

    # Imputation: a linear ramp is imputed exactly; the system's solution satisfies
    # pytorch-grad-cam's equations.
    h, w = 6, 7
    ramp = np.array([(p // w) * 2 + p % w for p in range(h * w)], np.float32).reshape(1, h, w)
    rem = np.zeros(h * w, bool)
    rem[[15, 16, 22, 23, 24, 30]] = True
    rem = rem.reshape(h, w)
    spoiled = np.where(rem[None], np.float32(100), ramp)
    assert np.abs(impute(spoiled, rem, 0.0, 1) - ramp).max() < 1e-5
    assert impute(ramp, np.ones((h, w), bool), 0.0, 1) is None

    for case, x4, m in built:
        e = expected[case["id"]]
        x = x4[0]
        n = m.size
        per, n_steps = schedule(n, case["steps"])
        for name in ("deletion", "insertion"):
            assert len(e[name]) == n_steps + 1
        # The last insertion step is x itself; with the blur filler deletion ends where
        # insertion starts.
        assert e["insertion"][-1] == e["probability"]
        if case["fill"] == "blur":
            assert e["deletion"][-1] == e["insertion"][0]
        # Drop / increase far from their edges (so float differences cannot flip them).
        assert abs(e["_after"] - e["probability"]) > 1e-3, case["id"]
        if case["road"]:
            for morf in (True, False):
                vals = e["road_morf" if morf else "road_lerf"]
                assert len(vals) == 9
                for p, v in zip(ROAD_PERCENTILES, vals):
                    r32 = road_removed(m, p, morf)
                    # cambox's float64 threshold would remove the same pixels here.
                    assert np.array_equal(r32, road_removed_f64(m, p, morf)), (case["id"], p, morf)
                    assert (v is None) == bool(r32.all())
                    if v is not None:
                        idx, sol, A, b = impute_noiseless(x, r32)
                        res = np.abs(csc_matrix(A) @ sol - b).max()
                        assert res < 1e-9, (case["id"], p, morf, res)
                        # Each imputed pixel is its in-image neighbours' weighted mean.
                        full = x.reshape(x.shape[0], -1).astype(np.float64).copy()
                        full[:, idx] = sol.T
                        full = full.reshape(x.shape)
                        for q in idx[:5]:
                            yq, xq = divmod(int(q), m.shape[1])
                            num = np.zeros(x.shape[0])
                            den = 0.0
                            for (dy, dx), wt in NEIGHBOURS_WEIGHTS:
                                if 0 <= yq + dy < m.shape[0] and 0 <= xq + dx < m.shape[1]:
                                    num += wt * full[:, yq + dy, xq + dx]
                                    den += wt
                            assert np.abs(num / den - full[:, yq, xq]).max() < 1e-9
        else:
            assert e["road_morf"] == [] and e["road_lerf"] == []


# ---------------------------------------------------------------------------

def generate():
    """(files {relative name: bytes}, built cases, expected)."""
    built = build_cases()
    # Check the output kinds: the softmax model's output is softmax(scores_pre) of its
    # fixture input, and the logits models' outputs do not sum to 1.
    for short, (rel, kind) in MODELS.items():
        stem = REPO / rel[: -len(".onnx")]
        x = np.load(f"{stem}.input.npy")
        out = session(REPO / rel).run(None, {"input": x})[0][0].astype(np.float64)
        if kind == "probabilities":
            z = np.load(f"{stem}.logits.npy").astype(np.float64)
            assert np.abs(np.exp(z) / np.exp(z).sum() - out).max() < 1e-6, short
        else:
            assert abs(out.sum() - 1) > 1e-3, short
    cases_text = dump_cases([c for c, _, _ in built])
    cases = json.loads(cases_text)  # evaluate exactly what the Rust test will read
    expected = {}
    scorers = {}
    for case, (_, x, m) in zip(cases, built):
        rel = case["model"]
        kind = next(k for r, k in MODELS.values() if r == rel)
        scorers.setdefault(rel, Scorer(REPO / rel, kind))
        expected[case["id"]] = measure(x[0], m, case, scorers[rel].probs)
    self_checks(built, expected)
    for e in expected.values():
        del e["_after"]
    files = {"cases.json": cases_text.encode(), "expected.json": dump(expected).encode()}
    for case, x, m in built:
        files[f"x_{case['id']}.npy"] = npy_bytes(x)
        files[f"map_{case['id']}.npy"] = npy_bytes(m)
    return files, built, expected


def _numbers_close(a, b, tol):
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_numbers_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_numbers_close(u, v, tol) for u, v in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tol
    return a == b


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "faithfulness")
    ap.add_argument("--check", action="store_true",
                    help="regenerate in memory and fail if a stored file differs; write nothing")
    args = ap.parse_args(argv)

    files, built, expected = generate()
    if args.check:
        bad = []
        for name, data in files.items():
            p = args.out / name
            if not p.exists():
                bad.append(p)
            elif p.read_bytes() != data:
                if name == "expected.json" and _numbers_close(json.loads(p.read_text()), json.loads(data), 1e-10):
                    print(f"note: {p} differs in the last digits only (within 1e-10)", file=sys.stderr)
                    continue
                bad.append(p)
        for p in bad:
            print(f"differs from the reference: {p}", file=sys.stderr)
        if bad:
            return 1
        print(f"ok: {len(files)} files in {args.out} match the reference")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
    for case, _, _ in built:
        e = expected[case["id"]]
        rm = [v for v in e["road_morf"] if v is not None]
        rl = [v for v in e["road_lerf"] if v is not None]
        print(f"{case['id']:18s} k={case['class']} steps={case['steps']:2d} fill={case['fill']:5s} "
              f"p={e['probability']:.4f} del={e['deletion_auc']:.4f} ins={e['insertion_auc']:.4f} "
              f"morf={len(rm)}/{len(e['road_morf'])} lerf={len(rl)}/{len(e['road_lerf'])} "
              f"drop={e['drop']:.4f} inc={e['increase']}")
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
