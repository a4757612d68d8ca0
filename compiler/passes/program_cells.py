"""Program the memory cells: each unit's window, from the model's software units to the bias currents
that realise it in silicon.

1. Legalise (software units). A cell's currents must lie in its weak-inversion range (its facts'
   limits, e.g. cells/bistable.py, at the configured i_unit), and its hysteresis width must be at least
   `min_width_ratio` of its threshold (narrower windows lose their hysteresis to mismatch). A narrow
   window is widened about its centre, one reaching down to zero input is capped at 0.9 of the
   threshold; a gain too small to realise becomes 0 (the unit's output is switched off). Every change
   is recorded for the build report.
2. Scale: 1 unit = the cell's i_unit amperes.
3. Calibrate. The silicon cell's thresholds and level differ from its bias currents by a few percent
   (`python -m compiler characterize bistable`). The cell's calibration table is inverted to find the
   bias currents (I_thresh, I_width, I_gain) that realise the window, on the bias generator's grid; they
   become the stage's `programmed` currents, and `thresh`, `width` and `gain` become what the cell
   realises with them. With `calibrated: false` the bias currents are the model's values.

The rules (`legal_window`, `program`) are compiler/realisation.py's, which hardware-aware training
applies too; the behavioural reference uses the programmed values, so verification compares SPICE with
the circuit the compiler meant to build. The rest of the network is scaled by `scale_currents`.
"""

from __future__ import annotations

from compiler.foundation.errors import UsageError
from compiler.ir import IR, Programmed
from compiler.realisation import MAX_WIDTH_RATIO, bias_grid, cell_calibration, legal_window, program

REQUIRES = ()  # it reads the lowered cells in software units


class UnrealisableCurrent(UsageError):
    """A cell current above the weak-inversion range at the configured i_unit."""


def run(ir: IR, config) -> IR:
    adjustments = list(ir.meta.adjustments or [])
    cells = ir.memory_cells()
    if not cells:
        return ir.with_meta(adjustments=adjustments)
    calibrations = {}
    if config.get("calibrated"):
        for name in dict.fromkeys(cell.facts.calibration for cell in cells):
            calibrations[name] = cell_calibration(name, config)
    grid, new = bias_grid(config), {}
    for cell in cells:
        i_unit = config.get("i_unit", cell)
        thresh, width, gain = (tuple(v * i_unit for v in values) for values in _legalised(cell, config, adjustments))
        bias, realised = program(thresh, width, gain, calibrations.get(cell.facts.calibration), grid)
        thresh, width, gain = (_floats(column) for column in realised)
        new[cell.name] = cell.replace(
            thresh=thresh, width=width, gain=gain, programmed=Programmed(*(_floats(column) for column in bias))
        )
    return ir.replace_stages(new).with_meta(adjustments=adjustments, calibrated=bool(calibrations))


def _legalised(cell, config, adjustments: list) -> tuple:
    """The cell's (thresh, width, gain) in software units, each unit's window clamped into what the cell
    realises; every change appended to `adjustments`."""
    i_unit, limits = config.get("i_unit", cell), cell.facts.limits
    lo, hi = limits.window(config.get("i_unit"), i_unit)
    ratio = config.get("min_width_ratio", cell)
    thresh, width, gain = list(cell.thresh), list(cell.width), list(cell.gain)
    for k in range(cell.size):
        if max(thresh[k], gain[k]) > hi:
            raise UnrealisableCurrent(
                f"{cell.name} unit {k}: threshold {thresh[k]:.3g} / gain {gain[k]:.3g} units exceed "
                f"{hi:.3g} units ({limits.i_max:.3g} A at i_unit = {i_unit:g} A). Lower i_unit in the config."
            )
        before = (thresh[k], width[k], gain[k])
        t, w, g = (float(v) for v in legal_window(*before, lo, ratio))
        thresh[k], width[k], gain[k] = t, w, g
        if (t, w, g) != before:
            reason = _reason(before, (t, w, g), lo, ratio)
            adjustments.append({"stage": cell.name, "unit": k, "reason": reason, "from": list(before), "to": [t, w, g]})
    return tuple(thresh), tuple(width), tuple(gain)


def _reason(before, after, lo, ratio) -> str:
    reasons = []
    if after[0] != before[0] and before[0] < lo:
        reasons.append(f"threshold below the {lo:.3g}-unit minimum")
    if after[1] > before[1]:
        reasons.append(f"hysteresis width below {ratio:g} x threshold")
    elif after[1] < before[1]:
        reasons.append(f"hysteresis width above {MAX_WIDTH_RATIO:g} x threshold (reset level near zero)")
    if after[2] != before[2]:
        reasons.append("gain below the minimum current" + (" (output switched off)" if after[2] == 0 else ""))
    return "; ".join(reasons)


def _floats(values) -> tuple:
    return tuple(float(v) for v in values)
