"""Helpers shared by export_torch.py and export_keras.py (exporter coverage sweep).

Only numpy, Pillow and onnxruntime: both coverage venvs have them.

  * reference input: make_input_png() writes the fixed RGB PNG at the model's
    input size (centre crop of data/samples/natural/chelsea.png, resized with
    Pillow); reference_tensor() turns that PNG into the float32 tensor that
    the ONNX model is fed, as a pure function of its pixels and the
    (channels, scale, mean, std, layout) recorded in the manifest;
  * calibration images: calibration_images() loads the repository's sample
    images (natural, pasted, chest X-ray), resized and centre-cropped, plus
    their horizontal flips, as uint8 RGB arrays;
  * onnxruntime reference outputs: run_ort() at ORT_ENABLE_ALL and
    ORT_DISABLE_ALL, CPU, one thread;
  * the manifest: merge_manifest() rewrites $OUT/manifest.json, replacing
    only the entries the calling script owns.
"""
import glob
import json
import math
import os
import re
import tempfile

import numpy as np
from PIL import Image

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REFERENCE_IMAGE = os.path.join(REPO, "data", "samples", "natural", "chelsea.png")
CALIBRATION_GLOBS = (
    "data/samples/natural/*.png",
    "data/samples/natural/*.jpg",
    "data/pasted/images/*.jpg",
    "data/samples/chest-xray/*.jpeg",
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def centre_crop_resize(img, width, height, crop_fraction=1.0):
    """Largest centred crop of img with the aspect ratio width:height (times
    crop_fraction), resized to exactly width x height with Pillow's bicubic."""
    img = img.convert("RGB")
    w, h = img.size
    target = width / height
    if w / h > target:
        cw, ch = h * target, h
    else:
        cw, ch = w, w / target
    cw, ch = cw * crop_fraction, ch * crop_fraction
    left, top = (w - cw) / 2, (h - ch) / 2
    box = tuple(int(round(v)) for v in (left, top, left + cw, top + ch))
    return img.resize((width, height), Image.Resampling.BICUBIC, box=box)


def make_input_png(path, width, height):
    """Write the reference PNG (RGB, exactly width x height) and return its
    pixels as read back from the file (uint8 HWC)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    centre_crop_resize(Image.open(REFERENCE_IMAGE), width, height).save(path, format="PNG")
    return load_png(path)


def load_png(path):
    img = Image.open(path)
    if img.mode != "RGB":
        raise ValueError(f"{path}: expected an RGB PNG, got mode {img.mode}")
    return np.asarray(img, dtype=np.uint8)


def reference_tensor(pixels, channels, scale, mean, std, layout):
    """float32 batch-1 tensor from uint8 HWC RGB pixels:
    channels "bgr" reverses the channel order first; scale "unit" divides by
    255 ("byte" keeps 0..255); then (x - mean) / std per channel, all in float32;
    layout "nchw" or "nhwc"."""
    x = pixels.astype(np.float32)
    if channels == "bgr":
        x = x[:, :, ::-1]
    elif channels != "rgb":
        raise ValueError(channels)
    if scale == "unit":
        x = x / np.float32(255)
    elif scale != "byte":
        raise ValueError(scale)
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    if layout == "nchw":
        x = x.transpose(2, 0, 1)
    elif layout != "nhwc":
        raise ValueError(layout)
    return np.ascontiguousarray(x[None], dtype=np.float32)


def calibration_images(width, height, flips=True):
    """uint8 N x H x W x 3 RGB: every calibration image, resized so that a
    centred crop of 87.5 % fills width x height (the usual eval transform),
    followed by the horizontal flips when flips is true."""
    paths = sorted(p for g in CALIBRATION_GLOBS for p in glob.glob(os.path.join(REPO, g)))
    if not paths:
        raise SystemExit("no calibration images found under data/")
    imgs = [np.asarray(centre_crop_resize(Image.open(p), width, height, 0.875)) for p in paths]
    out = np.stack(imgs)
    if flips:
        out = np.concatenate([out, out[:, :, ::-1]])
    return out


def softmax(z):
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    e = np.exp(z - z.max())
    return e / e.sum()


def run_ort(model_path, x, level):
    """First output of the model at graph optimisation level "all" or "none"
    (CPU, one thread), as float32."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[level]
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"expected one graph input, found {len(inputs)}")
    return np.asarray(sess.run(None, {inputs[0].name: x})[0], dtype=np.float32)


