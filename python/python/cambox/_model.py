"""``Model`` and ``Explanation``: one model loaded once, images explained on demand."""

import os

from . import _native, _progress
from ._errors import UsageError

#: The configuration's sections; a keyword argument named after one takes a dict of its
#: keys (``preprocess={"mean": [...], "std": [...]}``).
SECTIONS = ("input", "model", "preprocess", "cam", "localise", "output", "run", "decode")


def settings_of(overrides):
    """``(name, value)`` pairs for the extension from keyword arguments: ``None`` values are
    left out, a section given as a dict is spread into ``section.key`` names."""
    out = []
    for key, value in overrides.items():
        if value is None:
            continue
        if key in SECTIONS and isinstance(value, dict):
            out.extend((f"{key}.{k}", v) for k, v in value.items() if v is not None)
        else:
            out.append((key, value))
    return out


class Model:
    """An ONNX classifier loaded, cut and proved once, as ``cambox run`` does at start-up.

    ``Model(path, config=None, **settings)``: ``path`` is the ONNX file (it may be left
    out when ``config`` names one); ``config`` a TOML run configuration as ``cambox run``
    reads it (relative paths in it are relative to its folder); ``settings`` replace its
    keys by name: ``input_size=(480, 320)``, ``method="gradcam"``, ``recipe="sharp"``,
    ``labels="classes.txt"``, ``mean=[...]``, ``resize="stretch"``, ``top_k=5``,
    ``overlays=True``, ``threads=2``, or a whole section as a dict
    (``preprocess={...}``). Every key is in ``docs/configuration.md``; ``[input]``,
    ``[output] dir`` and ``[truth]`` are not read.

    Raises ``ModelError`` for a model cambox cannot use, ``UsageError`` for a setting
    that does not fit its key, ``InputError`` for a configuration file that cannot be read.
    """

    def __init__(self, path=None, config=None, **settings):
        if path is None and config is None:
            raise UsageError("Model needs the path of an ONNX model, or a configuration file that names one")
        pairs = [] if path is None else [("model.path", os.fspath(path))]
        pairs += settings_of(settings)
        self._native = _native.Model(None if config is None else os.fspath(config), pairs)
        info = self._native.info()
        #: Class names, index by index (``class_0``, ... without a labels file).
        self.labels = info["labels"]
        #: The map method that runs (``auto`` resolved), and why when it was ``auto``.
        self.method = info["method"]
        self.method_reason = info["method_reason"]
        #: ``softmax`` or ``sigmoid`` (multi-label).
        self.activation = info["activation"]
        #: The network passes: ``(width, height, mirrored)`` each.
        self.passes = info["passes"]
        #: Worker threads explaining lists.
        self.threads = info["threads"]
        #: The localisation recipe (preset, thresholds, ...), as ``run.json`` records it.
        self.localise = info["localise"]
        #: What ``run.json`` says of the model: path, sha256, input, activation, the cut.
        self.model = info["model"]
        #: The configuration after the settings, every key with its value.
        self.config = info["config"]

    @property
    def num_classes(self):
        return len(self.labels)

    def __repr__(self):
        w, h, _ = self.passes[0]
        return (
            f"cambox.Model({self.model['path']!r}: {self.num_classes} classes, {w}x{h} input, "
            f"{len(self.passes)} pass{'es' if len(self.passes) > 1 else ''}, method {self.method}, "
            f"preset {self.localise['preset']})"
        )

    def explain(self, images, classes=None, *, progress=None, errors="raise"):
        """Class maps, boxes and masks of one image or a list of them.

        ``images``: a numpy array (H x W grey or H x W x 3 RGB; uint8, uint16, or float32 in
        [0, 1]), the path of an image file (any format ``cambox run`` reads, DICOM
        included), or a list (any iterable) of them, explained in parallel on the model's
        threads with the GIL released. Returns one :class:`Explanation`, or a list in the
        same order.

        ``classes``: which classes get maps and boxes: ``"top1"``, ``"topk:K"``,
        ``"above:P"``, a class index or name, or a list of them; ``None`` (default) is the
        configuration's ``[localise] classes`` (``"top1"`` unless it says otherwise).

        ``progress``: ``None`` shows a bar (tqdm's when installed) on lists of 16 images or
        more, ``True``/``False`` always/never, or a callable given the number done.

        ``errors``: an image that cannot be explained raises ``InputError`` naming it and
        saying why (``"raise"``), or leaves ``None`` in its place in a list (``"none"``).
        A bad array (wrong dtype, shape, channel count, empty, values outside [0, 1]) is
        refused before any work, in both modes.
        """
        if errors not in ("raise", "none"):
            raise UsageError(f"errors={errors!r}: 'raise' or 'none'")
        single = _is_one(images)
        items = [images] if single else list(images)
        pairs = [(_name(x, None if single else i), x) for i, x in enumerate(items)]
        report, close = _progress.callback(progress, 0 if single else len(items))
        try:
            raw = self._native.explain(pairs, classes, report)
        finally:
            close()
        out = []
        for (_, source), r in zip(pairs, raw):
            if isinstance(r, BaseException):
                if errors == "raise" or single:
                    raise r
                out.append(None)
            else:
                out.append(Explanation(r, self.labels, _path(source)))
        return out[0] if single else out

    def read_image(self, path):
        """The pixels of an image file as this model reads them (DICOM through its LUTs and
        window): uint8 for 8-bit files, float32 in [0, 1] otherwise; H x W or H x W x 3.
        ``explain`` of this array gives what ``explain`` of the file gives."""
        return self._native.read_image(os.fspath(path))


