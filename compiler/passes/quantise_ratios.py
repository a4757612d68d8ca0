"""Quantise mirror ratios: each weight becomes an integer count of unit devices over a shared diode.

Every mirror that copies a receiver's signal shares that receiver's diode, so the denominator (the
diode's unit devices) is chosen per receiver: the configured `denominator`, reduced where the largest
weight read from it would need more than `max_units` devices in one output. A weight w is realised as
round(|w| * denominator) unit devices on the side of its sign (the rules of compiler/realisation.py, which
hardware-aware training applies too).
"""

from __future__ import annotations

from compiler.ir import IR, Receiver
from compiler.realisation import ratio_denominator, ratio_units

REQUIRES = ("split_signs",)


def run(ir: IR, config) -> IR:
    new = {}
    for rx in ir.of_kind(Receiver):
        arrays = ir.readers(rx.name)
        if not arrays:
            continue
        max_units = min(config.get("max_units", a) for a in arrays)
        largest = max((max(max(row) for row in (*a.positive, *a.negative)) for a in arrays), default=0.0)
        denominator = ratio_denominator(largest, config.get("denominator", rx), max_units)
        new[rx.name] = rx.replace(denominator=denominator)
        for array in arrays:

            def units(matrix):
                return tuple(tuple(int(u) for u in row) for row in ratio_units(matrix, denominator, max_units))

            new[array.name] = array.replace(
                denominator=denominator, pos_ratios=units(array.positive), neg_ratios=units(array.negative)
            )
    return ir.replace_stages(new)
