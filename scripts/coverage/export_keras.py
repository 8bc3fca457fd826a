#!/usr/bin/env python3
"""Exporter coverage sweep, Keras side: keras.applications classifiers with
random weights, exported with Keras 3's model.export(path, format="onnx")
(tf2onnx under the TensorFlow backend), plus onnxruntime reference outputs.

Run in the coverage-keras venv (scripts/coverage/setup.sh), normally through
scripts/coverage/export.sh:

    target/venvs/coverage-keras/bin/python scripts/coverage/export_keras.py \
        [--out target/coverage] [--only ResNet50,VGG16] [--timeout 900] \
        [--max-memory-gb 14]

For every architecture, in a child process of its own:

  1. build it with weights=None and classifier_activation=None where the
     constructor takes it (output "logits"; otherwise "probabilities"), at its
     default input size, seeded with keras.utils.set_random_seed;
  2. calibrate BatchNorm from data (see calibrate_batchnorm): the running
     mean/variance of every BatchNormalization layer become the cumulative
     average of the batch statistics over the repository's sample images
     (plus flips), fed through the same preprocessing as the reference input;
     then the final layer is scaled so that the logits' std across classes
     is 2 on the sample images (scale_classifier), a trained model's scale.
     This step runs in a child process that saves the weights; the export
     loads them in a fresh process (see calibrate);
  3. write <arch>/input.png (centre crop of chelsea.png at the input size) and
     <arch>/input.npy, a pure function of the PNG's pixels recorded in the
     manifest as (channels, scale, mean, std): the preprocessing the model's
     docs ask for, see PREPROCESSING;
  4. model.export(<arch>/tf2onnx/model.onnx, format="onnx"), default options
     (dynamic batch axis, weights inline in the one file). When that file
     comes out with extra graph inputs (keras' Normalization layer), also
     <arch>/tf2onnx-constfix/ with the workaround of constfix_normalization;
  5. onnxruntime (CPU, 1 thread) at ORT_ENABLE_ALL and ORT_DISABLE_ALL:
     ort_logits.npy, softmax spread between the two, and the max abs
     difference against Keras' own output (framework_vs_ort).

Results go to $OUT/keras/<arch>/ and $OUT/manifest.json (only the keras
entries are replaced).
"""
import argparse
import inspect
import json
import os
import shutil
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