def _is_one(images):
    """One image (an array, a path, anything that is not a collection of them) or several
    (a list, a tuple, any other iterable: a generator, a pandas Series of paths)."""
    if isinstance(images, (str, bytes, os.PathLike)) or hasattr(images, "__array_interface__"):
        return True
    if isinstance(images, (list, tuple)):
        return False
    try:
        iter(images)
    except TypeError:
        return True
    return isinstance(images, dict)


def _name(source, index):
    """How an image is named in errors and in its rows: the path as given, or the array's
    place in the list."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "array" if index is None else f"images[{index}]"


def _path(source):
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else None


class Explanation:
    """What cambox made of one image: what ``cambox run`` writes for it, in memory.

    Attributes:
      path: the file explained, or ``None`` for an array.
      width, height: the original image's size; every map, mask and box is in its pixels.
      probabilities: float32 array, one per class (softmax, or per-class sigmoid).
      logits: float32 array, the network's (the passes' mean with several passes).
      top_k: ``[(index, name, probability), ...]``, best first (``[output] top_k`` long).
      class_index, class_name, score: the top-1 class and its probability.
      logit_check: with ``cam``, the largest ``|mean(M_k) + b_k - logit_k|``; else ``None``.
      classes: the localised classes, in order.
      maps: ``{class: float32 H x W}``, each localised class's map normalised to [0, 1] at
        original resolution (0 where the network did not look, outside a centre crop):
        what the boxes are cut from.
      masks: ``{class: bool H x W}``, the kept components (the ``masks/`` PNG, 255 = True).
      boxes: the ``boxes.csv`` rows of the image, as dicts with the same keys (``path`` is
        the name the image was given; numbers unrounded).
      overlays: ``{class: uint8 H x W x 3}`` heatmap overlays with boxes, when the model's
        configuration has ``[output] overlays = true`` (else empty).
      raw_maps, raw_classes, geometry: what ``maps/`` keeps: float32 (classes, h, w) at
        feature resolution (with several passes, their average on the largest pass's
        grid), the class of each map, and the mapping between original and network pixels
        (``orig_w``, ``net_w``, ``scale_x``, ``offset_x``, ...).
      passes: the network passes averaged (1 unless ``[cam] scales`` / ``flip``).
      row: the ``images.csv`` row (numbers unrounded, ``ms`` this image's time).
    """

    def __init__(self, raw, labels, path):
        self.path = path
        self.width = raw["width"]
        self.height = raw["height"]
        self.probabilities = raw["probabilities"]
        self.logits = raw["logits"]
        self.top_k = [(k, labels[k], p) for k, p in raw["top_k"]]
        self.class_index, self.class_name, self.score = self.top_k[0]
        self.logit_check = raw["logit_check"]
        self.classes = raw["classes"]
        self.maps = raw["maps"]
        self.masks = raw["masks"]
        self.boxes = raw["boxes"]
        self.overlays = raw["overlays"]
        self.raw_maps = raw["raw_maps"]
        self.raw_classes = raw["raw_classes"]
        self.geometry = raw["geometry"]
        self.passes = raw["passes"]
        self.row = raw["row"]
        self._labels = labels

    def __repr__(self):
        where = self.path if self.path is not None else "array"
        boxes = ", ".join(f"{b['class_name']} [{b['x1']}, {b['y1']}, {b['x2']}, {b['y2']})" for b in self.boxes)
        return (
            f"<cambox.Explanation {where} {self.width}x{self.height}: {self.class_name} "
            f"{self.score:.3f}; boxes: {boxes or 'none'}>"
        )

    def raw_map(self, k):
        """The raw map of class ``k`` (index or name) as ``maps/`` keeps it."""
        k = self._class(k)
        return self.raw_maps[self.raw_classes.index(k)]

    def boxes_of(self, k):
        """The boxes of class ``k`` (index or name)."""
        k = self._class(k)
        return [b for b in self.boxes if b["class_index"] == k]

    def _class(self, k):
        if isinstance(k, str):
            if k not in self._labels:
                raise UsageError(f"no class named {k!r}")
            k = self._labels.index(k)
        if k not in self.classes:
            raise UsageError(f"class {k} ({self._labels[k]}) was not localised; localised: {self.classes}")
        return k

    def show(self, k=None, image=None, ax=None):
        """Draws class ``k`` (default: the first localised) with matplotlib: the overlay
        when the model makes them, else the map over ``image`` (an array, if given), and
        the boxes. Returns the axes."""
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        k = self.classes[0] if k is None else self._class(k)
        ax = ax or plt.gca()
        if k in self.overlays:
            ax.imshow(self.overlays[k])
        else:
            if image is not None:
                ax.imshow(image, cmap="gray" if getattr(image, "ndim", 3) == 2 else None)
            ax.imshow(self.maps[k], cmap="turbo", alpha=0.5 if image is not None else 1.0, vmin=0, vmax=1)
        for b in self.boxes_of(k):
            ax.add_patch(
                Rectangle((b["x1"], b["y1"]), b["x2"] - b["x1"], b["y2"] - b["y1"], fill=False, edgecolor="white", lw=2)
            )
        ax.set_title(f"{self._labels[k]} {self.probabilities[k]:.3f}")
        ax.set_axis_off()
        return ax
