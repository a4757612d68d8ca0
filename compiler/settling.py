"""How fast a signal node settles: the estimates compiler/passes/keep_alive.py and check_settling.py share.

A receiver is a diode whose gate drives every mirror output that reads its signal. In weak inversion
the signal current itself charges that gate capacitance C: a node turning on from (near) zero takes
about C * V_ON / I, and a node that never turns off (it carries a standing current I_0) settles with
time constant C * n * U_T / I_0. A node has one phase slot of the frame to settle
(compiler/passes/schedule_phases.py).
"""

from __future__ import annotations

from compiler.foundation.timing import slot as phase_slot
from compiler.ir import IR, Receiver

C_GATE_F_PER_UM2 = 8.4e-15  # sky130 1.8 V thin oxide (tox ~ 4.1 nm): eps_ox / tox
V_ON = 0.4  # V the gate moves from off to weak inversion at ~1 nA
N_UT = 0.034  # V: slope factor n ~ 1.3 times U_T at 27 C, one e-fold of weak-inversion current
SETTLE_TAUS = 4  # time constants to settle within 2 % of a step
KEEP_ALIVE = "keep-alive"  # the source of the bias arrays keep_alive adds (no model parameter)


def keep_alive_name(stage: str) -> str:
    """The bias array that keeps receiver `stage` alive, or cancels that current at the destination of
    weight array `stage`."""
    return f"{stage}.keep_alive"


def slot_seconds(ir: IR) -> float:
    """The time a signal node has to settle: one phase slot of the frame (compiler/passes/choose_frame.py)."""
    return ir.meta.frame_period * phase_slot(ir.meta.phases or 0)


def gate_capacitance(ir: IR, rx: Receiver) -> list[float]:
    """Per receiver input: the gate capacitance (F) of its diode and of every mirror output reading it."""
    arrays = ir.readers(rx.name)
    if not arrays or not arrays[0].pos_ratios:
        return []
    unit_area = arrays[0].unit_w * arrays[0].unit_l
    return [
        (rx.denominator + sum(a.pos_ratios[k][j] + a.neg_ratios[k][j] for a in arrays for k in range(a.size)))
        * unit_area
        * C_GATE_F_PER_UM2
        for j in range(rx.size)
    ]


def smallest_current(ir: IR, rx: Receiver) -> float:
    """The smallest non-zero current the node carries: the smallest gain of the memory cells feeding it."""
    gains = [g for p in ir.predecessors(rx.name) if ir.stage(p).memory for g in ir.stage(p).gain if g > 0]
    return min(gains) if gains else ir.meta.i_unit


def turn_on(ir: IR, rx: Receiver, c_gate: float) -> float:
    """Seconds for the smallest current the node carries to turn its gate on from zero."""
    return c_gate * V_ON / smallest_current(ir, rx)


def settle_with(c_gate: float, standing: float) -> float:
    """Seconds for a node that carries at least `standing` amperes to settle (SETTLE_TAUS time constants)."""
    return SETTLE_TAUS * c_gate * N_UT / standing


def standing_currents(ir: IR, rx: Receiver) -> tuple:
    """The keep-alive current of each input of the receiver (zeros when it has none)."""
    kept = keep_alive_name(rx.name)
    if kept in ir.predecessors(rx.name):  # only keep_alive makes a stage of that name
        return ir.stage(kept).values
    return (0.0,) * rx.size
