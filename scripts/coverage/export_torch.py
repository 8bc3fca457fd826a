#!/usr/bin/env python3
"""Exporter coverage sweep, PyTorch side: torchvision and timm classifiers with
random weights, each exported with both torch.onnx exporters, plus
onnxruntime reference outputs on a fixed input.

Run in the coverage-torch venv (scripts/coverage/setup.sh), normally through
scripts/coverage/export.sh:

    target/venvs/coverage-torch/bin/python scripts/coverage/export_torch.py \
        [--out target/coverage] [--only resnet18,timm/dla34] [--timeout 900]

For every architecture, in a child process of its own (so that a crash, a hang
or a memory blow-up costs one architecture, not the sweep):

  1. build it with random weights (torch.manual_seed from the arch name);
  2. calibrate BatchNorm from data: every BatchNorm gets momentum=None
     (cumulative average) and reset_running_stats(), then a few no_grad
     forward passes over the repository's sample images (natural, pasted,
     chest X-ray; resized + centre-cropped, ImageNet-normalised, plus flips)
     with the BatchNorm layers in train mode, then eval(). Only the BatchNorm
     layers are put in train mode: dropout and stochastic depth stay off, so
     the statistics are those of the network that is exported. Then the
     final layer is scaled so that the logits' std across classes is 2 on
     the sample images (scale_classifier), a trained classifier's scale;
  3. write <arch>/input.png (centre crop of chelsea.png at the input size) and
     <arch>/input.npy = ((png / 255) - mean) / std in float32, NCHW, batch 1;
  4. export with dynamo=True (the default exporter; weights go to
     model.onnx.data as it writes by default) and with dynamo=False
     (TorchScript, opset 17, input "input", output "logits"), batch 1, static;
  5. run onnxruntime (CPU, 1 thread) at ORT_ENABLE_ALL and ORT_DISABLE_ALL,
     save ort_logits.npy (ENABLE_ALL) and record the softmax spread between
     the two and the max abs logit difference against PyTorch.

Results go to $OUT/<family>/<arch>/<exporter>/ and $OUT/manifest.json (only
the torchvision/timm entries are replaced; keras ones are kept). A failed
export is recorded with a one-line reason; the sweep goes on.
"""
import argparse
import json
import os
import shutil
import sys
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

