"""Legalise: clamp memory-cell parameters into the window the cell realises, and record each change.

A memory cell's currents must lie in its weak-inversion range (its facts' limits, e.g. cells/bistable.py,
at the configured i_unit), and its hysteresis width must be at least `min_width_ratio` of its threshold
(narrower windows lose their hysteresis to mismatch). A narrow window is widened about its centre, one
reaching down to zero input is capped at 0.9 of the threshold; a gain too small to realise becomes 0 (the
unit's output is switched off): the rule is compiler/realisation.py `legal_window`, which hardware-aware
training applies too. The recorded adjustments go to the build report, and the behavioural
reference uses the legalised values, so verification compares SPICE with the circuit the compiler meant
to build.
"""

from __future__ import annotations

from compiler.foundation.errors import UsageError
from compiler.ir import IR
from compiler.realisation import MAX_WIDTH_RATIO, legal_window

REQUIRES = ()  # it works in software units: scale_currents requires it


class UnrealisableCurrent(UsageError):
    """A cell current above the weak-inversion range at the configured i_unit."""


def run(ir: IR, config) -> IR:
    adjustments = list(ir.meta.adjustments or [])
    new = {}
    for cell in ir.memory_cells():
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
                adjustments.append(
                    {
                        "stage": cell.name,
                        "unit": k,
                        "reason": _reason(before, (t, w, g), lo, ratio),
                        "from": list(before),
                        "to": [t, w, g],
                    }
                )
        new[cell.name] = cell.replace(thresh=tuple(thresh), width=tuple(width), gain=tuple(gain))
    return ir.replace_stages(new).with_meta(adjustments=adjustments)


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
