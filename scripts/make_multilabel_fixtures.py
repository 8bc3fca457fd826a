#!/usr/bin/env python3
"""Generate the multi-label (sigmoid) ONNX fixtures in tests/fixtures/models/.

A small torch network with seeded random weights (no training):

    input  N x 3 x 32 x 32 (NCHW)
    conv1  Conv 3 -> 16, 3x3, stride 2, pad 1, + ReLU           -> N x 16 x 16 x 16
    conv2  Conv 16 -> 64, 3x3, stride 1, pad 1, + ReLU = F      -> N x 64 x 16 x 16  ("features")
    x.mean(dim=(2, 3))  (ReduceMean axes [2, 3], keepdims 0)    -> N x 64
    fc     Linear(64, 14) (Gemm, transB 1)                       -> N x 14             ("logits")
    Sigmoid (first model only)                                   -> N x 14             ("probs")

exported twice with opset 17 from the same weights:

    multilabel_sigmoid.onnx   with the final Sigmoid, output `probs`
    multilabel_logits.onnx    without it, output `logits` (raw logits, as models trained
                              with BCE-with-logits are exported)

For 3 seeded random inputs (weak uniform noise plus 2-3 coloured Gaussian blobs, in
[0, 1]) it stores, as float32 .npy:

    multilabel.inputs.npy     (3, 3, 32, 32)    inputs[i][None] is the model input of case i
    multilabel.probs.npy      (3, 14)           onnxruntime output of multilabel_sigmoid.onnx
    multilabel.logits.npy     (3, 14)           onnxruntime output of multilabel_logits.onnx
    multilabel.features.npy   (3, 64, 16, 16)   F from onnxruntime (added as an extra graph
                                                output in a temporary copy of the sigmoid model)
    multilabel.maps.npy       (3, 14, 16, 16)   CAM of every class: maps[i, k] = sum_c W[k, c] F[i, c]
                                                (numpy, float64, stored as float32; no bias)
    multilabel.weight.npy     (14, 64)          W, the Linear weight (out x in)
    multilabel.bias.npy       (14,)             b, the Linear bias

and multilabel.json (files, shapes, tensor names, class count) and
multilabel-classes.txt (the 14 CheXNet findings, one per line).

Checks (the script stops unless they hold, 1e-5 abs unless said):
  * F from onnxruntime equals a numpy float64 evaluation of the two convs (make_fixtures.np_conv2d);
  * mean(maps[i, k]) + b[k] equals logits[i, k] (the CAM identity);
  * sigmoid(logits) equals probs, and both ONNX models' F and logits agree exactly;
  * torch's outputs equal onnxruntime's;
  * the graphs are ... Conv Relu ReduceMean(axes [2,3], keepdims 0) Gemm [Sigmoid], opset 17;
  * every class map varies over space, each case has probabilities on both sides of 0.5,
    and no probability is within 0.01 of 0.5 (so "above:0.5" cannot flip with rounding).

Run through scripts/make_multilabel_fixtures.sh, which pins torch / onnx / onnxruntime / numpy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import np_conv2d, with_extra_outputs  # noqa: E402

SEED = 20261129  # first seed tried; the one used is in multilabel.json
OPSET = 17
IR_VERSION = 8
N_CASES = 3
H = W_IN = 32
C_MID = 16
C = 64
TOL = 1e-5
MARGIN = 0.01  # every stored probability is at least this far from 0.5
PREFIX = "multilabel"
# The 14 findings of CheXNet / ChestX-ray14, in the usual order.
CLASSES = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
           "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia")
K = len(CLASSES)
FEATURE = "features"
LOGITS = "logits"
PROBS = "probs"


def make_weights(rng: np.random.Generator) -> dict:
    """Weights from numpy (not torch's init): the same on every torch version."""
    def conv(cout, cin):
        w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))
        # zero-mean filters: the input is non-negative, so a filter's DC part would
        # otherwise switch whole channels on or off (dead ReLU channels)
        w -= w.mean(axis=(1, 2, 3), keepdims=True)
        b = rng.standard_normal(cout) * 0.1 + 0.05
        return w.astype(np.float32), b.astype(np.float32)

    w1, b1 = conv(C_MID, 3)
    w2, b2 = conv(C, C_MID)
    fc_w = (rng.standard_normal((K, C)) * 1.5).astype(np.float32)
    fc_b = (rng.standard_normal(K) * 0.5).astype(np.float32)
    return dict(w1=w1, b1=b1, w2=w2, b2=b2, fc_w=fc_w, fc_b=fc_b)


