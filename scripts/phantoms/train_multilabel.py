#!/usr/bin/env python3
"""Train the small multi-label phantom CNN (CPU) and export it to ONNX with a final Sigmoid.

Network: the backbone of train.py (common_train.backbone: 5 x (3x3 conv, BatchNorm,
ReLU), channels 16-32-48-48-64, total stride 8: 224 -> 28 x 28 x 64), then GlobalAveragePool ->
Flatten -> Linear(64, 2) -> Sigmoid.  Classes: 0 "Opacity", 1 "Nodule", independent
(multi-label): trained with binary cross-entropy on the logits.

Head: as in train.py, each finding's logit is an evidence score s_k = w_k . GAP(F) + c_k
with non-negative w_k = softplus(v_k), so each CAM w_k . F is a non-negative evidence
map, about 0 on normal lung.  Exported as a plain Linear (Gemm, W = [w_0; w_1],
b = [c_0; c_1]) followed by Sigmoid: probs = sigmoid(W . GAP(F) + b).

Training: phase 1 on 96 x 96 patches (a patch is positive for a finding when it holds
>= 60 % of the area of one of that finding's boxes; patches that cut a box between 5 %
and 60 % are redrawn), phase 2 on whole 224 x 224 images with image-level labels plus,
with weight --box-loss, an auxiliary loss that uses the training boxes: for each finding
present on an image, the share of its CAM mass (W_k . F, >= 0) that falls outside its
truth boxes dilated by --box-margin px (mean over the 8 x 8 input pixels of each map
cell).  Without it the Nodule CAM of this GAP network spreads over its whole receptive
field (about 50 px around a 15 px nodule) and peaks beside the nodule: this model is a
test article for the CAM-to-box pipeline, not an experiment in weak supervision.
Preprocessing as train.py: 256 x 256 grey -> Pillow BILINEAR 224 -> x / 255 -> (x - 0.5) / 0.25.

Training / validation phantoms: generate_multilabel.py with the 6 training sources, in
memory.  After export the held-out test PNGs (2 other sources) are evaluated with
onnxruntime (evaluate_multilabel.py) and the figures go into the log.
The backbone, preprocessing, augmentation, optimiser, training loop and export steps
are in common_train.py, shared with train.py.
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
import generate_multilabel as genml  # noqa: E402
from common_train import INPUT, augment, to_tensor  # noqa: E402

K = len(genml.CLASSES)
MODEL_NAME = "phantom-multilabel"


class MultiLabelCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = ct.backbone()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.v = nn.Parameter(torch.full((K, 64), -3.0) + 0.1 * torch.randn(K, 64))
        self.c = nn.Parameter(torch.zeros(K))

    def head_weights(self):
        return F.softplus(self.v), self.c

    def forward(self, x, with_cams=False):
        """Logits (before the Sigmoid); with_cams: also the class maps W_k . F (N x K x 28 x 28)."""
        W, b = self.head_weights()
        f = self.features(x)
        logits = F.linear(self.flatten(self.pool(f)), W, b)
        if with_cams:
            return logits, torch.einsum("kc,nchw->nkhw", W, f)
        return logits

    def exportable(self):
        """The same function with a plain nn.Linear head (-> Gemm) and a final Sigmoid."""
        return ct.exportable(self.features, *self.head_weights(), sigmoid=True)


def make_set(sources, seed, count, log, opacity_amplitude, nodule_amplitude):
    t = time.time()
    xs = np.empty((count, INPUT, INPUT), dtype=np.uint8)
    ys = np.zeros((count, K), dtype=np.float32)
    boxes = []
    for i, ph in genml.generate(sources, seed, count, tuple(opacity_amplitude), tuple(nodule_amplitude)):
        xs[i] = ct.preprocess_u8(ph.pixels)
        ys[i] = genml.labels_of(ph)
        # (class index, x, y, w, h) in 224 pixels
        boxes.append([(genml.CLASSES.index(lab), *(v * INPUT / common.SIZE for v in b)) for lab, b in ph.boxes])
    combos = np.bincount((ys[:, 0] + 2 * ys[:, 1]).astype(int), minlength=4)
    log(f"generated {count} phantoms (seed {seed}) in {time.time() - t:.1f}s; none/Opacity/Nodule/both: "
        f"{'/'.join(map(str, combos))}; boxes Opacity {sum(b[0] == 0 for bs in boxes for b in bs)}, "
        f"Nodule {sum(b[0] == 1 for bs in boxes for b in bs)}; amplitudes Opacity {tuple(opacity_amplitude)}, "
        f"Nodule {tuple(nodule_amplitude)}")
    return xs, ys, boxes


def _inside_fraction(b, x0, y0, size):
    _, bx, by, bw, bh = b
    iw = max(0.0, min(bx + bw, x0 + size) - max(bx, x0))
    ih = max(0.0, min(by + bh, y0 + size) - max(by, y0))
    return iw * ih / (bw * bh)


def sample_patches(xs, ys, boxes, n, size, rng):
    """Warm-up patches, a third each: around a whole Opacity box, around a whole Nodule
    box, and anywhere (mostly negatives).  Label of finding k: 1 when some box of k has
    >= 60 % of its area in the patch; a patch that holds 5-60 % of some box is redrawn
    (up to 50 times)."""
    with_cls = [[i for i, bs in enumerate(boxes) if any(b[0] == k for b in bs)] for k in range(K)]
    out = np.empty((n, size, size), dtype=np.uint8)
    lab = np.zeros((n, K), dtype=np.float32)
    for j in range(n):
        mode = j % 3
        for _ in range(50):
            if mode < K:
                i = int(rng.choice(with_cls[mode]))
                cand = [b for b in boxes[i] if b[0] == mode]
                x0, y0 = ct.patch_around(*cand[int(rng.integers(len(cand)))][1:], size, rng)
            else:
                i = int(rng.integers(len(xs)))
                x0 = int(rng.integers(0, INPUT - size + 1))
                y0 = int(rng.integers(0, INPUT - size + 1))
            fr = [_inside_fraction(b, x0, y0, size) for b in boxes[i]]
            if all(f < 0.05 or f >= 0.6 for f in fr):
                break
        out[j] = xs[i, y0:y0 + size, x0:x0 + size]
        for b, f in zip(boxes[i], fr):
            if f >= 0.6:
                lab[j, b[0]] = 1.0
    return out, lab


def box_masks(boxes_of_images, size, margin):
    """(N, K, size, size) float masks: 1 inside each finding's boxes dilated by margin px."""
    m = torch.zeros(len(boxes_of_images), K, size, size)
    for i, bs in enumerate(boxes_of_images):
        for k, x, y, w, h in bs:
            x0, y0 = max(0, int(np.floor(x - margin))), max(0, int(np.floor(y - margin)))
            x1, y1 = min(size, int(np.ceil(x + w + margin))), min(size, int(np.ceil(y + h + margin)))
            m[i, k, y0:y1, x0:x1] = 1.0
    return m