# (family, arch, has_gap expected, constructor kwargs, note). The note says what
# is unusual about the head for class activation maps.
MODELS = [
    # ---- torchvision 0.29 ----
    ("torchvision", "resnet18", True, {}, None),
    ("torchvision", "resnet50", True, {}, None),
    ("torchvision", "resnext50_32x4d", True, {}, None),
    ("torchvision", "wide_resnet50_2", True, {}, None),
    ("torchvision", "densenet121", True, {}, None),
    ("torchvision", "efficientnet_b0", True, {}, "SE blocks: GAPs inside the body too"),
    ("torchvision", "efficientnet_v2_s", True, {}, "SE blocks: GAPs inside the body too"),
    ("torchvision", "mobilenet_v2", True, {}, None),
    ("torchvision", "mobilenet_v3_small", True, {}, "head after GAP: Linear-Hardswish-Linear (not linear)"),
    ("torchvision", "mobilenet_v3_large", True, {}, "head after GAP: Linear-Hardswish-Linear (not linear)"),
    ("torchvision", "regnet_y_400mf", True, {}, "SE blocks: GAPs inside the body too"),
    ("torchvision", "regnet_x_400mf", True, {}, None),
    ("torchvision", "convnext_tiny", True, {}, "head after GAP: LayerNorm2d then Linear"),
    ("torchvision", "googlenet", True, {"aux_logits": False, "init_weights": True}, None),
    ("torchvision", "inception_v3", True, {"aux_logits": False, "init_weights": True}, "input 299"),
    ("torchvision", "squeezenet1_1", True, {}, "classifier is conv1x1+ReLU before the GAP; GAP is the last op"),
    ("torchvision", "shufflenet_v2_x1_0", True, {}, "pooling is x.mean([2, 3])"),
    ("torchvision", "mnasnet1_0", True, {}, "pooling is x.mean([2, 3])"),
    ("torchvision", "vgg16", False, {}, "no GAP: AdaptiveAvgPool2d(7) + flatten + MLP; must be refused"),
    ("torchvision", "vit_b_16", False, {}, "no GAP: class token; must be refused"),
    ("torchvision", "swin_t", True, {}, "NHWC body, permute to NCHW before the pool"),
    ("torchvision", "maxvit_t", True, {}, "head after GAP: LayerNorm-Linear-Tanh-Linear (not linear)"),
    # ---- timm 1.0.31 (input size from pretrained_cfg) ----
    ("timm", "convnext_nano", True, {}, "head after GAP: LayerNorm then Linear"),
    ("timm", "ghostnet_100", True, {}, "head after GAP: conv1x1+ReLU then Linear (not linear)"),
    ("timm", "nf_resnet50", True, {}, "no BatchNorm (scaled weight standardisation)"),
    ("timm", "tf_efficientnetv2_b0", True, {}, "TF 'same' padding"),
    ("timm", "resnet50d", True, {}, None),
    ("timm", "efficientnet_b0", True, {}, None),
    ("timm", "mobilenetv3_large_100", True, {}, "head after GAP: conv1x1+Hardswish then Linear (not linear)"),
    ("timm", "mobilenetv4_conv_small", True, {}, "head after GAP: conv1x1+BN+ReLU then Linear (not linear)"),
    ("timm", "lcnet_050", True, {}, "head after GAP: conv1x1+Hardswish then Linear (not linear)"),
    ("timm", "regnety_008", True, {}, None),
    ("timm", "rexnet_100", True, {}, None),
    ("timm", "densenet121", True, {}, None),
    ("timm", "cspresnet50", True, {}, None),
    ("timm", "dla34", True, {}, "classifier is a 1x1 conv after the GAP"),
    ("timm", "hrnet_w18_small", True, {}, None),
    ("timm", "mixnet_s", True, {}, None),
    ("timm", "resnest14d", True, {}, "split attention: many GAPs inside the body"),
    ("timm", "res2net50_26w_4s", True, {}, None),
    ("timm", "dpn68", True, {}, "classifier is a 1x1 conv after the GAP"),
    ("timm", "ese_vovnet19b_dw", True, {}, "eSE blocks: GAPs inside the body"),
    ("timm", "repvgg_a0", True, {}, "train-time multi-branch blocks (not reparameterised)"),
    ("timm", "mobileone_s0", True, {}, "train-time multi-branch blocks (not reparameterised)"),
    ("timm", "fastvit_t8", True, {}, "head: conv_exp then GAP + Linear"),
    ("timm", "efficientvit_b0", True, {}, "head after GAP: Linear-LayerNorm-Hardswish-Linear (not linear)"),
    ("timm", "edgenext_xx_small", True, {}, "head after GAP: LayerNorm then Linear"),
    ("timm", "mobilevit_xxs", True, {}, None),
    ("timm", "inception_v4", True, {}, "input 299"),
    ("timm", "xception41", True, {}, "input 299"),
    ("timm", "levit_128", False, {}, "token mean over a (B, N, C) sequence, BN+Linear heads; no NCHW map"),
    ("timm", "deit_tiny_patch16_224", False, {}, "no GAP: class token; must be refused"),
]

EXPORTERS = ("dynamo", "torchscript")
MEAN = list(common.IMAGENET_MEAN)
LOGIT_STD = 2.0  # target logit scale, see scale_classifier
STD = list(common.IMAGENET_STD)


def key(family, arch):
    return f"{family}/{arch}"


# --------------------------------------------------------------------------
# worker: one architecture, in its own process
# --------------------------------------------------------------------------


def build(family, arch, kwargs):
    import torch

    torch.manual_seed(zlib.crc32(key(family, arch).encode()))
    if family == "torchvision":
        import torchvision

        model = torchvision.models.get_model(arch, weights=None, **kwargs)
        size = (299, 299) if arch == "inception_v3" else (224, 224)
    else:
        import timm

        model = timm.create_model(arch, pretrained=False, **kwargs)
        _, h, w = model.pretrained_cfg["input_size"]
        size = (w, h)
    return model, size


def calibration_tensor(width, height):
    """The calibration images (with flips) as a float32 NCHW tensor,
    ImageNet-normalised, shuffled so that every batch mixes natural, pasted
    and X-ray images."""
    import numpy as np
    import torch

    imgs = common.calibration_images(width, height)  # N H W 3 uint8, with flips
    x = imgs.astype(np.float32) / np.float32(255)
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    return x[perm]


