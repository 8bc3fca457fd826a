#!/usr/bin/env python3
"""Train the small phantom CNN (CPU) and export it to ONNX for cambox.

Network: 5 x (3x3 conv, BatchNorm, ReLU), total stride 8 (224 -> 28x28 feature
map, 64 channels), then GlobalAveragePool -> Flatten -> Linear(64, 2), so that
CAM_c = W[c] . F is exact.  Classes: 0 "none", 1 "lesion" (image has >= 1 opacity).
The head is trained as a single non-negative evidence score (see PhantomCNN) and
exported as a plain Linear(64, 2) = Gemm.

Training: phase 1 on 96 x 96 patches (whole opacity inside vs. no opacity; the
from-scratch GAP network does not get off its plateau on whole images in a CPU
budget), phase 2 on whole 224 x 224 images with image-level labels.

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
            *block(32, 48, stride=2),     # 28
            *block(48, 48),
            *block(48, 64),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)   # -> GlobalAveragePool
        self.flatten = nn.Flatten()           # -> Flatten
        # Head used in training: one "lesion evidence" score s = w . GAP(F) + c with
        # non-negative w = softplus(v), exported as an ordinary Linear(64, 2) with
        # W = [-w/2, +w/2], b = [-c/2, +c/2]  (softmax = [1 - sigmoid(s), sigmoid(s)]).
        # With w >= 0 and F >= 0 (ReLU) the class-1 CAM w/2 . F is a non-negative
        # evidence map that is ~0 on normal lung, so min-max + 20 % thresholding
        # isolates the opacities instead of a background offset.
        self.v = nn.Parameter(torch.full((64,), -3.0) + 0.1 * torch.randn(64))
        self.c = nn.Parameter(torch.zeros(1))

    def head_weights(self):
        w = F.softplus(self.v)
        W = torch.stack([-w / 2, w / 2])
        b = torch.cat([-self.c / 2, self.c / 2])
        return W, b

    def forward(self, x):
        W, b = self.head_weights()
        return F.linear(self.flatten(self.pool(self.features(x))), W, b)

    def exportable(self):
        """The same function with a plain nn.Linear head (-> Gemm)."""
        m = ExportCNN(self.features)
        W, b = self.head_weights()
        with torch.no_grad():
            m.fc.weight.copy_(W)
            m.fc.bias.copy_(b)
        return m.eval()


class ExportCNN(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)   # -> GlobalAveragePool
        self.flatten = nn.Flatten()           # -> Flatten
        self.fc = nn.Linear(64, 2)            # -> Gemm

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


def make_set(sources, seed, count, log, amplitude=gen.AMPLITUDE):
    t = time.time()
    xs = np.empty((count, INPUT, INPUT), dtype=np.uint8)
    ys = np.empty(count, dtype=np.int64)
    boxes = []
    nbox = np.zeros(3, dtype=int)
    for i, ph in gen.generate(sources, seed, count, amplitude=tuple(amplitude)):
        xs[i] = preprocess_u8(ph.pixels)
        ys[i] = 1 if ph.boxes else 0
        nbox[len(ph.boxes)] += 1
        boxes.append([tuple(v * INPUT / gen.SIZE for v in b) for b in ph.boxes])  # in 224 pixels
    log(f"generated {count} phantoms (seed {seed}) in {time.time() - t:.1f}s; "
        f"0/1/2 opacities: {nbox[0]}/{nbox[1]}/{nbox[2]}; amplitude {tuple(amplitude)}")
    return xs, ys, boxes


def sample_patches(xs, ys, boxes, n, size, rng):
    """Warm-up patches: n/2 positive (a size x size crop that contains one whole opacity
    box of a positive image) and n/2 negative (a random crop that overlaps no opacity box:
    half from images without opacity, half from images with).  The opacity then covers ~10-30% of the patch instead of ~1-5% of the
    image, which gets the from-scratch GAP network past its initial plateau."""
    pos = np.flatnonzero(ys == 1)
    neg = np.flatnonzero(ys == 0)
    out = np.empty((n, size, size), dtype=np.uint8)
    lab = np.zeros(n, dtype=np.int64)
    for k in range(n):
        if k % 2 == 0:
            i = int(rng.choice(pos))
            bx, by, bw, bh = boxes[i][int(rng.integers(len(boxes[i])))]
            lo_x, hi_x = bx + bw - size, bx
            lo_y, hi_y = by + bh - size, by
            if lo_x > hi_x:
                lo_x = hi_x = bx + bw / 2 - size / 2
            if lo_y > hi_y:
                lo_y = hi_y = by + bh / 2 - size / 2
            x0 = int(np.clip(round(rng.uniform(lo_x, hi_x)), 0, INPUT - size))
            y0 = int(np.clip(round(rng.uniform(lo_y, hi_y)), 0, INPUT - size))
            lab[k] = 1
        else:
            while True:
                # half of the negatives from positive images, clear of every box
                i = int(rng.choice(neg)) if k % 4 == 1 else int(rng.choice(pos))
                x0 = int(rng.integers(0, INPUT - size + 1))
                y0 = int(rng.integers(0, INPUT - size + 1))
                if all(x0 + size <= bx or bx + bw <= x0 or y0 + size <= by or by + bh <= y0
                       for bx, by, bw, bh in boxes[i]):
                    break
        out[k] = xs[i, y0:y0 + size, x0:x0 + size]
    return out, lab


def augment(x, g, max_deg=10.0, scale=(0.92, 1.08)):
    """Training-only augmentation: horizontal flip, rotation +-10 deg and isotropic
    scale 0.92-1.08 about the centre (bilinear, border padding).  Opacities lie well
    inside the image, so image-level labels are unchanged."""
    n = x.shape[0]
    flip = torch.rand(n, generator=g) < 0.5
    ang = (torch.rand(n, generator=g) * 2 - 1) * max_deg * torch.pi / 180
    sc = scale[0] + torch.rand(n, generator=g) * (scale[1] - scale[0])
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    fx = torch.where(flip, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * fx
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * fx
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def run_epoch(model, opt, sched, xs, ys, batch, g):
    model.train()
    perm = torch.randperm(len(xs), generator=g).numpy()
    tot, correct, n = 0.0, 0, 0
    for s in range(0, len(xs), batch):
        idx = perm[s:s + batch]
        x = augment(to_tensor(xs[idx]), g)
        y = torch.from_numpy(ys[idx])
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tot += loss.item() * len(idx)
        correct += (out.argmax(1) == y).sum().item()
        n += len(idx)
    return tot / n, correct / n


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
    ap.add_argument("--train-count", type=int, default=3000)
    ap.add_argument("--val-count", type=int, default=400)
    ap.add_argument("--train-seed", type=int, default=2001)
    ap.add_argument("--val-seed", type=int, default=3001)
    ap.add_argument("--torch-seed", type=int, default=42)
    ap.add_argument("--train-amplitude", type=float, nargs=2, default=[25.0, 90.0],
                    help="peak added grey level range of the training opacities (validation and "
                         "test use generate.AMPLITUDE); a wider range makes early learning easier")
    ap.add_argument("--patch-epochs", type=int, default=6)
    ap.add_argument("--patch-count", type=int, default=6000)
    ap.add_argument("--patch-size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
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
    log(f"seeds: train phantoms {args.train_seed}, val phantoms {args.val_seed}, torch.manual_seed "
        f"{args.torch_seed} (init), shuffle/flip torch.Generator {args.torch_seed + 1}, "
        f"patch sampling numpy {args.torch_seed + 2}, val patches numpy {args.val_seed}")
    log(f"train/val sources: {', '.join(gen.TRAIN_SOURCES)}")
    log(f"torch threads: {torch.get_num_threads()}")

    sources = gen.load_sources(args.src, gen.TRAIN_SOURCES)
    xtr, ytr, btr = make_set(sources, args.train_seed, args.train_count, log, args.train_amplitude)
    xva, yva, bva = make_set(sources, args.val_seed, args.val_count, log)

    model = PhantomCNN()
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model: {nparams} parameters\n{model}")
    g = torch.Generator().manual_seed(args.torch_seed + 1)
    prng = np.random.default_rng(args.torch_seed + 2)

    # phase 1: warm-up on patches (fully convolutional + GAP works at any input size)
    with torch.no_grad():  # start with a zero mean evidence score
        px, _ = sample_patches(xtr, ytr, btr, 256, args.patch_size, np.random.default_rng(args.torch_seed + 3))
        model.train()
        s0 = model(to_tensor(px))[:, 1].mean() * 2
        model.c -= s0
    log(f"init: evidence bias c = {model.c.item():.4f}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    n_steps = args.patch_epochs * ((args.patch_count + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=max(n_steps, 1), pct_start=0.1)
    for epoch in range(1, args.patch_epochs + 1):
        te = time.time()
        px, py = sample_patches(xtr, ytr, btr, args.patch_count, args.patch_size, prng)
        tl, ta = run_epoch(model, opt, sched, px, py, args.batch, g)
        vx, vy = sample_patches(xva, yva, bva, 400, args.patch_size, np.random.default_rng(args.val_seed))
        vl, va = evaluate(model, vx, vy)
        log(f"patch epoch {epoch:2d}  {args.patch_count} patches {args.patch_size}px  train loss {tl:.4f} acc {ta:.4f}  "
            f"val patches loss {vl:.4f} acc {va:.4f}  {time.time() - te:.0f}s")

    # phase 2: whole 224 x 224 images
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    n_steps = args.epochs * ((len(xtr) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=n_steps, pct_start=0.1)
    for epoch in range(1, args.epochs + 1):
        te = time.time()
        tl, ta = run_epoch(model, opt, sched, xtr, ytr, args.batch, g)
        vl, va = evaluate(model, xva, yva)
        log(f"epoch {epoch:2d}  train loss {tl:.4f} acc {ta:.4f}  "
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
    emodel = model.exportable()
    with torch.no_grad():
        d0 = float((emodel(x) - model(x)).abs().max())
    log(f"check: Linear-head export model vs training model: max |diff| = {d0:.2e}")
    assert d0 < 1e-5
    with torch.no_grad():
        torch.onnx.export(
            emodel, x[:1], path,
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
