"""A simulation as data: the circuit and, as typed records, what to do with it.

Cells and flows declare their benches with these records (analyses, saved vectors, initial conditions,
options, piecewise-linear stimuli) and never write simulator syntax: one module does,
compiler/foundation/ngspice.py, which writes the input file (`deck`) and looks result vectors up by
these same records (`SimResult[voltage("out")]`). A second simulator, or a quirk of this one, is then a
change to that module alone. The circuit itself stays SPICE netlist text (elements and subcircuits),
which the cells own.
"""

from __future__ import annotations

from dataclasses import dataclass

# ----------------------------------------------------------------------------------------------
# Analyses


@dataclass(frozen=True)
class Op:
    """The DC operating point."""


@dataclass(frozen=True)
class Tran:
    """A transient to `stop` (s), results every `step`. `start` drops the results before it, `tmax` caps the
    simulator's internal step, `uic` starts from the initial conditions instead of an operating point."""

    step: float
    stop: float
    start: float = 0.0
    tmax: float | None = None
    uic: bool = False


@dataclass(frozen=True)
class DC:
    """A sweep of the independent source `source` from `start` to `stop` by `step` (read as `swept(source)`)."""

    source: str
    start: float
    stop: float
    step: float


# ----------------------------------------------------------------------------------------------
# Vectors: what a result holds, named without the simulator's spelling


@dataclass(frozen=True)
class Voltage:
    """A node voltage; `path` runs down the subcircuit instances to the node, e.g. ('xnet', 'xc0', 'b')."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class Current:
    """The current through a voltage source, into its + terminal; `path` runs down the subcircuit instances
    to the source, e.g. ('xnet', 'vprobe')."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class Swept:
    """The value a DC analysis sweeps: the voltage or current of its source."""

    source: str


@dataclass(frozen=True)
class Time:
    """The time axis of a transient."""


TIME = Time()


def voltage(*path: str) -> Voltage:
    """The voltage of a node: voltage('out'), or inside instances voltage('xnet', 'xc0', 'b')."""
    return Voltage(tuple(path))


def current(*path: str) -> Current:
    """The current through a voltage source: current('vdd'), or inside instances current('xnet', 'vprobe')."""
    return Current(tuple(path))


def swept(source: str) -> Swept:
    """The swept value of a DC analysis of `source`."""
    return Swept(source)


# ----------------------------------------------------------------------------------------------
# Initial conditions, options, stimuli


@dataclass(frozen=True)
class InitialCondition:
    """A node held at `volts` while the simulator finds the operating point a transient starts from."""

    node: Voltage
    volts: float


@dataclass(frozen=True)
class Option:
    """A simulator option. A number is written in the shortest general form; text is written as given."""

    name: str
    value: float | str


@dataclass(frozen=True)
class Pwl:
    """A piecewise-linear independent source `name` between nodes `plus` and `minus`, linear between its
    (times, values) points and held after the last: `kind` 'I' drives `values` amperes from `plus` through
    the source to `minus`, 'V' holds `plus` at `values` volts above `minus`."""

    name: str
    plus: str
    minus: str
    times: tuple[float, ...]
    values: tuple[float, ...]
    kind: str = "I"


# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Simulation:
    """One simulation: a circuit, what to simulate and save, how to load models, and its time limit.

    `circuit` is SPICE netlist text: elements and subcircuits (no `.end`). `analyses` run in order;
    `saves` lists the vectors to keep (all of them when empty). `options` come on top of the ones every
    simulation gets (compiler/foundation/ngspice.py MANDATORY_OPTIONS). `models` is 'sliced' (the files of
    the devices used, and in them only the size bins the instances select), 'files' (those files whole),
    'full' (the whole library section, slow) or 'none'. `mc_seed` turns on the PDK's
    mismatch Monte Carlo with that random seed.
    """

    circuit: str
    analyses: tuple[Op | Tran | DC, ...] = ()
    saves: tuple[Voltage | Current, ...] = ()
    initial: tuple[InitialCondition, ...] = ()
    stimuli: tuple[Pwl, ...] = ()
    options: tuple[Option, ...] = ()
    title: str = "fqrnn simulation"
    corner: str = "tt"
    temp: float = 27.0
    models: str = "sliced"
    mc_seed: int | None = None
    timeout: float = 600.0

    def __post_init__(self):
        for name in ("analyses", "saves", "initial", "stimuli", "options"):  # lists too, kept as tuples
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def deck(self, library=None) -> str:
        """The complete input file ngspice runs (written by compiler/foundation/ngspice.py)."""
        from compiler.foundation.ngspice import deck

        return deck(self, library)