def probabilities(y, output):
    return softmax(y) if output == "logits" else np.asarray(y, dtype=np.float64).reshape(-1)


def ort_reference(model_path, x, output, framework_y, out_dir):
    """Run ORT at both levels; save ort_logits.npy (ENABLE_ALL) in out_dir.
    Returns the manifest fields and a short report line."""
    y_all = run_ort(model_path, x, "all")
    y_none = run_ort(model_path, x, "none")
    np.save(os.path.join(out_dir, "ort_logits.npy"), y_all)
    finite = bool(np.isfinite(y_all).all() and np.isfinite(y_none).all())
    spread = float(np.abs(probabilities(y_all, output) - probabilities(y_none, output)).max())
    fw = None
    if framework_y is not None:
        fy = np.asarray(framework_y, dtype=np.float32).reshape(y_all.shape)
        fw = float(np.abs(fy - y_all).max())
    fields = {
        "ort_spread": finite_or_none(spread),
        "framework_vs_ort": finite_or_none(fw),
        "ort_finite": finite,
        "output_shape": list(y_all.shape),
        "logit_std": finite_or_none(float(y_all.std())),
        "top1": int(np.argmax(y_all)),
    }
    return fields


def finite_or_none(v):
    if v is None or not math.isfinite(v):
        return None
    return v


def onnx_bytes(model_path):
    total = 0
    folder = os.path.dirname(model_path)
    base = os.path.basename(model_path)
    for name in os.listdir(folder):
        if name == base or name.startswith(base + "."):
            total += os.path.getsize(os.path.join(folder, name))
    return total


