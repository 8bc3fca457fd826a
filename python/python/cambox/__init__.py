"""cambox: class activation maps, boxes and masks from ONNX image classifiers.

The same Rust library as the ``cambox`` command, from Python::

    import cambox
    model = cambox.Model("data/models/efficientnet-lite0.onnx", config="configs/demo.toml")
    r = model.explain("data/samples/natural/chelsea.png")      # or a numpy array, or a list
    r.class_name, r.score, r.boxes[0]["x1"], r.maps[r.class_index].shape

    summary = cambox.run("configs/demo.toml", out="out/demo")  # what `cambox run` runs
    figures = cambox.evaluate(summary.out, "data/annotations/natural-voc",
                              class_map="data/annotations/natural-imagenet-map.csv")
    tables = cambox.read_run(summary.out)                      # pandas DataFrames

The reference is ``docs/python.md`` in the repository; every configuration key is in
``docs/configuration.md``.
"""

from ._errors import CamboxError, InputError, ModelError, OutputError, UsageError
from ._model import Explanation, Model
from ._batch import RunSummary, RunTables, evaluate, read_run, run, settings
from ._native import __version__

__all__ = [
    "Model",
    "Explanation",
    "run",
    "evaluate",
    "read_run",
    "settings",
    "RunSummary",
    "RunTables",
    "CamboxError",
    "UsageError",
    "ModelError",
    "InputError",
    "OutputError",
    "__version__",
]
