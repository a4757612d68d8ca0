"""Choose the frame period: the configured one, or, when the configuration sets none, the shortest round
period whose slots give every signal node time to settle.

A receiver settles in about C V_ON / I (compiler/settling.py): slower at a lower i_unit or with more
mirror gates on its node. Without a configured `frame_period` the build takes the slowest node's
estimate, MARGIN times over (the estimate is rough: verification measures), fills a slot with it, and
rounds the frame up to the next value of ROUND_STEPS (x 10^n), at least FLOOR_S, so that a model needs no
configuration file to verify. A memory cell whose design depends on the frame (the FQ-CMRU ladder's
DPI capacitors) bounds it from above (its facts' `longest_frame`): there the frame is the longest round
period within the bound. The chosen period is `meta.frame_period`, which the later passes and
verification read; check_settling then reports each node's estimate against its slot.
"""

from __future__ import annotations

import math

from compiler.foundation.timing import slot as phase_slot
from compiler.ir import IR, Receiver
from compiler.settling import gate_capacitance, turn_on

REQUIRES = ("program_cells", "size_devices", "schedule_phases")  # cell gains, gate areas and slots

MARGIN = 1.5  # slot / slowest turn-on estimate
FLOOR_S = 0.01  # shortest chosen frame
CEILING_S = 10.0  # longest frame a build chooses (the configurable range's top)
ROUND_STEPS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)  # chosen periods are these x 10^n seconds


def run(ir: IR, config) -> IR:
    configured = config.get("frame_period")
    if configured is not None:
        return ir.with_meta(frame_period=configured)
    slowest = max((turn_on(ir, rx, c) for rx in ir.of_kind(Receiver) for c in gate_capacitance(ir, rx)), default=0.0)
    longest = min(
        (
            cell.facts.longest_frame(cell.levels, cell.programmed.gain, ir.meta.i_unit)
            for cell in ir.memory_cells()
            if cell.facts.longest_frame is not None
        ),
        default=CEILING_S,
    )
    frame = round_up(max(MARGIN * slowest / phase_slot(ir.meta.phases or 0), FLOOR_S))
    return ir.with_meta(frame_period=frame if frame <= longest else round_down(longest))


def _round_periods(around: float) -> list[float]:
    decade = 10.0 ** math.floor(math.log10(around))
    return [float(f"{step * decade * scale:.6g}") for scale in (0.1, 1.0, 10.0) for step in ROUND_STEPS]


def round_up(needed: float) -> float:
    """The shortest period of ROUND_STEPS x 10^n at or above `needed` seconds, at most CEILING_S."""
    return min(min(p for p in _round_periods(needed) if p >= needed * (1 - 1e-12)), CEILING_S)


def round_down(allowed: float) -> float:
    """The longest period of ROUND_STEPS x 10^n at or below `allowed` seconds, at most CEILING_S."""
    return min(max(p for p in _round_periods(allowed) if p <= allowed * (1 + 1e-12)), CEILING_S)
