"""Training and ONNX export shared by train.py (phantom-cnn: one finding, two-class
softmax head) and train_multilabel.py (phantom-multilabel: two findings, sigmoid head).

Both train the same backbone (5 x (3x3 conv, BatchNorm, ReLU), channels
16-32-48-48-64, total stride 8: 224 -> 28 x 28 x 64) with a GAP + linear evidence
head, on the CPU, in two phases (96 x 96 patches, then whole 224 x 224 images), with
AdamW + one-cycle schedules, and export it with torch.onnx (TorchScript exporter,
opset 13) as ... GlobalAveragePool -> Flatten -> Gemm [-> Sigmoid].

Preprocessing (training, validation, ONNX checks and the test sets alike):
256x256 8-bit grey -> Pillow resize to 224x224 BILINEAR -> x / 255 -> (x - 0.5) / 0.25.

Nothing here draws random numbers of its own: the callers' seeds and generators
decide everything, in the order the two scripts used before this module existed.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import common

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


def backbone():
    return nn.Sequential(
        *block(1, 16, stride=2),      # 112
        *block(16, 32, stride=2),     # 56
        *block(32, 48, stride=2),     # 28
        *block(48, 48),
        *block(48, 64),
    )


class ExportCNN(nn.Module):
    """The exported form: features -> GlobalAveragePool -> Flatten -> Gemm [-> Sigmoid]."""

    def __init__(self, features, k, sigmoid=False):
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)   # -> GlobalAveragePool
        self.flatten = nn.Flatten()           # -> Flatten
        self.fc = nn.Linear(64, k)            # -> Gemm
        if sigmoid:
            self.sigmoid = nn.Sigmoid()       # -> Sigmoid
        self.with_sigmoid = sigmoid

    def forward(self, x):
        y = self.fc(self.flatten(self.pool(self.features(x))))
        return self.sigmoid(y) if self.with_sigmoid else y


def exportable(features, W, b, sigmoid=False):
    """ExportCNN over features with the head weights W (K x 64) and bias b, in eval mode."""
    m = ExportCNN(features, W.shape[0], sigmoid)
    with torch.no_grad():
        m.fc.weight.copy_(W)
        m.fc.bias.copy_(b)
    return m.eval()


def augment(x, g, max_deg=10.0, scale=(0.92, 1.08)):
    """Training-only augmentation: horizontal flip, rotation +-10 deg and isotropic
    scale 0.92-1.08 about the centre (bilinear, border padding).  Findings lie well
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


def patch_around(bx, by, bw, bh, size, rng):
    """Top-left corner (x0, y0) of a random size x size patch of the 224 image that holds
    the whole box (x, y, w, h) (centred on it when the box is larger than the patch)."""
    lo_x, hi_x = bx + bw - size, bx
    lo_y, hi_y = by + bh - size, by
    if lo_x > hi_x:
        lo_x = hi_x = bx + bw / 2 - size / 2
    if lo_y > hi_y:
        lo_y = hi_y = by + bh / 2 - size / 2
    x0 = int(np.clip(round(rng.uniform(lo_x, hi_x)), 0, INPUT - size))
    y0 = int(np.clip(round(rng.uniform(lo_y, hi_y)), 0, INPUT - size))
    return x0, y0


def one_cycle(model, lr, total_steps):
    """AdamW (weight decay 1e-4) with a one-cycle schedule peaking at lr after 10 %."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.1)
    return opt, sched


def steps(epochs, n, batch):
    return epochs * ((n + batch - 1) // batch)


def train_epoch(model, opt, sched, n, batch, g, step):
    """One epoch over torch.randperm(n, generator=g) in batches: step(idx) returns the
    batch loss, then the optimiser and the schedule take one step."""
    model.train()
    perm = torch.randperm(n, generator=g).numpy()
    for s in range(0, n, batch):
        loss = step(perm[s:s + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


# --- command line and log ---------------------------------------------------------------


def add_set_args(ap, train_seed, val_seed, torch_seed):
    ap.add_argument("--train-count", type=int, default=3000)
    ap.add_argument("--val-count", type=int, default=400)
    ap.add_argument("--train-seed", type=int, default=train_seed)
    ap.add_argument("--val-seed", type=int, default=val_seed)
    ap.add_argument("--torch-seed", type=int, default=torch_seed)


def add_schedule_args(ap):
    ap.add_argument("--patch-epochs", type=int, default=6)
    ap.add_argument("--patch-count", type=int, default=6000)
    ap.add_argument("--patch-size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)


def open_log(path):
    """log(msg): print and append a line to path; log.close() closes the file."""
    f = open(path, "w")

    def log(msg):
        print(msg, flush=True)
        f.write(msg + "\n")
        f.flush()

    log.close = f.close
    return log


def start(log, name, args, seeds, extra=()):
    """Seed torch (args.torch_seed), set its threads (args.threads), and log the header:
    name and time, package versions, args, seeds, the extra lines, sources, threads."""
    torch.manual_seed(args.torch_seed)
    torch.set_num_threads(args.threads)
    import onnx
    import onnxruntime as ort
    import PIL
    import scipy
    log(f"{name} training  {time.strftime('%Y-%m-%d %H:%M:%S')}")
    log(f"versions: python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"pillow {PIL.__version__}, scipy {scipy.__version__}, onnx {onnx.__version__}, "
        f"onnxruntime {ort.__version__}")
    log(f"args: {vars(args)}")
    log(f"seeds: {seeds}")
    for line in extra:
        log(line)
    log(f"train/val sources: {', '.join(common.TRAIN_SOURCES)}")
    log(f"torch threads: {torch.get_num_threads()}")


# --- export and checks ------------------------------------------------------------------


def export_onnx(emodel, x, path, output, tail, log):
    """torch.onnx.export (TorchScript, opset 13, dynamic batch) of emodel on x[:1] to path,
    onnx.checker, a log line with the ops; the last ops must be tail.  Returns the tail
    nodes."""
    import onnx

    with torch.no_grad():
        torch.onnx.export(
            emodel, x[:1], path,
            opset_version=13, dynamo=False,
            input_names=["input"], output_names=[output],
            dynamic_axes={"input": {0: "batch"}, output: {0: "batch"}},
        )
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = [n.op_type for n in m.graph.node]
    log(f"exported {path} ({os.path.getsize(path)} bytes), opset {m.opset_import[0].version}, "
        f"ops: {' '.join(ops)}")
    assert ops[-len(tail):] == tail, ops[-len(tail):]
    return m.graph.node[-len(tail):]


def gemm_attrs(gemm):
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}


def with_outputs(path, gemm, names):
    """The exported model with the tensors names added as outputs (in memory): returns
    (onnxruntime session, W (K x C), b) with the Gemm's weights as stored."""
    import onnx
    import onnxruntime as ort

    m2 = onnx.load(path)
    for name in names:
        m2.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m2.graph.initializer}
    W, b = inits[gemm.input[1]], inits[gemm.input[2]]
    if gemm_attrs(gemm).get("transB", 0) == 0:
        W = W.T
    sess = ort.InferenceSession(m2.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess, W, b