def calibrate_batchnorm(model, x, batch=32):
    """Set BatchNorm running statistics from the calibration tensor x (see the
    module docstring). Returns the number of BatchNorm modules calibrated."""
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    if not bns:
        return 0
    for m in bns:
        m.momentum = None  # cumulative moving average over all batches
        m.reset_running_stats()
        m.train()
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            chunk = x[i : i + batch]
            if chunk.shape[0] < 2:
                break
            model(chunk)
    model.eval()
    return len(bns)


def final_layers(model, family):
    """The layer(s) whose output is the logits: the last Linear/Conv2d of
    timm's get_classifier() (both heads for distilled models), else the last
    Linear/Conv2d registered in the model (torchvision registers its
    classifier last)."""
    import torch

    kinds = (torch.nn.Linear, torch.nn.Conv2d)
    heads = []
    if family == "timm":
        heads = model.get_classifier()
        heads = list(heads) if isinstance(heads, (tuple, list)) else [heads]
    if not heads:
        heads = [model]
    found = []
    for h in heads:
        last = [m for m in h.modules() if isinstance(m, kinds)]
        if last:
            found.append(last[-1])
    return found


def scale_classifier(model, family, x, target=LOGIT_STD):
    """Scale the final layer's weight and bias so that the logits' standard
    deviation across classes, averaged over the images x, is `target`: a
    trained ImageNet classifier's scale. Random init of the last layer alone
    leaves it anywhere between 0.005 and 1.5, i.e. a near-uniform softmax.
    Logits are linear in the last layer, so this scales them exactly."""
    import torch

    layers = final_layers(model, family)
    if not layers:
        return None
    with torch.no_grad():
        y = model(x)
        if isinstance(y, (tuple, list)):
            y = y[0]
        std = float(y.std(dim=1).mean())
        if not std > 0:
            return None
        k = target / std
        for m in layers:
            m.weight.mul_(k)
            if m.bias is not None:
                m.bias.mul_(k)
    return k


def export_one(model, x, path, exporter):
    import torch

    if exporter == "dynamo":
        torch.onnx.export(model, (x,), path, dynamo=True)
    else:
        torch.onnx.export(
            model,
            (x,),
            path,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
        )


