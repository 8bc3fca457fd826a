#!/usr/bin/env python3
"""cambox from Python, the quickstart notebook (examples/quickstart.ipynb) as a script.

Loads the demo model, explains a photo, saves its overlay, runs the folder of sample
photos as `cambox run` does and scores the boxes against the VOC boxes as `cambox eval`
does. Needs `pip install ./python matplotlib` (from the repository root); writes into
OUT (default: a new temporary folder).

    python examples/quickstart.py [OUT]
"""
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import cambox  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="cambox-quickstart-"))

# Load, cut and prove the model once; keywords are `cambox run` configuration keys.
model = cambox.Model(
    ROOT / "data/models/efficientnet-lite0.onnx",
    labels=ROOT / "data/models/imagenet-classes.txt",
    resize="shorter-side-then-center-crop",
    resize_to=256,
    mean=[0.485, 0.456, 0.406],
    std=[0.229, 0.224, 0.225],
    overlays=True,
)
print(model)

# One photo: probabilities, the top class's map, mask and boxes, in the photo's pixels.
r = model.explain(ROOT / "data/samples/natural/chelsea.png")
print(r)
for k, name, p in r.top_k[:3]:
    print(f"  {p:.3f}  {k:4d}  {name}")
OUT.mkdir(parents=True, exist_ok=True)
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].imshow(r.overlays[r.class_index])
axes[0].set_axis_off()
axes[1].imshow(r.maps[r.class_index], cmap="turbo", vmin=0, vmax=1)
axes[1].set_axis_off()
fig.savefig(OUT / "chelsea-overlay.png", bbox_inches="tight")
print("overlay:", OUT / "chelsea-overlay.png")

# The folder, as `cambox run` runs it, with each image's annotated classes localised too.
voc = ROOT / "data/annotations/natural-voc"
class_map = ROOT / "data/annotations/natural-imagenet-map.csv"
summary = cambox.run(ROOT / "configs/demo.toml", out=OUT / "natural", truth=voc, class_map=class_map,
                     maps=True, quiet=True)
print(summary)

# The boxes against the VOC boxes, as `cambox eval` scores them (summary.json's figures).
figures = cambox.evaluate(summary, voc, class_map=class_map)
print(f"CorLoc@0.5 {figures['corloc']:.3f}  GT-known Loc {figures['gt_known_loc']:.3f}  "
      f"pointing game {figures['pointing_game']:.3f}")
