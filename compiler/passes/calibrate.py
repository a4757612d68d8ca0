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

from compiler.ir import IR, Programmed
from compiler.realisation import bias_grid, cell_calibration, program

REQUIRES = ("scale_currents",)  # it programs currents in amperes


def run(ir: IR, config) -> IR:
    stages = ir.memory_cells()
    if not stages:
        return ir
    calibrations = {}
    if config.get("calibrated"):
        for name in dict.fromkeys(cell.facts.calibration for cell in stages):
            calibrations[name] = cell_calibration(name, config)
    new = {}
    for cell in stages:
        calibration = calibrations.get(cell.facts.calibration)
        bias, realised = program(cell.thresh, cell.width, cell.gain, calibration, bias_grid(config))
        thresh, width, gain = (_floats(column) for column in realised)
        new[cell.name] = cell.replace(
            thresh=thresh, width=width, gain=gain, programmed=Programmed(*(_floats(column) for column in bias))
        )
    return ir.replace_stages(new).with_meta(calibrated=bool(calibrations))


def _floats(values) -> tuple:
    return tuple(float(v) for v in values)