def worker(family, arch, out, threads):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    spec = next(m for m in MODELS if m[0] == family and m[1] == arch)
    _, _, has_gap, kwargs, note = spec
    arch_dir = os.path.join(out, family, arch)
    os.makedirs(arch_dir, exist_ok=True)

    t0 = time.time()
    model, (width, height) = build(family, arch, kwargs)
    n_params = sum(p.numel() for p in model.parameters())
    # Some constructors zero-initialise the classifier (torchvision's ViT head):
    # with random weights every logit would then be 0. Give such Linear layers
    # PyTorch's default random init instead.
    reinit = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and not m.weight.detach().any():
            m.reset_parameters()
            reinit.append(name)
    if reinit:
        print(f"[{key(family, arch)}] zero-initialised Linear re-initialised: {reinit}", flush=True)
    x_cal = calibration_tensor(width, height)
    n_bn = calibrate_batchnorm(model, x_cal)
    k = scale_classifier(model, family, x_cal[:32])
    calib_s = time.time() - t0
    print(f"[{key(family, arch)}] built {n_params / 1e6:.1f}M params, {n_bn} BatchNorm "
          f"calibrated, classifier scaled by {k} in {calib_s:.1f}s, input {width}x{height}",
          flush=True)

    png = os.path.join(arch_dir, "input.png")
    pixels = common.make_input_png(png, width, height)
    x_np = common.reference_tensor(pixels, "rgb", "unit", MEAN, STD, "nchw")
    np.save(os.path.join(arch_dir, "input.npy"), x_np)
    x = torch.from_numpy(x_np)
    with torch.no_grad():
        torch_y = model(x)
    if isinstance(torch_y, (tuple, list)):
        torch_y = torch_y[0]
    torch_y = torch_y.detach().numpy()
    print(f"[{key(family, arch)}] torch logits std {torch_y.std():.3f} "
          f"range [{torch_y.min():.2f}, {torch_y.max():.2f}]", flush=True)

    entries = []
    for exporter in EXPORTERS:
        edir = os.path.join(arch_dir, exporter)
        shutil.rmtree(edir, ignore_errors=True)
        os.makedirs(edir)
        path = os.path.join(edir, "model.onnx")
        entry = base_entry(family, arch, exporter, has_gap, note, width, height)
        entry.update(n_params=n_params, batchnorm_calibrated=n_bn, classifier_scale=k)
        if reinit:
            entry["reinitialised"] = reinit
        t1 = time.time()
        try:
            export_one(model, x, path, exporter)
            entry["export_seconds"] = round(time.time() - t1, 2)
        except Exception as exc:  # noqa: BLE001 - record and go on
            entry["export_seconds"] = round(time.time() - t1, 2)
            entry["export_error"] = common.one_line(exc)
            print(f"[{key(family, arch)}/{exporter}] EXPORT FAILED: {entry['export_error']}", flush=True)
            shutil.rmtree(edir, ignore_errors=True)
            entries.append(entry)
            continue
        entry["model"] = os.path.relpath(path, out)
        entry.update(common.describe_onnx(path))
        entry["onnx_bytes"] = common.onnx_bytes(path)
        try:
            entry.update(common.ort_reference(path, x_np, "logits", torch_y, edir))
        except Exception as exc:  # noqa: BLE001
            entry["ort_error"] = common.one_line(exc)
            entry["export_error"] = "exported file does not load/run in onnxruntime: " + entry["ort_error"]
            print(f"[{key(family, arch)}/{exporter}] ORT FAILED: {entry['ort_error']}", flush=True)
        print(f"[{key(family, arch)}/{exporter}] exported in {entry['export_seconds']}s, "
              f"ort logit std {entry.get('logit_std')}, spread {entry.get('ort_spread')}, "
              f"torch vs ort {entry.get('framework_vs_ort')}", flush=True)
        entries.append(entry)
    return entries


def base_entry(family, arch, exporter, has_gap, note, width, height):
    arch_rel = os.path.join(family, arch)
    return {
        "family": family,
        "arch": arch,
        "exporter": exporter,
        "model": None,
        "input_png": os.path.join(arch_rel, "input.png") if width else None,
        "input_npy": os.path.join(arch_rel, "input.npy") if width else None,
        "layout": "nchw",
        "input_size": [width, height] if width else None,
        "channels": "rgb",
        "scale": "unit",
        "mean": MEAN,
        "std": STD,
        "output": "logits",
        "export_error": None,
        "ort_spread": None,
        "framework_vs_ort": None,
        "has_gap": has_gap,
        "export_seconds": None,
        "note": note,
    }


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(common.REPO, "target", "coverage"))
    ap.add_argument("--only", default="", help="comma-separated arch or family/arch names")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per architecture")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in each worker")
    ap.add_argument("--max-memory-gb", type=float, default=14,
                    help="kill a worker whose resident memory exceeds this; 0 for no limit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = os.path.abspath(args.out)

    if args.worker:
        family, arch = args.worker.split("/", 1)
        entries = worker(family, arch, out, args.threads)
        with open(args.result, "w", encoding="utf-8") as f:
            json.dump(entries, f)
        return

    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    todo = [m for m in MODELS if not wanted or m[1] in wanted or key(m[0], m[1]) in wanted]
    if wanted and not todo:
        # Not an error: export.sh passes the same --only to both scripts.
        print(f"{os.path.basename(__file__)}: --only matched none of its models: {sorted(wanted)}",
              file=sys.stderr)
        return
    specs = {key(m[0], m[1]): m for m in MODELS}

    def failed_entry(family, arch, exporter, reason):
        _, _, has_gap, _, note = specs[key(family, arch)]
        e = base_entry(family, arch, exporter, has_gap, note, None, None)
        e["export_error"] = reason
        return e

    common.drive(__file__, out, [(m[0], m[1]) for m in todo], EXPORTERS, failed_entry,
                 ("torchvision", "timm"), wanted, args.timeout,
                 ["--threads", str(args.threads)], label="torch side",
                 max_rss_gb=args.max_memory_gb)


if __name__ == "__main__":
    main()