def make_inputs(rng: np.random.Generator) -> np.ndarray:
    """N_CASES inputs in [0, 1]: weak uniform noise plus 2-3 coloured Gaussian blobs, so that
    the cases differ and the class maps have spatial structure."""
    yy, xx = np.mgrid[0:H, 0:W_IN].astype(np.float64)
    out = np.empty((N_CASES, 3, H, W_IN))
    for i in range(N_CASES):
        img = rng.random((3, H, W_IN)) * 0.25
        for _ in range(int(rng.integers(2, 4))):
            cy, cx = rng.uniform(4, H - 4), rng.uniform(4, W_IN - 4)
            sigma = rng.uniform(2.0, 5.0)
            colour = rng.random(3)
            g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
            img += colour[:, None, None] * g[None]
        out[i] = np.clip(img, 0.0, 1.0)
    return out.astype(np.float32)


def numpy_forward(weights: dict, inputs: np.ndarray):
    """float64 F and logits, by make_fixtures.np_conv2d (independent of torch and onnxruntime)."""
    f64 = lambda k: weights[k].astype(np.float64)  # noqa: E731
    h = np.maximum(np_conv2d(inputs.astype(np.float64), f64("w1"), f64("b1"), 2, 1), 0)
    f = np.maximum(np_conv2d(h, f64("w2"), f64("b2"), 1, 1), 0)
    return f, f.mean(axis=(2, 3)) @ f64("fc_w").T + f64("fc_b")


def pick_seed():
    """The first seed from SEED on whose cases all have probabilities on both sides of 0.5,
    none within 2 * MARGIN of it, and whose cases differ in the set of classes >= 0.5
    (numpy float64); the margin check is repeated on onnxruntime's output."""
    for seed in range(SEED, SEED + 1000):
        rng = np.random.default_rng(seed)
        weights = make_weights(rng)
        inputs = make_inputs(rng)
        _, logits = numpy_forward(weights, inputs)
        p = 1 / (1 + np.exp(-logits))
        sets = {tuple(np.flatnonzero(row >= 0.5)) for row in p}
        if (np.abs(p - 0.5).min() >= 2 * MARGIN and ((p >= 0.5).any(axis=1) & (p < 0.5).any(axis=1)).all()
                and len(sets) == N_CASES):
            return seed, weights, inputs
    raise RuntimeError("no seed found")


def build_torch(weights: dict, sigmoid: bool):
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, C_MID, 3, stride=2, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(C_MID, C, 3, stride=1, padding=1)
            self.relu2 = nn.ReLU()
            self.fc = nn.Linear(C, K)
            self.sigmoid = nn.Sigmoid() if sigmoid else None

        def forward(self, x):
            f = self.relu2(self.conv2(self.relu1(self.conv1(x))))
            y = self.fc(f.mean(dim=(2, 3)))
            return self.sigmoid(y) if self.sigmoid is not None else y

    net = Net().eval()
    with torch.no_grad():
        net.conv1.weight.copy_(torch.from_numpy(weights["w1"]))
        net.conv1.bias.copy_(torch.from_numpy(weights["b1"]))
        net.conv2.weight.copy_(torch.from_numpy(weights["w2"]))
        net.conv2.bias.copy_(torch.from_numpy(weights["b2"]))
        net.fc.weight.copy_(torch.from_numpy(weights["fc_w"]))
        net.fc.bias.copy_(torch.from_numpy(weights["fc_b"]))
    return net


def rename_tensor(model, old: str, new: str):
    for node in model.graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for vi in list(model.graph.output) + list(model.graph.value_info):
        if vi.name == old:
            vi.name = new


def export(net, path: Path, sigmoid: bool):
    import onnx
    import torch

    out_name = PROBS if sigmoid else LOGITS
    with torch.no_grad():
        torch.onnx.export(net, torch.zeros(1, 3, H, W_IN), str(path), opset_version=OPSET, dynamo=False,
                          input_names=["input"], output_names=[out_name],
                          dynamic_axes={"input": {0: "N"}, out_name: {0: "N"}})
    m = onnx.load(str(path))
    ops = [n.op_type for n in m.graph.node]
    want = ["Conv", "Relu", "Conv", "Relu", "ReduceMean", "Gemm"] + (["Sigmoid"] if sigmoid else [])
    assert ops == want, ops
    relu2, rmean, gemm = m.graph.node[3], m.graph.node[4], m.graph.node[5]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in rmean.attribute}
    assert list(attrs["axes"]) == [2, 3] and attrs.get("keepdims", 1) == 0, attrs
    gattrs = {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}
    assert gattrs.get("transB", 0) == 1 and gattrs.get("alpha", 1.0) == 1.0 and gattrs.get("beta", 1.0) == 1.0
    # findable names: the feature map is `features`; in the sigmoid model the Gemm
    # output (the logits before the Sigmoid) is `logits`
    rename_tensor(m, relu2.output[0], FEATURE)
    if sigmoid:
        rename_tensor(m, gemm.output[0], LOGITS)
    names = ["conv1", "relu1", "conv2", "relu2", "mean", "fc"] + (["sigmoid"] if sigmoid else [])
    for node, name in zip(m.graph.node, names):
        node.name = name
    m.ir_version = IR_VERSION
    m.producer_name = "cambox-make-multilabel-fixtures"
    m.producer_version = "1"
    m.doc_string = ""
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(path))
    return m


