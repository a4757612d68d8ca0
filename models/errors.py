"""Named errors for model descriptions, checkpoint files and the ``python -m models`` command line.

Every error the user can fix derives from ``UsageError`` (exit status 2, like the compiler's
``UsageError``, which this package cannot subclass: it sits below the compiler). Every failure to
load or validate a model derives from ``CheckpointError``, so a caller can catch one class; each
subclass names one kind of failure and its message says what to do.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input the user can fix (an option, a path, a file): exit status 2."""

    exit_status = 2


class OutputPathError(UsageError):
    """An output path cannot be written: missing or non-directory parent, a directory, read-only."""


class CheckpointError(UsageError):
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


class TaskMismatch(CheckpointError):
    """The network's input or output does not fit the task the checkpoint names."""
