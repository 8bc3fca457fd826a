#!/usr/bin/env python3
"""Train the small phantom CNN (CPU) and export it to ONNX for cambox.

Network: 6 x (3x3 conv, BatchNorm, ReLU), total stride 8 (224 -> 28x28 feature
map, 64 channels), then GlobalAveragePool -> Flatten -> Linear(64, 2), so that
CAM_c = W[c] . F is exact.  Classes: 0 "none", 1 "lesion" (image has >= 1 opacity).

Preprocessing (training, validation, ONNX checks and the test set alike):
256x256 8-bit grey -> Pillow resize to 224x224 BILINEAR -> x / 255 -> (x - 0.5) / 0.25.

Training/validation phantoms come from generate.py with the 6 training sources
only, made in memory (nothing is written except the model, classes and log).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as gen  # noqa: E402

INPUT = 224
MEAN, STD = 0.5, 0.25


def preprocess_u8(pixels: np.ndarray) -> np.ndarray:
    """(256,256) uint8 -> (224,224) uint8 via Pillow BILINEAR (the reference resize)."""
    return np.asarray(Image.fromarray(pixels, mode="L").resize((INPUT, INPUT), Image.BILINEAR))


def to_tensor(u8: np.ndarray) -> torch.Tensor:
    """(N,224,224) uint8 -> (N,1,224,224) float, normalised."""
    x = torch.from_numpy(u8.astype(np.float32) / 255.0)
    return ((x - MEAN) / STD).unsqueeze(1)


def block(cin, cout, stride=1, dilation=1):
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class PhantomCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *block(1, 16, stride=2),      # 112
            *block(16, 32, stride=2),     # 56
            *block(32, 32),
            *block(32, 64, stride=2),     # 28
            *block(64, 64),
            *block(64, 64, dilation=2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)   # -> GlobalAveragePool
        self.flatten = nn.Flatten()           # -> Flatten
        self.fc = nn.Linear(64, 2)            # -> Gemm

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


def make_set(sources, seed, count, log):
    t = time.time()
    xs = np.empty((count, INPUT, INPUT), dtype=np.uint8)
    ys = np.empty(count, dtype=np.int64)
    nbox = np.zeros(3, dtype=int)
    for i, ph in gen.generate(sources, seed, count):
        xs[i] = preprocess_u8(ph.pixels)
        ys[i] = 1 if ph.boxes else 0
        nbox[len(ph.boxes)] += 1
    log(f"generated {count} phantoms (seed {seed}) in {time.time() - t:.1f}s; "
        f"0/1/2 opacities: {nbox[0]}/{nbox[1]}/{nbox[2]}")
    return xs, ys


@torch.no_grad()
def evaluate(model, xs, ys, bs=100):
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(xs), bs):
        x = to_tensor(xs[i:i + bs])
        y = torch.from_numpy(ys[i:i + bs])
        out = model(x)
        loss += F.cross_entropy(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
    return loss / len(xs), correct / len(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="data/samples/chest-xray")
    ap.add_argument("--out-dir", default="data/models")
    ap.add_argument("--train-count", type=int, default=4000)
    ap.add_argument("--val-count", type=int, default=600)
    ap.add_argument("--train-seed", type=int, default=2001)
    ap.add_argument("--val-seed", type=int, default=3001)
    ap.add_argument("--torch-seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    os.makedirs(args.out_dir, exist_ok=True)
    log_path = os.path.join(args.out_dir, "phantom-cnn.train.log")
    logf = open(log_path, "w")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")
        logf.flush()

    t0 = time.time()
    torch.manual_seed(args.torch_seed)
    torch.set_num_threads(args.threads)
    import onnx
    import onnxruntime as ort
    import PIL
    import scipy
    log(f"phantom-cnn training  {time.strftime('%Y-%m-%d %H:%M:%S')}")
    log(f"versions: python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"pillow {PIL.__version__}, scipy {scipy.__version__}, onnx {onnx.__version__}, "
        f"onnxruntime {ort.__version__}")
    log(f"args: {vars(args)}")
    log(f"seeds: train phantoms {args.train_seed}, val phantoms {args.val_seed}, torch {args.torch_seed} "
        f"(shuffle/flip generator torch.Generator seeded {args.torch_seed + 1})")
    log(f"train/val sources: {', '.join(gen.TRAIN_SOURCES)}")
    log(f"torch threads: {torch.get_num_threads()}")

    sources = gen.load_sources(args.src, gen.TRAIN_SOURCES)
    xtr, ytr = make_set(sources, args.train_seed, args.train_count, log)
    xva, yva = make_set(sources, args.val_seed, args.val_count, log)

    model = PhantomCNN()
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model: {nparams} parameters\n{model}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = (len(xtr) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch,
                                                pct_start=0.15)
    g = torch.Generator().manual_seed(args.torch_seed + 1)
    best = None
    for epoch in range(1, args.epochs + 1):
        te = time.time()
        model.train()
        perm = torch.randperm(len(xtr), generator=g).numpy()
        tot, correct, n = 0.0, 0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            x = to_tensor(xtr[idx])
            flip = torch.rand(len(idx), generator=g) < 0.5
            x[flip] = x[flip].flip(-1)
            y = torch.from_numpy(ytr[idx])
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
            n += len(idx)
        vl, va = evaluate(model, xva, yva)
        log(f"epoch {epoch:2d}  train loss {tot / n:.4f} acc {correct / n:.4f}  "
            f"val loss {vl:.4f} acc {va:.4f}  lr {sched.get_last_lr()[0]:.2e}  {time.time() - te:.0f}s")
    # keep the last epoch (no selection on the validation set)
    vl, va = evaluate(model, xva, yva)
    log(f"final val loss {vl:.4f} acc {va:.4f} ({args.val_count} phantoms)")

    export_and_verify(model, args.out_dir, xva[:16], log)
    with open(os.path.join(args.out_dir, "phantom-classes.txt"), "w") as f:
        f.write("none\nlesion\n")
    log(f"wall time {time.time() - t0:.0f}s")
    logf.close()


def export_and_verify(model, out_dir, sample_u8, log):
    import onnx
    import onnxruntime as ort

    model.eval()
    path = os.path.join(out_dir, "phantom-cnn.onnx")
    x = to_tensor(sample_u8)
    with torch.no_grad():
        torch.onnx.export(
            model, x[:1], path,
            opset_version=13, dynamo=False,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = [n.op_type for n in m.graph.node]
    log(f"exported {path} ({os.path.getsize(path)} bytes), opset {m.opset_import[0].version}, "
        f"ops: {' '.join(ops)}")
    assert ops[-3:] == ["GlobalAveragePool", "Flatten", "Gemm"], ops[-3:]
    gap, flat, gemm = m.graph.node[-3:]
    assert flat.input[0] == gap.output[0] and gemm.input[0] == flat.output[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}
    log(f"Gemm attributes: {attrs}")

    with torch.no_grad():
        ref = model(x).numpy()
        feat = model.features(x).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x.numpy()})[0]
    d1 = float(np.abs(got - ref).max())
    log(f"check: onnxruntime logits vs torch logits (batch {len(x)}): max |diff| = {d1:.2e}")
    assert d1 < 1e-4

    # temp copy with the feature map (input of GlobalAveragePool) as an extra output
    fname = gap.input[0]
    m2 = onnx.load(path)
    m2.graph.output.append(onnx.helper.make_tensor_value_info(fname, onnx.TensorProto.FLOAT, None))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m2.graph.initializer}
    W, b = inits[gemm.input[1]], inits[gemm.input[2]]
    if attrs.get("transB", 0) == 0:
        W = W.T
    sess2 = ort.InferenceSession(m2.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, fmap = sess2.run(["logits", fname], {"input": x.numpy()})
    recon = fmap.mean(axis=(2, 3)) @ W.T + b
    d2 = float(np.abs(recon - logits).max())
    d3 = float(np.abs(fmap - feat).max())
    log(f"check: feature map '{fname}' shape {list(fmap.shape)}; W.mean(F)+b vs logits: max |diff| = {d2:.2e}; "
        f"onnx vs torch feature map max |diff| = {d3:.2e}")
    assert d2 < 1e-4 and d3 < 1e-3


if __name__ == "__main__":
    main()
