"""Calibrate: program each bistable cell through its SPICE calibration table.

The silicon cell's thresholds and level differ from its bias currents by a few percent (measured by
`python -m compiler characterize bistable`). This pass inverts the calibrated model to find the bias
currents that realise the model's beta_hi, delta and alpha, puts them on the bias generator's grid,
and records what the cell will then realise (the calibrated model of the quantised currents): that is
what the behavioural reference and verification expect. With `calibrated: false` the bias currents are
the model's values and the ideal cell equations are expected instead.
"""

from __future__ import annotations

import cells
from compiler.ir import IR, Bistable
from compiler.passes.assign_biases import grid, on_grid


def run(ir: IR, config) -> IR:
    stages = ir.of_kind(Bistable)
    if not stages:
        return ir
    calibration = None
    if config.get("calibrated"):
        calibration = cells.load_calibration("bistable", config.get("corner"), config.get("temp"))
    new = {}
    for cell in stages:
        prog = {"thresh": [], "width": [], "gain": []}
        real = {"thresh": [], "width": [], "gain": []}
        for t, w, g in zip(cell.thresh, cell.width, cell.gain):
            if calibration is not None:  # a switched-off output (g = 0) still needs its thresholds
                params = calibration.invert(t, w, g if g > 0 else t)
                i_t, i_w, i_g = params.I_thresh, params.I_width, params.I_gain
            else:
                i_t, i_w, i_g = t, w, g
            i_t, i_w = on_grid(i_t, config), on_grid(i_w, config)
            i_w = min(i_w, i_t - grid(config))  # rounding must leave a reset level above zero
            i_g = on_grid(i_g, config) if g > 0 else 0.0
            if calibration is not None:
                hi, lo, level = calibration.thresholds(i_t, i_w, i_g if i_g > 0 else i_t)
                hi, lo, level = float(hi), float(lo), (float(level) if i_g > 0 else 0.0)
            else:
                hi, lo, level = i_t, i_t - i_w, i_g
            for key, value in (("thresh", i_t), ("width", i_w), ("gain", i_g)):
                prog[key].append(value)
            real["thresh"].append(hi)
            real["width"].append(hi - lo)
            real["gain"].append(level)
        new[cell.name] = cell.replace(
            thresh=tuple(real["thresh"]), width=tuple(real["width"]), gain=tuple(real["gain"]),
            programmed={k: tuple(v) for k, v in prog.items()},
        )
    return ir.replace_stages(new).with_meta(calibrated=calibration is not None)
