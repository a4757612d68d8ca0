"""The analog cell library: one module per cell, found by name through this registry.

Every cell module exposes the same small interface (see cells/README.md):

* ``Params``: a frozen dataclass that validates what the circuit can realise (CellParameterError);
* ``subckt(params) -> Subckt``: the sky130 netlist of the cell, a `.subckt` with documented ports;
* ``ideal(...)``: the textbook behaviour;
* ``characterize(runner, corner, temp, jobs) -> (data, fit, extra)``: the SPICE sweeps and the fit;
* ``load_calibration(corner, temp)``: the calibrated behavioural model built from the shipped table,
  with the inversions the compiler uses to choose bias currents and ratios;
* ``validate(runner, corner, temp, jobs)``: held-out SPICE checks, ideal against calibrated error;
* ``plot(table, path)``: the figure a designer looks at.

A memory cell also declares ``FACTS`` (cells/facts.py): its ports with their roles and bias polarities,
its limits, its power model, the calibration that programs it and its state nodes; the compiler reads
them and repeats none. Adding a cell means adding a module and one line to ``CELLS``; a memory cell the
compiler places also needs its stage kind (compiler/ir.py) and a lowering rule (compiler/lower.py).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from compiler.foundation.errors import UsageError

CELLS: dict[str, str] = {
    "mirror": "cells.mirror",
    "rectifier": "cells.rectifier",
    "bias": "cells.bias",
    "bistable": "cells.bistable",
    "dpi": "cells.dpi",
    "wta": "cells.wta",
    "cmru": "cells.cmru",
}


def names() -> tuple[str, ...]:
    return tuple(CELLS)


def get(name: str) -> ModuleType:
    """The module of a cell by registry name."""
    if name not in CELLS:
        raise UsageError(f"unknown cell {name!r}; the library has {', '.join(CELLS)}.")
    return importlib.import_module(CELLS[name])


def load_calibration(name: str, corner: str = "tt", temp: float = 27.0):
    """The calibrated model of a cell at a corner and temperature (CalibrationMissing if not characterised)."""
    return get(name).load_calibration(corner, temp)
