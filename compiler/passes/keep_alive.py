"""Keep alive: a standing current in each slow receiver of a non-negative signal, cancelled downstream.

A receiver's diode gate drives every mirror output that reads it, and in weak inversion only the signal
current moves that gate. A signal that drops to zero (a memory cell turning off) leaves nothing to
settle with: turning on again takes C * V_ON / I, and turning off is a tail that shrinks only as
C * n * U_T / t. A receiver whose inputs can never be negative (memory cell outputs, copies of them,
input pins) can carry a constant extra current I_0 without changing what the network computes: each
mirror output r / D * (s + I_0) carries a constant r / D * I_0, and a bias array at its destination
sinks exactly that. The gate then never leaves weak inversion and settles with a time constant of at
most C * n * U_T / I_0 (compiler/settling.py).

For each such receiver whose turn-on estimate exceeds its slot of the frame, I_0 is the smallest current
that fits SETTLE_TAUS time constants into the slot, rounded up to a whole number of D * grid steps: then
every cancelling current is a whole number of grid steps, at least the grid's floor, and the cancellation is exact
on the bias grid. The price is power, which the build report shows; a longer frame costs less.
Off by default (`keep_alive: true` turns it on): the cancellation is only as good as the mirrors match.
"""

from __future__ import annotations

import math

from compiler.ir import IR, BiasArray, CurrentInput, Receiver, WeightArray, for_kind
from compiler.realisation import bias_grid
from compiler.settling import KEEP_ALIVE, N_UT, SETTLE_TAUS, gate_capacitance, keep_alive_name, slot_seconds, turn_on

REQUIRES = ("scale_currents", "size_devices", "choose_frame")  # currents, gate areas and the frame


def run(ir: IR, config) -> IR:
    if not config.get("keep_alive"):
        return ir
    slot, grid = slot_seconds(ir), bias_grid(config)
    added: dict[str, list[tuple[BiasArray, str]]] = {}  # destination -> the arrays that feed it
    for rx in ir.of_kind(Receiver):
        caps = gate_capacitance(ir, rx)
        if not caps or not non_negative(ir, rx.name):
            continue
        quantum = rx.denominator * grid.step * math.ceil(grid.floor / grid.step)  # cancellations on grid, >= floor
        standing = [
            0.0 if turn_on(ir, rx, c) <= slot else quantum * math.ceil(SETTLE_TAUS * c * N_UT / slot / quantum)
            for c in caps
        ]
        if not any(standing):
            continue
        added.setdefault(rx.name, []).append(
            (BiasArray(keep_alive_name(rx.name), rx.size, source=KEEP_ALIVE, values=tuple(standing)), rx.name)
        )
        for array in (ir.stage(n) for n in ir.successors(rx.name)):
            (dest,) = ir.successors(array.name)
            cancel = tuple(-sum(w * i for w, i in zip(row, standing)) for row in array.realised())
            added.setdefault(dest, []).append(
                (BiasArray(keep_alive_name(array.name), array.size, source=KEEP_ALIVE, values=cancel), dest)
            )
    if not added:
        return ir
    stages, edges = [], list(ir.edges)
    for stage in ir.stages:  # each new array just before the node it feeds: dataflow order is kept
        for bias, dest in added.get(stage.name, []):
            stages.append(bias)
            edges.append((bias.name, dest))
        stages.append(stage)
    return IR(tuple(stages), tuple(edges), ir.meta)


def non_negative(ir: IR, stage_name: str) -> bool:
    """Whether the current a stage delivers can never be negative (so a receiver of it never cuts off
    for a reason the network means)."""
    stage = ir.stage(stage_name)
    if stage.memory:  # a cell output sinks its gain or nothing
        return True
    return for_kind(NON_NEGATIVE, stage, default=lambda ir, stage: False)(ir, stage)


def _upstream_non_negative(ir: IR, stage) -> bool:
    return all(non_negative(ir, p) for p in ir.predecessors(stage.name))


NON_NEGATIVE = {  # stage kind -> whether what it delivers is never negative
    CurrentInput: lambda ir, stage: True,
    BiasArray: lambda ir, stage: all(v >= 0 for v in stage.values),
    WeightArray: lambda ir, stage: not any(any(row) for row in stage.neg_ratios) and _upstream_non_negative(ir, stage),
    Receiver: _upstream_non_negative,
}
