#!/usr/bin/env bash
# Proves a change left cambox's results unchanged: runs two cambox binaries on the same
# jobs and compares what they wrote, file by file.
#
# Usage:
#   scripts/dev/compare_outputs.sh OLD_BIN NEW_BIN [WORKDIR]      two binaries
#   scripts/dev/compare_outputs.sh --rev REV [WORKDIR]            REV (built in a git worktree
#                                                             under target/) against this tree
#
# Jobs: the demo (configs/demo.toml), the phantom benchmark's run and its four evals
# (configs/phantoms.toml; cambox, --calibrate, --baseline centre and whole), and the
# pneumonia config (configs/pneumonia-xception.toml) when the Xception model is in
# data/models/ or under $CAMBOX_SHARED/models/.
#
# Compared byte for byte: boxes.csv, every file under masks/, overlays/ and maps/, and
# every file the evals write (per_image.csv, summary.json, unmatched.csv,
# calibrated.toml, report.html; a report.html whose bytes differ is then compared as the
# page a browser parses, scripts/dev/same_page.py, and counted apart). images.csv is compared byte for byte after dropping the
# `ms` column (processing time) and sorting rows (rows arrive in completion order);
# boxes.csv and the evals' per_image.csv (in images.csv order) are sorted likewise. run.json is compared without its times (started,
# finished, time). Both binaries write into the same path in turn, so paths recorded in
# the outputs are equal. Exit 0 when everything is identical, 1 with the differences.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

if [ "${1:-}" = "--rev" ]; then
    rev=${2:?usage: --rev REV [WORKDIR]}
    tree="$root/target/compare-tree"
    rm -rf "$tree"
    git worktree prune
    git worktree add --detach "$tree" "$rev" >/dev/null
    (cd "$tree" && CARGO_TARGET_DIR="$root/target/compare-target" cargo build --release --quiet)
    old="$root/target/compare-target/release/cambox"
    cargo build --release --quiet
    new="$root/target/release/cambox"
    work=${3:-/tmp/cambox-compare}
else
    old=$(realpath "${1:?usage: OLD_BIN NEW_BIN [WORKDIR]}")
    new=$(realpath "${2:?usage: OLD_BIN NEW_BIN [WORKDIR]}")
    work=${3:-/tmp/cambox-compare}
fi
rm -rf "$work"
mkdir -p "$work"

# The pneumonia model, when available, through a copy of its config with absolute paths.
xception=""
if [ -f data/models/pneumonia_xception.onnx ]; then
    xception="$root/data/models/pneumonia_xception.onnx"
elif [ -n "${CAMBOX_SHARED:-}" ] && [ -f "$CAMBOX_SHARED/models/pneumonia_xception.onnx" ]; then
    xception="$CAMBOX_SHARED/models/pneumonia_xception.onnx"
fi
if [ -n "$xception" ]; then
    sed -e "s#\"\.\./data/models/pneumonia_xception.onnx\"#\"$xception\"#" \
        -e "s#\"\.\./#\"$root/#g" configs/pneumonia-xception.toml >"$work/pneumonia.toml"
else
    echo "compare: no Xception model (data/models/ or \$CAMBOX_SHARED/models/): pneumonia job skipped" >&2
fi

jobs() { # BIN: every job into $work/run
    local bin=$1 r="$work/run"
    mkdir -p "$r"
    "$bin" run -q --threads 2 -c configs/demo.toml -o "$r/demo"
    "$bin" run -q --threads 2 -c configs/phantoms.toml -o "$r/phantoms"
    "$bin" eval --run "$r/phantoms" --truth data/phantoms/labels.csv --out "$r/phantoms-eval" --calibrate >"$r/phantoms-eval.txt"
    for b in centre whole; do
        "$bin" eval --run "$r/phantoms" --truth data/phantoms/labels.csv --out "$r/phantoms-eval-$b" --baseline "$b" >"$r/phantoms-eval-$b.txt"
    done
    if [ -n "$xception" ]; then
        "$bin" run -q --threads 2 -c "$work/pneumonia.toml" -o "$r/pneumonia"
    fi
}

jobs "$old"
mv "$work/run" "$work/old"
jobs "$new"
mv "$work/run" "$work/new"

python3 - "$work/old" "$work/new" "$(dirname "$0")" <<'PY'
import csv, io, json, os, sys
old, new, here = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, here)
from same_page import same_page  # report.html: maud writes the same page with other quotes

def files(d):
    # .cambox.lock: the folder lock of newer versions, not an output.
    return sorted(os.path.relpath(os.path.join(p, f), d) for p, _, fs in os.walk(d) for f in fs if f != ".cambox.lock")

def table(path, drop=()):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    head, body = rows[0], rows[1:]
    keep = [i for i, h in enumerate(head) if h not in drop]
    pick = lambda r: [r[i] for i in keep]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(pick(head))
    for r in sorted(pick(r) for r in body):
        w.writerow(r)
    return out.getvalue().encode()

def manifest(path):
    m = json.load(open(path))
    for k in ("started", "finished", "time"):
        m.pop(k, None)
    return json.dumps(m, indent=1, sort_keys=True).encode()

def content(root, rel):
    p = os.path.join(root, rel)
    base = os.path.basename(rel)
    if base == "images.csv":
        return table(p, drop=("ms",))
    if base in ("boxes.csv", "per_image.csv"):
        return table(p)
    if base == "run.json":
        return manifest(p)
    return open(p, "rb").read()

def json_paths(a, b, at=""):
    """The keys at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b)) for p in json_paths(a.get(k), b.get(k), f"{at}.{k}")]
    return [] if a == b else [at or "."]

fo, fn = files(old), files(new)
bad = []
for rel in sorted(set(fo) ^ set(fn)):
    bad.append(f"only in {'old' if rel in fo else 'new'}: {rel}")
same, pages = 0, []
for rel in sorted(set(fo) & set(fn)):
    if content(old, rel) == content(new, rel):
        same += 1
    elif os.path.basename(rel) == "report.html" and same_page(os.path.join(old, rel), os.path.join(new, rel)) is None:
        pages.append(rel)
    elif os.path.basename(rel) == "run.json":
        keys = json_paths(json.loads(manifest(os.path.join(old, rel))), json.loads(manifest(os.path.join(new, rel))))
        bad.append(f"differs: {rel} (at {', '.join(keys)})")
    else:
        bad.append(f"differs: {rel}")
print(f"compare: {same} files identical, {len(pages)} report pages the same page (serialised otherwise), {len(bad)} differences")
for b in bad[:50]:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
