"""Transient test benches of a built network: frame-synchronous input currents in, per-frame samples out.

Each input feature is a piecewise-constant current (x * i_unit) per frame of `frame_period`, with a short
edge. Output pins are held at 0.9 V and their currents measured; every bistable cell's candidate current
is read through the 0 V source in series with its input, and its state from its internal node `b`.
At t = 0 every cell is reset (`.ic` on `b`, a power-on reset), matching the model's initial state.
An FQ-CMRU unit's state is its level: the number of set stages of its ladder (a thermometer code,
cells/cmru.py), read from each stage's node `b`.
Samples are taken at the end of each frame, after the cells have settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.backends.spice import TOP, V_OUT, net, probe
from compiler.ir import IR, Bistable, CurrentInput, CurrentOutput, Ladder
from compiler.ngspice import Simulation, Stimulus

EDGE = 1e-6          # s, rise and fall of an input frame
SAMPLE_AT = 0.97     # fraction of the frame at which it is sampled


@dataclass(frozen=True)
class Bench:
    """Where the per-frame signals of one simulation are: vector names, frame times."""

    states: dict        # cell -> [(vector names of the nodes b) per unit]: one, or a ladder's K
    candidates: dict    # cell -> [vector name per unit] (current into the cell)
    outputs: list       # vector name per output pin (current sourced into the pin)
    sample_times: np.ndarray


def _pwl(values: np.ndarray, period: float, scale: float) -> tuple[tuple, tuple]:
    """Piecewise-constant frames: each value is reached EDGE after its frame starts and held to its end."""
    times, levels = [0.0], [0.0]
    for t, v in enumerate(values):
        times += [t * period + EDGE, (t + 1) * period]
        levels += [float(v) * scale] * 2
    return tuple(times), tuple(levels)


def bench(ir: IR, netlist_dir: Path, x: np.ndarray, frame_period: float, corner: str = "tt",
          temp: float = 27.0, mc_seed: int | None = None) -> tuple[Simulation, Bench]:
    """A transient of one input sequence x [T, F] (software units)."""
    netlist_dir = Path(netlist_dir)
    i_unit, vdd = ir.meta["i_unit"], ir.meta["vdd"]
    n_in = sum(s.size for s in ir.of_kind(CurrentInput))
    n_out = ir.of_kind(CurrentOutput)[0].size
    frames = x.shape[0]
    stimuli = []
    for j in range(n_in):
        times, levels = _pwl(x[:, j], frame_period, i_unit)
        stimuli.append(Stimulus(f"IN{j}", "0", f"in_{j}", times, levels))
    cells = ir.of_kind(Bistable)
    states = {c.name: [_state_nodes(c, k) for k in range(c.size)] for c in cells}
    candidates = {c.name: [f"i(v.xnet.v{probe(c.name, k)})".lower() for k in range(c.size)] for c in cells}
    outputs = [f"i(vout{k})" for k in range(n_out)]
    saves = [v for group in candidates.values() for v in group] + outputs + ["i(vdd)"]
    saves += [v for group in states.values() for unit in group for v in unit]
    lines = [
        (netlist_dir / "cells.spice").read_text(), (netlist_dir / "network.spice").read_text(),
        f"VDD vdd 0 {vdd:g}", f"IREF iref 0 {i_unit:g}",
        *[f"VOUT{k} out_{k} 0 {V_OUT:g}" for k in range(n_out)],
        f"XNET vdd iref {' '.join(f'in_{j}' for j in range(n_in))} {' '.join(f'out_{k}' for k in range(n_out))} {TOP}",
        *[f".ic {v}=0" for group in states.values() for unit in group for v in unit],
        ".save " + " ".join(saves),
        f".tran {frame_period / 200:g} {frames * frame_period:g} 0 {frame_period / 50:g}",
    ]
    sim = Simulation("\n".join(lines), title="verification bench", corner=corner, temp=temp, mc_seed=mc_seed,
                     stimuli=tuple(stimuli), timeout=3600)
    sample_times = (np.arange(frames) + SAMPLE_AT) * frame_period
    return sim, Bench(states, candidates, outputs, sample_times)


def _state_nodes(cell, k: int) -> tuple:
    """The node `b` of a bistable unit, or those of its ladder's stages (an FQ-CMRU unit: level = count set)."""
    base = f"v(xnet.x{net(cell.name, k)}"
    if isinstance(cell, Ladder):
        from cells.cmru import state_node

        return tuple(f"{base}.{state_node(j)})" for j in range(1, cell.levels + 1))
    return (f"{base}.b)",)


