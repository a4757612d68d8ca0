"""Schedule phases: each layer of memory cells is enabled in its own slot of the frame.

Free-running cells race: a cell downstream of a layer that is still switching sees a candidate current
that is neither last frame's nor this frame's, and its hysteresis keeps a wrong decision it latched
on the way. The software model has no such transient: within a frame, layer l reads the settled states
of layer l - 1. So the frame is cut into equal slots: slot 0 lets the input currents settle, slot p
enables the cells of phase p (their phase keeper holds them otherwise, cells/bistable.py), and the last
slot lets the outputs settle before the frame is sampled. A cell's phase is its depth among the
bistable layers (1 + the largest phase upstream of it). With `phased: false` every cell runs free
(phase 0), unclocked. The slots themselves are `compiler/foundation/timing.py`'s.
"""

from __future__ import annotations

from compiler.ir import IR

REQUIRES = ()


def run(ir: IR, config) -> IR:
    if not config.get("phased"):
        return ir.replace_stages({c.name: c.replace(phase=0) for c in ir.memory_cells()}).with_meta(phases=0)
    depth: dict[str, int] = {}
    for stage in ir.stages:  # dataflow order: predecessors come first
        upstream = max((depth[p] for p in ir.predecessors(stage.name)), default=0)
        depth[stage.name] = upstream + stage.memory
    new = {c.name: c.replace(phase=depth[c.name]) for c in ir.memory_cells()}
    return ir.replace_stages(new).with_meta(phases=max((c.phase for c in new.values()), default=0))
