"""Scale to currents: every software-unit value that is a current becomes amperes (1 unit = i_unit).

Weights stay dimensionless (mirror ratios); biases and the bistable cells' threshold, width and gain
become bias currents.
"""

from __future__ import annotations

from compiler.ir import IR, BiasArray, Bistable


def run(ir: IR, config) -> IR:
    if ir.meta.get("units") == "A":
        return ir
    new = {}
    for stage in ir.of_kind(BiasArray):
        i_unit = config.get("i_unit", stage)
        new[stage.name] = stage.replace(values=tuple(v * i_unit for v in stage.values))
    for stage in ir.of_kind(Bistable):
        i_unit = config.get("i_unit", stage)
        new[stage.name] = stage.replace(thresh=tuple(v * i_unit for v in stage.thresh),
                                        width=tuple(v * i_unit for v in stage.width),
                                        gain=tuple(v * i_unit for v in stage.gain))
    return ir.replace_stages(new).with_meta(units="A", i_unit=config.get("i_unit"), vdd=config.get("vdd"))
