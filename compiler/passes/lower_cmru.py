"""Lower CMRU: every FQ-CMRU unit becomes a ladder of K bistable stages gated through DPIs (cells/cmru.py).

Runs after `assign_biases`: by then `calibrate` has programmed each unit's stage currents (the ladder's
thresholds are its stages', so the bistable calibration applies unchanged) and the bias generator has
one tap per stage current. This pass
* designs each unit's ladder for the frame period (`cells.cmru.design`: DPI time constant, gain and
  capacitor, gating comparator level and pin current), every bias current on the bias grid;
* multiplies the unit's stage-current taps by K (the K stages' bias ports are tied inside the ladder)
  and adds the DPI and comparator taps (`tau`, `dth`, `x`, ports `itau`, `idth`, `ix`).
"""

from __future__ import annotations

import cells
from cells import cmru
from compiler.foundation.errors import UsageError
from compiler.ir import IR, BiasGenerator, Ladder
from compiler.passes.assign_biases import grid_units, on_grid

LADDER_PORTS = {"tau": "itau", "dth": "idth", "x": "ix"}   # extra bias fields -> ladder ports
PORT_FIELD = {"ith": "thresh", "iw": "width", "ig": "gain", "itau": "tau", "idth": "dth", "ix": "x"}


class InvisibleLevel(UsageError):
    """A CMRU unit whose gain was legalised to zero: its ladder would have no current to gate with."""


def run(ir: IR, config) -> IR:
    ladders = ir.of_kind(Ladder)
    if not ladders:
        return ir
    dpi_cal = cells.load_calibration("dpi", config.get("corner"), config.get("temp")) if config.get("calibrated") else None
    new, extra_taps, scale = {}, [], {}
    for stage in ladders:
        i_unit = config.get("i_unit", stage)
        units = []
        for k in range(stage.size):
            prog = stage.programmed
            gain = prog["gain"][k]
            if not gain:
                raise InvisibleLevel(
                    f"{stage.name} unit {k}: alpha is below half the minimum cell current, so the ladder has no "
                    "stage current to count with. Retrain with a larger alpha or lower i_unit in the config.")
            p = cmru.design(stage.levels, prog["thresh"][k], prog["width"][k], gain,
                            frame=config.get("frame_period", stage), dpi_calibration=dpi_cal,
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
            for key in ("I_tau", "I_th", "C", "I_x", "n_pin")})
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
                       lad["C"][k], lad["I_x"][k], int(lad["n_pin"][k]))
