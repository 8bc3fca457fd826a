#!/usr/bin/env python3
"""Reference logits of EfficientNet-Lite0 re-typed to another input size.

data/models/efficientnet-lite0.onnx declares its input as `batch x 3 x 224 x 224`.
This script makes an in-memory copy whose input is re-typed to 1 x 3 x 320 x 480
(H = 320, W = 480; graph.value_info cleared), checks that nothing in the graph
depends on the declared 224 (the constant "static same" paddings of the convs are
compared with TF-SAME at both sizes), and runs onnxruntime (CPU, one thread) on

  plain    tests/fixtures/retype/chelsea-480x320.png (made once from
           data/samples/natural/chelsea.png, 451x300, resized with Pillow to 480x320)
  flipped  the same image flipped horizontally (not written as a PNG)

and, for contrast, the original model at 224x224 on the PNG resized (Pillow bilinear,
stretched) to 224x224.  Input tensor: RGB / 255, minus ImageNet mean, divided by std,
NCHW float32 (computed in float32, as cambox does).

Writes tests/fixtures/retype/chelsea-480x320.json (see README.md there).
Run through scripts/reference/retype_reference.sh, which pins the packages.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import platform
import sys
from pathlib import Path

import numpy as np
import onnx
import PIL
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
W, H = 480, 320  # the new input size: width 480, height 320
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
FEATURE_SHAPE = (1, 1280, 10, 15)  # expected F at 320x480 (stride 32)
TOL_HEAD = 1e-4  # |W mean(F) + b - logits|
TOL_SAME = 1e-6  # logits with / without extra graph outputs


def rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def to_tensor(img: Image.Image) -> np.ndarray:
    """RGB u8 HxWx3 -> (x / 255 - mean) / std, 1x3xHxW float32 (float32 arithmetic)."""
    a = np.asarray(img.convert("RGB"), dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    a = (a - np.asarray(MEAN, dtype=np.float32)) / np.asarray(STD, dtype=np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None], dtype=np.float32)


def dims_of(vi) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]


def retype(model: onnx.ModelProto, dims: list) -> tuple[onnx.ModelProto, int]:
    """Copy of `model` with its single input re-typed to `dims`; graph.value_info cleared
    (returns how many entries it held). Checked with onnx's full checker (shape inference)."""
    m = copy.deepcopy(model)
    n_vi = len(m.graph.value_info)
    del m.graph.value_info[:]
    (inp,) = m.graph.input
    shape = inp.type.tensor_type.shape
    assert len(shape.dim) == len(dims)
    for d, v in zip(shape.dim, dims):
        d.dim_value = v  # also clears dim_param (oneof)
    onnx.checker.check_model(m, full_check=True)
    return m, n_vi


def with_extra_outputs(model: onnx.ModelProto, names) -> onnx.ModelProto:
    m = copy.deepcopy(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
            have.add(n)
    return m


def session(ort, model: onnx.ModelProto):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run(sess, x) -> dict:
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x})))


def sig6(v: float) -> float:
    return float(f"{float(v):.6g}")


def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def summary(logits: np.ndarray, classes: list) -> dict:
    logits = np.asarray(logits, dtype=np.float64)
    top = [int(i) for i in np.argsort(-logits, kind="stable")[:5]]
    p = softmax(logits)
    return {
        "top5": top,
        "top5_names": [classes[i] for i in top],
        "top5_logits": [sig6(logits[i]) for i in top],
        "top5_softmax": [round(float(p[i]), 4) for i in top],
        "top5_gaps": [sig6(logits[a] - logits[b]) for a, b in  # logit gaps rank 1-2, ..., rank 5-6
                      zip(np.argsort(-logits, kind="stable")[:5], np.argsort(-logits, kind="stable")[1:6])],
        "max_abs_logit": sig6(np.abs(logits).max()),
        "logits": [sig6(v) for v in logits],
    }


