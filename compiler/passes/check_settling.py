"""Check settling: does every signal node reach its new current within its slot of the frame?

The software model has no settling delay, and a cell that decides before its candidate has settled
decides on the wrong current. This pass estimates each receiver's settling time (compiler/settling.py):
turning on from zero at the smallest current it carries (the smallest cell gain feeding it, else one
i_unit), or, for a node kept alive by a standing current (compiler/passes/keep_alive.py), SETTLE_TAUS
time constants at that current. It compares the estimate with a phase slot and records the slowest
nodes in `meta["settling"]` for the build report. A node slower than its slot is a warning, not an
error: the cures (a longer frame, a larger i_unit, a smaller weight denominator, smaller unit devices)
trade power, accuracy or matching, and the designer chooses. It is an estimate; `verify` measures.
"""

from __future__ import annotations

from compiler.ir import IR, Receiver
from compiler.settling import gate_capacitance, settle_with, slot_seconds, smallest_current, standing_currents, turn_on

REQUIRES = ("size_devices", "choose_frame", "keep_alive")  # gate areas, the frame, standing currents

REPORTED = 8  # slowest nodes kept in the report


def run(ir: IR, config) -> IR:
    slot = slot_seconds(ir)
    nodes = []
    for rx in ir.of_kind(Receiver):
        standing = standing_currents(ir, rx)
        for j, c_gate in enumerate(gate_capacitance(ir, rx)):
            t_on = settle_with(c_gate, standing[j]) if standing[j] else turn_on(ir, rx, c_gate)
            nodes.append(
                {
                    "node": f"{rx.name}[{j}]",
                    "gate_pF": round(c_gate * 1e12, 2),
                    "i_min_A": smallest_current(ir, rx),
                    "keep_alive_A": standing[j],
                    "t_on_s": t_on,
                    "slot_s": slot,
                    "slow": t_on > slot,
                }
            )
    nodes.sort(key=lambda n: (-n["t_on_s"], n["node"]))
    summary = {
        "slot_s": slot,
        "slow_nodes": sum(n["slow"] for n in nodes),
        "nodes": len(nodes),
        "kept_alive": sum(n["keep_alive_A"] > 0 for n in nodes),
        "slowest": nodes[:REPORTED],
    }
    return ir.with_meta(settling=summary)
