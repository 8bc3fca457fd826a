"""The exceptions of cambox, raised with the messages the ``cambox`` command prints.

They are Python classes (the extension module raises them by name) so that each can also
be the built-in exception it is a kind of: a ``UsageError`` is a ``ValueError``, an
``OutputError`` an ``OSError``.
"""


class CamboxError(Exception):
    """Base class of every error cambox raises."""


class UsageError(CamboxError, ValueError):
    """Options that contradict each other, name nothing, or do not fit their key: what the
    command reports with exit status 2 (bad keyword arguments included)."""


class ModelError(CamboxError):
    """A model cambox cannot use: not found, not ONNX, no global average pooling to cut at,
    a map method its head does not allow, an input size that cannot be proved."""


class InputError(CamboxError, ValueError):
    """An input that cannot be used. For one image (a file that cannot be decoded, a numpy
    array of the wrong dtype, shape or range) the message names it and says why, as the
    ``error`` column of ``images.csv`` does; for the rest (a configuration file, the
    annotations, a class map, a run folder) it is the command's message."""


class OutputError(CamboxError, OSError):
    """Reading or writing failed: an output folder that cannot be written, a folder in use
    by another cambox."""
