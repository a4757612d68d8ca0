"""Partitions of a network for simulation: one per layer of memory cells, plus the readout.

A monolithic transient of N cells that switch at different times costs about N^2 (every timestep the
slowest cell needs is paid by all of them). The network is current-mode: a layer of cells talks to
the next only through the currents its outputs sink, and those outputs are cascoded current sources,
nearly blind to the voltage of the node they drive. So the network is cut at the outputs of its
memory cells. Partition p holds the cells of one stage and everything upstream of them back to the
previous cells: receivers, weight and bias arrays, and the bias taps they use. The cells it reads
from are replaced by inputs that replay their recorded output currents; its own cells drive output
pins held at the harness voltage, where their currents are recorded for the partitions downstream.
The last partition is the readout: everything between the last cells and the output pins.

Partitions run in dependency order; within one, every sequence and condition runs in parallel. Each
partition is an ordinary IR, so the SPICE backend and the test benches are the ones of a whole build.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.ir import IR, BiasGenerator, CurrentInput, CurrentOutput

READOUT = "readout"


@dataclass(frozen=True)
class Partition:
    """A sub-network: its IR, the cells it simulates and the upstream cells whose outputs it replays."""

    name: str  # the cell stage it simulates, or READOUT
    ir: IR
    replays: tuple  # names of upstream cell stages, now CurrentInput stages of the same name


def load_name(cell: str) -> str:
    """The CurrentOutput stage that holds a partition's cell outputs."""
    return f"{cell}.load"


def partitions(ir: IR) -> list[Partition]:
    """The partitions of `ir` in dependency order (cells in dataflow order, then the readout)."""
    targets = [c.name for c in ir.memory_cells()] + [ir.of_kind(CurrentOutput)[0].name]
    return [_partition(ir, target) for target in targets]


def _partition(ir: IR, target: str) -> Partition:
    members, boundary, todo = {target}, set(), list(ir.predecessors(target))
    while todo:
        name = todo.pop()
        if name in members or name in boundary:
            continue
        if ir.stage(name).memory:
            boundary.add(name)  # an upstream cell: replayed, not simulated
            continue
        members.add(name)
        todo.extend(ir.predecessors(name))
    stages, edges = [], [e for e in ir.edges if e[1] in members and (e[0] in members or e[0] in boundary)]
    for stage in ir.stages:
        if stage.name in boundary:
            stages.append(CurrentInput(stage.name, stage.size, source=stage.source))
        elif stage.name in members:
            stages.append(stage)
    target_stage = ir.stage(target)
    shared = ()  # the chip-wide bias the target cells share (their cell's facts)
    if target_stage.memory:
        load = load_name(target)
        stages.append(CurrentOutput(load, target_stage.size, source=target_stage.source))
        edges.append((target, load))
        shared = (target_stage.facts.shared.tap,) if target_stage.facts.shared else ()
    used = members | {load_name(target)} | set(shared)
    for generator in ir.of_kind(BiasGenerator):
        taps = tuple(tap for tap in generator.taps if tap.stage in used)
        if taps:
            stages.append(generator.replace(taps=taps, size=len(taps)))
    name = target if target_stage.memory else READOUT
    return Partition(
        name, IR(tuple(stages), tuple(edges), ir.meta), tuple(s.name for s in ir.stages if s.name in boundary)
    )


def replay_waveform(time: np.ndarray, current: np.ndarray, tolerance: float) -> tuple[tuple, tuple]:
    """A recorded current as few PWL points as keep every sample within `tolerance` (swing-door).

    Each PWL corner is a simulator breakpoint, so replaying every recorded timepoint would make the
    downstream partition step as finely as the upstream one everywhere; a cell output is flat between
    its switching events, and this keeps only the corners that carry its shape.
    """
    keep, origin = [0], 0
    low, high = -np.inf, np.inf
    for i in range(1, len(time)):
        dt = time[i] - time[origin]
        low_i, high_i = (current[i] - tolerance - current[origin]) / dt, (current[i] + tolerance - current[origin]) / dt
        if max(low, low_i) > min(high, high_i):  # no line from the origin stays within tolerance: new corner
            origin = i - 1
            keep.append(origin)
            dt = time[i] - time[origin]
            low, high = (current[i] - tolerance - current[origin]) / dt, (current[i] + tolerance - current[origin]) / dt
        else:
            low, high = max(low, low_i), min(high, high_i)
    keep.append(len(time) - 1)
    return tuple(float(time[i]) for i in keep), tuple(float(current[i]) for i in keep)