def cam_outside_loss(cams, masks, y):
    """Mean, over the (image, finding) pairs where the finding is present, of the share of
    the finding's CAM mass (W_k . F >= 0) that lies outside its dilated truth boxes; the
    masks are averaged over each 8 x 8 cell of the 28 x 28 map."""
    inside = F.avg_pool2d(masks, INPUT // cams.shape[-1])
    mass = cams.sum(dim=(2, 3)) + 1e-6
    outside = (cams * (1 - inside)).sum(dim=(2, 3)) / mass
    present = y > 0.5
    if not present.any():
        return cams.sum() * 0
    return outside[present].mean()


def run_epoch(model, opt, sched, xs, ys, batch, g, boxes=None, box_loss=0.0, margin=4.0):
    """One epoch of BCE (+ box_loss x cam_outside_loss when boxes are given).  The box
    masks go through the same random flip / rotation / scale as the images."""
    tot, tot_aux, correct, n = 0.0, 0.0, np.zeros(K), 0

    def step(idx):
        nonlocal tot, tot_aux, correct, n
        x = to_tensor(xs[idx])
        y = torch.from_numpy(ys[idx])
        if boxes is not None and box_loss > 0:
            masks = box_masks([boxes[i] for i in idx], INPUT, margin)
            xm = augment(torch.cat([x, masks], dim=1), g)
            x, masks = xm[:, :1], xm[:, 1:]
            out, cams = model(x, with_cams=True)
            aux = cam_outside_loss(cams, masks, y)
            loss = F.binary_cross_entropy_with_logits(out, y) + box_loss * aux
            tot_aux += aux.item() * len(idx)
        else:
            out = model(augment(x, g))
            loss = F.binary_cross_entropy_with_logits(out, y)
        tot += loss.item() * len(idx)
        correct += ((out > 0).float() == y).sum(0).numpy()
        n += len(idx)
        return loss

    ct.train_epoch(model, opt, sched, len(xs), batch, g, step)
    return tot / n, correct / n, tot_aux / n


@torch.no_grad()
def evaluate(model, xs, ys, bs=100):
    """Mean BCE, per-finding accuracy at p = 0.5, per-finding AUROC."""
    from evaluate_multilabel import auroc

    model.eval()
    logits = []
    for i in range(0, len(xs), bs):
        logits.append(model(to_tensor(xs[i:i + bs])))
    logits = torch.cat(logits)
    y = torch.from_numpy(ys)
    loss = F.binary_cross_entropy_with_logits(logits, y).item()
    acc = ((logits > 0).float() == y).float().mean(0).numpy()
    aucs = [auroc(logits[:, k].numpy(), ys[:, k] > 0.5) for k in range(K)]
    return loss, acc, aucs


def fmt(acc, aucs=None):
    s = " ".join(f"{c} {a:.4f}" for c, a in zip(genml.CLASSES, acc))
    if aucs is not None:
        s += "  AUROC " + " ".join(f"{c} {a:.4f}" for c, a in zip(genml.CLASSES, aucs))
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="data/samples/chest-xray")
    ap.add_argument("--out-dir", default="data/models")
    ap.add_argument("--test-data", default="data/phantoms-multilabel",
                    help="held-out test set (generate_multilabel.py --split test), evaluated after export")
    ct.add_set_args(ap, train_seed=2101, val_seed=3101, torch_seed=142)
    ap.add_argument("--train-opacity-amplitude", type=float, nargs=2, default=[25.0, 90.0])
    ap.add_argument("--train-nodule-amplitude", type=float, nargs=2, default=[40.0, 110.0])
    ct.add_schedule_args(ap)
    ap.add_argument("--box-loss", type=float, default=1.0,
                    help="weight of the auxiliary whole-image loss: share of each present finding's CAM "
                         "mass outside its truth boxes (0: classification only)")
    ap.add_argument("--box-margin", type=float, default=4.0,
                    help="px (224 input) by which the truth boxes are dilated for the auxiliary loss")
    args = ap.parse_args()

    os.makedirs(args.out_dir, exist_ok=True)
    log = ct.open_log(os.path.join(args.out_dir, f"{MODEL_NAME}.train.log"))

    t0 = time.time()
    ct.start(log, MODEL_NAME, args,
             f"train phantoms {args.train_seed}, val phantoms {args.val_seed}, torch.manual_seed "
             f"{args.torch_seed} (init), shuffle/augmentation torch.Generator {args.torch_seed + 1}, "
             f"patch sampling numpy {args.torch_seed + 2}, init-bias patches numpy {args.torch_seed + 3}, "
             f"val patches numpy {args.val_seed}",
             extra=[f"classes: {', '.join(genml.CLASSES)} (multi-label, sigmoid)"])

    sources = common.load_sources(args.src, common.TRAIN_SOURCES)
    xtr, ytr, btr = make_set(sources, args.train_seed, args.train_count, log,
                             args.train_opacity_amplitude, args.train_nodule_amplitude)
    xva, yva, bva = make_set(sources, args.val_seed, args.val_count, log,
                             genml.OPACITY_AMPLITUDE, genml.NODULE_AMPLITUDE)

    model = MultiLabelCNN()
    log(f"model: {sum(p.numel() for p in model.parameters())} parameters\n{model}")
    g = torch.Generator().manual_seed(args.torch_seed + 1)
    prng = np.random.default_rng(args.torch_seed + 2)

    # start each evidence score at a zero mean on patches
    with torch.no_grad():
        px, _ = sample_patches(xtr, ytr, btr, 256, args.patch_size, np.random.default_rng(args.torch_seed + 3))
        model.train()
        model.c -= model(to_tensor(px)).mean(0)
    log(f"init: evidence biases c = {model.c.detach().numpy().round(4).tolist()}")

    # phase 1: patches
    opt, sched = ct.one_cycle(model, args.lr, max(ct.steps(args.patch_epochs, args.patch_count, args.batch), 1))
    vx, vy = sample_patches(xva, yva, bva, 600, args.patch_size, np.random.default_rng(args.val_seed))
    for epoch in range(1, args.patch_epochs + 1):
        te = time.time()
        px, py = sample_patches(xtr, ytr, btr, args.patch_count, args.patch_size, prng)
        tl, ta, _ = run_epoch(model, opt, sched, px, py, args.batch, g)
        vl, va, vauc = evaluate(model, vx, vy)
        log(f"patch epoch {epoch:2d}  {args.patch_count} patches {args.patch_size}px  train loss {tl:.4f} "
            f"acc {fmt(ta)}  val patches loss {vl:.4f} acc {fmt(va, vauc)}  {time.time() - te:.0f}s")

    # phase 2: whole images
    opt, sched = ct.one_cycle(model, args.lr, ct.steps(args.epochs, len(xtr), args.batch))
    for epoch in range(1, args.epochs + 1):
        te = time.time()
        tl, ta, taux = run_epoch(model, opt, sched, xtr, ytr, args.batch, g, btr, args.box_loss, args.box_margin)
        vl, va, vauc = evaluate(model, xva, yva)
        log(f"epoch {epoch:2d}  train loss {tl:.4f} (CAM outside boxes {taux:.4f}) acc {fmt(ta)}  "
            f"val loss {vl:.4f} acc {fmt(va, vauc)}  lr {sched.get_last_lr()[0]:.2e}  {time.time() - te:.0f}s")
    # keep the last epoch (no selection on the validation set)
    vl, va, vauc = evaluate(model, xva, yva)
    log(f"final val loss {vl:.4f} acc {fmt(va, vauc)} ({args.val_count} phantoms, training sources)")

    path = export_and_verify(model, args.out_dir, xva[:16], log)
    with open(os.path.join(args.out_dir, f"{MODEL_NAME}-classes.txt"), "w") as f:
        f.write("".join(c + "\n" for c in genml.CLASSES))
    if args.test_data and os.path.exists(os.path.join(args.test_data, "labels.csv")):
        import evaluate_multilabel

        log(f"held-out test set {args.test_data} (sources {', '.join(common.TEST_SOURCES)}), onnxruntime "
            f"on the PNGs:")
        evaluate_multilabel.evaluate(args.test_data, path, write=False, log=log)
    else:
        log(f"no held-out test set at {args.test_data}: not evaluated")
    log(f"wall time {time.time() - t0:.0f}s")
    log.close()


