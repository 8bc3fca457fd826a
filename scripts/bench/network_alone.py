#!/usr/bin/env python3
"""The network alone in onnxruntime, on one thread: the counterpart of
`target/release/examples/op_profile MODEL [WxH] [ITERATIONS]` (cambox's tract plan, one
thread), for the "network alone, one thread" rows of scripts/bench/run.sh.

One session with intra_op_num_threads = inter_op_num_threads = 1, sequential execution,
graph optimisation level ALL (what onnxruntime does by default, spelled out), batch 1 at
the model's declared input shape (a symbolic batch dimension becomes 1; any other
symbolic dimension is an error: give the model a fixed size). The input is the same
deterministic tensor op_profile feeds tract: at flat index i (in the model's own layout,
NCHW or NHWC as declared) ((i * 7919) % 255) / 127.5 - 1, float32, so both time the same
arithmetic on the same values. 5 warm-up runs, then --runs timed runs, each timed alone.

Prints one JSON line:
  {"model": PATH, "runtime": "onnxruntime", "input_shape": [..], "ms_median": .., "ms_min": ..,
   "ms_mean": .., "runs": N}

  target/venvs/bench/bin/python scripts/bench/network_alone.py data/models/efficientnet-lite0.onnx
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

WARMUP = 5


def input_tensor(shape):
    """op_profile's input: ((i * 7919) % 255) / 127.5 - 1 at flat index i."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    # Same operations as the Rust `((i * 7919) % 255) as f32 / 127.5 - 1.0`: the integer
    # (exact) to f32, then the f32 division and subtraction.
    x = ((i * 7919) % 255).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return x.reshape(shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = []
    for axis, d in enumerate(inp.shape):
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif axis == 0:
            shape.append(1)  # symbolic (or unknown) batch: one image
        else:
            sys.exit(f"{args.model}: input {inp.name} has symbolic dimension {axis} ({d!r}); "
                     "only the batch may be symbolic")
    if shape[0] != 1:
        sys.exit(f"{args.model}: declared batch {shape[0]}, expected 1 or symbolic")
    feed = {inp.name: input_tensor(shape)}
    outputs = [o.name for o in sess.get_outputs()]

    for _ in range(WARMUP):
        sess.run(outputs, feed)
    ms = []
    for _ in range(args.runs):
        t = time.perf_counter()
        sess.run(outputs, feed)
        ms.append(1e3 * (time.perf_counter() - t))
    print(json.dumps({"model": args.model, "runtime": "onnxruntime", "input_shape": shape,
                      "ms_median": round(statistics.median(ms), 3), "ms_min": round(min(ms), 3),
                      # op_profile reports a mean (total time / runs): this is the like-for-like figure.
                      "ms_mean": round(statistics.fmean(ms), 3),
                      "runs": args.runs}))


if __name__ == "__main__":
    main()
