"""Size devices: the unit device of each receiver's mirrors, from the mismatch budget (Pelgrom).

One mirror output of r unit devices against a diode of D units has a relative current sigma of about
A * sqrt(1/r + 1/D) / sqrt(W * L), with A (cells/mirror.py `PELGROM`) about 30 %um for nfets and 20 %um for pfets in
sky130: at or above the sigmas measured on the cell library's mirrors (docs/measurements.md). The
smallest catalogue device that keeps the smallest used ratio of a receiver's arrays within
`mismatch_budget` is chosen; when none does, the largest is used and the shortfall is recorded for the
build report.
"""

from __future__ import annotations

from compiler.ir import IR, Receiver
from compiler.realisation import unit_device

REQUIRES = ("quantise_ratios",)


def run(ir: IR, config) -> IR:
    new, notes = {}, list(ir.meta.sizing or [])
    for rx in ir.of_kind(Receiver):
        arrays = ir.readers(rx.name)
        if not arrays:
            continue
        budget = min(config.get("mismatch_budget", a) for a in arrays)
        used = [
            (pol, r)
            for a in arrays
            for pol, m in (("p", a.pos_ratios), ("n", a.neg_ratios))
            for row in m
            for r in row
            if r > 0
        ]
        w, l, worst = unit_device(used, rx.denominator, budget)
        if worst > budget:
            notes.append({"stage": rx.name, "budget": budget, "achieved": round(worst, 4)})
        for array in arrays:
            new[array.name] = array.replace(unit_w=w, unit_l=l)
    return ir.replace_stages(new).with_meta(sizing=notes)
