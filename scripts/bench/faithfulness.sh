#!/usr/bin/env bash
# Deletion + insertion at 50 steps, images per second: `cambox faithfulness` against the
# same computation in Python (numpy + onnxruntime, scripts/bench/faithfulness_peer.py, the
# port the Rust tests are checked against), on the same photos and maps, one after the
# other in this one invocation.
#
# Usage: scripts/bench/faithfulness.sh [N]    (N photos, default 12: the bundled photos cycled)
#
# cambox: `cambox run` with the demo recipe (EfficientNet-Lite0, maps saved), then
# `cambox faithfulness --no-road --no-baseline` (2 workers, one image each). The peer gets
# the same network inputs and maps as .npy (the demo preprocessing redone with Pillow:
# shorter side 256, centre crop 224, ImageNet mean and std; the saved 7x7 CAM upsampled to
# 224 bilinearly and min-max normalised), and runs with onnxruntime on 2 intra-op threads,
# then on 1; then with PyTorch (the same weights) when the bench venv has it. Needs the
# faithfulness venv (scripts/reference/faithfulness_reference.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
n=${1:-12}
out=${OUT:-/tmp/faith-bench}
cargo build --release --quiet
bin=$root/target/release/cambox
py=target/venvs/faithfulness/bin/python
[ -x "$py" ] || scripts/reference/faithfulness_reference.sh --check > /dev/null
# The peer's preprocessing needs Pillow (the pin of the other benchmark venvs).
"$py" -c "import PIL" 2>/dev/null || "$py" -m pip install -q "pillow==13.0.0"
rm -rf "$out" && mkdir -p "$out/images" "$out/npy"
i=0
while [ "$i" -lt "$n" ]; do
    for f in data/samples/natural/*.png data/samples/natural/*.jpg; do
        [ -f "$f" ] || continue
        [ "$i" -lt "$n" ] || break
        cp "$f" "$out/images/$(printf '%03d' "$i")_$(basename "$f")"
        i=$((i + 1))
    done
done
sed -e "s#\"\\.\\./#\"$root/#g" -e 's/^overlays = true/overlays = false\nmaps = true/' -e 's/^masks = true/masks = false/' \
    configs/demo.toml > "$out/demo.toml"
"$bin" run -q -c "$out/demo.toml" -o "$out/run" "$out/images"
t0=$(date +%s.%N)
"$bin" faithfulness -q --run "$out/run" --out "$out/faith" --no-road --no-baseline --steps 50 --bootstrap 0
t1=$(date +%s.%N)
"$py" - "$out" <<'PY'
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
out = Path(sys.argv[1])
mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
for img in sorted((out / "images").iterdir()):
    im = Image.open(img).convert("RGB")
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((round(w * s), round(h * s)), Image.BILINEAR)
    w, h = im.size
    l, t = (w - 224) // 2, (h - 224) // 2
    x = (np.asarray(im.crop((l, t, l + 224, t + 224)), np.float32) / 255 - mean) / std
    np.save(out / "npy" / f"x_{img.stem}.npy", x.transpose(2, 0, 1)[None].astype(np.float32))
    raw = np.load(out / "run" / "maps" / f"{img.name}.npy")[0]
    m = np.asarray(Image.fromarray(raw.astype(np.float32), "F").resize((224, 224), Image.BILINEAR), np.float32)
    m = (m - m.min()) / max(float(m.max() - m.min()), 1e-12)
    np.save(out / "npy" / f"map_{img.stem}.npy", m.astype(np.float32))
PY
cambox_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
echo "| pipeline (deletion + insertion, 50 steps, $n photos) | images/s |"
echo "|---|---|"
echo "| cambox faithfulness, 2 workers | $(python3 -c "print(f'{$n / ($t1 - $t0):.2f}')") ($cambox_s s, start-up included) |"
for th in 2 1; do
    r=$("$py" scripts/bench/faithfulness_peer.py "$out/npy" --threads "$th" --steps 50 2>&1 | grep -o '[0-9.]* images/s' | tail -1)
    echo "| numpy + onnxruntime, $th intra-op threads | ${r% images/s} |"
done
# The same with PyTorch (what torchcam's and Quantus' metrics run on), when the bench venv
# (scripts/bench/setup_venv.sh) is there.
torch_py=target/venvs/bench/bin/python
if [ -x "$torch_py" ] && "$torch_py" -c "import torch, efficientnet_lite_pytorch, scipy, onnxruntime" 2>/dev/null; then
    for th in 2 1; do
        r=$("$torch_py" scripts/bench/faithfulness_peer.py "$out/npy" --backend torch --threads "$th" --steps 50 2>&1 | grep -o '[0-9.]* images/s' | tail -1)
        echo "| numpy + PyTorch, $th threads | ${r% images/s} |"
    done
fi
