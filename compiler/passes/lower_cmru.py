"""Lower CMRU: every FQ-CMRU unit becomes a ladder of K bistable stages gated through DPIs (cells/cmru.py).

Runs after `assign_biases`: by then `calibrate` has programmed each unit's stage currents (the ladder's
thresholds are its stages', so the bistable calibration applies unchanged) and the bias generator has
one tap per stage current. This pass
* designs each unit's ladder for the frame period (`cells.cmru.design`: DPI time constant, gain and
  capacitor, gating comparator level and block / pin gains), every bias current on the bias grid;
* multiplies the unit's stage-current taps by K (the K stages' bias ports are tied inside the ladder)
  and adds the DPI and comparator taps (`tau`, `dth`, `x`, ports `itau`, `idth`, `ix`).
The largest candidate of a unit (for the block current) is bounded from its weights and bias with every
network input at X_MAX units (the tasks' inputs lie in [0, 1]) and every cell output at its top level.
"""

from __future__ import annotations

import cells
from cells import cmru
from compiler.errors import UsageError
from compiler.ir import IR, BiasArray, BiasGenerator, Bistable, CurrentInput, Ladder, Receiver, WeightArray
from compiler.passes.assign_biases import grid_units, on_grid

LADDER_PORTS = {"tau": "itau", "dth": "idth", "x": "ix"}   # extra bias fields -> ladder ports
PORT_FIELD = {"ith": "thresh", "iw": "width", "ig": "gain", "itau": "tau", "idth": "dth", "ix": "x"}
X_MAX = 1.0


class InvisibleLevel(UsageError):
    """A CMRU unit whose gain was legalised to zero: its ladder would have no current to gate with."""


def _signal_max(ir: IR, receiver: str, i_unit: float) -> list[float]:
    """Largest current (A) per unit of a receiver's signal: inputs at X_MAX, cells at their top level."""
    rx = ir.stage(receiver)
    peak = [0.0] * rx.size
    for name in ir.predecessors(receiver):
        stage = ir.stage(name)
        if isinstance(stage, CurrentInput):
            values = [X_MAX * i_unit] * stage.size
        elif isinstance(stage, Bistable):
            values = [g * getattr(stage, "levels", 1) for g in stage.gain]
        else:
            values = [X_MAX * i_unit] * rx.size
        peak = [p + v for p, v in zip(peak, values)]
    return peak


def _h_max(ir: IR, ladder: Ladder, i_unit: float) -> list[float]:
    """Upper bound (A) of each unit's candidate: positive weights x signal peaks, plus the bias."""
    h = [0.0] * ladder.size
    for name in ir.predecessors(ladder.name):
        stage = ir.stage(name)
        if isinstance(stage, WeightArray):
            (rx,) = [p for p in ir.predecessors(name) if isinstance(ir.stage(p), Receiver)]
            peak = _signal_max(ir, rx, i_unit)
            for k, row in enumerate(stage.realised()):
                h[k] += sum(max(w, 0.0) * x for w, x in zip(row, peak))
        elif isinstance(stage, BiasArray):
            h = [a + max(v, 0.0) for a, v in zip(h, stage.values)]
    return h


def run(ir: IR, config) -> IR:
    ladders = ir.of_kind(Ladder)
    if not ladders:
        return ir
    dpi_cal = cells.load_calibration("dpi", config.get("corner"), config.get("temp")) if config.get("calibrated") else None
    new, extra_taps, scale = {}, [], {}
    for stage in ladders:
        i_unit = config.get("i_unit", stage)
        h_max = _h_max(ir, stage, i_unit)
        units = []
        for k in range(stage.size):
            prog = stage.programmed
            gain = prog["gain"][k]
            if not gain:
                raise InvisibleLevel(
                    f"{stage.name} unit {k}: alpha is below half the minimum cell current, so the ladder has no "
                    "stage current to count with. Retrain with a larger alpha or lower i_unit in the config.")
            p = cmru.design(stage.levels, prog["thresh"][k], prog["width"][k], gain,
                            frame=config.get("frame_period", stage), h_max=h_max[k], dpi_calibration=dpi_cal,
                            quantize=lambda current: on_grid(current, config))
            units.append(p)
            currents = p.port_currents()
            for port, field in PORT_FIELD.items():
                value, polarity = currents[port]
                if field in LADDER_PORTS:
                    extra_taps.append((stage.name, field, k, polarity, grid_units(value, config)))
        scale[stage.name] = stage.levels
        new[stage.name] = stage.replace(ladder={
            key: tuple(getattr(p, key) for p in units)
            for key in ("I_tau", "I_th", "C", "I_x", "n_block", "n_pin")})
    stages = []
    for s in ir.stages:
        s = new.get(s.name, s)
        if isinstance(s, BiasGenerator):
            taps = tuple((name, field, k, pol, units * scale[name] if name in scale else units)
                         for name, field, k, pol, units in s.taps) + tuple(extra_taps)
            s = s.replace(size=len(taps), taps=taps)
        stages.append(s)
    return IR(tuple(stages), ir.edges, dict(ir.meta))


def params(stage: Ladder, k: int) -> cmru.Params:
    """The cell parameters of unit k of a lowered ladder stage (what the netlist instantiates)."""
    lad, prog = stage.ladder, stage.programmed
    return cmru.Params(stage.levels, prog["thresh"][k], prog["width"][k], prog["gain"][k], lad["I_tau"][k], lad["I_th"][k],
                       lad["C"][k], lad["I_x"][k], int(lad["n_block"][k]), int(lad["n_pin"][k]))
