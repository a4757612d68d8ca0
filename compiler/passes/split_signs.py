"""Split weight signs: W = positive - negative, both non-negative.

Currents cannot be negative, so a signed weight is two mirrors: positive weights source current into
the summing node (pfet mirrors), negative weights sink it (nfet mirrors).
"""

from __future__ import annotations

from compiler.ir import IR, WeightArray

REQUIRES = ()


def run(ir: IR, config) -> IR:
    new = {}
    for array in ir.of_kind(WeightArray):
        positive = tuple(tuple(max(0.0, w) for w in row) for row in array.weights)
        negative = tuple(tuple(max(0.0, -w) for w in row) for row in array.weights)
        new[array.name] = array.replace(positive=positive, negative=negative)
    return ir.replace_stages(new)
