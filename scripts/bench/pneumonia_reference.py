#!/usr/bin/env python3
"""Grad-CAM on the Xception pneumonia classifier as users would write it instead of
`cambox run -c configs/pneumonia-xception.toml`, for the whole-process comparison in
scripts/bench/run.sh.

Same work as that config (masks on, overlays off): decode, the model's training
preprocessing (grey replicated to RGB, Pillow NEAREST to 150 x 150, x / 127.5 - 1, NHWC),
the network, Grad-CAM of the PNEUMONIA class (index 1) on every image whatever the
prediction (a lesion study), then as scripts/bench/reference.py does it with OpenCV:
ReLU, bilinear upsampling to the network input (150 x 150), min-max, the inverse of the
stretch to original pixels (one warpAffine, pixel centres as cambox maps them), threshold
at 20 % of the maximum, largest external contour, its bounding box and the filled contour
as a mask PNG at original size.

Backends:
  tf   Keras / TensorFlow, one image at a time (batch 1) under tf.GradientTape, as the
       Keras example "Grad-CAM class activation visualization" (make_gradcam_heatmap)
       does it: F = last conv features (block14_sepconv2_act), y = logits,
       grads = dy_1/dF, weights = mean of grads over positions, map = F . weights.
       As in scripts/reference/xception_gradcam_tf.py, F is the output of the nested
       `xception` sub-model and the logits come from the model's own head layers, all
       inside the tape (Keras 3 cannot build the example's two-output model on a nested
       model). Needs the .keras file (--keras) and the target/venvs/bench-tf venv.
  ort  onnxruntime (--threads intra-op threads, batches of --batch) with the feature map
       added as a second output, and the head's gradient in closed form in numpy: the
       head is GAP -> Dense(128, relu) -> Dense(2), so
         d logit_k / d pooled = W1 (W2[:, k] * (pooled W1 + b1 > 0))
       (weights from the ONNX initializers) and, since pooled is the mean of F over its
       P positions, d logit_k / d F_c(p) = that / P for every p: Grad-CAM's channel weights.

Images are loaded by a multiprocessing pool with --workers processes (forked before
TensorFlow or onnxruntime start threads). Writes under --out: boxes.csv
(path,class_index,x1,y1,x2,y2; class_index = 1, the localised class; half-open, original
pixels), images.csv (path,class_index: the top-1 prediction) and masks/NAME.1.png.
Prints the same "network seconds" line as reference.py for compare.py.
"""
import argparse
import csv
import multiprocessing as mp
import os
import sys
import time

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no untracked scripts/bench/__pycache__ from the import below
import reference  # noqa: E402  (the Writer, batching and the network clock of the other references)

NET = 150  # the model's input, 150 x 150 x 3 NHWC
PNEUMONIA = 1  # class index (data/models/pneumonia-classes.txt: NORMAL, PNEUMONIA)
LAST_CONV = "block14_sepconv2_act"


def load(path):
    """Decode + preprocess one file: (HWC float32 in [-1, 1], (w, h))."""
    img = Image.open(path).convert("RGB")  # grey X-rays: the grey value in all three channels
    w, h = img.size
    img = img.resize((NET, NET), Image.NEAREST)
    return np.asarray(img, dtype=np.float32) / 127.5 - 1.0, (w, h)


