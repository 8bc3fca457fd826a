#!/usr/bin/env python3
"""Generate tiny ONNX classifier fixtures for cambox's tests.

Every fixture is a small random CNN whose head sits after a global pooling of a
feature map F.  For each fixture this writes, in the output directory:

  <name>.onnx           the model (opset 13, ir_version 8, one input `input`)
  <name>.input.npy      float32 model input, batch 1
  <name>.features.npy   float32 F as it appears in the graph (batch 1)
  <name>.logits.npy     float32 (K,) pre-softmax logits (see README)
  <name>.maps.npy       float32 (K, h, w) exact class maps (linear/identity heads)
  <name>.json           head description (kind, feature tensor, effective W, b)

plus gap_gemm_transb1.resized.{input,features,logits}.npy: that model at input
20x24 (H x W) instead of its declared 16x16 (see process_resized), and checks
that size_pinned_reshape and avgpool_full_gemm cannot run at 20x24.

All expected values are computed by a small numpy interpreter of the ONNX ops
used (Conv, Relu, pooling, Gemm, ...) written in this file, in float64 from the
float32 weights and input.  They are then cross-checked against onnxruntime.

Run through scripts/make_fixtures.sh, which pins numpy/onnx/onnxruntime.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8  # explicit: works with onnxruntime and tract, independent of onnx's default
BASE_SEED = 20240611
K = 4  # classes
C = 6  # feature channels
TOL = 1e-5


# --------------------------------------------------------------------------
# numpy reference implementation of the ops used
# --------------------------------------------------------------------------


def np_conv2d(x, w, b, stride, pad):
    """NCHW conv, square stride, symmetric pad, dilation 1, group 1."""
    n, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    assert c == c2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, oh, ow), dtype=np.float64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, :, ky : ky + stride * (oh - 1) + 1 : stride, kx : kx + stride * (ow - 1) + 1 : stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx])
    if b is not None:
        out += b[None, :, None, None]
    return out


def np_avgpool_valid(x, kernel):
    """AveragePool, strides 1, no padding (only the full-size kernel is used here)."""
    n, c, h, w = x.shape
    kh, kw = kernel
    oh, ow = h - kh + 1, w - kw + 1
    out = np.zeros((n, c, oh, ow), dtype=np.float64)
    for y in range(oh):
        for xx in range(ow):
            out[:, :, y, xx] = x[:, :, y : y + kh, xx : xx + kw].mean(axis=(2, 3))
    return out


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def attrs_of(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def run_numpy(model: onnx.ModelProto, feeds: dict) -> dict:
    """Evaluate the graph with the numpy ops above (float64). Returns all tensors."""
    env = {k: np.asarray(v, dtype=np.float64) for k, v in feeds.items()}
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        env[init.name] = arr.astype(np.float64) if arr.dtype.kind == "f" else arr
    for node in model.graph.node:
        a = attrs_of(node)
        ins = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Conv":
            assert a.get("group", 1) == 1 and set(a.get("dilations", [1, 1])) == {1}
            strides = a.get("strides", [1, 1])
            pads = a.get("pads", [0, 0, 0, 0])
            assert len(set(strides)) == 1 and len(set(pads)) == 1
            y = np_conv2d(ins[0], ins[1], ins[2] if len(ins) > 2 else None, strides[0], pads[0])
        elif op == "Relu":
            y = np.maximum(ins[0], 0.0)
        elif op == "GlobalAveragePool":
            y = ins[0].mean(axis=(2, 3), keepdims=True)
        elif op == "AveragePool":
            assert a.get("strides", [1, 1]) == [1, 1] and a.get("pads", [0, 0, 0, 0]) == [0, 0, 0, 0]
            y = np_avgpool_valid(ins[0], a["kernel_shape"])
        elif op == "ReduceMean":
            y = ins[0].mean(axis=tuple(a["axes"]), keepdims=bool(a.get("keepdims", 1)))
        elif op == "Flatten":
            ax = a.get("axis", 1)
            y = ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        elif op == "Reshape":
            shape = [int(s) for s in ins[1]]
            shape = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            y = ins[0].reshape(shape)
        elif op == "Transpose":
            y = ins[0].transpose(a["perm"])
        elif op == "Dropout":
            y = ins[0]  # inference: identity
        elif op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.T
            if a.get("transB", 0):
                B = B.T
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * ins[2]
        elif op == "MatMul":
            y = ins[0] @ ins[1]
        elif op == "Add":
            y = ins[0] + ins[1]
        elif op == "Softmax":
            y = np_softmax(ins[0], a.get("axis", -1))
        else:
            raise NotImplementedError(op)
        env[node.output[0]] = y
    return env


# --------------------------------------------------------------------------
# graph building helpers
# --------------------------------------------------------------------------


@dataclass
class Builder:
    name: str
    rng: np.random.Generator
    nodes: list = field(default_factory=list)
    inits: list = field(default_factory=list)
    arrays: dict = field(default_factory=dict)

    def init(self, name, arr):
        arr = np.array(arr, order="C")  # keeps 0-d scalars 0-d (ascontiguousarray would not)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        self.arrays[name] = arr
        self.inits.append(numpy_helper.from_array(arr, name=name))
        return name

    def node(self, op, name, inputs, outputs, **attrs):
        self.nodes.append(helper.make_node(op, inputs, outputs, name=name, **attrs))
        return outputs[0]

    def conv_relu(self, idx, x, cin, cout, k, stride, pad, out_name, bias_shift=0.0):
        fan_in = cin * k * k
        w = self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / fan_in)
        # zero-mean filters: the input is non-negative, so a filter's DC part would
        # otherwise switch whole channels on or off (dead Relu channels)
        w -= w.mean(axis=(1, 2, 3), keepdims=True)
        b = self.rng.standard_normal(cout) * 0.1 + 0.05 + bias_shift
        wn = self.init(f"conv{idx}.weight", w)
        bn = self.init(f"conv{idx}.bias", b)
        c = self.node("Conv", f"conv{idx}", [x, wn, bn], [f"conv{idx}_out"],
                      kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
        return self.node("Relu", f"relu{idx}", [c], [out_name])

    def dense(self, cin, cout, scale=1.0):
        w = self.rng.standard_normal((cout, cin)) * scale  # (out, in)
        b = self.rng.standard_normal(cout) * 0.5
        return w, b

    def model(self, in_shape, out_name, out_shape, doc):
        graph = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
            initializer=self.inits,
        )
        graph.doc_string = doc
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cambox-make-fixtures", producer_version="1")
        m.ir_version = IR_VERSION
        onnx.checker.check_model(m, full_check=True)
        return m


@dataclass
class Fixture:
    name: str
    model: onnx.ModelProto
    x: np.ndarray
    meta: dict
    logits_tensor: str  # graph tensor whose value is <name>.logits.npy
    output_name: str


def seed_for(name):
    return BASE_SEED + zlib.crc32(name.encode())


def nchw_backbone(b: Builder, two_convs: bool):
    f = b.conv_relu(1, "input", 3, C, 3, 2, 1, "conv1_act" if two_convs else "features")
    if two_convs:
        f = b.conv_relu(2, f, C, C, 3, 1, 1, "features")
    return f


def gap_flatten(b: Builder, f):
    p = b.node("GlobalAveragePool", "gap", [f], ["pooled"])
    return b.node("Flatten", "flatten", [p], ["flat"], axis=1)


def base_meta(head, pooling, note, feature_layout="nchw", input_layout="nchw",
              feature_name="features", weight=None, bias=None, other_op=None, other_node=None):
    return {
        "head": head,
        "feature_name": feature_name,
        "feature_layout": feature_layout,
        "input_layout": input_layout,
        "pooling_op": pooling,
        "weight": None if weight is None else np.asarray(weight, dtype=np.float64),
        "bias": None if bias is None else np.asarray(bias, dtype=np.float64),
        "num_classes": K,
        "other_op": other_op,
        "other_node": other_node,
        "note": note,
    }


N_NCHW = lambda h, w: ["N", 3, h, w]  # noqa: E731


def fx_gap_gemm(name, transb, alpha, beta, two_convs=True, hw=(16, 16), softmax=False,
                dropout=False, note=""):
    rng = np.random.default_rng(seed_for(name))
    b = Builder(name, rng)
    f = nchw_backbone(b, two_convs)
    g = gap_flatten(b, f)
    if dropout:
        ratio = b.init("dropout.ratio", np.array(0.3, dtype=np.float32))
        g = b.node("Dropout", "dropout", [g, ratio], ["dropped"])
    w, bias = b.dense(C, K)
    wn = b.init("fc.weight", w if transb else w.T)
    bn = b.init("fc.bias", bias)
    out_gemm = "scores_pre" if softmax else "logits"
    b.node("Gemm", "fc", [g, wn, bn], [out_gemm], alpha=alpha, beta=beta, transB=transb)
    out = out_gemm
    if softmax:
        out = b.node("Softmax", "softmax", [out_gemm], ["probs"], axis=1)
    w32 = b.arrays["fc.weight"].astype(np.float64)
    weff = alpha * (w32 if transb else w32.T)
    beff = beta * b.arrays["fc.bias"].astype(np.float64)
    m = b.model(N_NCHW(*hw), out, ["N", K], note)
    x = rng.random((1, 3, *hw), dtype=np.float64).astype(np.float32)
    return Fixture(name, m, x, base_meta("linear", "GlobalAveragePool", note, weight=weff, bias=beff),
                   out_gemm, out)


def fx_reducemean(name, keepdims, note):
    rng = np.random.default_rng(seed_for(name))
    b = Builder(name, rng)
    f = nchw_backbone(b, False)
    g = b.node("ReduceMean", "reduce_mean", [f], ["pooled"], axes=[2, 3], keepdims=keepdims)
    if keepdims:
        shp = b.init("reshape.shape", np.array([-1, C], dtype=np.int64))
        g = b.node("Reshape", "reshape", [g, shp], ["flat"])
    w, bias = b.dense(C, K)
    wn = b.init("fc.weight_t", w.T)  # (C, K)
    bn = b.init("fc.bias", bias)
    mm = b.node("MatMul", "fc_matmul", [g, wn], ["fc_mm"])
    b.node("Add", "fc_add", [mm, bn], ["logits"])
    weff = b.arrays["fc.weight_t"].astype(np.float64).T
    beff = b.arrays["fc.bias"].astype(np.float64)
    m = b.model(N_NCHW(16, 16), "logits", ["N", K], note)
    x = rng.random((1, 3, 16, 16), dtype=np.float64).astype(np.float32)
    return Fixture(name, m, x, base_meta("linear", "ReduceMean", note, weight=weff, bias=beff),
                   "logits", "logits")


def fx_avgpool_full(name, note):
    rng = np.random.default_rng(seed_for(name))
    b = Builder(name, rng)
    f = nchw_backbone(b, False)
    p = b.node("AveragePool", "avgpool", [f], ["pooled"], kernel_shape=[8, 8])
    g = b.node("Flatten", "flatten", [p], ["flat"], axis=1)
    w, bias = b.dense(C, K)
    wn = b.init("fc.weight", w)
    bn = b.init("fc.bias", bias)
    b.node("Gemm", "fc", [g, wn, bn], ["logits"], transB=1)
    m = b.model(N_NCHW(16, 16), "logits", ["N", K], note)
    x = rng.random((1, 3, 16, 16), dtype=np.float64).astype(np.float32)
    meta = base_meta("linear", "AveragePool", note, weight=b.arrays["fc.weight"], bias=b.arrays["fc.bias"])
    return Fixture(name, m, x, meta, "logits", "logits")


def fx_nhwc(name, note):
    rng = np.random.default_rng(seed_for(name))
    b = Builder(name, rng)
    t = b.node("Transpose", "to_nchw", ["input"], ["input_nchw"], perm=[0, 3, 1, 2])
    a = b.conv_relu(1, t, 3, C, 3, 2, 1, "conv1_act")
    f = b.node("Transpose", "to_nhwc", [a], ["features"], perm=[0, 2, 3, 1])
    g = b.node("ReduceMean", "reduce_mean", [f], ["pooled"], axes=[1, 2], keepdims=0)
    w, bias = b.dense(C, K)
    wn = b.init("fc.weight_t", w.T)
    bn = b.init("fc.bias", bias)
    mm = b.node("MatMul", "fc_matmul", [g, wn], ["fc_mm"])
    b.node("Add", "fc_add", [mm, bn], ["logits"])
    m = b.model(["N", 16, 16, 3], "logits", ["N", K], note)
    x = rng.random((1, 16, 16, 3), dtype=np.float64).astype(np.float32)
    meta = base_meta("linear", "ReduceMean", note, feature_layout="nhwc", input_layout="nhwc",
                     weight=b.arrays["fc.weight_t"].astype(np.float64).T, bias=b.arrays["fc.bias"])
    return Fixture(name, m, x, meta, "logits", "logits")


def fx_identity(name, note):
    rng = np.random.default_rng(seed_for(name))
    b = Builder(name, rng)
    a = b.conv_relu(1, "input", 3, C, 3, 2, 1, "conv1_act")
    # 1x1 conv to K channels; positive bias shift so no class map is all zero after Relu
    f = b.conv_relu(2, a, C, K, 1, 1, 0, "features", bias_shift=0.3)
    gap_flatten(b, f)
    b.nodes[-1].output[0] = "logits"
    m = b.model(N_NCHW(16, 16), "logits", ["N", K], note)
    x = rng.random((1, 3, 16, 16), dtype=np.float64).astype(np.float32)
    meta = base_meta("identity", "GlobalAveragePool", note, weight=np.eye(K), bias=np.zeros(K))
    return Fixture(name, m, x, meta, "logits", "logits")


def fx_mlp(name, note):
    rng = np.random.default_rng(seed_for(name))
    b = Builder(name, rng)
    f = nchw_backbone(b, False)
    g = gap_flatten(b, f)
    w1, b1 = b.dense(C, 5)
    w2, b2 = b.dense(5, K)
    h = b.node("Gemm", "fc1", [g, b.init("fc1.weight", w1), b.init("fc1.bias", b1)], ["fc1_out"], transB=1)
    h = b.node("Relu", "fc1_relu", [h], ["fc1_act"])
    b.node("Gemm", "fc2", [h, b.init("fc2.weight", w2), b.init("fc2.bias", b2)], ["logits"], transB=1)
    m = b.model(N_NCHW(16, 16), "logits", ["N", K], note)
    x = rng.random((1, 3, 16, 16), dtype=np.float64).astype(np.float32)
    meta = base_meta("other", "GlobalAveragePool", note, other_op="Relu", other_node="fc1_relu")
    return Fixture(name, m, x, meta, "logits", "logits")


def fx_no_pooling(name, note):
    rng = np.random.default_rng(seed_for(name))
    b = Builder(name, rng)
    f = nchw_backbone(b, False)
    g = b.node("Flatten", "flatten", [f], ["flat"], axis=1)
    w, bias = b.dense(C * 8 * 8, K, scale=1.0 / np.sqrt(C * 8 * 8))
    b.node("Gemm", "fc", [g, b.init("fc.weight", w), b.init("fc.bias", bias)], ["logits"], transB=1)
    m = b.model(N_NCHW(16, 16), "logits", ["N", K], note)
    x = rng.random((1, 3, 16, 16), dtype=np.float64).astype(np.float32)
    meta = base_meta("none", None, note)
    return Fixture(name, m, x, meta, "logits", "logits")


PINNED_NAME = "size_pinned_reshape"
PINNED_NODE = "pin_reshape"


def fx_size_pinned_reshape(name, note):
    """Static 1x3x16x16 model whose spatial path holds Reshape(x, [1, C, 8, 8]):
    the identity at 16x16, but it ties the graph to that input size (and batch 1)."""
    rng = np.random.default_rng(seed_for(name))
    b = Builder(name, rng)
    a = b.conv_relu(1, "input", 3, C, 3, 2, 1, "conv1_act")
    shp = b.init(f"{PINNED_NODE}.shape", np.array([1, C, 8, 8], dtype=np.int64))
    f = b.node("Reshape", PINNED_NODE, [a, shp], ["features"])
    g = gap_flatten(b, f)
    w, bias = b.dense(C, K)
    wn = b.init("fc.weight", w)
    bn = b.init("fc.bias", bias)
    b.node("Gemm", "fc", [g, wn, bn], ["logits"], transB=1)
    m = b.model([1, 3, 16, 16], "logits", [1, K], note)
    x = rng.random((1, 3, 16, 16), dtype=np.float64).astype(np.float32)
    meta = base_meta("linear", "GlobalAveragePool", note, weight=b.arrays["fc.weight"], bias=b.arrays["fc.bias"])
    meta["pinned_by"] = {"node": PINNED_NODE, "op": "Reshape", "shape_initializer": f"{PINNED_NODE}.shape",
                         "shape": [1, C, 8, 8]}
    return Fixture(name, m, x, meta, "logits", "logits")


def all_fixtures():
    return [
        fx_gap_gemm("gap_gemm_transb1", 1, 0.5, 2.0,
                    note="Conv+Relu x2 -> GlobalAveragePool -> Flatten -> Gemm(transB=1, alpha=0.5, beta=2). "
                         "weight = alpha*B, bias = beta*C."),
        fx_gap_gemm("gap_gemm_transb0", 0, 1.0, 1.0,
                    note="Conv+Relu x2 -> GlobalAveragePool -> Flatten -> Gemm(transB=0, B stored CxK). "
                         "weight = B^T."),
        fx_reducemean("reducemean_matmul_add", 0,
                      note="Conv+Relu -> ReduceMean(axes=[2,3], keepdims=0) -> MatMul(CxK) -> Add(bias)."),
        fx_reducemean("reducemean_keepdims_matmul_add", 1,
                      note="Conv+Relu -> ReduceMean(axes=[2,3], keepdims=1) -> Reshape([-1,C]) -> MatMul(CxK) -> Add."),
        fx_gap_gemm("gap_flatten_dropout_gemm", 1, 1.0, 1.0, two_convs=False, dropout=True,
                    note="Conv+Relu -> GlobalAveragePool -> Flatten -> Dropout(ratio=0.3 input, inference) -> Gemm(transB=1)."),
        fx_avgpool_full("avgpool_full_gemm",
                        note="Conv+Relu -> AveragePool(kernel_shape=[8,8] = full F) -> Flatten -> Gemm(transB=1)."),
        fx_nhwc("nhwc_reducemean_matmul",
                note="NHWC input -> Transpose(0,3,1,2) -> Conv+Relu -> Transpose(0,2,3,1) = features (N,8,8,C) "
                     "-> ReduceMean(axes=[1,2], keepdims=0) -> MatMul(CxK) -> Add."),
        fx_identity("identity_head",
                    note="SqueezeNet style: Conv+Relu -> 1x1 Conv to K channels + Relu = features -> "
                         "GlobalAveragePool -> Flatten = logits. maps = features."),
        fx_mlp("mlp_head",
               note="Conv+Relu -> GlobalAveragePool -> Flatten -> Gemm(C->5) -> Relu -> Gemm(5->K). "
                    "Non-linear head: no exact linear CAM; first offending op is Relu (node fc1_relu)."),
        fx_no_pooling("no_pooling",
                      note="Conv+Relu -> Flatten -> Gemm. No global pooling: a CAM tool must refuse. "
                           "features.npy holds the last Relu output (tensor 'features') for reference only."),
        fx_gap_gemm("gap_gemm_softmax", 1, 0.5, 2.0, softmax=True,
                    note="As gap_gemm_transb1 but the Gemm output is 'scores_pre' followed by Softmax(axis=1); "
                         "the model output 'probs' is probabilities. logits.npy = scores_pre."),
        fx_gap_gemm("odd_size_gemm", 1, 0.5, 2.0, hw=(15, 13),
                    note="As gap_gemm_transb1 with a 1x3x15x13 input: feature maps are 8x7."),
        fx_size_pinned_reshape(PINNED_NAME,
                               note="Static input 1x3x16x16. Conv+Relu (conv1_act) -> Reshape 'pin_reshape' to the "
                                    "constant shape [1,6,8,8] (initializer 'pin_reshape.shape'; the identity at 16x16) "
                                    "= features -> GlobalAveragePool -> Flatten -> Gemm(transB=1). The Reshape pins "
                                    "the input size: the graph cannot run at any other size (or batch)."),
    ]


# --------------------------------------------------------------------------
# writing and checking
# --------------------------------------------------------------------------


def with_extra_outputs(model, names):
    m = copy.deepcopy(model)
    for n in names:
        if n not in [o.name for o in m.graph.output]:
            m.graph.output.append(helper.make_empty_tensor_value_info(n))
    return m


def to_jsonable(meta):
    out = {}
    for k, v in meta.items():
        if isinstance(v, np.ndarray):
            v = v.astype(np.float32).astype(np.float64).tolist()  # values as stored in float32
        out[k] = v
    return out


def dump_json(obj):
    """Pretty JSON with one matrix row per line (stable, diff-friendly)."""
    lines = []
    for i, (k, v) in enumerate(obj.items()):
        if isinstance(v, list) and v and isinstance(v[0], list):
            rows = ",\n".join("    " + json.dumps(r) for r in v)
            val = "[\n" + rows + "\n  ]"
        else:
            val = json.dumps(v)
        lines.append(f"  {json.dumps(k)}: {val}" + ("," if i < len(obj) - 1 else ""))
    text = "{\n" + "\n".join(lines) + "\n}\n"
    assert json.loads(text) == obj
    return text


def process(fx: Fixture, outdir: Path, ort):
    ref = run_numpy(fx.model, {"input": fx.x})
    feats = ref["features"][0]  # drop batch
    logits = ref[fx.logits_tensor][0]
    model_out = ref[fx.output_name][0]
    meta = dict(fx.meta)
    meta["output_name"] = fx.output_name
    meta["logits_tensor"] = fx.logits_tensor
    meta["feature_shape"] = list(feats.shape)  # without batch

    # non-degenerate fixture: every feature channel varies over space (no dead channel)
    fchan = feats if meta["feature_layout"] == "nchw" else feats.transpose(2, 0, 1)
    assert (fchan.reshape(fchan.shape[0], -1).std(axis=1) > 1e-3).all(), (fx.name, "dead feature channel")

    maps = None
    if meta["head"] == "linear":
        fchw = feats if meta["feature_layout"] == "nchw" else feats.transpose(2, 0, 1)
        maps = np.einsum("kc,chw->khw", meta["weight"].astype(np.float32).astype(np.float64), fchw)
    elif meta["head"] == "identity":
        maps = feats.copy()

    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    files = {
        "input": f32(fx.x),
        "features": f32(ref["features"]),  # with batch 1, as in the graph
        "logits": f32(logits),
    }
    if maps is not None:
        files["maps"] = f32(maps)

    onnx.save_model(fx.model, outdir / f"{fx.name}.onnx")
    for suffix, arr in files.items():
        np.save(outdir / f"{fx.name}.{suffix}.npy", arr, allow_pickle=False)
    with open(outdir / f"{fx.name}.json", "w") as fh:
        fh.write(dump_json(to_jsonable(meta)))

    # ---- checks -----------------------------------------------------------
    # reload what was written so the checks cover the files themselves
    model = onnx.load(outdir / f"{fx.name}.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == IR_VERSION and model.opset_import[0].version == OPSET
    assert [i.name for i in model.graph.input] == ["input"]
    assert len(model.graph.output) == 1
    assert all(n.name for n in model.graph.node), "every node must be named"
    x = np.load(outdir / f"{fx.name}.input.npy")
    logits_f = np.load(outdir / f"{fx.name}.logits.npy")
    feats_f = np.load(outdir / f"{fx.name}.features.npy")
    assert logits_f.shape == (K,)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    (ort_out,) = sess.run(None, {"input": x})
    err_out = float(np.abs(ort_out[0] - model_out).max())
    assert err_out <= TOL, (fx.name, "model output", err_out)

    extra = with_extra_outputs(model, ["features", fx.logits_tensor])
    sess2 = ort.InferenceSession(extra.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess2.get_outputs()]
    res = dict(zip(names, sess2.run(None, {"input": x})))
    err_logits = float(np.abs(res[fx.logits_tensor][0] - logits_f).max())
    err_feat = float(np.abs(res["features"] - feats_f).max())
    assert err_logits <= TOL, (fx.name, "logits", err_logits)
    assert err_feat <= TOL, (fx.name, "features", err_feat)
    assert res["features"].shape == feats_f.shape

    err_maps = None
    if maps is not None:
        maps_f = np.load(outdir / f"{fx.name}.maps.npy")
        bias = np.asarray(to_jsonable(meta)["bias"])
        recon = maps_f.astype(np.float64).mean(axis=(1, 2)) + bias
        err_maps = float(np.abs(recon - logits_f).max())
        assert err_maps <= TOL, (fx.name, "mean(maps)+bias", err_maps)
        assert maps_f.shape[0] == K
        # every class map must carry spatial information (no dead / constant map)
        assert (maps_f.reshape(K, -1).std(axis=1) > 1e-3).all(), (fx.name, "degenerate class map")

    size = (outdir / f"{fx.name}.onnx").stat().st_size
    return {
        "name": fx.name,
        "head": meta["head"],
        "pool": meta["pooling_op"] or "-",
        "F": "x".join(map(str, feats.shape)),
        "onnx_B": size,
        "|out-ort|": err_out,
        "|logit-ort|": err_logits,
        "|F-ort|": err_feat,
        "|cam-logit|": err_maps,
        "logits": " ".join(f"{v:+.3f}" for v in logits_f),
    }


# --------------------------------------------------------------------------
# the same model at another input size (for `[model] input_size`)
# --------------------------------------------------------------------------

RESIZED_NAME = "gap_gemm_transb1"  # declares N x 3 x 16 x 16; nothing in its graph depends on H, W
RESIZED_HW = (20, 24)  # (H, W): width 24, height 20


def retyped(model, dims):
    """Copy of `model` whose input `input` has the dims `dims` (ints or dim_param names),
    with graph.value_info cleared so that no stale intermediate shape remains."""
    m = copy.deepcopy(model)
    del m.graph.value_info[:]
    (inp,) = m.graph.input
    shape = inp.type.tensor_type.shape
    assert len(shape.dim) == len(dims)
    for d, v in zip(shape.dim, dims):
        if v is None:
            continue
        if isinstance(v, str):
            d.dim_param = v  # clears dim_value (oneof)
        else:
            d.dim_value = v
    onnx.checker.check_model(m, full_check=True)
    return m


def ort_session(ort, model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def process_resized(fx: Fixture, outdir: Path, ort):
    """NAME.resized.{input,features,logits}.npy: the fixture's model (as written) evaluated
    with numpy at RESIZED_HW, cross-checked with onnxruntime on re-typed copies."""
    h, w = RESIZED_HW
    model = onnx.load(outdir / f"{fx.name}.onnx")
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[2:] != [h, w], "the resized outputs must be at another size than the declared one"
    rng = np.random.default_rng(seed_for(fx.name + ".resized"))
    x = rng.random((1, 3, h, w), dtype=np.float64).astype(np.float32)
    ref = run_numpy(model, {"input": x})
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    files = {"input": f32(x), "features": f32(ref["features"]), "logits": f32(ref[fx.logits_tensor][0])}
    for suffix, arr in files.items():
        np.save(outdir / f"{fx.name}.resized.{suffix}.npy", arr, allow_pickle=False)

    # ---- checks on the written files ---------------------------------------
    x = np.load(outdir / f"{fx.name}.resized.input.npy")
    feats_f = np.load(outdir / f"{fx.name}.resized.features.npy")
    logits_f = np.load(outdir / f"{fx.name}.resized.logits.npy")
    fh, fw = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1  # conv1: 3x3, stride 2, pad 1
    assert x.shape == (1, 3, h, w) and feats_f.shape == (1, C, fh, fw) and logits_f.shape == (K,)
    assert (feats_f[0].reshape(C, -1).std(axis=1) > 1e-3).all(), (fx.name, "resized: dead feature channel")

    # the model as written refuses the other size (its input dims are fixed)
    try:
        ort_session(ort, model).run(None, {"input": x})
    except Exception as e:  # onnxruntime's InvalidArgument
        refused = str(e).splitlines()[0]
    else:
        raise AssertionError(f"{fx.name}: onnxruntime accepted a {h}x{w} input for a 16x16 model")

    errs = {}
    for label, new_dims in (("fixed", [None, None, h, w]), ("symbolic", [None, None, "H", "W"])):
        m = with_extra_outputs(retyped(model, new_dims), ["features", fx.logits_tensor])
        sess = ort_session(ort, m)
        names = [o.name for o in sess.get_outputs()]
        res = dict(zip(names, sess.run(None, {"input": x})))
        assert res["features"].shape == feats_f.shape, (label, res["features"].shape)
        e_f = float(np.abs(res["features"] - feats_f).max())
        e_l = float(np.abs(res[fx.logits_tensor][0] - logits_f).max())
        e_o = float(np.abs(res[fx.output_name][0] - ref[fx.output_name][0]).max())
        assert max(e_f, e_l, e_o) <= TOL, (fx.name, "resized", label, e_f, e_l, e_o)
        errs[label] = (e_f, e_l)

    # the CAM identity still holds at the other size
    meta = to_jsonable(fx.meta)
    maps = np.einsum("kc,chw->khw", np.asarray(meta["weight"]), feats_f[0].astype(np.float64))
    err_maps = float(np.abs(maps.mean(axis=(1, 2)) + np.asarray(meta["bias"]) - logits_f).max())
    assert err_maps <= TOL, (fx.name, "resized mean(maps)+bias", err_maps)
    return {"name": fx.name, "input": f"1x3x{h}x{w}", "F": "x".join(map(str, feats_f.shape[1:])),
            "errs": errs, "err_maps": err_maps, "refused": refused,
            "logits": " ".join(f"{v:+.3f}" for v in logits_f)}


def check_pinned(outdir: Path, ort, name, node_name, hw):
    """The model `name` must fail at input size `hw`, in numpy and in onnxruntime on a re-typed
    copy (fixed dims). Returns onnxruntime's first error line (it should name `node_name`)."""
    h, w = hw
    model = onnx.load(outdir / f"{name}.onnx")
    assert any(n.name == node_name for n in model.graph.node), (name, node_name)
    x = np.random.default_rng(0).random((1, 3, h, w)).astype(np.float32)
    try:
        run_numpy(model, {"input": x})
    except (ValueError, AssertionError):
        pass
    else:
        raise AssertionError(f"{name}: numpy ran at {h}x{w}")
    try:
        m = retyped(model, [None, None, h, w])
        ort_session(ort, m).run(None, {"input": x})
    except Exception as e:  # shape inference (check_model) or onnxruntime
        return f"{type(e).__name__}: {str(e).splitlines()[0]}"
    raise AssertionError(f"{name}: onnxruntime ran at {h}x{w}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "models")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import onnxruntime as ort

    args.out.mkdir(parents=True, exist_ok=True)
    fixtures = all_fixtures()
    rows = [process(fx, args.out, ort) for fx in fixtures]
    by_name = {fx.name: fx for fx in fixtures}
    resized = process_resized(by_name[RESIZED_NAME], args.out, ort)
    pinned = [(n, node, check_pinned(args.out, ort, n, node, RESIZED_HW))
              for n, node in ((PINNED_NAME, PINNED_NODE), ("avgpool_full_gemm", "avgpool"))]

    cols = ["name", "head", "pool", "F", "onnx_B", "|out-ort|", "|logit-ort|", "|F-ort|", "|cam-logit|", "logits"]
    fmt = lambda v: "-" if v is None else (f"{v:.1e}" if isinstance(v, float) else str(v))  # noqa: E731
    table = [[fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))
    r = resized
    print(f"\n{r['name']} at input {r['input']} (files {r['name']}.resized.*.npy): F {r['F']}, logits {r['logits']}")
    for label, (e_f, e_l) in r["errs"].items():
        print(f"  onnxruntime, input dims {label}: |F-ort| {e_f:.1e}, |logit-ort| {e_l:.1e}")
    print(f"  |cam-logit| {r['err_maps']:.1e}; the model as written refuses it: {r['refused']}")
    for n, node, err in pinned:
        print(f"{n} at {RESIZED_HW[0]}x{RESIZED_HW[1]} fails as it must (the size is pinned by node {node!r}); "
              f"error: {err}")
    print(f"\nall {len(rows)} fixtures OK (tolerance {TOL}); numpy {np.__version__}, "
          f"onnx {onnx.__version__}, onnxruntime {ort.__version__}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
