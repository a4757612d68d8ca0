"""Partitions of a network for simulation: one per layer of memory cells, plus the readout.

A monolithic transient of N cells that switch at different times costs about N^2 (every timestep the
slowest cell needs is paid by all of them). The network is current-mode: stages talk through the
currents summed at receiver nodes. So the network is cut at the receivers that sum the outputs of
memory cells (the residual sums of a backbone). Partition p simulates the cells of one stage and
everything between them and the cut receivers upstream: those receivers, whose summed input it
replays, the arrays reading them and the bias taps they use. It records the input of the receiver its
own cells feed: that node becomes output pins, each into a copy of the receiver's own diode, and its
cells and every other current into the node (a residual copy) flow into them at the voltage they see
in the whole network. No partition reaches further back than one cut, so each holds about one layer
however deep the network. The last partition is the readout.

A recording is replayed held (`held_replay`, phased cells only): one step per frame, the value where
the downstream reads it, reached as the upstream cells' slot begins; or as recorded (`replay_waveform`),
which comes closer to the whole netlist's results. A residual sum steps in the slot of every layer
upstream, so replayed as recorded a deep layer's input costs its partition a burst of timesteps per
layer above it; held it costs one, but a node that settles slowly downstream then sees another history,
and the outputs move (docs/measurements.md).

`readout_alone` cuts at the memory cells themselves: the readout with the cells' outputs replayed and
every other stage upstream simulated, which the readout-alone diagnostic feeds with reference outputs.

Partitions run in dependency order; within one, every sequence and condition runs in parallel. Each
partition is an ordinary IR, so the SPICE backend and the test benches are the ones of a whole build.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cells import bias
from compiler.foundation.timing import slot, window
from compiler.ir import IR, BiasGenerator, CurrentInput, CurrentOutput, IRError, Receiver
from flows.testbench import SAMPLE_AT, edge, frame_pwl

READOUT = "readout"


@dataclass(frozen=True)
class Partition:
    """A sub-network: its IR, the CurrentInput stages it replays, and the one whose current it records."""

    name: str  # the cell stage it simulates, or READOUT
    ir: IR
    replays: tuple  # names of its CurrentInput stages recorded upstream
    records: str | None = None  # the replayed input its load pins record (a cut receiver's), None for the readout


def replay_name(receiver: str) -> str:
    """The CurrentInput stage that replays the summed input of a cut receiver."""
    return f"{receiver}.in"


def load_name(receiver: str) -> str:
    """The CurrentOutput stage that records the summed input of a cut receiver."""
    return f"{receiver}.load"


def partitions(ir: IR) -> list[Partition]:
    """The partitions of `ir` in dependency order: one per cut receiver (`cut_receivers`), then the readout.
    Each carries the bias reference; all but the one with the most of its fixed branches mark their copy
    a duplicate, so the partitions' bias power sums to the whole network's."""
    cuts = cut_receivers(ir)
    every = [_layer(ir, fed, cuts) for fed in cuts] + [_readout(ir, cuts)]
    counted = max(every, key=_reference_branches)
    return [part if part is counted else _duplicate_reference(part) for part in every]


def _reference_branches(part: Partition) -> int:
    """How many fixed branches the bias reference of a partition has (cells/bias.py); none without taps."""
    taps = [t for g in part.ir.of_kind(BiasGenerator) for t in g.taps]
    shared = part.ir.shared_biases()
    starve = any(t.stage in shared for t in taps)
    sinks = any(t.polarity == "n" and t.stage not in shared for t in taps)
    return len(bias.reference_branches(sinks, starve)) if taps else 0


def _duplicate_reference(part: Partition) -> Partition:
    marked = {g.name: g.replace(duplicate_reference=True) for g in part.ir.of_kind(BiasGenerator)}
    return dataclasses.replace(part, ir=part.ir.replace_stages(marked))


def cut_receivers(ir: IR) -> list[str]:
    """The receivers the network is cut at, in dependency order: the one each memory cell's outputs
    flow into. (Cutting at the other receivers too was slower and less exact: docs/measurements.md.)"""
    cuts = []
    for cell in ir.memory_cells():
        successors = [ir.stage(s) for s in ir.successors(cell.name)]
        if len(successors) != 1 or not isinstance(successors[0], Receiver):
            raise IRError(f"stage {cell.name!r}: a partition needs a memory cell's outputs summed at one receiver")
        cuts.append(successors[0].name)
    return cuts


def _upstream(ir: IR, starts, stop) -> set:
    """The stages `starts` and everything upstream of them, not walking past the stages `stop` holds."""
    members, todo = set(), list(starts)
    while todo:
        name = todo.pop()
        if name not in members:
            members.add(name)
            todo.extend(() if name in stop else ir.predecessors(name))
    return members


def _layer(ir: IR, fed: str, cuts: list) -> Partition:
    """One layer of cells: everything from the cut receivers before `fed` to `fed`, whose input its load
    pins record. It is named after the memory cell among the currents into `fed`."""
    senders = ir.predecessors(fed)  # a layer's cells and every other current into the receiver
    cells = [s for s in senders if ir.stage(s).memory]
    if len(cells) > 1:
        raise IRError(f"stage {fed!r}: a partition needs one memory-cell stage per cut receiver")
    stop = set(cuts) - {fed}
    members = _upstream(ir, senders, stop)
    receiver, reader = ir.stage(fed), ir.readers(fed)[0]
    load = CurrentOutput(
        load_name(fed),
        receiver.size,
        source=receiver.source,
        polarity=receiver.polarity,
        diode=(receiver.denominator, reader.unit_w, reader.unit_l),
    )
    extra = ([load], [(s, load.name) for s in senders])
    shared = ir.stage(cells[0]).facts.shared
    return _subnetwork(ir, cells[0], members, stop, extra, {shared.tap} if shared else set(), replay_name(fed))


def _readout(ir: IR, cuts: list) -> Partition:
    """Everything from the last cut receivers to the output pins."""
    (out,) = ir.of_kind(CurrentOutput)
    stop = set(cuts)
    return _subnetwork(ir, READOUT, _upstream(ir, [out.name], stop), stop, ([], []), set(), None)


def _subnetwork(ir: IR, name: str, members: set, stop: set, extra: tuple, shared: set, records) -> Partition:
    """The IR of `members` whose cut receivers (in `stop`) take a replayed input, plus `extra` (stages,
    edges), and the bias generator's taps that the stages use."""
    cut = members & stop
    stages, edges = [], [e for e in ir.edges if e[0] in members and e[1] in members and e[1] not in cut]
    for stage in ir.stages:
        if stage.name in cut:
            stages.append(CurrentInput(replay_name(stage.name), stage.size, source=stage.source))
            edges.append((replay_name(stage.name), stage.name))
        if stage.name in members:
            stages.append(stage)
    stages += extra[0] + _taps(ir, members | shared | {s.name for s in extra[0]})
    replays = tuple(replay_name(s.name) for s in ir.stages if s.name in cut)
    return Partition(name, IR(tuple(stages), tuple(edges + extra[1]), ir.meta), replays, records)