# How the reference tensor is made from the PNG's uint8 RGB pixels, per the
# preprocessing each keras.applications model documents:
#   builtin: the model rescales/normalises itself (include_preprocessing):
#            raw 0..255 pixels;
#   tf:      preprocess_input mode "tf": x / 127.5 - 1, written (x - 127.5) / 127.5;
#   torch:   mode "torch": x / 255, ImageNet mean/std;
#   caffe:   mode "caffe": RGB -> BGR, minus the ImageNet mean in BGR order, no
#            scaling (mean is given in the channel order after the flip).
PREPROCESSING = {
    "builtin": ("rgb", "byte", [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
    "tf": ("rgb", "byte", [127.5, 127.5, 127.5], [127.5, 127.5, 127.5]),
    "torch": ("rgb", "unit", list(common.IMAGENET_MEAN), list(common.IMAGENET_STD)),
    "caffe": ("bgr", "byte", [103.939, 116.779, 123.68], [1.0, 1.0, 1.0]),
}

# (arch, preprocessing, has_gap expected, note). keras 3.15 has no RegNet.
MODELS = [
    ("ResNet50", "caffe", True, None),
    ("ResNet101", "caffe", True, None),
    ("ResNet50V2", "tf", True, None),
    ("DenseNet121", "torch", True, None),
    ("MobileNet", "tf", True, "classifier is a 1x1 conv after the GAP (keepdims), then Reshape"),
    ("MobileNetV2", "tf", True, None),
    ("MobileNetV3Small", "builtin", True, "head after GAP: conv1x1+Hardswish then conv1x1 (not linear)"),
    ("MobileNetV3Large", "builtin", True, "head after GAP: conv1x1+Hardswish then conv1x1 (not linear)"),
    ("EfficientNetB0", "builtin", True, "SE blocks: GAPs inside the body too"),
    ("EfficientNetV2B0", "builtin", True, "SE blocks: GAPs inside the body too"),
    ("EfficientNetV2S", "builtin", True, "default input 384"),
    ("ConvNeXtTiny", "builtin", True, "head after GAP: LayerNorm then Dense"),
    ("Xception", "tf", True, "input 299"),
    ("InceptionV3", "tf", True, "input 299"),
    ("InceptionResNetV2", "tf", True, "input 299"),
    ("NASNetMobile", "tf", True, None),
    ("VGG16", "caffe", False, "no GAP: Flatten + MLP; must be refused"),
]
# "tf2onnx-constfix" is only made when the plain export came out with extra
# graph inputs (see constfix_normalization).
EXPORTERS = ("tf2onnx", "tf2onnx-constfix")
LOGIT_STD = 2.0  # target logit scale, see scale_classifier


def base_entry(arch, prep, has_gap, note, width, height):
    channels, scale, mean, std = PREPROCESSING[prep]
    arch_rel = os.path.join("keras", arch)
    return {
        "family": "keras",
        "arch": arch,
        "exporter": "tf2onnx",
        "model": None,
        "input_png": os.path.join(arch_rel, "input.png") if width else None,
        "input_npy": os.path.join(arch_rel, "input.npy") if width else None,
        "layout": "nhwc",
        "input_size": [width, height] if width else None,
        "channels": channels,
        "scale": scale,
        "mean": mean,
        "std": std,
        "output": "logits",
        "export_error": None,
        "ort_spread": None,
        "framework_vs_ort": None,
        "has_gap": has_gap,
        "export_seconds": None,
        "note": note,
        "preprocessing": prep,
    }


def walk_layers(layer):
    for sub in getattr(layer, "layers", []) or []:
        yield sub
        yield from walk_layers(sub)


def calibrate_batchnorm(model, keras, batches):
    """BatchNorm statistics from data, the Keras way of torch's momentum=None:
    keras' BatchNormalization, called with training=True, normalises with the
    batch statistics and updates moving = moving * momentum + batch * (1 -
    momentum). Setting momentum = seen / (seen + n) before each batch of n
    images (0 for the first) makes the moving mean/variance the cumulative,
    sample-weighted average of the batch statistics over all batches, layer
    by layer exactly as the forward pass sees them. Dropout layers (incl.
    EfficientNet's drop-connect) get rate 0 meanwhile, so the statistics are
    those of the inference network; rates and momenta are restored after."""
    bns = [l for l in walk_layers(model) if isinstance(l, keras.layers.BatchNormalization)]
    if not bns:
        return 0
    drops = [l for l in walk_layers(model) if isinstance(l, keras.layers.Dropout)]
    saved_rates = [d.rate for d in drops]
    saved_momenta = [b.momentum for b in bns]
    for d in drops:
        d.rate = 0.0
    seen = 0
    for x in batches:
        n = x.shape[0]
        for b in bns:
            b.momentum = seen / (seen + n)
        model(x, training=True)
        seen += n
    for d, r in zip(drops, saved_rates):
        d.rate = r
    for b, m in zip(bns, saved_momenta):
        b.momentum = m
    return len(bns)


def scale_classifier(model, x, target=LOGIT_STD):
    """Scale the final layer's kernel and bias (the last layer with a kernel:
    the Dense "predictions" or, for MobileNet/MobileNetV3, the 1x1 conv
    "Logits") so that the logits' standard deviation across classes,
    averaged over the images x, is `target`, a trained classifier's scale
    (random init leaves it far smaller). The logits are linear in that
    layer, so they scale exactly. Skipped for models that end in a softmax."""
    import numpy as np

    last = [l for l in walk_layers(model) if getattr(l, "kernel", None) is not None]
    if not last:
        return None
    layer = last[-1]
    y = np.asarray(model(x, training=False))
    std = float(y.reshape(y.shape[0], -1).std(axis=1).mean())
    if not std > 0:
        return None
    k = target / std
    layer.kernel.assign(np.asarray(layer.kernel) * k)
    if getattr(layer, "bias", None) is not None:
        layer.bias.assign(np.asarray(layer.bias) * k)
    return k


def release_memory():
    """Give freed heap back to the OS before the export (glibc keeps it)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def watch_own_memory(gib):
    """Backup for the driver's memory watch: a thread that ends this worker
    when its resident memory passes gib (checked twice a second)."""
    import threading

    limit = int(gib * (1 << 30))

    def loop():
        while True:
            if common.rss_bytes(os.getpid()) > limit:
                print(f"killed: memory above {gib:g} GB (resident)", flush=True)
                os._exit(137)
            time.sleep(0.5)

    threading.Thread(target=loop, daemon=True).start()


def setup_tf(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    return keras


def build(arch, keras):
    """The model with random weights at its default input size, and whether
    its output is logits or probabilities."""
    keras.utils.set_random_seed(zlib.crc32(f"keras/{arch}".encode()) & 0x7FFFFFFF)
    ctor = getattr(keras.applications, arch)
    kwargs = {"weights": None}
    output = "probabilities"
    if "classifier_activation" in inspect.signature(ctor).parameters:
        kwargs["classifier_activation"] = None
        output = "logits"
    model = ctor(**kwargs)
    _, height, width, _ = model.input_shape
    if height is None or width is None:
        # MobileNetV3 without weights builds with a free spatial size; its
        # documented default is 224x224. Export a static size like the others.
        del model
        keras.backend.clear_session()  # so the graph input is named as usual
        keras.utils.set_random_seed(zlib.crc32(f"keras/{arch}".encode()) & 0x7FFFFFFF)
        model = ctor(input_shape=(224, 224, 3), **kwargs)
    return model, output


def calibrate(arch, weights_path, threads):
    """Child process of the worker: build, calibrate BatchNorm, scale the
    classifier, save the weights. A process of its own because TensorFlow
    keeps the memory of the training-mode passes, and tf2onnx needs several
    GB on top of that (InceptionResNetV2/Xception went past 14 GB)."""
    import numpy as np

    keras = setup_tf(threads)
    _, prep, _, _ = next(m for m in MODELS if m[0] == arch)
    channels, scale, mean, std = PREPROCESSING[prep]
    model, output = build(arch, keras)
    _, height, width, _ = model.input_shape
    imgs = common.calibration_images(width, height)
    xs = np.concatenate([
        common.reference_tensor(im, channels, scale, mean, std, "nhwc") for im in imgs
    ])
    xs = xs[np.random.default_rng(0).permutation(xs.shape[0])]
    # Small batches: TensorFlow's eager training-mode passes are memory-hungry
    # (EfficientNetV2S at 384 px went past 14 GB with 16 images): 16 images
    # at 224 px, fewer in proportion to the pixel count above that.
    batch = max(4, min(16, int(16 * 224 * 224 / (width * height))))
    batches = [xs[i : i + batch] for i in range(0, xs.shape[0], batch) if xs[i : i + batch].shape[0] > 1]
    n_bn = calibrate_batchnorm(model, keras, batches)
    k = scale_classifier(model, np.concatenate(batches[:2])) if output == "logits" else None
    model.save_weights(weights_path)
    with open(weights_path + ".json", "w", encoding="utf-8") as f:
        json.dump({"batchnorm_calibrated": n_bn, "classifier_scale": k}, f)


def worker(arch, out, threads, max_memory_gb):
    import subprocess

    import numpy as np

    spec = next(m for m in MODELS if m[0] == arch)
    _, prep, has_gap, note = spec
    channels, scale, mean, std = PREPROCESSING[prep]
    arch_dir = os.path.join(out, "keras", arch)
    os.makedirs(arch_dir, exist_ok=True)

    t0 = time.time()
    weights = os.path.join(out, "logs", f".keras-{arch}.weights.h5")
    rc = subprocess.run([sys.executable, os.path.abspath(__file__), "--out", out, "--calibrate",
                         arch, "--weights", weights, "--threads", str(threads),
                         "--max-memory-gb", str(max_memory_gb)]).returncode
    if rc != 0:
        why = f" (memory above {max_memory_gb:g} GB)" if rc == 137 else ""
        raise SystemExit(f"RuntimeError: calibration process exited with status {rc}{why}")
    with open(weights + ".json", encoding="utf-8") as f:
        cal = json.load(f)
    n_bn, k = cal["batchnorm_calibrated"], cal["classifier_scale"]

    keras = setup_tf(threads)
    model, output = build(arch, keras)
    model.load_weights(weights)
    os.remove(weights)
    os.remove(weights + ".json")
    _, height, width, _ = model.input_shape
    n_params = int(model.count_params())
    print(f"[keras/{arch}] built {n_params / 1e6:.1f}M params, {n_bn} BatchNorm calibrated, "
          f"classifier scaled by {k} in {time.time() - t0:.1f}s, input {width}x{height}, "
          f"output {output}", flush=True)

    png = os.path.join(arch_dir, "input.png")
    pixels = common.make_input_png(png, width, height)
    x_np = common.reference_tensor(pixels, channels, scale, mean, std, "nhwc")
    np.save(os.path.join(arch_dir, "input.npy"), x_np)
    keras_y = np.asarray(model(x_np, training=False))
    release_memory()
    print(f"[keras/{arch}] keras output std {keras_y.std():.3f} "
          f"range [{keras_y.min():.2f}, {keras_y.max():.2f}]", flush=True)

    entries = []
    for exporter in EXPORTERS:
        if exporter == "tf2onnx-constfix":
            if not entries or not entries[0].get("extra_inputs"):
                # only when the plain export had the Normalization inputs
                shutil.rmtree(os.path.join(arch_dir, exporter), ignore_errors=True)
                continue
            constfix_normalization(model, keras)
        entries.append(export_and_check(model, arch, exporter, out, arch_dir, x_np, keras_y,
                                        base_entry(arch, prep, has_gap, note, width, height),
                                        output=output, n_params=n_params,
                                        batchnorm_calibrated=n_bn, classifier_scale=k))
    return entries


def constfix_normalization(model, keras):
    """Workaround for model.export(format="onnx") with keras' Normalization
    layer (EfficientNet's built-in preprocessing): its mean and variance are
    eager tensors made in build()/finalize_state(), the traced function
    captures them from outside, and tf2onnx turns such captures into extra
    graph inputs. As numpy arrays they are traced as constants instead."""
    import numpy as np

    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.Normalization) and layer.mean is not None:
            layer.mean = np.asarray(layer.mean)
            layer.variance = np.asarray(layer.variance)


def export_and_check(model, arch, exporter, out, arch_dir, x_np, keras_y, entry, **fields):
    edir = os.path.join(arch_dir, exporter)
    shutil.rmtree(edir, ignore_errors=True)
    os.makedirs(edir)
    path = os.path.join(edir, "model.onnx")
    entry.update(exporter=exporter, **fields)
    if exporter == "tf2onnx-constfix":
        entry["workaround"] = ("Normalization layers' mean/variance replaced by numpy arrays "
                               "before model.export, so they are traced as constants")
    t1 = time.time()
    try:
        model.export(path, format="onnx")
        entry["export_seconds"] = round(time.time() - t1, 2)
    except Exception as exc:  # noqa: BLE001 - record and go on
        entry["export_seconds"] = round(time.time() - t1, 2)
        entry["export_error"] = common.one_line(exc)
        print(f"[keras/{arch}/{exporter}] EXPORT FAILED: {entry['export_error']}", flush=True)
        shutil.rmtree(edir, ignore_errors=True)
        return entry
    # The file is kept even when it turns out unusable below (model is set):
    # it is what a user of model.export gets, and a tool should refuse it cleanly.
    entry["model"] = os.path.relpath(path, out)
    entry.update(common.describe_onnx(path))
    entry["onnx_bytes"] = common.onnx_bytes(path)
    extra = common.graph_inputs(path)[1:]
    if extra:
        entry["extra_inputs"] = extra
        entry["export_error"] = (f"exported graph has {len(extra) + 1} inputs: keras Normalization "
                                 f"mean/variance became graph inputs ({', '.join(extra)})")
        print(f"[keras/{arch}/{exporter}] UNUSABLE: {entry['export_error']}", flush=True)
        return entry
    try:
        entry.update(common.ort_reference(path, x_np, entry["output"], keras_y, edir))
    except Exception as exc:  # noqa: BLE001
        entry["ort_error"] = common.one_line(exc)
        entry["export_error"] = "exported file does not load/run in onnxruntime: " + entry["ort_error"]
        print(f"[keras/{arch}/{exporter}] ORT FAILED: {entry['ort_error']}", flush=True)
        return entry
    print(f"[keras/{arch}/{exporter}] exported in {entry['export_seconds']}s, ort output std "
          f"{entry.get('logit_std')}, spread {entry.get('ort_spread')}, keras vs ort "
          f"{entry.get('framework_vs_ort')}", flush=True)
    return entry


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(common.REPO, "target", "coverage"))
    ap.add_argument("--only", default="", help="comma-separated arch names, e.g. ResNet50,VGG16")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per architecture")
    ap.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads in each worker")
    ap.add_argument("--max-memory-gb", type=float, default=14,
                    help="kill a worker whose resident memory exceeds this; 0 for no limit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--calibrate", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")

    if args.max_memory_gb and (args.worker or args.calibrate):
        watch_own_memory(args.max_memory_gb)
    if args.calibrate:
        calibrate(args.calibrate, args.weights, args.threads)
        return
    if args.worker:
        entries = worker(args.worker.split("/", 1)[1], out, args.threads, args.max_memory_gb)
        with open(args.result, "w", encoding="utf-8") as f:
            json.dump(entries, f)
        return

    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    todo = [m for m in MODELS if not wanted or m[0] in wanted or f"keras/{m[0]}" in wanted]
    if wanted and not todo:
        # Not an error: export.sh passes the same --only to both scripts.
        print(f"{os.path.basename(__file__)}: --only matched none of its models: {sorted(wanted)}",
              file=sys.stderr)
        return
    specs = {m[0]: m for m in MODELS}

    def failed_entry(family, arch, exporter, reason):
        _, prep, has_gap, note = specs[arch]
        e = base_entry(arch, prep, has_gap, note, None, None)
        e["export_error"] = reason
        return e

    common.drive(__file__, out, [("keras", m[0]) for m in todo], ("tf2onnx",), failed_entry,
                 ("keras",), wanted, args.timeout,
                 ["--threads", str(args.threads)], max_rss_gb=args.max_memory_gb,
                 label="keras side")


if __name__ == "__main__":
    main()
