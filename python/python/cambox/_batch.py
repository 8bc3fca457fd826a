"""``run``, ``evaluate`` and ``read_run``: the command's ``run`` and ``eval`` from Python,
and a run's tables read back."""

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import _native
from ._errors import InputError, UsageError
from ._model import settings_of


def settings():
    """The configuration keys a keyword argument can name, by section:
    ``{"model": ["path", "labels", ...], ...}``."""
    return dict(_native.settings())


@dataclass
class RunSummary:
    """How a run ended: what ``cambox run`` prints on its last line, and its exit status."""

    #: ``images.csv`` rows ``ok`` and ``error`` in the folder (resumed rows included).
    ok: int
    errors: int
    #: Stopped by Ctrl-C (KeyboardInterrupt is raised too); the next run resumes.
    interrupted: bool
    #: Why nothing was processed (no image under the inputs), else ``None``.
    nothing_found: object
    #: The output folder.
    out: Path
    #: The configuration's fingerprint (what a resume compares).
    fingerprint: str
    #: The command's exit status for this outcome: 0 every image ok, 3 some failed or
    #: none found, 130 interrupted.
    status: int

    def tables(self, pandas=None):
        """The run's tables (:func:`read_run`)."""
        return read_run(self.out, pandas=pandas)


def _paths(value):
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


def _shard(shard):
    if shard is None or isinstance(shard, tuple):
        return shard
    if isinstance(shard, str) and "/" in shard:
        i, n = shard.split("/", 1)
        try:
            return int(i), int(n)
        except ValueError:
            pass
    raise UsageError(f"shard={shard!r}: give (index, count) or 'I/N'")


def run(config, inputs=None, out=None, *, shard=None, truth=None, truth_format=None, class_map=None,
        quiet=False, force=False, retry_errors=False, **settings):
    """Runs what ``cambox run --config CONFIG [--out OUT] [INPUT...]`` runs, in this process:
    the same folder (resumed by fingerprint, locked against a second run, shardable),
    the same files. Returns a :class:`RunSummary`.

    ``inputs`` (a path or a list) replace ``[input] paths``, ``out`` ``[output] dir``;
    ``shard=(i, n)`` or ``"i/n"``, ``truth``, ``truth_format``, ``class_map``, ``quiet``,
    ``force`` and ``retry_errors`` are the flags of the same names; other keyword arguments
    are configuration settings as for :class:`Model` (``threads=2``, ``method="gradcam"``,
    ``maps=True``, ``input_size=(480, 320)``). Paths given here are relative to the working
    folder, as on the command line.

    Ctrl-C finishes the images in flight, records the run as interrupted and raises
    ``KeyboardInterrupt``; running again resumes. Images that fail are ``error`` rows (see
    ``summary.errors``), not exceptions.
    """
    d = _native.run(
        os.fspath(config),
        settings_of(settings),
        _paths(inputs),
        None if out is None else os.fspath(out),
        _shard(shard),
        None if truth is None else os.fspath(truth),
        truth_format,
        None if class_map is None else os.fspath(class_map),
        quiet,
        force,
        retry_errors,
    )
    d["out"] = Path(d["out"])
    return RunSummary(**d)


def evaluate(run, truth, **options):
    """Runs what ``cambox eval --run RUN --truth TRUTH`` runs, writing the same files
    (default ``RUN/eval``), and returns what ``summary.json`` holds, as a dict.

    ``run`` is the run's output folder (or its :class:`RunSummary`). ``options`` are the
    flags of ``cambox eval`` with ``_`` for ``-``: ``format``, ``class_map``, ``out``,
    ``class_`` (``--class``), ``truth_label``, ``min_score``, ``convention``, ``baseline``,
    ``calibrate``, ``sweep_step``, ``unannotated_negative``, ``gallery``,
    ``pointing_tolerance``, ``truth_masks``, ``bootstrap``, ``bootstrap_seed``,
    ``taus_from``, ``split``.
    """
    if isinstance(run, RunSummary):
        run = run.out
    if "class" in options:
        options["class_"] = options.pop("class")
    paths = ("class_map", "out", "truth_masks", "taus_from", "split")
    for k in paths:
        if options.get(k) is not None:
            options[k] = os.fspath(options[k])
    try:
        return _native.evaluate(os.fspath(run), os.fspath(truth), **options)
    except TypeError as e:
        raise UsageError(f"evaluate: {e}") from None


# Column types of the tables, for reading them without pandas and typing them with it.
_INT = {"width", "height", "class_index", "frames", "x1", "y1", "x2", "y2", "component_area"}
_FLOAT = {"score", "box_score", "threshold", "logit_check", "ms"}


def _value(column, text):
    if text == "":
        return None if column in _INT or column in _FLOAT else text
    if column in _INT:
        return int(text)
    if column in _FLOAT:
        return float(text)
    return text


def _read_csv(path, probabilities=False):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        columns = {h: [] for h in header}
        for row in reader:
            for h, text in zip(header, row):
                if probabilities and h != "path":
                    columns[h].append(float(text))
                else:
                    columns[h].append(_value(h, text))
    return columns


def _frame(columns, pd):
    if pd is None:
        return columns
    data = {}
    for h, values in columns.items():
        if h in _INT:
            data[h] = pd.array(values, dtype="Int64")
        elif h in _FLOAT:
            data[h] = pd.array([float("nan") if v is None else v for v in values], dtype="float64")
        else:
            data[h] = values
    return pd.DataFrame(data, columns=list(columns))


@dataclass
class RunTables:
    """A run's output folder read back: ``images.csv``, ``boxes.csv`` and (when written)
    ``probabilities.csv`` as pandas DataFrames (or dicts of column lists without pandas),
    and ``run.json`` as a dict. Empty cells are ``None`` / ``<NA>`` / ``NaN``."""

    out: Path
    images: object
    boxes: object
    probabilities: object
    manifest: dict

    def map(self, path):
        """The saved maps of image ``path`` (as in ``images.csv``): ``(float32 array of
        (classes, h, w), the sidecar dict: classes, shape, geometry)``. Needs a run with
        ``[output] maps = true``."""
        import numpy as np

        base = self.out / "maps" / path
        npy, sidecar = Path(f"{base}.npy"), Path(f"{base}.json")
        if not npy.is_file():
            raise InputError(f"{npy}: no saved maps (run with maps=True, [output] maps = true)")
        return np.load(npy), json.loads(sidecar.read_text(encoding="utf-8"))


def read_run(out, pandas=None):
    """The tables of the run in ``out`` (a folder or a :class:`RunSummary`), as
    :class:`RunTables`. ``pandas=None`` uses pandas when it is installed, ``True`` requires
    it, ``False`` gives dicts of lists."""
    if isinstance(out, RunSummary):
        out = out.out
    out = Path(out)
    pd = None
    if pandas is not False:
        try:
            import pandas as pd
        except ImportError:
            if pandas:
                raise ImportError(
                    "read_run(pandas=True) needs pandas: pip install pandas (or pandas=None for dicts of lists)"
                ) from None
    manifest_path = out / "run.json"
    if not manifest_path.is_file():
        raise InputError(f"run folder {out}: no run.json (not the output folder of a run)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    probs = out / "probabilities.csv"
    return RunTables(
        out=out,
        images=_frame(_read_csv(out / "images.csv"), pd),
        boxes=_frame(_read_csv(out / "boxes.csv"), pd),
        probabilities=_frame(_read_csv(probs, probabilities=True), pd) if probs.is_file() else None,
        manifest=manifest,
    )