def _taps(ir: IR, used: set) -> list:
    """The bias generator cut down to the taps of the stages in `used` (none if it has none of them)."""
    kept = [(g, tuple(t for t in g.taps if t.stage in used)) for g in ir.of_kind(BiasGenerator)]
    return [g.replace(taps=taps, size=len(taps)) for g, taps in kept if taps]


def readout_alone(ir: IR) -> Partition:
    """The readout with every memory cell it reads replaced by a CurrentInput of the cell's name (their
    outputs replayed) and every other stage upstream simulated."""
    (out,) = ir.of_kind(CurrentOutput)
    cells = {c.name for c in ir.memory_cells()}
    members = _upstream(ir, [out.name], cells)
    stages = [
        CurrentInput(s.name, s.size, source=s.source) if s.name in cells else s for s in ir.stages if s.name in members
    ]
    edges = tuple(e for e in ir.edges if e[0] in members and e[1] in members)
    replays = tuple(s.name for s in ir.stages if s.name in members & cells)
    return Partition(READOUT, IR(tuple(stages + _taps(ir, members - cells)), edges, ir.meta), replays)


def held_replay(
    time: np.ndarray, current: np.ndarray, period: float, frames: int, timing: tuple[float, float]
) -> tuple[tuple, tuple]:
    """A recorded current as one step per frame: its value at `sample_at` of each frame, reached an edge
    after `change_at` of the same frame (`timing` = (change_at, sample_at), fractions of the frame).

    The cells downstream read their input only in their own slot, and whatever reaches the readout
    only when the frame is sampled. What the recording did before then (a residual sum steps in the slot
    of every layer upstream) they need not see; replayed step by step it costs the downstream partition
    a burst of timesteps per upstream layer, so a deep layer's partition would grow with its depth.
    """
    samples = np.interp((np.arange(frames) + timing[1]) * period, time, current)
    return frame_pwl(samples, period, 1.0, timing[0], initial=float(current[0]))


def replay_timing(upstream: Partition, downstream: Partition) -> tuple[float, float] | None:
    """(change_at, sample_at) of the held replay from `upstream` into `downstream`: it changes when the
    upstream cells' slot begins, so it settles for a whole slot before the next phase, as their own
    outputs do, and it is sampled where the downstream reads it: at the end of its cells' window, or where
    the frame is sampled for the readout. None for free-running cells (no slots): replay the waveform."""
    phases = upstream.ir.meta.get("phases", 0)
    phase = max((c.phase for c in upstream.ir.memory_cells()), default=0)
    if not phases or not phase:
        return None
    later = [c.phase for c in downstream.ir.memory_cells()]
    return phase * slot(phases), window(max(later), phases)[1] if later else SAMPLE_AT


def replay_start(period: float) -> float:
    """Where a replayed waveform starts to follow its recording: a tenth of an input edge in. Before it
    the upstream took its start-up steps (from 1e-13 s), corners a downstream transient cannot step to."""
    return edge(period) / 10


def replay_waveform(time: np.ndarray, current: np.ndarray, tolerance: float, start: float = 0.0) -> tuple[tuple, tuple]:
    """A recorded current as few PWL points as keep every sample within `tolerance` (swing-door), from
    `start` on (`replay_start`; the first value held until then).

    Each PWL corner is a simulator breakpoint, so replaying every recorded timepoint would make the
    downstream partition step as finely as the upstream one everywhere; a cell output is flat between
    its switching events, and this keeps only the corners that carry its shape.
    """
    later = time >= start
    later[0] = True
    time, current = time[later], current[later]
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