def ort_session(model, ort):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "models")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import onnx
    import onnxruntime as ort
    import torch

    torch.set_num_threads(1)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    seed, weights, inputs = pick_seed()

    models = {}
    for sigmoid in (True, False):
        name = f"{PREFIX}_{'sigmoid' if sigmoid else 'logits'}"
        net = build_torch(weights, sigmoid)
        models[sigmoid] = (name, export(net, out / f"{name}.onnx", sigmoid), net)

    # onnxruntime on the committed models; F (and the logits tensor) from temporary copies
    _, m_sig, net_sig = models[True]
    _, m_log, net_log = models[False]
    probs = np.zeros((N_CASES, K), np.float32)
    logits = np.zeros((N_CASES, K), np.float32)
    feats = np.zeros((N_CASES, C, H // 2, W_IN // 2), np.float32)
    s_sig, s_log = ort_session(m_sig, ort), ort_session(m_log, ort)
    s_sig_x = ort_session(with_extra_outputs(m_sig, [FEATURE, LOGITS]), ort)
    s_log_x = ort_session(with_extra_outputs(m_log, [FEATURE]), ort)
    checks = {}
    for i in range(N_CASES):
        x = inputs[i:i + 1]
        (probs[i],) = s_sig.run([PROBS], {"input": x})[0]
        (logits[i],) = s_log.run([LOGITS], {"input": x})[0]
        p2, l2, f2 = s_sig_x.run([PROBS, LOGITS, FEATURE], {"input": x})
        l3, f3 = s_log_x.run([LOGITS, FEATURE], {"input": x})
        feats[i] = f2[0]
        checks.setdefault("sigmoid_model_extra_outputs_vs_plain", 0.0)
        checks["sigmoid_model_extra_outputs_vs_plain"] = max(checks["sigmoid_model_extra_outputs_vs_plain"],
                                                            float(np.abs(p2[0] - probs[i]).max()))
        checks.setdefault("features_sigmoid_vs_logits_model", 0.0)
        checks["features_sigmoid_vs_logits_model"] = max(checks["features_sigmoid_vs_logits_model"],
                                                         float(np.abs(f2[0] - f3[0]).max()))
        checks.setdefault("logits_sigmoid_vs_logits_model", 0.0)
        checks["logits_sigmoid_vs_logits_model"] = max(checks["logits_sigmoid_vs_logits_model"],
                                                       float(np.abs(l2[0] - logits[i]).max()),
                                                       float(np.abs(l3[0] - logits[i]).max()))

    W = weights["fc_w"].astype(np.float64)
    b = weights["fc_b"].astype(np.float64)
    maps64 = np.einsum("kc,ichw->ikhw", W, feats.astype(np.float64))
    maps = maps64.astype(np.float32)

    # numpy float64 F, independent of onnxruntime
    f_np, _ = numpy_forward(weights, inputs)
    checks["features_numpy_vs_ort"] = float(np.abs(f_np - feats).max())
    checks["mean_maps_plus_bias_vs_logits"] = float(np.abs(maps64.mean(axis=(2, 3)) + b - logits).max())
    checks["sigmoid_logits_vs_probs"] = float(np.abs(1 / (1 + np.exp(-logits.astype(np.float64))) - probs).max())
    with torch.no_grad():
        tx = torch.from_numpy(inputs)
        checks["torch_vs_ort_probs"] = float(np.abs(net_sig(tx).numpy() - probs).max())
        checks["torch_vs_ort_logits"] = float(np.abs(net_log(tx).numpy() - logits).max())
    for k, v in checks.items():
        limit = 0.0 if k in ("features_sigmoid_vs_logits_model", "logits_sigmoid_vs_logits_model",
                             "sigmoid_model_extra_outputs_vs_plain") else TOL
        assert v <= limit, (k, v)
    assert (maps.reshape(N_CASES, K, -1).std(axis=2) > 1e-3).all(), "degenerate class map"
    assert (feats.reshape(N_CASES, C, -1).max(axis=2) > 0).all(axis=0).sum() >= C - 4, "dead feature channels"
    for i in range(N_CASES):
        assert (probs[i] >= 0.5).any() and (probs[i] < 0.5).any(), (i, probs[i])
    # no probability near 0.5, so that "above:0.5" cannot flip with float rounding
    assert np.abs(probs - 0.5).min() >= MARGIN, np.abs(probs - 0.5).min()

    files = {
        "inputs": (f"{PREFIX}.inputs.npy", inputs),
        "probs": (f"{PREFIX}.probs.npy", probs),
        "logits": (f"{PREFIX}.logits.npy", logits),
        "features": (f"{PREFIX}.features.npy", feats),
        "maps": (f"{PREFIX}.maps.npy", maps),
        "weight": (f"{PREFIX}.weight.npy", weights["fc_w"]),
        "bias": (f"{PREFIX}.bias.npy", weights["fc_b"]),
    }
    for fname, arr in files.values():
        np.save(out / fname, np.ascontiguousarray(arr, dtype=np.float32))
    (out / f"{PREFIX}-classes.txt").write_text("".join(c + "\n" for c in CLASSES))

    meta = {
        "note": "Multi-label (sigmoid) fixtures: the same random weights exported with and without a final "
                "Sigmoid. Written by scripts/make_multilabel_fixtures.py; see tests/fixtures/models/README.md.",
        "seed": seed,
        "opset": OPSET,
        "ir_version": IR_VERSION,
        "num_classes": K,
        "classes_file": f"{PREFIX}-classes.txt",
        "input_name": "input",
        "input_shape": ["N", 3, H, W_IN],
        "input_layout": "nchw",
        "feature_name": FEATURE,
        "feature_shape": [C, H // 2, W_IN // 2],
        "feature_layout": "nchw",
        "pooling_op": "ReduceMean",
        "pooling": {"axes": [2, 3], "keepdims": 0},
        "head": "linear",
        "head_ops": {"multilabel_sigmoid.onnx": ["ReduceMean", "Gemm", "Sigmoid"],
                     "multilabel_logits.onnx": ["ReduceMean", "Gemm"]},
        "models": {
            "sigmoid": {"file": "multilabel_sigmoid.onnx", "output_name": PROBS, "activation": "sigmoid",
                        "logits_tensor": LOGITS},
            "logits": {"file": "multilabel_logits.onnx", "output_name": LOGITS, "activation": "none",
                       "logits_tensor": LOGITS},
        },
        "cases": N_CASES,
        "files": {k: {"file": f, "shape": list(a.shape), "dtype": "float32"} for k, (f, a) in files.items()},
        "definitions": {
            "inputs": "in [0, 1]: uniform noise x 0.25 plus 2-3 coloured Gaussian blobs, clipped; inputs[i][None] "
                      "(1 x 3 x 32 x 32) is the model input of case i",
            "probs": "onnxruntime output of multilabel_sigmoid.onnx, case i",
            "logits": "onnxruntime output of multilabel_logits.onnx, case i (= the tensor 'logits' of the "
                      "sigmoid model)",
            "features": "F = the tensor 'features' (input of ReduceMean) from onnxruntime, batch dropped",
            "maps": "maps[i, k, y, x] = sum_c weight[k, c] * features[i, c, y, x] (float64, stored as float32, "
                    "no bias); mean(maps[i, k]) + bias[k] = logits[i, k]",
            "weight": "Gemm B = the Linear weight, K x C (transB = 1, alpha = beta = 1)",
            "bias": "Gemm C = the Linear bias",
        },
        "checks_max_abs": checks,
        "above_0.5": [[k for k in range(K) if probs[i, k] >= 0.5] for i in range(N_CASES)],
        "versions": {"numpy": np.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                     "torch": torch.__version__},
    }
    (out / f"{PREFIX}.json").write_text(json.dumps(meta, indent=2) + "\n")

    for i in range(N_CASES):
        print(f"case {i}: probs >= 0.5 for classes {meta['above_0.5'][i]}; "
              f"probs {' '.join(f'{p:.3f}' for p in probs[i])}")
    print("checks (max abs): " + ", ".join(f"{k} {v:.1e}" for k, v in checks.items()))
    sizes = {p.name: p.stat().st_size for p in sorted(out.glob(f"{PREFIX}*"))}
    print("files: " + ", ".join(f"{n} {s} B" for n, s in sizes.items()) + f"; total {sum(sizes.values())} B")
    print(f"numpy {np.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, "
          f"torch {torch.__version__}; written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
