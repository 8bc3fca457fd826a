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
The backbone, preprocessing, augmentation, optimiser, training loop and export
steps are in common_train.py, shared with train_multilabel.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import common_train as ct  # noqa: E402
import generate as gen  # noqa: E402
from common_train import INPUT, augment, to_tensor  # noqa: E402


class PhantomCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = ct.backbone()
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
        return ct.exportable(self.features, *self.head_weights())


def make_set(sources, seed, count, log, amplitude=common.AMPLITUDE):
    t = time.time()
    xs = np.empty((count, INPUT, INPUT), dtype=np.uint8)
    ys = np.empty(count, dtype=np.int64)
    boxes = []
    nbox = np.zeros(3, dtype=int)
    for i, ph in gen.generate(sources, seed, count, amplitude=tuple(amplitude)):
        xs[i] = ct.preprocess_u8(ph.pixels)
        ys[i] = 1 if ph.boxes else 0
        nbox[len(ph.boxes)] += 1
        boxes.append([tuple(v * INPUT / common.SIZE for v in b) for b in ph.boxes])  # in 224 pixels
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
            x0, y0 = ct.patch_around(*boxes[i][int(rng.integers(len(boxes[i])))], size, rng)
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


def run_epoch(model, opt, sched, xs, ys, batch, g):
    tot, correct, n = 0.0, 0, 0

    def step(idx):
        nonlocal tot, correct, n
        x = augment(to_tensor(xs[idx]), g)
        y = torch.from_numpy(ys[idx])
        out = model(x)
        loss = F.cross_entropy(out, y)
        tot += loss.item() * len(idx)
        correct += (out.argmax(1) == y).sum().item()
        n += len(idx)
        return loss

    ct.train_epoch(model, opt, sched, len(xs), batch, g, step)
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
    ct.add_set_args(ap, train_seed=2001, val_seed=3001, torch_seed=42)
    ap.add_argument("--train-amplitude", type=float, nargs=2, default=[25.0, 90.0],
                    help="peak added grey level range of the training opacities (validation and "
                         "test use common.AMPLITUDE); a wider range makes early learning easier")
    ct.add_schedule_args(ap)
    args = ap.parse_args()

    os.makedirs(args.out_dir, exist_ok=True)
    log = ct.open_log(os.path.join(args.out_dir, "phantom-cnn.train.log"))

    t0 = time.time()
    ct.start(log, "phantom-cnn", args,
             f"train phantoms {args.train_seed}, val phantoms {args.val_seed}, torch.manual_seed "
             f"{args.torch_seed} (init), shuffle/flip torch.Generator {args.torch_seed + 1}, "
             f"patch sampling numpy {args.torch_seed + 2}, val patches numpy {args.val_seed}")

    sources = common.load_sources(args.src, common.TRAIN_SOURCES)
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
    opt, sched = ct.one_cycle(model, args.lr, max(ct.steps(args.patch_epochs, args.patch_count, args.batch), 1))
    for epoch in range(1, args.patch_epochs + 1):
        te = time.time()
        px, py = sample_patches(xtr, ytr, btr, args.patch_count, args.patch_size, prng)
        tl, ta = run_epoch(model, opt, sched, px, py, args.batch, g)
        vx, vy = sample_patches(xva, yva, bva, 400, args.patch_size, np.random.default_rng(args.val_seed))
        vl, va = evaluate(model, vx, vy)
        log(f"patch epoch {epoch:2d}  {args.patch_count} patches {args.patch_size}px  train loss {tl:.4f} acc {ta:.4f}  "
            f"val patches loss {vl:.4f} acc {va:.4f}  {time.time() - te:.0f}s")

    # phase 2: whole 224 x 224 images
    opt, sched = ct.one_cycle(model, args.lr, ct.steps(args.epochs, len(xtr), args.batch))
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
    log.close()


def export_and_verify(model, out_dir, sample_u8, log):
    import onnxruntime as ort

    model.eval()
    path = os.path.join(out_dir, "phantom-cnn.onnx")
    x = to_tensor(sample_u8)
    emodel = model.exportable()
    with torch.no_grad():
        d0 = float((emodel(x) - model(x)).abs().max())
    log(f"check: Linear-head export model vs training model: max |diff| = {d0:.2e}")
    assert d0 < 1e-5
    gap, flat, gemm = ct.export_onnx(emodel, x, path, "logits", ["GlobalAveragePool", "Flatten", "Gemm"], log)
    assert flat.input[0] == gap.output[0] and gemm.input[0] == flat.output[0]
    log(f"Gemm attributes: {ct.gemm_attrs(gemm)}")

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
    sess2, W, b = ct.with_outputs(path, gemm, [fname])
    logits, fmap = sess2.run(["logits", fname], {"input": x.numpy()})
    recon = fmap.mean(axis=(2, 3)) @ W.T + b
    d2 = float(np.abs(recon - logits).max())
    d3 = float(np.abs(fmap - feat).max())
    log(f"check: feature map '{fname}' shape {list(fmap.shape)}; W.mean(F)+b vs logits: max |diff| = {d2:.2e}; "
        f"onnx vs torch feature map max |diff| = {d3:.2e}")
    assert d2 < 1e-4 and d3 < 1e-3


if __name__ == "__main__":
    main()
