"""Assign biases: every DC current of the circuit is drawn from one reference through the bias generator.

The reference current `i_ref` (= i_unit, brought in on one pin) enters an nfet diode of
`bias_denominator` unit devices; a copy of it feeds a pfet diode of the same size. Each DC current is a
tap: a mirror output of k unit devices on one of the two diodes, so it carries k / bias_denominator *
i_ref, sourced (pfet) or sunk (nfet). A memory cell's bias ports (its cell's facts, cells/facts.py) say
which programmed current each takes and which way it flows. Every chip-wide bias the cells share (the
bistable inverters' starving current) is one more entry; the diodes are shared by all taps, which is
the sharing a current-mode bias network allows (each current still needs its own output device).
"""

from __future__ import annotations

from compiler.ir import IR, PROGRAMMED, BiasArray, BiasGenerator, Tap
from compiler.realisation import bias_grid

REQUIRES = ("program_cells", "keep_alive")  # the programmed currents, and every bias array


def node_polarity(ir: IR, stage_name: str) -> str:
    """The direction a node accepts: 'n' nodes take sourced currents, 'p' nodes take sunk currents."""
    return ir.stage(stage_name).accepts


def run(ir: IR, config) -> IR:
    grid, taps, new = bias_grid(config), [], {}
    for stage in ir.of_kind(BiasArray):
        (dest,) = ir.successors(stage.name)
        accepted = node_polarity(ir, dest)
        values = []
        for k, value in enumerate(stage.values):
            units = grid.units(value)
            values.append((units * grid.step) * (1 if value >= 0 else -1))
            if units:
                source_side = (value > 0) == (accepted == "n")  # sourcing a positive into an 'n' node
                taps.append(Tap(stage.name, "values", k, "p" if source_side else "n", units))
        new[stage.name] = stage.replace(values=tuple(values))
    for cell in ir.memory_cells():
        taps += cell_taps(cell, config)
    for shared in ir.shared_biases().values():  # one pair of bias diodes per chip
        units = round(shared.units * config.get("i_unit") / grid.step)
        taps.append(Tap(shared.tap, shared.field, 0, shared.polarity, units))
    stages = tuple(new.get(s.name, s) for s in ir.stages if s.kind != BiasGenerator.kind)
    if taps:
        stages += (
            BiasGenerator(
                "bias",
                len(taps),
                source="all DC currents",
                i_ref=config.get("i_unit"),
                denominator=config.get("bias_denominator"),
                taps=tuple(taps),
            ),
        )
    return IR(stages, ir.edges, ir.meta)


def cell_taps(cell, config) -> list[Tap]:
    """The taps of a memory cell's programmed currents: per bias port that takes one, per unit."""
    taps, grid = [], bias_grid(config)
    for port in cell.facts.bias_ports:
        if port.field in PROGRAMMED:
            for k, current in enumerate(cell.programmed[port.field]):
                units = grid.units(current)
                if units:
                    taps.append(Tap(cell.name, port.field, k, port.polarity, units))
    return taps
