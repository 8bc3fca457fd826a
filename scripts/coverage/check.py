#!/usr/bin/env python3
"""Runs cambox on every model of the exporter sweep and writes the coverage table.

For each manifest entry (see README.md) this:

1. times `cambox inspect MODEL` (start-up: load, cut, and the start-up proof);
2. runs `cambox run` on the entry's `input.png` with a configuration that feeds the
   network exactly the tensor onnxruntime was given (the PNG is at the network's size,
   `resampling = "nearest"` at the same size is the identity, and the manifest's scale,
   mean, std and channel order), and compares `probabilities.csv` with the softmax of
   onnxruntime's logits (`ort_logits.npy`);
3. tries the model at another input size (`inspect --input-size`), which sharper maps
   need.

A model "runs" when its probabilities are within 1e-4 of onnxruntime's, or within
onnxruntime's own spread between its optimised and unoptimised graphs (`ort_spread`,
random weights make some nets chaotic on an input). Anything else is "differs" (with the
difference) or "refused" (with cambox's one-line reason). Models the exporter could not
write are listed with the exporter's error.

Usage: check.py --sweep target/coverage --cambox target/release/cambox
                [--json OUT.json] [--markdown OUT.md] [--only ARCH,...]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOL = 1e-4
# Another input size: what re-typing for sharper maps asks of the graph.
RETYPE_EXTRA = 96


def softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64).ravel()
    e = np.exp(z - z.max())
    return e / e.sum()


def toml_list(v) -> str:
    return "[" + ", ".join(repr(float(x)) for x in v) + "]"


def config(entry: dict, sweep: Path, out: Path) -> str:
    return f"""[input]
paths = ["{(sweep / entry['input_png']).resolve()}"]

[model]
path = "{(sweep / entry['model']).resolve()}"
layout = "{entry['layout']}"

[preprocess]
resize = "stretch"
resampling = "nearest"
channels = "{entry.get('channels', 'rgb')}"
scale = "{entry['scale']}"
mean = {toml_list(entry['mean'])}
std = {toml_list(entry['std'])}

[output]
dir = "{out}"
top_k = 5
probabilities = true

[localise]
classes = "top1"
"""


def one_line(text: str) -> str:
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return lines[-1].removeprefix("cambox: error: ") if lines else ""


def run(cmd: list[str], timeout: int) -> tuple[int, str, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        return -1, "", f"timed out after {timeout} s", time.perf_counter() - t0


def reason_of(stderr: str, model: str) -> str:
    """cambox's refusal without the `model PATH: ` prefix."""
    r = one_line(stderr)
    prefix = f"model {model}: "
    return r[len(prefix):] if r.startswith(prefix) else r


def reference_logits(entry: dict, sweep: Path) -> Path | None:
    """onnxruntime's logits for the entry: its own, or, for a Keras export onnxruntime
    cannot run (inputs without values), those of the same network exported with its
    constants fixed (`tf2onnx-constfix`: same weights, same input)."""
    folder = sweep / Path(entry["model"]).parent
    for candidate in (folder / "ort_logits.npy", folder.parent / "tf2onnx-constfix" / "ort_logits.npy"):
        if candidate.is_file():
            return candidate
    return None


