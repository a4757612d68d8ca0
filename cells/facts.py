"""What the compiler reads about a memory cell, declared by the cell module itself (its `FACTS`).

A memory cell's facts are its ports and the role of each, the direction of each bias current, the
chip-wide bias its instances share, its current limits, its supply current (the power model of the
build report), the calibration table that programs it, the nodes that hold its state and, when its
bias currents alone program it, the one subcircuit every unit instantiates. The compiler wires, taps,
estimates and netlists a memory-cell stage from these facts, so none of them is repeated outside the
cell's module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from cells.common import I_UNIT, Subckt

# What a port connects to (the netlist backend's wiring rule for each):
#   supply     the supply of the memory-cell block
#   input      the candidate current (through the 0 V probe that measures it)
#   output     the node the cell's output current is sunk from
#   bias       one per-unit bias current from the bias generator (its `field` names the current)
#   shared     a chip-wide bias net every instance shares (its `SharedBias`)
#   enable     the layer's phase (high: the cell follows its input); enable_b its complement
ROLES = ("supply", "input", "output", "bias", "shared", "enable", "enable_b")
POLARITIES = ("n", "p")


class FactsError(ValueError):
    """A cell module declares inconsistent facts (a bug in the cell library, found at import)."""


@dataclass(frozen=True)
class Port:
    """One port of a cell's subcircuit and what it connects to.

    A bias port takes the current of stage field `field` (one value per unit); `polarity` 'n': the
    current is drawn out of the port (a sinking bias output), 'p': it is sourced into it."""

    name: str
    role: str
    field: str = ""
    polarity: str = ""

    def __post_init__(self):
        if self.role not in ROLES:
            raise FactsError(f"port {self.name!r}: role {self.role!r} is not one of {ROLES}")
        if (self.role == "bias") != bool(self.field) or (self.role == "bias") != (self.polarity in POLARITIES):
            raise FactsError(f"port {self.name!r}: a bias port, and only a bias port, names a field and a polarity")


@dataclass(frozen=True)
class SharedBias:
    """A bias every instance of a cell kind shares (one per chip): one tap of the bias generator.

    `tap` and `field` name that tap, `units` is what it carries in units of the design's i_unit (it
    scales with the design, as the cells' other currents do), `ports` are the nets it drives (named like
    the cells' `shared` ports), and `branches` how many copies of the current it draws from VDD (its
    supply current in the power estimate)."""

    tap: str
    field: str
    units: float
    ports: tuple[str, ...]
    branches: int
    polarity: str = "p"


@dataclass(frozen=True)
class Limits:
    """The range of a cell's bias currents (A) in weak inversion at the characterised unit current
    (cells/common.py I_UNIT): the floor `i_min` scales with a design's i_unit, the ceiling `i_max` does not."""

    i_min: float
    i_max: float

    def window(self, i_unit: float, stage_unit: float) -> tuple[float, float]:
        """(smallest, largest) current in software units of a stage whose unit is `stage_unit` (A), in a
        design whose unit current is `i_unit` (A)."""
        return self.i_min * (i_unit / I_UNIT) / stage_unit, self.i_max / stage_unit


@dataclass(frozen=True)
class Mismatch:
    """Relative sigmas of a memory cell's set threshold, reset threshold and output level under PDK
    mismatch (Monte Carlo of the cell as sized; `python -m pytest -m slow tests/cells -k mismatch -s`)."""

    set: float
    reset: float
    level: float
    draws: int  # the Monte Carlo draws the sigmas come from


@dataclass(frozen=True)
class MemoryCell:
    """The facts of a memory cell kind (see the module docstring).

    `supply_current(bias, candidates=None, states=None, enabled=1.0, xp=np)` takes the per-unit currents of
    each programmed bias field ({field: currents}, plus what the IR stage's `supply_bias` adds: an FQ-CMRU
    ladder's levels, I_x and pin currents) and, where known, the units' candidate currents and states over
    samples ([samples, units]; A, and the level: > 0 when set) and the share of a frame the cells are
    enabled, in numpy or (`xp`) jax.numpy, and returns the current the cells draw from VDD through their own
    devices (the bias generator's outputs count as its own).
    `state_nodes(levels)` are the internal nodes of one unit whose count set is its level (1..levels).
    `subckt()` is the subcircuit of every unit, or None when each unit's depends on its design.
    `longest_frame(levels, gains, i_unit)`, where a unit's design depends on the frame period, is the
    longest frame (s) it can be designed for at these programmed gains (A) and unit current (A)."""

    name: str
    ports: tuple[Port, ...]
    limits: Limits
    calibration: str
    supply_current: Callable[..., float]
    state_nodes: Callable[[int], tuple[str, ...]]
    shared: SharedBias | None = None
    subckt: Callable[[], Subckt] | None = None
    mismatch: Mismatch | None = None
    longest_frame: Callable[[int, tuple, float], float] | None = None

    def __post_init__(self):
        names = [p.name for p in self.ports]
        fields = [p.field for p in self.bias_ports]
        if len(set(names)) != len(names) or len(set(fields)) != len(fields):
            raise FactsError(f"{self.name}: port names and bias fields must be unique")
        shared = {p.name for p in self.ports if p.role == "shared"}
        if shared != set(self.shared.ports if self.shared else ()):
            raise FactsError(f"{self.name}: the shared ports {sorted(shared)} must be those of its shared bias")

    @property
    def port_names(self) -> tuple[str, ...]:
        """The subcircuit's ports in order."""
        return tuple(p.name for p in self.ports)

    @property
    def bias_ports(self) -> tuple[Port, ...]:
        return tuple(p for p in self.ports if p.role == "bias")

    def bias_port(self, field: str) -> Port:
        """The bias port that takes the current of stage field `field`."""
        for port in self.bias_ports:
            if port.field == field:
                return port
        raise KeyError(f"{self.name} has no bias port for {field!r}")
