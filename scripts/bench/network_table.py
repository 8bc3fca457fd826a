#!/usr/bin/env python3
"""The "network alone, one thread" section of scripts/bench/run.sh: reads the raw runs in
WORK/network-runs/, writes WORK/network.json and WORK/profile-MODEL-VARIANT.md, and prints
the markdown table.

Raw runs, three invocations (REP = 1, 2, 3) per model and variant:
  MODEL-cambox-tract.REP.md      examples/op_profile, KERNELS = tract (tract's ops)
  MODEL-cambox-depthwise.REP.md  examples/op_profile, KERNELS = depthwise
  MODEL-cambox.REP.md            examples/op_profile, all of cambox's kernels
  MODEL-onnxruntime.REP.json  scripts/bench/network_alone.py

An invocation's figure: op_profile's "ms per run" (wall time of its timed runs over their
number, i.e. a mean, with its per-node timing hooks in the loop), network_alone.py's median
run. The table gives the median of the three invocations' figures and its ratio to
onnxruntime's (above 1: slower than onnxruntime). profile-MODEL-VARIANT.md is the per-op
table of the invocation whose figure is that median.

  scripts/bench/network_table.py target/bench
"""
import json
import os
import re
import statistics
import sys

work = sys.argv[1]
raw = os.path.join(work, "network-runs")
VARIANTS = [("cambox-tract", "cambox plan, tract's own ops"),
            ("cambox-depthwise", "cambox's depthwise, tract's matrix products"),
            ("cambox", "cambox (depthwise, pointwise, max pooling kernels)"), ("onnxruntime", "onnxruntime")]
HEAD = re.compile(r"^model (\S+) at (\d+x\d+), one thread, (\d+) runs: ([0-9.]+) ms per run "
                  r"\(([0-9.]+) ms inside ops\)")

files = sorted(os.listdir(raw))
models = sorted({re.sub(r"-(cambox-tract|cambox-depthwise|cambox|onnxruntime)\.\d+\.(md|json)$", "", f) for f in files})
# Keep run.sh's order (EfficientNet-Lite0 first) rather than the alphabet's, when both are there.
models.sort(key=lambda m: (not m.startswith("efficientnet"), m))

result = {"runs_per_invocation": None, "models": []}
for model in models:
    entry = {"model": model, "variants": {}}
    for variant, label in VARIANTS:
        invocations = []  # (ms, text, path)
        means = []  # onnxruntime: the mean of each invocation's runs, op_profile's kind of figure
        rep = 1
        while True:
            ext = "json" if variant == "onnxruntime" else "md"
            path = os.path.join(raw, f"{model}-{variant}.{rep}.{ext}")
            if not os.path.exists(path):
                break
            text = open(path).read()
            if variant == "onnxruntime":
                r = json.loads(text)
                invocations.append((r["ms_median"], text, path))
                means.append(r.get("ms_mean"))
                entry["path"] = r["model"]
                entry["input_shape"] = r.get("input_shape")
                result["runs_per_invocation"] = r["runs"]
            else:
                m = HEAD.match(text)
                if not m:
                    sys.exit(f"{path}: unexpected first line: {text.splitlines()[:1]}")
                invocations.append((float(m.group(4)), text, path))
                entry["size"] = m.group(2)
            rep += 1
        if not invocations:
            continue
        ms = [v for v, _, _ in invocations]
        med = statistics.median(ms)
        v = {"label": label, "ms_per_invocation": ms, "ms_median": med}
        if means and None not in means:
            v["ms_mean_per_invocation"] = means
        if variant != "onnxruntime":
            # The per-op table of the median invocation (with three, one of them is it).
            _, text, _ = min(invocations, key=lambda t: abs(t[0] - med))
            name = f"profile-{model}-{variant}.md"
            with open(os.path.join(work, name), "w") as f:
                f.write(f"<!-- {label}; median of {len(ms)} invocations: {med:.2f} ms -->\n{text}")
            v["profile"] = name
        entry["variants"][variant] = v
    ort = entry["variants"].get("onnxruntime")
    for v in entry["variants"].values():
        v["ratio_to_onnxruntime"] = round(v["ms_median"] / ort["ms_median"], 4) if ort else None
    result["models"].append(entry)

with open(os.path.join(work, "network.json"), "w") as f:
    json.dump(result, f, indent=1)

print(f"Network alone, one thread ({result['runs_per_invocation']} timed runs per invocation, "
      "3 invocations interleaved; batch 1, same deterministic input):")
print()
print("| model | runtime | ms / image (median of 3 medians) | ratio to onnxruntime | the 3 invocations (ms) |")
print("| --- | --- | --- | --- | --- |")
for entry in result["models"]:
    for variant, v in entry["variants"].items():
        ratio = f"{v['ratio_to_onnxruntime']:.2f}x" if v["ratio_to_onnxruntime"] is not None else "–"
        runs = ", ".join(f"{x:.2f}" for x in v["ms_per_invocation"])
        print(f"| {entry['model']} | {v['label']} | {v['ms_median']:.2f} | {ratio} | {runs} |")
print()
print("cambox: examples/op_profile's ms per run (mean of its timed runs, per-node timing hooks "
      "included); onnxruntime: scripts/bench/network_alone.py's median run. Per-op tables: "
      + ", ".join(f"{work}/{v['profile']}" for e in result["models"] for v in e["variants"].values()
                  if "profile" in v))