def check(entry: dict, sweep: Path, cambox: str, timeout: int) -> dict:
    res = {k: entry.get(k) for k in ("family", "arch", "exporter", "has_gap", "ort_spread", "external_data")}
    model_path = sweep / (entry.get("model") or "missing")
    if entry.get("export_error") and not model_path.is_file():
        res.update(status="export failed", reason=entry["export_error"].splitlines()[0][:300])
        return res
    model = str(model_path.resolve())
    code, out, err, secs = run([cambox, "inspect", model], timeout)
    res["startup_s"] = round(secs, 2)
    if code != 0:
        res.update(status="refused", reason=reason_of(err, model))
        return res
    reference = reference_logits(entry, sweep)
    if reference is None:
        why = (entry.get("export_error") or "no ort_logits.npy").splitlines()[0][:200]
        res.update(status="no reference", reason=f"cambox loads it, onnxruntime cannot: {why}")
        return res
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "c.toml"
        cfg.write_text(config(entry, sweep, Path(tmp) / "out"))
        code, _, err, secs = run([cambox, "run", "-q", "-c", str(cfg)], timeout)
        res["run_s"] = round(secs, 2)
        if code != 0:
            res.update(status="run failed", reason=one_line(err))
            return res
        with open(Path(tmp) / "out" / "probabilities.csv") as f:
            rows = list(csv.reader(f))
        got = np.array([float(x) for x in rows[1][1:]])
        with open(Path(tmp) / "out" / "images.csv") as f:
            images = list(csv.DictReader(f))
        res["logit_check"] = images[0].get("logit_check") or None
        manifest = json.loads((Path(tmp) / "out" / "run.json").read_text())
        res["head"] = manifest["model"]["cut"]["head"]
        res["method"] = manifest["method"].split(" ")[0]
    logits = np.load(reference)
    want = softmax(logits) if entry.get("output", "logits") == "logits" else logits.ravel().astype(np.float64)
    diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    res["prob_diff"] = diff
    spread = entry.get("ort_spread") or 0.0
    if diff <= TOL:
        res["status"] = "runs"
    elif diff <= spread + 1e-6:
        res["status"] = "runs"
        res["reason"] = f"differs by {diff:.1e}, within onnxruntime's own spread {spread:.1e}"
    else:
        res.update(status="differs", reason=f"probabilities differ from onnxruntime's by {diff:.2e} (its own spread {spread:.1e})")
    w, h = entry["input_size"]
    size = f"{w + RETYPE_EXTRA}x{h + RETYPE_EXTRA}"
    code, _, err, secs = run([cambox, "inspect", model, "--input-size", size], timeout)
    res["retype"] = size if code == 0 else None
    if code != 0:
        res["retype_reason"] = reason_of(err, model)
    return res


NO_GAP = ("no global average pooling (GlobalAveragePool, ReduceMean over H and W, or a full-map AveragePool) "
          "before the output: CAM needs one; instead ")


def short(reason: str) -> str:
    """A refusal as the table shows it: the standard opening and tract's detail dropped."""
    reason = reason.replace(NO_GAP, "no global average pooling: ")
    for detail in (" (at ", " (tract "):
        if detail in reason:
            reason = reason[: reason.index(detail)]
    return reason.replace("|", "\\|")


def markdown(results: list[dict]) -> str:
    head = "| family | architecture | exporter | result | head / method | start-up s | re-types |\n| --- | --- | --- | --- | --- | --- | --- |\n"
    rows = []
    for r in results:
        if r["status"] == "runs":
            result = f"runs ({r['prob_diff']:.0e})"
            hm = f"{r.get('head', '?')} / {r.get('method', '?')}"
        else:
            result = f"{r['status']}: {short(r.get('reason', ''))}"
            hm = ""
        retype = "" if r["status"] != "runs" else ("yes" if r.get("retype") else f"no: {short(r.get('retype_reason', ''))}")
        su = f"{r['startup_s']:.1f}" if "startup_s" in r else ""
        rows.append(f"| {r['family']} | {r['arch']} | {r['exporter']} | {result} | {hm} | {su} | {retype} |")
    return head + "\n".join(rows) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", type=Path, default=Path("target/coverage"))
    ap.add_argument("--cambox", default="target/release/cambox")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--only", help="comma-separated architecture names")
    ap.add_argument("--timeout", type=int, default=600)
    a = ap.parse_args()
    entries = json.loads((a.sweep / "manifest.json").read_text())
    if a.only:
        keep = set(a.only.split(","))
        entries = [e for e in entries if e["arch"] in keep]
    order = {"torchvision": 0, "timm": 1, "keras": 2}
    entries.sort(key=lambda e: (order.get(e["family"], 9), e["arch"].lower(), e["exporter"]))
    results = []
    for e in entries:
        r = check(e, a.sweep, a.cambox, a.timeout)
        results.append(r)
        print(f"{r['family']:12s} {r['arch']:24s} {r['exporter']:17s} {r['status']:13s} "
              f"{r.get('prob_diff', float('nan')):.1e} {r.get('startup_s', 0):5.1f}s {r.get('reason', '')[:110]}",
              flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1) + "\n")
    if a.markdown:
        a.markdown.write_text(markdown(results))
    counts = {}
    for r in results:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(counts)
    gap_failures = [r for r in results if r.get("has_gap") and r["status"] not in ("runs", "export failed")]
    return 1 if gap_failures else 0


if __name__ == "__main__":
    sys.exit(main())
