#!/usr/bin/env python3
"""Keras Grad-CAM reference for the Xception pneumonia classifier.

Follows the Keras example "Grad-CAM class activation visualization"
(make_gradcam_heatmap): one image at a time (batch 1), under tf.GradientTape,
  F      = output of `block14_sepconv2_act` (1x5x5x2048, NHWC)
  y      = model logits (1x2; the last Dense has no activation, so these are logits)
  grads  = tape.gradient(y[:, k], F)
  pooled = reduce_mean(grads, axis=(0, 1, 2))            # 2048
  raw    = F[0] @ pooled                                  # 5x5, before ReLU
  relu   = maximum(raw, 0)
  heat   = maximum(raw, 0) / reduce_max(raw)              # the example's returned heatmap
for k = 1 (PNEUMONIA) and k = 0 (NORMAL).

The model nests Xception as a sub-model (`xception`), so the example's
keras.Model(model.inputs, [model.get_layer(name).output, model.output]) cannot be
built in Keras 3 ("Output ... is not connected to inputs"). Instead F is the
output of the nested `xception` model (whose last layer is block14_sepconv2_act),
and the logits are computed from F by the model's own head layers in order
(global_average_pooling2d -> dense (relu) -> dropout (inference) -> dense_1),
all inside the tape. The logits are checked against model(x) and the shared
reference keras_logits.npy.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # noqa: E402

LAST_CONV = "block14_sepconv2_act"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="path to the .keras file")
    ap.add_argument("--shared", required=True, help="the shared folder (reference/pneumonia-xception)")
    ap.add_argument("--out", default="tests/fixtures/gradcam/xception")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    ref = os.path.join(args.shared, "reference", "pneumonia-xception")
    x_all = np.load(os.path.join(ref, "inputs_nhwc.npy")).astype(np.float32)
    with open(os.path.join(ref, "files.json")) as f:
        names = json.load(f)
    assert x_all.shape == (16, 150, 150, 3) and len(names) == 16, (x_all.shape, len(names))

    model = keras.models.load_model(args.model, compile=False)
    layer_names = [l.name for l in model.layers]
    assert layer_names == ["input_layer_1", "xception", "global_average_pooling2d", "dense",
                           "dropout", "dense_1"], layer_names
    base = model.get_layer("xception")
    assert base.layers[-1].name == LAST_CONV, base.layers[-1].name
    gap, dense, dropout, dense_1 = (model.get_layer(n) for n in layer_names[2:])
    assert dense.activation is keras.activations.relu, dense.activation
    assert dense_1.activation is keras.activations.linear, dense_1.activation  # logits, no softmax

    def features_and_logits(x):
        F = base(x, training=False)
        h = dropout(dense(gap(F)), training=False)
        return F, dense_1(h)

    logits_model = model.predict(x_all, verbose=0, batch_size=4)
    out = {k: dict(raw=[], relu=[], heat=[], pooled=[]) for k in (0, 1)}
    logits_all = []
    feat0 = None
    for i in range(len(x_all)):
        x = tf.constant(x_all[i:i + 1])
        row = None
        for k in (1, 0):
            with tf.GradientTape() as tape:
                F, preds = features_and_logits(x)
                class_channel = preds[:, k]
            grads = tape.gradient(class_channel, F)
            pooled = tf.reduce_mean(grads, axis=(0, 1, 2))
            heatmap = F[0] @ pooled[..., tf.newaxis]
            heatmap = tf.squeeze(heatmap)
            raw = heatmap.numpy()
            heat = (tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)).numpy()
            out[k]["raw"].append(raw)
            out[k]["relu"].append(np.maximum(raw, 0))
            out[k]["heat"].append(heat)
            out[k]["pooled"].append(pooled.numpy())
            if row is None:
                row = preds.numpy()[0]
            else:
                assert np.array_equal(row, preds.numpy()[0])
            if i == 0:
                feat0 = F.numpy()
        logits_all.append(row)
        print(f"{i:2d} {names[i]:32s} logits {row[0]:+.4f} {row[1]:+.4f}", flush=True)

    logits_all = np.float32(logits_all)
    d_model = float(np.abs(logits_all - logits_model).max())
    d_ref = float(np.abs(logits_all - np.load(os.path.join(ref, "keras_logits.npy"))).max())
    d_feat = float(np.abs(feat0 - np.load(os.path.join(ref, "keras_featmap_00.npy"))).max())
    print(f"max |tape logits - model.predict| = {d_model:.3g}; vs shared keras_logits = {d_ref:.3g}; "
          f"feature map 0 vs shared keras_featmap_00 = {d_feat:.3g}")
    assert d_model <= 1e-4 and d_ref <= 1e-4 and d_feat <= 1e-4

    def save(name, arr):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        np.save(os.path.join(args.out, name), arr)
        return dict(file=name, shape=list(arr.shape), dtype="float32")

    index = dict(logits=save("logits.npy", logits_all))
    for k in (0, 1):
        index[f"class{k}"] = dict(
            raw=save(f"maps_class{k}_raw.npy", np.stack(out[k]["raw"])),
            relu=save(f"maps_class{k}_relu.npy", np.stack(out[k]["relu"])),
            heatmap=save(f"maps_class{k}_heatmap.npy", np.stack(out[k]["heat"])),
            pooled_grads=save(f"pooled_grads_class{k}.npy", np.stack(out[k]["pooled"])),
        )
        nonpos = [i for i, r in enumerate(out[k]["raw"]) if r.max() <= 0]
        index[f"class{k}"]["images_with_max_raw_le_0"] = nonpos
    meta = dict(
        generator="scripts/reference/xception_gradcam_tf.sh",
        versions=dict(tensorflow=tf.__version__, keras=keras.__version__, numpy=np.__version__,
                      python=sys.version.split()[0]),
        model="pneumonia-model-package==0.3.0 pneumonia_xception_model_val-acc_0.861.keras (not committed)",
        inputs="shared reference/pneumonia-xception/inputs_nhwc.npy (16x150x150x3), order = files.json",
        files_order=names,
        target_layer=LAST_CONV + " (output of the nested `xception` model), 5x5x2048 NHWC",
        differentiated="logits[:, k] = output of dense_1 (linear, pre-softmax; the model has no softmax)",
        max_abs_tape_logits_minus_predict=d_model,
        max_abs_logits_minus_shared_keras_logits=d_ref,
        **index,
    )
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
