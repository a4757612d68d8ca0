"""Named errors for model descriptions and checkpoint files.

Every failure to load or validate a model derives from ``CheckpointError`` (a ``ValueError``), so a
caller can catch one class; each subclass names one kind of failure and its message says what to do.
"""

from __future__ import annotations


class CheckpointError(ValueError):
    """Base class: the checkpoint or model graph cannot be used."""


class BadMagic(CheckpointError):
    """The file does not start with the checkpoint magic bytes (not a .ckpt file)."""


class UnsupportedSchema(CheckpointError):
    """The schema version is not one this package reads."""


class CorruptCheckpoint(CheckpointError):
    """Truncated file, unreadable header, bad array table or checksum mismatch."""


class InvalidGraph(CheckpointError):
    """The architecture graph is malformed (names, edges, hyperparameters)."""


class UnknownLayerType(InvalidGraph):
    """A layer's type is not in the layer registry."""


class MissingArray(CheckpointError):
    """The graph needs an array that the file does not hold."""


class ExtraArray(CheckpointError):
    """The file holds an array no layer of the graph uses."""


class ShapeMismatch(CheckpointError):
    """An array's shape disagrees with its layer's hyperparameters."""


class NonFiniteArray(CheckpointError):
    """An array contains NaN or Inf."""


class ConstraintViolation(CheckpointError):
    """A hardware parameter is out of its physical range (e.g. a negative bias current)."""
