#!/usr/bin/env python3
"""onnxruntime's own per-op profile of a network on one thread: the counterpart of
`target/release/examples/op_profile` (cambox's tract plan), so that the two profiles can
be read side by side, op kind by op kind.

Same session as scripts/bench/network_alone.py (one thread, sequential, all graph
optimisations) with onnxruntime's profiler on; same deterministic input. Every node's
kernel time is summed over the runs (warm-up included) and divided by their number.
Convolutions are put in the kinds op_profile's table reads: depthwise (groups = input
channels), pointwise (1x1, one group), other convolutions; a node whose name is not in
the ONNX file (onnxruntime renames what it fuses or re-lays out) is classified by the
shapes onnxruntime reports for it.

Prints a markdown table: kind, nodes, ms per run, share.

  target/venvs/bench/bin/python scripts/bench/ort_profile.py data/models/efficientnet-lite0.onnx
"""
import argparse
import collections
import json
import os
import sys

import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from network_alone import input_tensor  # noqa: E402


def conv_kinds(path):
    """ONNX node name -> kind, for the convolutions of the file."""
    kinds = {}
    model = onnx.load(path, load_external_data=False)
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        group = attrs.get("group", 1)
        w = inits.get(n.input[1])
        kernel = attrs.get("kernel_shape") or (w[2:] if w else None)
        if group > 1:
            kinds[n.name] = "depthwise"
        elif kernel and all(k == 1 for k in kernel):
            kinds[n.name] = "pointwise (1x1)"
        else:
            kinds[n.name] = "other convolution"
    return kinds


def kind_of(event, kinds):
    args = event.get("args", {})
    op = args.get("op_name", "?")
    name = event["name"].removesuffix("_kernel_time")
    if name in kinds:
        return kinds[name]
    for known, kind in kinds.items():
        if known and known in name:
            return kind
    if "Conv" in op:
        # Fused or re-laid-out: the weight's shape says (O, I/group, kh, kw).
        shapes = [list(s.values())[0] for s in args.get("input_type_shape", [])]
        if len(shapes) > 1 and len(shapes[1]) == 4:
            o, i, kh, kw = shapes[1]
            if i == 1 and o > 1:
                return "depthwise"
            if kh == kw == 1:
                return "pointwise (1x1)"
            return "other convolution"
    return op


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--nodes", action="store_true", help="also list every node")
    args = ap.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = "/tmp/cambox-ort-profile"
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    x = input_tensor(shape)
    runs = 5 + args.runs
    for _ in range(runs):
        sess.run(None, {inp.name: x})
    trace = sess.end_profiling()
    events = json.load(open(trace))
    os.remove(trace)

    kinds = conv_kinds(args.model)
    by_kind = collections.defaultdict(lambda: [set(), 0.0])
    by_node = collections.defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        k = kind_of(e, kinds)
        by_kind[k][0].add(e["name"])
        by_kind[k][1] += e["dur"] / 1000.0 / runs
        by_node[(k, e["name"], e["args"].get("op_name"))] += e["dur"] / 1000.0 / runs
    total = sum(v[1] for v in by_kind.values())
    print(f"model {args.model}, onnxruntime {ort.__version__}, one thread, {runs} runs: "
          f"{total:.2f} ms per run inside nodes")
    print("| kind | nodes | ms / run | share |")
    print("| --- | --- | --- | --- |")
    for k, (names, ms) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
        print(f"| {k} | {len(names)} | {ms:.2f} | {100 * ms / total:.1f} % |")
    if args.nodes:
        for (k, name, op), ms in sorted(by_node.items(), key=lambda kv: -kv[1]):
            print(f"{ms:8.3f} ms  {k:20s} {op:20s} {name}")


if __name__ == "__main__":
    main()