def tf_same_pads(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def pad_report(model: onnx.ModelProto, ort, x) -> tuple[list, dict]:
    """Values of every Pad's `pads` input (and its data input's shape) in a run at x's size,
    with the TF-SAME padding of the Conv fed by that Pad at that size."""
    nodes = list(model.graph.node)
    consumers = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    pads = [n for n in nodes if n.op_type == "Pad"]
    reshapes = [n for n in nodes if n.op_type == "Reshape"]
    extra = [p.input[1] for p in pads] + [p.input[0] for p in pads] + [r.input[1] for r in reshapes]
    res = run(session(ort, with_extra_outputs(model, extra)), x)
    rows = []
    for p in pads:
        (conv,) = consumers[p.output[0]]
        assert conv.op_type == "Conv", conv.op_type
        a = {at.name: onnx.helper.get_attribute_value(at) for at in conv.attribute}
        k, s, d = a["kernel_shape"], a.get("strides", [1, 1]), a.get("dilations", [1, 1])
        assert all(v == 0 for v in a.get("pads", [0, 0, 0, 0])), conv.name
        pv = [int(v) for v in res[p.input[1]]]
        hw = res[p.input[0]].shape[2:]
        onnx_pads = ((pv[2], pv[6]), (pv[3], pv[7]))  # (top, bottom), (left, right)
        same = tuple(tf_same_pads(hw[i], k[i], s[i], d[i]) for i in range(2))
        rows.append({"pad": p.name, "conv": conv.name, "in_hw": list(hw), "kernel": list(k), "stride": list(s),
                     "pads": [list(t) for t in onnx_pads], "tf_same": [list(t) for t in same],
                     "equal": onnx_pads == same})
    shapes = {r.name: [int(v) for v in res[r.input[1]]] for r in reshapes}
    return rows, shapes


def compact_json(obj, indent=0) -> str:
    """JSON with dicts one key a line and lists of scalars on one line."""
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(k)}: {compact_json(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        items = [pad + "  " + compact_json(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "data/models/efficientnet-lite0.onnx")
    ap.add_argument("--classes", type=Path, default=ROOT / "data/models/imagenet-classes.txt")
    ap.add_argument("--image", type=Path, default=ROOT / "data/samples/natural/chelsea.png")
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/retype")
    ap.add_argument("--remake-png", action="store_true", help="write the 480x320 PNG again even if it exists")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import onnxruntime as ort

    classes = args.classes.read_text().splitlines()
    assert len(classes) == 1000
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / f"chelsea-{W}x{H}.png"

    # ---- the input image ---------------------------------------------------
    src = Image.open(args.image)
    assert src.size == (451, 300), src.size
    if args.remake_png or not png.exists():
        src.convert("RGB").resize((W, H), Image.Resampling.BILINEAR).save(png)
        print(f"wrote {rel(png)}")
    img = Image.open(png)
    img.load()
    assert img.size == (W, H) and img.mode == "RGB", (img.size, img.mode)
    x_plain = to_tensor(img)
    x_flip = np.ascontiguousarray(x_plain[:, :, :, ::-1])
    # flipping the tensor = normalising the flipped image
    assert np.array_equal(x_flip, to_tensor(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    x_224 = to_tensor(img.resize((224, 224), Image.Resampling.BILINEAR))

    # ---- the model and its re-typed copy -----------------------------------
    model = onnx.load(args.model)
    (inp,) = model.graph.input
    (out,) = model.graph.output
    declared = dims_of(inp)
    assert declared[1:] == [3, 224, 224], declared
    print(f"{rel(args.model)}: input {inp.name!r} {declared}, output {out.name!r} {dims_of(out)}, "
          f"{len(model.graph.value_info)} value_info entries, opset {model.opset_import[0].version}, "
          f"ir_version {model.ir_version}")
    new_dims = [1, 3, H, W]
    rt, n_vi = retype(model, new_dims)
    print(f"re-typed copy: input {dims_of(rt.graph.input[0])} ({n_vi} value_info entries cleared); "
          "onnx.checker full_check (shape inference) passes")

    # the original model refuses the new size
    try:
        session(ort, model).run(None, {inp.name: x_plain})
    except Exception as e:
        refused = str(e).splitlines()[0]
    else:
        raise AssertionError("onnxruntime accepted a 320x480 input for the 224x224 model")
    print(f"original model at {H}x{W}: refused by onnxruntime: {refused}")

    # ---- the feature map before the global pooling ---------------------------
    pools = [n for n in model.graph.node if n.op_type in ("GlobalAveragePool", "ReduceMean")]
    assert len(pools) == 1, [n.name for n in pools]
    (pool,) = pools
    feat = pool.input[0]
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 1
    (gemm,) = gemms
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    gattr = {at.name: onnx.helper.get_attribute_value(at) for at in gemm.attribute}
    assert gattr.get("transB") == 1 and gattr.get("alpha", 1.0) == 1.0 and gattr.get("beta", 1.0) == 1.0
    fc_w, fc_b = inits[gemm.input[1]].astype(np.float64), inits[gemm.input[2]].astype(np.float64)

    # ---- runs ----------------------------------------------------------------
    sess = session(ort, rt)
    logits = {"plain": run(sess, x_plain)[out.name][0], "flipped": run(sess, x_flip)[out.name][0]}
    sess_f = session(ort, with_extra_outputs(rt, [feat]))
    checks = {}
    for label, x in (("plain", x_plain), ("flipped", x_flip)):
        r = run(sess_f, x)
        F = r[feat]
        assert F.shape == FEATURE_SHAPE, (label, F.shape)
        same = float(np.abs(r[out.name][0] - logits[label]).max())
        head = float(np.abs(F[0].astype(np.float64).mean(axis=(1, 2)) @ fc_w.T + fc_b - logits[label]).max())
        assert same <= TOL_SAME and head <= TOL_HEAD, (label, same, head)
        checks[label] = {"feature_shape": list(F.shape), "logits_vs_extra_output_run": same,
                         "head_from_features_vs_logits": head}
        print(f"{label}: feature map {feat!r} (input of {pool.op_type} {pool.name!r}) has shape {list(F.shape)}; "
              f"|fc(mean F) - logits| {head:.1e}")
    logits_224 = run(session(ort, model), x_224)[out.name][0]

    # ---- nothing in the graph depends on 224 ---------------------------------
    pads_new, reshape_new = pad_report(rt, ort, x_plain)
    pads_224, reshape_224 = pad_report(model, ort, x_224)
    pads_const = all(a["pads"] == b["pads"] for a, b in zip(pads_new, pads_224))
    assert pads_const, "the Pad amounts depend on the input size"
    bad = [p for p in pads_new + pads_224 if not p["equal"]]
    n_static = sum(1 for p in pads_new if p["equal"])
    print(f"{len(pads_new)} Pad nodes (efficientnet_pytorch's static same padding, constants computed at export "
          f"for 224): same values at both sizes; equal to TF-SAME at 224: "
          f"{sum(p['equal'] for p in pads_224)}/{len(pads_224)}, at {H}x{W}: {n_static}/{len(pads_new)}")
    for p in bad:
        print(f"  differs: {p}")
    changed_reshapes = {k: (reshape_224[k], v) for k, v in reshape_new.items() if reshape_224[k] != v}
    print(f"{len(reshape_new)} Reshape nodes; shapes that change with the input size: {changed_reshapes}")

    # ---- the JSON --------------------------------------------------------------
    avg = (logits["plain"].astype(np.float64) + logits["flipped"].astype(np.float64)) / 2
    res = {
        "model": rel(args.model),
        "model_sha256": sha256(args.model),
        "declared_input": declared,
        "retyped_input": new_dims,
        "retyping": (f"copy of the model with the input's dims set to {new_dims} (was {declared}) and "
                     f"graph.value_info cleared ({n_vi} entries held); nothing else changed. onnx.checker "
                     f"full_check passes. The {len(pads_new)} Pad nodes' amounts are constants "
                     "(efficientnet_pytorch's static same padding, computed at export for 224): the same in "
                     f"both runs, and equal to TF-SAME padding at 224 ({sum(p['equal'] for p in pads_224)}/"
                     f"{len(pads_224)}) and at 320x480 ({n_static}/{len(pads_new)}). Reshape shapes that change "
                     f"with the size: {len(changed_reshapes)} of {len(reshape_new)}."),
        "input_size": [W, H],
        "input_size_note": "[width, height] as in cambox's [model] input_size; the tensor is 1 x 3 x 320 x 480",
        "image": rel(png),
        "image_sha256": sha256(png),
        "image_source": rel(args.image),
        "image_source_sha256": sha256(args.image),
        "image_made_with": f"Pillow {PIL.__version__}: Image.open(source).convert('RGB').resize((480, 320), "
                           "Image.Resampling.BILINEAR).save(png)",
        "normalisation": {"channels": "RGB", "scale": "1/255", "mean": MEAN, "std": STD, "layout": "NCHW",
                          "dtype": "float32", "formula": "(u8 / 255 - mean) / std, in float32"},
        "feature_tensor": feat,
        "feature_shape": list(FEATURE_SHAPE),
        "pooling_node": pool.name,
        "pooling_op": pool.op_type,
        "logits_rounding": "6 significant digits",
        "plain": {"input": "the PNG as is", **summary(logits["plain"], classes)},
        "flipped": {"input": "the PNG flipped horizontally (tensor[..., ::-1])", **summary(logits["flipped"], classes)},
        "flip_average": {"input": "(plain + flipped) / 2 of the full-precision logits",
                         **summary(avg, classes)},
        "original_224": {"input": "the PNG resized (stretched) to 224x224 with Pillow BILINEAR, original model "
                                  "(not re-typed)", **summary(logits_224, classes)},
        "checks": {
            "original_model_refuses_320x480": refused,
            **{f"{k}_{m}": v for k, d in checks.items() for m, v in d.items() if m != "feature_shape"},
            "pads_equal_tf_same_at_320x480": f"{n_static}/{len(pads_new)}",
        },
        "onnxruntime": {"threads": 1, "provider": "CPUExecutionProvider"},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "pillow": PIL.__version__,
                     "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        "command": "scripts/reference/retype_reference.sh",
    }
    jpath = args.out / f"chelsea-{W}x{H}.json"
    text = compact_json(res) + "\n"
    assert json.loads(text) == res
    jpath.write_text(text)

    for key in ("plain", "flipped", "flip_average", "original_224"):
        s = res[key]
        tops = ", ".join(f"{i} {n} ({p:.3f})" for i, n, p in zip(s["top5"], s["top5_names"], s["top5_softmax"]))
        print(f"{key:>12}: max|logit| {s['max_abs_logit']}; top-5 {tops}")
    d = float(np.abs(logits["plain"] - logits["flipped"]).max())
    print(f"max |plain - flipped| logit difference: {d:.3f}")
    print(f"wrote {rel(jpath)} ({jpath.stat().st_size} bytes); PNG {png.stat().st_size} bytes; "
          f"numpy {np.__version__}, pillow {PIL.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
