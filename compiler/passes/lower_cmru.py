"""Lower CMRU: every FQ-CMRU unit becomes a ladder of K bistable stages gated through DPIs (cells/cmru.py).

Runs after `assign_biases`: by then `program_cells` has programmed each unit's stage currents (the ladder's
thresholds are its stages', so the bistable calibration applies unchanged) and the bias generator has
one tap per stage current. This pass
* designs each unit's ladder for the frame period (`cells.cmru.design`: DPI time constant, gain and
  capacitor, gating comparator level and pin current), every bias current on the bias grid;
* multiplies the unit's stage-current taps by K (the K stages' bias ports are tied inside the ladder)
  and adds a tap for each of the ladder's other bias ports (`tau`, `dth`, `x` on `itau`, `idth`, `ix`:
  its cell facts, cells/cmru.py), in the direction the ladder's design gives.
"""

from __future__ import annotations

import cells
from cells import cmru
from compiler.foundation.errors import UsageError
from compiler.ir import IR, PROGRAMMED, BiasGenerator, Ladder, LadderDesign, Tap
from compiler.realisation import bias_grid

REQUIRES = ("assign_biases", "choose_frame")  # it extends the bias generator's taps; the frame
# The ladder's own bias ports by the field they take (the others take the programmed stage currents).
LADDER_PORTS = {port.field: port.name for port in cmru.FACTS.bias_ports if port.field not in PROGRAMMED}


class InvisibleLevel(UsageError):
    """A CMRU unit whose gain was legalised to zero: its ladder would have no current to gate with."""


def run(ir: IR, config) -> IR:
    ladders = ir.of_kind(Ladder)
    if not ladders:
        return ir
    dpi_cal = None
    if config.get("calibrated"):
        dpi_cal = cells.load_calibration("dpi", config.get("corner"), config.get("temp"))
    new, extra_taps = {}, []
    for stage in ladders:
        units = [design_unit(stage, k, config, dpi_cal, ir.meta.frame_period) for k in range(stage.size)]
        for k, unit in enumerate(units):
            currents = unit.port_currents()
            extra_taps += [
                Tap(stage.name, field, k, currents[port][1], bias_grid(config).units(currents[port][0]))
                for field, port in LADDER_PORTS.items()
            ]
        new[stage.name] = stage.replace(
            ladder=LadderDesign(
                *(tuple(getattr(unit, key) for unit in units) for key in ("I_tau", "I_th", "C", "I_x", "n_pin"))
            )
        )
    for generator in ir.of_kind(BiasGenerator):
        taps = tuple(
            tap._replace(units=tap.units * new[tap.stage].levels) if tap.stage in new else tap for tap in generator.taps
        ) + tuple(extra_taps)
        new[generator.name] = generator.replace(size=len(taps), taps=taps)
    return ir.replace_stages(new)


def design_unit(stage: Ladder, k: int, config, dpi_calibration, frame: float) -> cmru.Params:
    """The ladder of unit k for the build's frame period, from its programmed stage currents."""
    prog = stage.programmed
    if not prog.gain[k]:
        raise InvisibleLevel(
            f"{stage.name} unit {k}: alpha is below half the minimum cell current, so the ladder has no "
            "stage current to count with. Retrain with a larger alpha or lower i_unit in the config."
        )
    return cmru.design(
        stage.levels,
        prog.thresh[k],
        prog.width[k],
        prog.gain[k],
        frame=frame,
        dpi_calibration=dpi_calibration,
        quantize=bias_grid(config).on_grid,
        i_unit=config.get("i_unit"),
    )


def params(stage: Ladder, k: int, i_unit: float) -> cmru.Params:
    """The cell parameters of unit k of a lowered ladder stage in a design of unit current `i_unit` (what
    the netlist instantiates)."""
    lad, prog = stage.ladder, stage.programmed
    return cmru.Params(
        stage.levels,
        prog.thresh[k],
        prog.width[k],
        prog.gain[k],
        lad.I_tau[k],
        lad.I_th[k],
        lad.C[k],
        lad.I_x[k],
        int(lad.n_pin[k]),
        i_unit,
    )
