"""Scale to currents: every software-unit value that is a current becomes amperes (1 unit = i_unit).

Weights stay dimensionless (mirror ratios); each stage kind names its fields that are currents
(`CURRENTS`: a bias array's values, a memory cell's threshold, width and gain). Memory cells are in
amperes already: `program_cells` scales their windows on the way to their bias currents.
"""

from __future__ import annotations

from compiler.ir import IR

REQUIRES = ("program_cells",)  # `units: A` holds for the cells once program_cells has scaled them


def run(ir: IR, config) -> IR:
    if ir.meta.units == "A":
        return ir
    new = {}
    for stage in ir.stages:
        if stage.CURRENTS and not stage.memory:
            i_unit = config.get("i_unit", stage)
            new[stage.name] = stage.replace(
                **{name: tuple(v * i_unit for v in getattr(stage, name)) for name in stage.CURRENTS}
            )
    return ir.replace_stages(new).with_meta(units="A", i_unit=config.get("i_unit"), vdd=config.get("vdd"))