def samples(result, where: Bench, ir: IR) -> dict:
    """Per-frame samples: states (0/1, a ladder's level 0..K), candidates and outputs in software units; mean supply power."""
    time = result["time"]
    i_unit, vdd = ir.meta["i_unit"], ir.meta["vdd"]

    def at(name):
        return np.interp(where.sample_times, time, result[name])

    supply = -np.trapezoid(result["i(vdd)"], time) / (time[-1] - time[0])  # mean current drawn from VDD
    return {
        "power_W": float(supply * vdd),
        "states": {c: np.stack([sum(at(v) > vdd / 2 for v in unit) for unit in units], -1).astype(float)
                   for c, units in where.states.items()},
        "candidates": {c: np.stack([at(v) / i_unit for v in names], -1) for c, names in where.candidates.items()},
        "outputs": np.stack([at(v) / i_unit for v in where.outputs], -1),
    }


def isolated_bench(ir: IR, cell: str, h: np.ndarray, frame_period: float, corner: str = "tt",
                   temp: float = 27.0) -> tuple[Simulation, list]:
    """One layer of bistable cells alone, driven by golden candidate currents h [T, units] (software units)
    from the reference, with ideal bias sources at the programmed currents: the cell's isolated error."""
    from cells import bistable

    stage = ir.stage(cell)
    i_unit, vdd = ir.meta["i_unit"], ir.meta["vdd"]
    starve, subckt = bistable.starve_bias(), bistable.subckt()
    lines = [subckt.text, starve.text, f"VDD vdd 0 {vdd:g}", starve.instance("S", ["vdd", "vsp", "vsn"])]
    stimuli = []
    for k in range(stage.size):
        prog = {f: stage.programmed[f][k] for f in ("thresh", "width", "gain")}
        lines += [f"Iith{k} ith{k} 0 {prog['thresh']:g}", f"Iiw{k} vdd iw{k} {prog['width']:g}",
                  f"Iig{k} vdd ig{k} {prog['gain']:g}", f"Vo{k} out{k} 0 {bistable.V_OUT:g}",
                  subckt.instance(f"C{k}", {"vdd": "vdd", "in": f"in{k}", "out": f"out{k}", "ith": f"ith{k}",
                                            "iw": f"iw{k}", "ig": f"ig{k}", "vsp": "vsp", "vsn": "vsn"}),
                  f".ic v(xc{k}.b)=0"]
        times, levels = _pwl(h[:, k], frame_period, i_unit)
        stimuli.append(Stimulus(f"H{k}", "0", f"in{k}", times, levels))
    states = [f"v(xc{k}.b)" for k in range(stage.size)]
    lines += [".save " + " ".join(states), f".tran {frame_period / 200:g} {h.shape[0] * frame_period:g} 0 {frame_period / 50:g}"]
    sim = Simulation("\n".join(lines), title=f"isolated {cell}", corner=corner, temp=temp, stimuli=tuple(stimuli))
    return sim, states


def isolated_states(result, states: list, frames: int, frame_period: float, vdd: float) -> np.ndarray:
    """States [T, units] sampled at the end of each frame."""
    times = (np.arange(frames) + SAMPLE_AT) * frame_period
    return np.stack([np.interp(times, result["time"], result[s]) > vdd / 2 for s in states], -1).astype(float)
