"""Calibrate: program each memory cell's units through their cell's SPICE calibration table.

The silicon cell's thresholds and level differ from its bias currents by a few percent (measured by
`python -m compiler characterize bistable`). This pass inverts the calibrated model to find the bias
currents (I_thresh, I_width, I_gain) that realise the unit's beta_hi, delta and alpha, puts them on the
bias generator's grid and records them as the stage's `programmed` currents. The stage's `thresh`,
`width` and `gain` then become what the cell realises with those currents (the calibrated model of the
quantised currents): that is what the behavioural reference and verification expect. With
`calibrated: false` the bias currents are the model's values and the ideal cell equations are expected.
"""

from __future__ import annotations

import cells
from compiler.ir import IR, Programmed
from compiler.passes.assign_biases import grid, on_grid

REQUIRES = ("scale_currents",)  # it programs currents in amperes


def run(ir: IR, config) -> IR:
    stages = ir.memory_cells()
    if not stages:
        return ir
    calibrations = {}
    if config.get("calibrated"):
        for name in dict.fromkeys(cell.facts.calibration for cell in stages):
            calibrations[name] = cells.load_calibration(name, config.get("corner"), config.get("temp"))
    new = {}
    for cell in stages:
        calibration = calibrations.get(cell.facts.calibration)
        units = [
            program(beta_hi, delta, alpha, calibration, config)
            for beta_hi, delta, alpha in zip(cell.thresh, cell.width, cell.gain)
        ]
        bias, realised = zip(*units)
        thresh, width, gain = (tuple(column) for column in zip(*realised))
        new[cell.name] = cell.replace(
            thresh=thresh, width=width, gain=gain, programmed=Programmed(*(tuple(column) for column in zip(*bias)))
        )
    return ir.replace_stages(new).with_meta(calibrated=bool(calibrations))


def program(beta_hi: float, delta: float, alpha: float, calibration, config) -> tuple[tuple, tuple]:
    """One unit: the bias currents (I_thresh, I_width, I_gain) on the grid that realise the wanted
    (beta_hi, delta, alpha), and the (beta_hi, delta, alpha) they realise (the calibrated model, or the
    ideal equations without a calibration). A switched-off output (alpha = 0) still needs its thresholds."""
    if calibration is not None:
        wanted = calibration.invert(beta_hi, delta, alpha if alpha > 0 else beta_hi)
        i_thresh, i_width, i_gain = wanted.I_thresh, wanted.I_width, wanted.I_gain
    else:
        i_thresh, i_width, i_gain = beta_hi, delta, alpha
    i_thresh, i_width = on_grid(i_thresh, config), on_grid(i_width, config)
    i_width = min(i_width, i_thresh - grid(config))  # rounding must leave a reset level above zero
    i_gain = on_grid(i_gain, config) if alpha > 0 else 0.0
    if calibration is not None:
        hi, lo, level = calibration.thresholds(i_thresh, i_width, i_gain if i_gain > 0 else i_thresh)
        hi, lo, level = float(hi), float(lo), (float(level) if i_gain > 0 else 0.0)
    else:
        hi, lo, level = i_thresh, i_thresh - i_width, i_gain
    return (i_thresh, i_width, i_gain), (hi, hi - lo, level)
