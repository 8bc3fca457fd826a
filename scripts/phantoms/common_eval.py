"""The numpy / onnxruntime reference interpreter shared by evaluate.py (phantom-cnn on
data/phantoms) and evaluate_multilabel.py (phantom-multilabel on data/phantoms-multilabel):
the preprocessing, reading the GAP + Gemm head out of the ONNX graph, the class map
W[k] . F upsampled to the image, and its boxes.

  preprocess     PNG decoded as grey, Pillow resize 256 -> 224 BILINEAR, x / 255,
                 (x - 0.5) / 0.25, as 1 x 1 x 224 x 224 float32
  gap_head       the last ops (... GlobalAveragePool, Flatten, Gemm [, Sigmoid]), the Gemm
                 weights as K x C and its bias, the feature tensor (input of the pooling)
  bilinear_resize  half-pixel bilinear (align_corners = False), edges clamped
  cam_boxes      min-max normalised map > threshold (strictly), 8-connected components,
                 half-open box of each; "largest" = the component with the most pixels
  iou            of two (x, y, w, h) boxes
"""
from __future__ import annotations

import numpy as np
import onnx
from PIL import Image
from scipy import ndimage

SIZE, INPUT = 256, 224


def preprocess(path):
    im = Image.open(path).convert("L")
    assert im.size == (SIZE, SIZE), im.size
    a = np.asarray(im.resize((INPUT, INPUT), Image.BILINEAR), dtype=np.float32) / 255.0
    return ((a - 0.5) / 0.25)[None, None]


def gap_head(m: onnx.ModelProto, tail: list):
    """The graph of m must end with the ops tail (GlobalAveragePool, Flatten, Gemm, ...).
    Returns (nodes, W, b, attrs): the tail nodes, the Gemm weights as stored but turned to
    K x C (transB), its bias as stored, and its attributes."""
    ops = [n.op_type for n in m.graph.node]
    assert ops[-len(tail):] == tail, ops[-len(tail):]
    nodes = m.graph.node[-len(tail):]
    gemm = nodes[tail.index("Gemm")]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute}
    W = inits[gemm.input[1]]
    if not attrs.get("transB", 0):
        W = W.T
    return nodes, W, inits[gemm.input[2]], attrs


def add_outputs(m: onnx.ModelProto, names):
    """Add the tensors names as graph outputs (in memory)."""
    for name in names:
        m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))


def bilinear_resize(a, out_h, out_w):
    """Half-pixel bilinear (align_corners=False), edges clamped."""
    h, w = a.shape

    def coords(n_out, n_in):
        x = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        x = np.clip(x, 0, n_in - 1)
        i0 = np.floor(x).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, x - i0

    y0, y1, fy = coords(out_h, h)
    x0, x1, fx = coords(out_w, w)
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
    bot = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bot * fy[:, None]


def iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def cam_boxes(cam256, thr=0.2):
    lo, hi = cam256.min(), cam256.max()
    norm = (cam256 - lo) / (hi - lo) if hi > lo else np.zeros_like(cam256)
    lab, n = ndimage.label(norm > thr, structure=np.ones((3, 3), dtype=int))
    boxes, sizes = [], []
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        ys, xs = sl
        boxes.append((xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start))
        sizes.append(int((lab[sl] == k).sum()))
    largest = boxes[int(np.argmax(sizes))] if boxes else None
    return boxes, largest


def centre_box(boxes):
    """A box of the mean width and height of boxes, centred in the SIZE x SIZE image."""
    cw = int(round(float(np.mean([bx[2] for bx in boxes]))))
    ch = int(round(float(np.mean([bx[3] for bx in boxes]))))
    return ((SIZE - cw) // 2, (SIZE - ch) // 2, cw, ch)