def localise(cam, w, h):
    """Feature-resolution Grad-CAM map (after ReLU) -> box (half-open, original pixels) and
    mask: reference.localise with the stretch geometry instead of the resize + crop, and the
    border replicated rather than 0 (a stretch crops nothing: every original pixel was seen,
    the outermost half pixel takes the edge value as bilinear resizing does)."""
    net = cv2.resize(cam.astype(np.float32), (NET, NET), interpolation=cv2.INTER_LINEAR)
    lo, hi = float(net.min()), float(net.max())
    net = (net - lo) / (hi - lo) if hi > lo else np.zeros_like(net)
    sx, sy = NET / w, NET / h
    # Original pixel centre (x + .5) lands at u + .5 = (x + .5) * sx in the network input.
    m = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5]], dtype=np.float64)
    full = cv2.warpAffine(net, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    binary = (full > 0.2 * full.max()).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    mask = np.zeros((h, w), np.uint8)
    if not contours:
        return None, mask
    c = max(contours, key=cv2.contourArea)
    x, y, bw, bh = cv2.boundingRect(c)
    cv2.drawContours(mask, [c], -1, 255, thickness=-1)
    return (x, y, x + bw, y + bh), mask


class Writer(reference.Writer):
    """reference.Writer's boxes.csv and masks/ for the PNEUMONIA map, plus images.csv with
    the top-1 class (the localised class is fixed, so boxes.csv does not carry it)."""

    def __init__(self, out):
        super().__init__(out)
        self.top_f = open(os.path.join(out, "images.csv"), "w", newline="")
        self.top = csv.writer(self.top_f)
        self.top.writerow(["path", "class_index"])

    def write(self, name, top1, cam, w, h):
        box, mask = localise(cam, w, h)
        cv2.imwrite(os.path.join(self.out, "masks", f"{name}.{PNEUMONIA}.png"), mask)
        self.csv.writerow([name, PNEUMONIA, *(box if box else ("", "", "", ""))])
        self.top.writerow([name, top1])

    def close(self):
        super().close()
        self.top_f.close()


def run_tf(files, items, args, writer):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Intra-op threads as the other references' --threads; inter-op left to TensorFlow (eager
    # execution runs one op at a time anyway).
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    import keras

    model = keras.models.load_model(args.keras, compile=False)
    names = [layer.name for layer in model.layers]
    assert names == ["input_layer_1", "xception", "global_average_pooling2d", "dense", "dropout",
                     "dense_1"], names
    base = model.get_layer("xception")
    assert base.layers[-1].name == LAST_CONV, base.layers[-1].name
    gap, dense, dropout, dense_1 = (model.get_layer(n) for n in names[2:])

    for i, (x, (w, h)) in enumerate(items):
        with reference.network_clock():
            x = tf.constant(x[None])
            with tf.GradientTape() as tape:
                F = base(x, training=False)
                preds = dense_1(dropout(dense(gap(F)), training=False))
                class_channel = preds[:, PNEUMONIA]
            grads = tape.gradient(class_channel, F)
            pooled = tf.reduce_mean(grads, axis=(0, 1, 2))
            heatmap = tf.squeeze(F[0] @ pooled[..., tf.newaxis])
            cam = tf.maximum(heatmap, 0).numpy()
            top1 = int(tf.argmax(preds[0]))
        writer.write(os.path.basename(files[i]), top1, cam, w, h)


def head_weights(model, feat):
    """The initializers of GAP -> [Squeeze/Reshape/Flatten] -> MatMul -> Add -> Relu ->
    MatMul -> Add, following the single consumer of each output from the feature map."""
    import onnx

    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    ops, params, t = [], [], feat
    while t in consumers:
        (node,) = consumers[t]
        if node.op_type in ("MatMul", "Add"):
            (w,) = [inits[n] for n in node.input if n in inits]
            params.append(w.astype(np.float32))
        if node.op_type not in ("Squeeze", "Reshape", "Flatten"):
            ops.append(node.op_type)
        t = node.output[0]
    assert ops == ["GlobalAveragePool", "MatMul", "Add", "Relu", "MatMul", "Add"], ops
    assert t == model.graph.output[0].name, t
    return params  # W1 (C x 128), b1, W2 (128 x 2), b2


def run_ort(files, items, args, writer):
    import onnx
    import onnxruntime as ort

    model = onnx.load(args.onnx)
    (gap,) = [n for n in model.graph.node if n.op_type == "GlobalAveragePool"]
    feat = gap.input[0]  # the last conv block's ReLU, NCHW in the converted graph
    w1, b1, w2, b2 = head_weights(model, feat)
    model.graph.output.append(onnx.helper.make_tensor_value_info(feat, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    del model
    in_name = sess.get_inputs()[0].name
    out_name = sess.get_outputs()[0].name

    checked = False
    for b in reference.batches(items, args.batch):
        x = np.stack([item[0] for _, item in b])
        with reference.network_clock():
            logits, F = sess.run([out_name, feat], {in_name: x})
        assert F.shape[1] == w1.shape[0], F.shape  # NCHW
        pooled = F.mean(axis=(2, 3))  # B x C
        pre = pooled @ w1 + b1  # B x 128
        if not checked:  # the closed-form head reproduces the network's logits
            d = float(np.abs(np.maximum(pre, 0) @ w2 + b2 - logits).max())
            assert d < 1e-3, f"head recomputed from the initializers differs from the logits by {d}"
            checked = True
        grad = (w2[:, PNEUMONIA] * (pre > 0)) @ w1.T  # B x C: d logit_1 / d pooled
        alpha = grad / (F.shape[2] * F.shape[3])  # d logit_1 / d F_c(p), the same at every p
        cams = np.maximum(np.einsum("bc,bchw->bhw", alpha, F), 0)
        top = logits.argmax(1)
        for j, (i, (_, (w, h))) in enumerate(b):
            writer.write(os.path.basename(files[i]), int(top[j]), cams[j], w, h)


def _load_pool(path):
    return load(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["tf", "ort"], required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--onnx", help="the ONNX model (ort)")
    ap.add_argument("--keras", help="the .keras model (tf)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8, help="ort only; tf runs batch 1")
    args = ap.parse_args()
    if (args.backend == "tf" and not args.keras) or (args.backend == "ort" and not args.onnx):
        ap.error("--backend tf needs --keras, --backend ort needs --onnx")
    cv2.setNumThreads(1)
    exts = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
    files = sorted(os.path.join(args.images, f) for f in os.listdir(args.images) if f.lower().endswith(exts))
    writer = Writer(args.out)
    t0 = time.perf_counter()
    # Forked before TensorFlow / onnxruntime exist in this process: forking a process that
    # already runs their thread pools can deadlock the children.
    pool = mp.get_context("fork").Pool(args.workers) if args.workers > 0 else None
    items = pool.imap(_load_pool, files, chunksize=4) if pool else map(load, files)
    if args.backend == "tf":
        run_tf(files, items, args, writer)
    else:
        run_ort(files, items, args, writer)
    if pool:
        pool.close()
        pool.join()
    writer.close()
    dt = time.perf_counter() - t0
    print(f"{args.backend}: {len(files)} images in {dt:.2f} s after start-up ({len(files) / dt:.1f} img/s)",
          file=sys.stderr)
    # Read by compare.py: the network's share, and its cost in core-seconds (threads busy).
    print(f"network seconds: {reference.NETWORK_SECONDS[0]:.4f} threads: {args.threads}", file=sys.stderr)


if __name__ == "__main__":
    main()
