"""Check settling: does every signal node reach its new current within its slot of the frame?

A receiver is a diode whose gate drives every mirror output that reads its signal. In weak inversion
the signal current itself charges that gate capacitance, so a node turning on from (near) zero takes
about C * V_ON / I: milliseconds for tens of picofarads at a nanoampere. The software model has no
such delay, and a cell that decides before its candidate has settled decides on the wrong current.
This pass estimates, per receiver, the gate capacitance it drives and the turn-on time at the
smallest current it carries (the smallest cell gain feeding it, else one i_unit), compares it with a
phase slot (frame / (phases + 2), compiler/passes/schedule_phases.py), and records the slowest nodes
in `meta["settling"]` for the build report. A node slower than its slot is a warning, not an error:
the cures (a longer frame, a larger i_unit, a smaller weight denominator, smaller unit devices) trade
power, accuracy or matching, and the designer chooses. It is an estimate; `verify` measures.
"""

from __future__ import annotations

from compiler.ir import IR, Bistable, Receiver, WeightArray
from compiler.passes.schedule_phases import slot as phase_slot

C_GATE_F_PER_UM2 = 8.4e-15   # sky130 1.8 V thin oxide (tox ~ 4.1 nm): eps_ox / tox
V_ON = 0.4                   # V the gate moves from off to weak inversion at ~1 nA (research/circuits.md)
REPORTED = 8                 # slowest nodes kept in the report


def run(ir: IR, config) -> IR:
    frame = config.get("frame_period")
    slot = frame * phase_slot(ir.meta.get("phases", 0))
    nodes = []
    for rx in ir.of_kind(Receiver):
        arrays = [ir.stage(n) for n in ir.successors(rx.name) if isinstance(ir.stage(n), WeightArray)]
        if not arrays or not arrays[0].pos_ratios:
            continue
        unit_area = arrays[0].unit_w * arrays[0].unit_l
        i_min = _smallest_current(ir, rx)
        for j in range(rx.size):
            units = rx.denominator + sum(a.pos_ratios[k][j] + a.neg_ratios[k][j] for a in arrays for k in range(a.size))
            c_gate = units * unit_area * C_GATE_F_PER_UM2
            t_on = c_gate * V_ON / i_min
            nodes.append({"node": f"{rx.name}[{j}]", "gate_pF": round(c_gate * 1e12, 2), "i_min_A": i_min,
                          "t_on_s": t_on, "slot_s": slot, "slow": t_on > slot})
    nodes.sort(key=lambda n: (-n["t_on_s"], n["node"]))
    summary = {"slot_s": slot, "slow_nodes": sum(n["slow"] for n in nodes), "nodes": len(nodes),
               "slowest": nodes[:REPORTED]}
    return ir.with_meta(settling=summary)


def _smallest_current(ir: IR, rx: Receiver) -> float:
    """The smallest non-zero current the node carries: the smallest gain of the cells feeding it."""
    gains = [g for p in ir.predecessors(rx.name) if isinstance(ir.stage(p), Bistable)
             for g in ir.stage(p).gain if g > 0]
    return min(gains) if gains else ir.meta["i_unit"]