def one_line(exc):
    """One-line reason for an exception: type and the first non-empty line."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    msg = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return msg[:400]


def entry_key(e):
    return (e["family"], e["arch"], e["exporter"])


def merge_manifest(out, entries, owns):
    """Rewrite out/manifest.json: keep the existing entries for which
    owns(entry) is false, add `entries` (replacing same family/arch/exporter)."""
    import fcntl

    path = os.path.join(out, "manifest.json")
    # Lock so that the torch and keras scripts may run at the same time.
    with open(os.path.join(out, ".manifest.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _merge_locked(path, out, entries, owns)


def _merge_locked(path, out, entries, owns):
    old = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
    new_keys = {entry_key(e) for e in entries}
    kept = [e for e in old if not owns(e) and entry_key(e) not in new_keys]
    merged = kept + list(entries)
    order = {"torchvision": 0, "timm": 1, "keras": 2}
    merged.sort(key=lambda e: (order.get(e["family"], 9), e["arch"].lower(), e["exporter"]))
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".manifest.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(merged, f, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------
# driver: one child process per architecture
# --------------------------------------------------------------------------


def rss_bytes(pid):
    """Resident memory of a process, from /proc (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_watched(cmd, log, timeout, max_rss_gb):
    """Run cmd with stdout/stderr to log; kill it past `timeout` seconds or
    when its resident memory exceeds max_rss_gb (0: no limit), so that a
    runaway conversion fails alone instead of waking the OOM killer.
    Returns None on success, else a one-line reason."""
    import subprocess
    import time

    limit = int(max_rss_gb * (1 << 30)) if max_rss_gb else 0
    with open(log, "w", encoding="utf-8") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
        t0 = time.time()
        peak = 0
        while True:
            rc = proc.poll()
            if rc is not None:
                return None if rc == 0 else f"worker exited with status {rc}"
            rss = rss_bytes(proc.pid)
            peak = max(peak, rss)
            if limit and rss > limit:
                proc.kill()
                proc.wait()
                return f"killed: memory above {max_rss_gb:g} GB (resident)"
            if time.time() - t0 > timeout:
                proc.kill()
                proc.wait()
                return f"timed out after {timeout:.0f}s (calibration + exports)"
            time.sleep(0.5)


def drive(script, out, todo, exporters, failed_entry, owned_families, wanted,
          timeout, worker_args=(), label="sweep", max_rss_gb=0):
    """Run `script --worker FAMILY/ARCH --result FILE --out OUT [worker_args]`
    once per (family, arch) in todo, each in its own process with a timeout,
    and merge what they return into out/manifest.json after every one.
    failed_entry(family, arch, exporter, reason) makes the entry of an
    architecture whose worker crashed or timed out. With an empty `wanted`
    every existing entry of owned_families is replaced; otherwise only
    those of the architectures run."""
    import sys
    import time

    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    all_entries = []
    t_start = time.time()
    for family, arch in todo:
        k = f"{family}/{arch}"
        log = os.path.join(out, "logs", f"{family}-{arch}.log")
        result = os.path.join(out, "logs", f".{family}-{arch}.json")
        if os.path.exists(result):
            os.remove(result)
        cmd = [sys.executable, os.path.abspath(script), "--out", out,
               "--worker", k, "--result", result, *worker_args]
        t0 = time.time()
        reason = run_watched(cmd, log, timeout, max_rss_gb)
        if reason and reason.startswith("worker exited"):
            reason += f" (see logs/{family}-{arch}.log)"
        if reason is None and os.path.exists(result):
            with open(result, encoding="utf-8") as f:
                entries = json.load(f)
            os.remove(result)
        else:
            reason = reason or "worker wrote no result"
            if reason.startswith("worker"):
                # Add the Python exception the worker died of, if any.
                with open(log, encoding="utf-8", errors="replace") as f:
                    lines = [ln.strip() for ln in f if ln.strip()]
                errs = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b", ln)]
                if errs:
                    reason += ": " + errs[-1][:300]
            entries = [failed_entry(family, arch, ex, reason) for ex in exporters]
        all_entries.extend(entries)
        print(f"{k:40s} {time.time() - t0:6.1f}s  " + "; ".join(map(status_line, entries)),
              flush=True)
        done = {(e["family"], e["arch"]) for e in all_entries}
        merge_manifest(out, all_entries,
                       lambda e: (not wanted and e["family"] in owned_families)
                       or (e["family"], e["arch"]) in done)
    ok = sum(1 for e in all_entries if not e["export_error"])
    print(f"{label}: {ok}/{len(all_entries)} exports ok in {time.time() - t_start:.0f}s; "
          f"manifest {os.path.join(out, 'manifest.json')}", flush=True)
    return all_entries


def status_line(e):
    s = f"{e['exporter']}: "
    if e["export_error"]:
        return s + "FAILED " + e["export_error"][:120]
    s += "ok"
    if e.get("logit_std") is not None:
        s += f" std {e['logit_std']:.3f} spread {e['ort_spread']:.1e}"
        if e.get("framework_vs_ort") is not None:
            s += f" vs-fw {e['framework_vs_ort']:.1e}"
    elif e.get("ort_error"):
        s += " ORT FAILED " + e["ort_error"][:100]
    return s


def describe_onnx(path):
    """opset, whether weights are external, graph input/output names and the
    input shape (None for a symbolic dimension) of an ONNX file."""
    import onnx

    m = onnx.load(path, load_external_data=False)
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    inits = {t.name for t in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    shape = None
    if inputs:
        dims = inputs[0].type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return {
        "opset": opset,
        "external_data": external,
        "input_name": inputs[0].name if inputs else None,
        "input_shape": shape,
        "output_name": m.graph.output[0].name if m.graph.output else None,
    }


def graph_inputs(path):
    """Names of the graph inputs that are not initializers."""
    import onnx

    m = onnx.load(path, load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    return [i.name for i in m.graph.input if i.name not in inits]
