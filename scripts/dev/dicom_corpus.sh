#!/usr/bin/env bash
# Runs cambox over the DICOM test files that ship inside pydicom's wheel
# (pydicom/data/test_files/**/*.dcm): a corpus no one here wrote, with the
# oddities real archives hold (ACR-NEMA files without preamble, UN sequences,
# 12-bit JPEG, JPEG-LS, YBR colour, big endian, truncated files).
#
# It is a script, not a test: the tests run offline, this needs PyPI once.
#
#   scripts/dev/dicom_corpus.sh [--label NAME] [--features F1,F2] [--bin PATH]
#
#   --label     name of this run (default: the current commit); results go to
#               target/dicom-corpus/runs/NAME/
#   --features  cargo features to build cambox with (e.g. jpeg-ls)
#   --bin       use this cambox binary instead of building one
#
# Steps:
#   1. `pip download` the pinned pydicom wheel into target/dicom-corpus/ (no
#      install: the wheel is a zip) and copy its test_files/**/*.dcm out;
#   2. one `cambox run` over all of them under GNU time (/usr/bin/time -v):
#      the run's peak RSS, as an overnight run would see it;
#   3. one `cambox run` per file, also under GNU time: which file costs what;
#   4. scripts/dev/dicom_corpus.py prints a table: file, size, status, error, peak
#      RSS of its own run, and the failures grouped by reason. The table is also
#      written to runs/NAME/report.md.
#
# The model is the small phantom CNN (data/models/phantom-cnn.onnx, grey input,
# stretch preprocessing as configs/phantoms.toml): the point is decoding, not
# predictions. GNU time comes from Debian's `time` package.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"

PYDICOM_VERSION="3.0.2"
WORK="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/dicom-corpus"
label=""
features=""
bin=""
while [ $# -gt 0 ]; do
    case "$1" in
        --label) label="$2"; shift 2 ;;
        --features) features="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        *) echo "usage: $0 [--label NAME] [--features F1,F2] [--bin PATH]" >&2; exit 2 ;;
    esac
done
[ -n "$label" ] || label="$(git rev-parse --short HEAD)${features:+-$features}"

if [ ! -x /usr/bin/time ]; then
    echo "GNU time is needed: apt-get install time" >&2
    exit 1
fi

# 1. the corpus
wheel="$WORK/pydicom-$PYDICOM_VERSION-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
    mkdir -p "$WORK"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        "pydicom==$PYDICOM_VERSION" -d "$WORK"
fi
corpus="$WORK/test_files-$PYDICOM_VERSION"
if [ ! -f "$corpus/.complete" ]; then
    rm -rf "$corpus"
    python3 - "$wheel" "$corpus" <<'PY'
import sys, zipfile
from pathlib import Path
wheel, out = sys.argv[1], Path(sys.argv[2])
prefix = "pydicom/data/test_files/"
n = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(prefix) and info.filename.lower().endswith(".dcm"):
            dest = out / info.filename[len(prefix):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(z.read(info))
            n += 1
(out / ".complete").write_text(f"{n}\n")
print(f"{n} .dcm files from {Path(wheel).name}", file=sys.stderr)
PY
fi

# 2. the binary
if [ -z "$bin" ]; then
    cargo build --release --quiet ${features:+--features "$features"}
    bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/cambox"
fi

run_dir="$WORK/runs/$label"
rm -rf "$run_dir"
mkdir -p "$run_dir/per-file"
cfg="$run_dir/corpus.toml"
cat > "$cfg" <<EOF
# Written by scripts/dev/dicom_corpus.sh: decoding is what is under test.
[input]
paths = ["$corpus"]

[model]
path = "$REPO_ROOT/data/models/phantom-cnn.onnx"
labels = "$REPO_ROOT/data/models/phantom-classes.txt"

[preprocess]
resize = "stretch"
resampling = "bilinear"
scale = "unit"
mean = [0.5]
std = [0.25]

[output]
dir = "$run_dir/all"
top_k = 2
EOF

# 3. the whole corpus in one run, then each file alone
status=0
/usr/bin/time -v "$bin" run -q -c "$cfg" -o "$run_dir/all" 2> "$run_dir/all.time" || status=$?
echo "whole run: exit status $status" >&2
(cd "$corpus" && find . -name '*.dcm' | sed 's|^\./||' | LC_ALL=C sort) > "$run_dir/files.txt"
i=0
while IFS= read -r rel; do
    i=$((i + 1))
    out="$run_dir/per-file/$i"
    /usr/bin/time -v "$bin" run -q -c "$cfg" -o "$out" "$corpus/$rel" 2> "$run_dir/per-file/$i.time" || true
    printf '%s\t%s\n' "$rel" "$i" >> "$run_dir/per-file/index.tsv"
done < "$run_dir/files.txt"

# 4. the report
python3 "$REPO_ROOT/scripts/dev/dicom_corpus.py" --corpus "$corpus" --run "$run_dir" --label "$label" \
    --bin "$bin" | tee "$run_dir/report.md"
