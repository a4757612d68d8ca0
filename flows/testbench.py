"""Transient test benches of a built network: frame-synchronous input currents in, per-frame samples out.

Each input feature is a piecewise-constant current (x * i_unit) per frame of `frame_period`, with a short
edge. Output pins are held at 0.9 V (a partition's stand-in for a receiver: its diode) and their
currents measured; every bistable cell's candidate current is read through the 0 V source in series
with its input, and its state from its internal node `b`.
At t = 0 every cell is reset (an initial condition on `b`, a power-on reset), matching the model's initial state.
An FQ-CMRU unit's state is its level: the number of set stages of its ladder (a thermometer code,
cells/cmru.py), read from each stage's node `b`.
Each phase pin is high in its slot of every frame (compiler/passes/schedule_phases.py), so the layers
switch one after the other. Samples are taken at the end of each frame, after the cells have settled,
at timepoints the simulator is made to take (`sample_breakpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cells import cmru, mirror
from compiler.backends.spice import (
    BLOCKS,
    TOP,
    V_OUT,
    input_offsets,
    net,
    phase_pins,
    phases_used,
    pins,
    power_probe,
    probe,
)
from compiler.foundation.simulation import TIME, InitialCondition, Pwl, Simulation, Tran, current, voltage
from compiler.foundation.timing import window
from compiler.ir import IR, CurrentInput, CurrentOutput, Ladder

EDGE = 10e-6  # s, rise and fall of an input frame and a phase pin, as on the ladder bench
# (cells/cmru.py): 1 us edges stopped ngspice ("timestep too small") there
EDGE_SHARE = 1e-3  # and at most this share of a frame, so frames under 10 ms keep rising times
SAMPLE_AT = 0.97  # fraction of the frame at which it is sampled
OFF_CURRENT = 1e-12  # A, the least a golden cell output sinks: a real off cell is never exactly zero, and a
# readout whose receivers all carry exactly zero floats and simulates far slower
# (docs/measurements.md, "the golden cells' off current")
SUPPLY = current("vdd")  # the current of the bench's supply source


@dataclass(frozen=True)
class Bench:
    """Where the per-frame signals of one simulation are: vectors (compiler/foundation/simulation.py), frame times."""

    states: dict  # cell -> [(voltages of the nodes b) per unit]: one, or a ladder's K
    candidates: dict  # cell -> [current per unit] (into the cell)
    outputs: list  # current per output pin (sourced into the pin)
    sample_times: np.ndarray
    blocks: dict  # supply block -> vector of its supply current (compiler/backends/spice.py BLOCKS)


def frame_pwl(
    values: np.ndarray, period: float, scale: float, at: float = 0.0, initial: float = 0.0
) -> tuple[tuple, tuple]:
    """Piecewise-constant frames: `initial` until `at` (a fraction of the frame) into the first frame, then
    each value (times `scale`) reached an edge after `at` into its frame and held until as far into the next."""
    times, levels = [0.0], [initial]
    if at > 0:
        times, levels = [0.0, at * period], [initial, initial]
    for t, v in enumerate(values):
        times += [(t + at) * period + edge(period), (t + 1 + at) * period]
        levels += [float(v) * scale] * 2
    return tuple(times), tuple(levels)


def edge(period: float) -> float:
    """The rise and fall time of an input frame and a phase pin (EDGE, at most EDGE_SHARE of a frame)."""
    return min(EDGE, EDGE_SHARE * period)


def golden_outputs(ir: IR, cell: str, q: np.ndarray, period: float) -> list[tuple[tuple, tuple]]:
    """A layer of cells' reference outputs q [T, units] x gain, switching at the end of the layer's enable
    window (the latest the circuit may): replayed into the partition downstream, its isolated error."""
    stage = ir.stage(cell)
    at = window(stage.phase, ir.meta.get("phases", 0))[1]
    waves = [frame_pwl(np.asarray(q)[:, k], period, stage.gain[k], at) for k in range(stage.size)]
    return [(times, tuple(max(level, OFF_CURRENT) for level in levels)) for times, levels in waves]


def _phase_pwl(phase: int, phases: int, frames: int, period: float, vdd: float) -> tuple[tuple, tuple]:
    """A phase pin: high (vdd) during its window of every frame, low otherwise."""
    rise, fall = window(phase, phases)
    times, levels = [0.0], [0.0]
    for t in range(frames):
        for at, level in ((rise, vdd), (fall, 0.0)):
            times += [(t + at) * period, (t + at) * period + edge(period)]
            levels += [levels[-1], level]
    return tuple(times), tuple(levels)


def bench(
    ir: IR,
    netlist_dir: Path,
    x: np.ndarray,
    frame_period: float,
    corner: str = "tt",
    temp: float = 27.0,
    mc_seed: int | None = None,
    replay: dict | None = None,
) -> tuple[Simulation, Bench]:
    """A transient of one input sequence x [T, F] (software units). `replay` maps a CurrentInput stage of
    a partition (flows/partition.py) to the waveforms [(times, amperes) per unit] it replays instead."""
    netlist_dir = Path(netlist_dir)
    i_unit, vdd = ir.meta["i_unit"], ir.meta["vdd"]
    n_out = ir.of_kind(CurrentOutput)[0].size
    frames = x.shape[0]
    stimuli, replay = [], replay or {}
    offsets = input_offsets(ir)
    for stage in ir.of_kind(CurrentInput):
        first = offsets[stage.name]
        (receiver,) = ir.successors(stage.name)
        for k in range(stage.size):
            times, levels = replay[stage.name][k] if stage.name in replay else frame_pwl(x[:, k], frame_period, i_unit)
            pin = f"in_{first + k}"  # a pfet receiver takes the current sunk out of its node
            plus, minus = (pin, "0") if ir.stage(receiver).polarity == "p" else ("0", pin)
            stimuli.append(Pwl(f"IN{first + k}", plus, minus, tuple(times), tuple(levels)))
    phases, used = ir.meta.get("phases", 0), phases_used(ir)
    for p, pin in enumerate(phase_pins(ir), 1):  # a pin no cell here uses stays low: no edges to step through
        times, levels = _phase_pwl(p, phases, frames, frame_period, vdd) if p in used else ((0.0,), (0.0,))
        stimuli.append(Pwl(pin.upper(), pin, "0", times, levels, kind="V"))
    sample_times = _sample_times(frames, frame_period)
    stimuli.append(sample_breakpoints(sample_times))
    cells = ir.memory_cells()
    states = {c.name: [_state_nodes(c, k) for k in range(c.size)] for c in cells}
    candidates = {c.name: [current("xnet", f"v{probe(c.name, k)}".lower()) for k in range(c.size)] for c in cells}
    outputs = [current(f"vout{k}") for k in range(n_out)]
    network = (netlist_dir / "network.spice").read_text()
    blocks = {b: current("xnet", f"v{power_probe(b)}".lower()) for b in BLOCKS if f"V{power_probe(b)} " in network}
    saves = [v for group in candidates.values() for v in group] + outputs + [SUPPLY, *blocks.values()]
    nodes = [v for group in states.values() for unit in group for v in unit]
    cell_text = (netlist_dir / "cells.spice").read_text()
    lines = [
        cell_text,
        network,
        f"VDD vdd 0 {vdd:g}",
        f"IREF iref 0 {i_unit:g}",
        *_output_loads(ir.of_kind(CurrentOutput)[0], cell_text),
        f"XNET {' '.join(pins(ir))} {TOP}",
    ]
    sim = Simulation(
        "\n".join(lines),
        analyses=(_transient(frames, frame_period),),
        saves=(*saves, *nodes),
        initial=tuple(InitialCondition(v, 0.0) for v in nodes),
        stimuli=tuple(stimuli),
        options=cmru.OPTIONS if ir.of_kind(Ladder) else (),
        title="verification bench",
        corner=corner,
        temp=temp,
        mc_seed=mc_seed,
        timeout=3600,
    )
    return sim, Bench(states, candidates, outputs, sample_times, blocks)


def _sample_times(frames: int, frame_period: float) -> np.ndarray:
    return (np.arange(frames) + SAMPLE_AT) * frame_period


def sample_breakpoints(sample_times: np.ndarray) -> Pwl:
    """A 0 V source on a node of its own whose corners are the sample times, where ngspice then takes a
    timepoint: each sample is simulated, not interpolated across a timepoint after it. ngspice steps
    over some corners of a replayed current (flows/partition.py), and a change that starts just after a
    sample would move it (docs/measurements.md, "Simulator")."""
    times = (0.0, *(float(t) for t in sample_times))
    return Pwl("SAMPLE", "sample_at", "0", times, (0.0,) * len(times), kind="V")


def _output_loads(out: CurrentOutput, cell_text: str) -> list[str]:
    """What each output pin flows into, through the 0 V source VOUT<k> that measures it: the fixed
    voltage V_OUT, or for a partition's stand-in for a receiver (flows/partition.py) a copy of the
    receiver's diode (cells/mirror.py with no outputs), so the currents into it see its own voltage.
    `cell_text` holds the subcircuits already defined."""
    if not out.diode:
        return [f"VOUT{k} out_{k} 0 {V_OUT:g}" for k in range(out.size)]
    units, w, l = out.diode
    diode = mirror.subckt(mirror.Params(out.polarity, (), n_in=units, w=w, l=l))
    lines = [] if f".subckt {diode.name} " in cell_text else [diode.text]
    for k in range(out.size):
        lines += [
            f"VOUT{k} out_{k} load_{k} 0",
            diode.instance(f"LOAD{k}", {"vdd": "vdd", "in": f"load_{k}"}),  # an nfet diode has no vdd port
        ]
    return lines


def _transient(frames: int, frame_period: float) -> Tran:
    """A transient of `frames` frames: 200 results a frame, the step capped at a 50th of one."""
    return Tran(frame_period / 200, frames * frame_period, tmax=frame_period / 50)


def _state_nodes(cell, k: int) -> tuple:
    """The nodes of a memory-cell unit whose count set is its level (its cell's facts: a bistable's `b`,
    an FQ-CMRU ladder's stages')."""
    unit = f"x{net(cell.name, k)}"
    return tuple(voltage("xnet", unit, node) for node in cell.facts.state_nodes(cell.top_level))


def samples(result, where: Bench, ir: IR) -> dict:
    """Per-frame samples: states (0/1, a ladder's level 0..K), candidates and outputs in software units;
    mean supply power."""
    time = result[TIME]
    i_unit, vdd = ir.meta["i_unit"], ir.meta["vdd"]

    def at(name):
        return np.interp(where.sample_times, time, result[name])

    def mean_power(name, sign):  # mean current drawn from VDD, times VDD
        return float(sign * np.trapezoid(result[name], time) / (time[-1] - time[0]) * vdd)

    return {
        "power_W": mean_power(SUPPLY, -1),
        "power_by_block_W": {b: mean_power(name, 1) for b, name in where.blocks.items()},
        "states": {
            c: np.stack([sum(at(v) > vdd / 2 for v in unit) for unit in units], -1).astype(float)
            for c, units in where.states.items()
        },
        "candidates": {c: np.stack([at(v) / i_unit for v in names], -1) for c, names in where.candidates.items()},
        "outputs": np.stack([at(v) / i_unit for v in where.outputs], -1),
    }


def isolated_bench(
    ir: IR, cell: str, h: np.ndarray, frame_period: float, corner: str = "tt", temp: float = 27.0
) -> tuple[Simulation, list]:
    """One layer of bistable cells alone, driven by golden candidate currents h [T, units] (software units)
    from the reference, with ideal bias sources at the programmed currents: the cell's isolated error."""
    from cells import bistable

    stage = ir.stage(cell)
    i_unit, vdd = ir.meta["i_unit"], ir.meta["vdd"]
    starve, subckt = bistable.starve_bias(i_unit), bistable.subckt()
    lines = [subckt.text, starve.text, f"VDD vdd 0 {vdd:g}", starve.instance("S", ["vdd", "vsp", "vsn"])]
    stimuli = []
    for k in range(stage.size):
        prog = {f: stage.programmed[f][k] for f in ("thresh", "width", "gain")}
        lines += [
            f"Iith{k} ith{k} 0 {prog['thresh']:g}",
            f"Iiw{k} vdd iw{k} {prog['width']:g}",
            f"Iig{k} vdd ig{k} {prog['gain']:g}",
            f"Vo{k} out{k} 0 {bistable.V_OUT:g}",
            subckt.instance(
                f"C{k}",
                {
                    "vdd": "vdd",
                    "in": f"in{k}",
                    "out": f"out{k}",
                    "ith": f"ith{k}",
                    "iw": f"iw{k}",
                    "ig": f"ig{k}",
                    "vsp": "vsp",
                    "vsn": "vsn",
                    "en": bistable.FREE_RUNNING[0],
                    "enb": bistable.FREE_RUNNING[1],
                },
            ),
        ]
        times, levels = frame_pwl(h[:, k], frame_period, i_unit)
        stimuli.append(Pwl(f"H{k}", "0", f"in{k}", times, levels))
    stimuli.append(sample_breakpoints(_sample_times(h.shape[0], frame_period)))
    states = [voltage(f"xc{k}", "b") for k in range(stage.size)]
    sim = Simulation(
        "\n".join(lines),
        analyses=(_transient(h.shape[0], frame_period),),
        saves=tuple(states),
        initial=tuple(InitialCondition(v, 0.0) for v in states),
        stimuli=tuple(stimuli),
        title=f"isolated {cell}",
        corner=corner,
        temp=temp,
    )
    return sim, states


def isolated_states(result, states: list, frames: int, frame_period: float, vdd: float) -> np.ndarray:
    """States [T, units] sampled at the end of each frame."""
    times = _sample_times(frames, frame_period)
    return np.stack([np.interp(times, result[TIME], result[s]) > vdd / 2 for s in states], -1).astype(float)
