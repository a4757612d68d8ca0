"""Named errors. Each says what was wrong and what to do; the CLI turns them into exit statuses.

`UsageError` and its subclasses are the user's to fix (bad input, missing tool): exit status 2.
`SimulationError` and its subclasses are failures of a simulation that was well formed: exit status 3.
A message quotes a value the user gave only through `shown` / `clip`, so it stays short whatever the input.
"""

import reprlib

SHOWN_CHARS = 80


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` cut to `limit` characters (an ellipsis marks the cut): error messages stay short."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class _BoundedRepr(reprlib.Repr):
    """reprlib with few levels and items, and no decimal formatting of huge integers (Python refuses those)."""

    def __init__(self):
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 3, SHOWN_CHARS, SHOWN_CHARS, SHOWN_CHARS

    def repr_int(self, x, level):
        bits = x.bit_length()
        return f"<integer of {bits} bits>" if bits > 128 else super().repr_int(x, level)


_BOUNDED_REPR = _BoundedRepr()


def shown(value, limit: int = SHOWN_CHARS) -> str:
    """A repr of any user value for an error message: bounded in length and in the work it takes."""
    return clip(_BOUNDED_REPR.repr(value), limit)


def file_label(path) -> str:
    """A path as printed in an error message (a path, too, is user input: bounded)."""
    return clip(str(path), 4 * SHOWN_CHARS)


class CompilerError(Exception):
    """Base of every error this tool raises on purpose."""

    exit_status = 1


class UsageError(CompilerError):
    """Bad input or a missing prerequisite: fixable by the user."""

    exit_status = 2


class PdkError(UsageError):
    """The sky130 models cannot be found or the request names no real corner or device."""


class NgspiceNotFound(UsageError):
    """ngspice is not installed or not on PATH."""


class NetlistError(UsageError):
    """ngspice rejected the netlist; the message quotes ngspice and the offending line."""


class SimulationError(CompilerError):
    """A simulation of a valid netlist failed."""

    exit_status = 3


class ConvergenceError(SimulationError):
    """ngspice did not converge (operating point or time step too small)."""


class SimulationTimeout(SimulationError):
    """ngspice ran past its time limit and was killed."""


class SimulationKilled(SimulationError):
    """ngspice was stopped by a signal: the run was interrupted, or the system killed it (out of memory)."""


class CellParameterError(UsageError):
    """A cell parameter is outside what the circuit can realise (e.g. a current outside weak inversion)."""


class CalibrationMissing(UsageError):
    """No calibration table exists for the requested cell, corner and temperature."""


class LayoutMissing(UsageError):
    """The build directory, its layout (layout/top.gds) or the requested top cell does not exist."""


class RuleTableError(UsageError):
    """A design-rule or extraction table under sky130/ names an unknown layer, kind or field."""


class SchematicMissing(UsageError):
    """The built SPICE netlist LVS compares against (netlist/network.spice, cells.spice) is missing or unreadable."""


class SignoffUnavailable(UsageError):
    """An official sign-off deck or tool that was asked for cannot run (no binary, no deck, no PDK_ROOT)."""


class DeckChanged(UsageError):
    """An official deck no longer reads as the runner expects (its switches moved) or fails its checksum."""


class SignoffToolFailed(UsageError):
    """KLayout or netgen stopped with an error on an official deck; the message quotes the end of its log."""