def export_and_verify(model, out_dir, sample_u8, log):
    import onnxruntime as ort

    model.eval()
    path = os.path.join(out_dir, f"{MODEL_NAME}.onnx")
    x = to_tensor(sample_u8)
    emodel = model.exportable()
    with torch.no_grad():
        d0 = float((emodel(x) - torch.sigmoid(model(x))).abs().max())
    log(f"check: Linear+Sigmoid export model vs training model: max |diff| = {d0:.2e}")
    assert d0 < 1e-6
    gap, flat, gemm, sig = ct.export_onnx(emodel, x, path, "probs",
                                          ["GlobalAveragePool", "Flatten", "Gemm", "Sigmoid"], log)
    assert flat.input[0] == gap.output[0] and gemm.input[0] == flat.output[0] and sig.input[0] == gemm.output[0]
    log(f"Gemm attributes: {ct.gemm_attrs(gemm)}; feature tensor '{gap.input[0]}', logits tensor '{gemm.output[0]}', "
        f"output '{sig.output[0]}'")

    with torch.no_grad():
        ref_logits = model(x).numpy()
        ref = torch.sigmoid(model(x)).numpy()
        feat = model.features(x).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["probs"], {"input": x.numpy()})[0]
    d1 = float(np.abs(got - ref).max())
    log(f"check: onnxruntime probs vs torch probs (batch {len(x)}): max |diff| = {d1:.2e}")
    assert d1 < 1e-5

    fname = gap.input[0]
    sess2, W, b = ct.with_outputs(path, gemm, [fname, gemm.output[0]])
    assert (W >= 0).all(), "the evidence weights must be non-negative"
    logits, fmap = sess2.run([gemm.output[0], fname], {"input": x.numpy()})
    recon = fmap.mean(axis=(2, 3)) @ W.T + b
    d2 = float(np.abs(recon - logits).max())
    d3 = float(np.abs(fmap - feat).max())
    d4 = float(np.abs(logits - ref_logits).max())
    log(f"check: feature map '{fname}' shape {list(fmap.shape)}; W.mean(F)+b vs logits: max |diff| = {d2:.2e}; "
        f"onnx vs torch logits {d4:.2e}; onnx vs torch feature map max |diff| = {d3:.2e}")
    assert d2 < 1e-4 and d3 < 1e-3 and d4 < 1e-4
    return path


if __name__ == "__main__":
    main()
