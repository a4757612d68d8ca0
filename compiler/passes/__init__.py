"""IR -> IR passes, one per file, each a pure function `run(ir, config) -> IR`, applied in PIPELINE order.

program_cells    memory cells' windows legalised (every change recorded), in amperes, and the bias currents
                 that realise them, from the cells' SPICE calibration tables, on the bias grid
split_signs      W = positive - negative: sourcing pfet and sinking nfet mirrors
scale_currents   software units -> amperes (1 unit = i_unit; memory cells: program_cells)
quantise_ratios  mirror ratios as integer counts of identical unit devices
size_devices     unit device W/L from the mismatch budget
schedule_phases  each layer of memory cells gets its slot of the frame, in dataflow order
choose_frame     the frame period: the configured one, else the shortest that lets every node settle
keep_alive       a standing, cancelled current in slow receivers of non-negative signals
assign_biases    every DC current drawn from one reference through the bias generator's taps
lower_cmru       every FQ-CMRU unit becomes a ladder of K gated bistable stages (DPIs, gating, bias taps)
check_settling   estimate each signal node's turn-on time against its slot (warnings in the report)

Each pass module declares `REQUIRES`, the passes whose results it reads; `run_pipeline` refuses an order
that runs a pass before one it requires (`PassOrderError`). A pipeline can start at a named pass from the
IR saved before it (flows/build.py `--from`).
"""

from __future__ import annotations

import importlib
import time
from types import ModuleType

from compiler.foundation.errors import UsageError, clip

PIPELINE = (
    "program_cells",
    "split_signs",
    "scale_currents",
    "quantise_ratios",
    "size_devices",
    "schedule_phases",
    "choose_frame",
    "keep_alive",
    "assign_biases",
    "lower_cmru",
    "check_settling",
)


class UnknownPass(UsageError):
    """A pass name that is not in the pipeline."""


class PassOrderError(UsageError):
    """A pipeline order that runs a pass before a pass it requires."""


def check_name(name: str, passes: tuple = PIPELINE) -> str:
    """`name` if it names a pass of `passes`, else UnknownPass."""
    if name not in passes:
        raise UnknownPass(f"{clip(str(name))!r} is not a pass; the passes are, in order: {', '.join(passes)}.")
    return name


def module(name: str) -> ModuleType:
    return importlib.import_module(f"compiler.passes.{check_name(name, PIPELINE)}")


def check_order(passes: tuple = PIPELINE) -> None:
    """Refuse an order in which a pass runs before one it requires (its module's REQUIRES)."""
    for index, name in enumerate(passes):
        missing = [needed for needed in module(name).REQUIRES if needed not in passes[:index]]
        if missing:
            raise PassOrderError(
                f"pass {name!r} reads what {', '.join(missing)} computes, so it must run after "
                f"{'it' if len(missing) == 1 else 'them'}; reorder the pipeline."
            )


def run_pipeline(
    ir, config, upto: str | None = None, *, start: str | None = None, passes: tuple = PIPELINE, after_pass=None
):
    """Apply the passes in order, from `start` (the IR given is the one saved before it) through `upto`;
    `after_pass(name, ir)` sees the IR after each. Returns (ir, seconds per pass)."""
    check_order(passes)
    first = passes.index(check_name(start, passes)) if start else 0
    if upto is not None:
        check_name(upto, passes)
    timings = {}
    for name in passes[first:]:
        began = time.perf_counter()
        ir = module(name).run(ir, config)
        timings[name] = time.perf_counter() - began
        if after_pass is not None:
            after_pass(name, ir)
        if name == upto:
            break
    return ir, timings
