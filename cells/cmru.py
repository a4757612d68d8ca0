"""The native FQ-CMRU: a K-level ladder of bistable stages interleaved with DPI integrators.

Behaviour (the model's, models/cells.py `fq_cmru_step`): per frame, the level q in 0..K moves one up
when the candidate h > beta_hi, one down when h < beta_lo, and holds otherwise; the output sinks
q * alpha.

Stage k (a bistable cell, cells/bistable.py) is set <=> q >= k, and its DPI (cells/dpi.py) turns the
stage's state into a delayed copy d_k. Current comparators on those copies block stage k while stage k-1
is reset and pin it while stage k+1 is set, so only the two live stages (the top set one and the one
above it) see h, and the ladder's thresholds are the bistable cell's. A reset stage's DPI is cleared once
the enable window closes. The DPI delay, not a second phase, keeps it to one level per frame:
    t_sw + min(t_up, t_down) > W             (no cascade inside a window)
    t_sw + max(t_up, t_down) < T_f + W - t_sw  (the neighbour knows before the next window closes)
with W the enable window, t_sw the stage's switching delay and t_up, t_down the times until a DPI crosses
its comparator level (G/2 rising, G/4 falling); `characterize` measures them on free-running staircases.
Topology in detail: cells/README.md; measurements and design history: docs/measurements.md.

Ports: ``vdd in out ith iw ig itau idth ix vsp vsn en enb``
* ``in``   candidate current sourced into the ladder; ``out`` sinks q * I_gain (keep it at 0.5..1.5 V)
* ``ith``  K * I_thresh drawn out; ``iw``, ``ig`` K * I_width and K * I_gain sourced in (the K stages'
  bias ports are tied, so each stage takes its share)
* ``itau``, ``idth``  K * I_tau and K * I_th sourced in (the K DPIs' bias ports, tied)
* ``ix``   G/4 drawn out: the comparator level of the gating (a pfet diode, copied 2x and 1x)
* ``vsp vsn en enb``  as the bistable cell's
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cells import bistable, common, dpi, mirror
from cells.common import Subckt
from cells.facts import MemoryCell, Port
from compiler.foundation.errors import CellParameterError
from compiler.foundation.ngspice import Runner
from compiler.foundation.simulation import (
    TIME,
    InitialCondition,
    Option,
    Pwl,
    Simulation,
    Tran,
    Voltage,
    current,
    voltage,
)

NAME = "cmru"
# The ports with their roles (cells/facts.py): a bistable stage's, plus the DPI and gating biases; each
# bias port takes the stage field of its name (`ith` and `ix` drawn out, the others sourced in).
PORT_ROLES = (
    *bistable.PORT_ROLES[:6],  # vdd, in, out and the bistable biases ith, iw, ig
    Port("itau", "bias", field="tau", polarity="p"),
    Port("idth", "bias", field="dth", polarity="p"),
    Port("ix", "bias", field="x", polarity="n"),
    *bistable.PORT_ROLES[6:],  # vsp, vsn, en, enb
)
PORTS = tuple(p.name for p in PORT_ROLES)
K_MAX = 16
W_GATE, L_GATE = 2.0, 4.0  # gating mirrors: only their sign matters (saturating comparators)
G_OVER_X = 4  # the settled DPI output G over the gating current I_x (`design`: I_x = G / 4)
BLOCK_RATIO = 2  # a block node's level in I_x (G / 2); a pin node's is I_x (G / 4)
MAX_RATIO = 64
W_CLEAR, L_CLEAR = 1.0, 4.0  # DPI clear switch on the capacitor side: long, for a small off leak into the DPI
# The simulator option of every deck holding a ladder (on top of the mandatory ones): 1e-13 S from each
# node to ground (at most 0.18 pA per node). The ladder's series switches (keepers, block, pin and clear
# switches) leave nodes that only junction leakage holds while they are off, and without this tie ngspice
# lost network transients at a phase edge ("timestep too small"); the rshunt sweep is in
# docs/measurements.md.
OPTIONS = (Option("rshunt", "1e13"),)

TEMPLATE = """\
* FQ-CMRU ladder, K = {{ K }} levels, DPI C = {{ c_pf }} pF, pin x{{ n_pin }}
.subckt {{ name }} vdd in out ith iw ig itau idth ix vsp vsn en enb
* candidate: ReLU diode on in, one pfet copy per stage
{{ hin.instance('Hn', ['in', 'hp']) }}
{{ hout.instance('Hp', ['vdd', 'hp'] + stage_inputs) }}
* comparator levels: G/2 into each block node, G/4 into each pin node; the pin currents
{{ xmir.instance('Xb', ['vdd', 'ix'] + x_outputs) }}
{% for k in stages %}
* stage {{ k }}
{{ cell.instance('S' ~ k, ['vdd', 's' ~ k ~ '_in', 's' ~ k ~ '_o', 'ith', 'iw', 'ig', 'vsp', 'vsn', 'en', 'enb']) }}
{{ delay.instance('D' ~ k, ['vdd', 's' ~ k ~ '_o', dpi_out[k], 'idth', 'itau']) }}
XMo{{ k }} ysum s{{ k }}_o vdd vdd {{ PFET }} W={{ wd }} L={{ ld }}
* clear: outside the window (enb high) a reset stage (decision node a high) empties its DPI capacitor
XMre{{ k }} d{{ k }}_vc enb dr{{ k }} 0 {{ NFET }} W={{ w_clr }} L={{ l_clr }}
XMrs{{ k }} dr{{ k }} s{{ k }}_a 0 0 {{ NFET }} W=1 L=0.5
{% if k > 1 %}
XMbs{{ k }} s{{ k }}_in nb{{ k }} hc{{ k }} vdd {{ PFET }} W=1 L=0.5
{% endif %}
{% if k < K %}
XMps{{ k }} s{{ k }}_in np{{ k }} pc{{ k }} vdd {{ PFET }} W=1 L=0.5
{% endif %}
{% if 1 < k < K %}
{{ fan_p.instance('F' ~ k ~ 'p', ['vdd', 'f' ~ k ~ 'p', 'f' ~ k ~ 'n']) }}
{{ fan_n.instance('F' ~ k ~ 'n', ['f' ~ k ~ 'n', 'nb' ~ (k + 1), 'np' ~ (k - 1)]) }}
{% endif %}
{% endfor %}
* output: the stages' shares summed, sunk from out
{{ yout.instance('Y', ['ysum', 'out']) }}
.ends {{ name }}
"""


@dataclass(frozen=True)
class Params:
    """One ladder: K levels; per-stage bistable currents (A); DPI I_tau, I_th (A) and C (F); the
    comparator current I_x = G/4 (A); the pin current in units of I_x."""

    K: int
    I_thresh: float
    I_width: float
    I_gain: float
    I_tau: float
    I_th: float
    C: float
    I_x: float
    n_pin: int = 8
    i_unit: float = common.I_UNIT  # the design's unit current: its stages' floor and starving bias

    def __post_init__(self):
        common.check_int(NAME, "K", self.K, 2, K_MAX)
        common.check_int(NAME, "n_pin", self.n_pin, 1, MAX_RATIO)
        self.stage()  # the bistable cell's own validation
        self.delay()  # the DPI's
        common.check_current(NAME, "I_x", self.I_x, 10e-12, common.I_MAX)

    def stage(self) -> bistable.Params:
        return bistable.Params(self.I_thresh, self.I_width, self.I_gain, i_unit=self.i_unit)

    def delay(self) -> dpi.Params:
        return dpi.Params(self.I_tau, self.I_th, self.C)

    @property
    def pin(self) -> float:
        """Current sourced into a pinned stage's input (ideal): n_pin * I_x."""
        return self.n_pin * self.I_x

    def port_currents(self) -> dict:
        """The bias current each port takes (A), with its direction ('n': drawn out, 'p': sourced in)."""
        K = self.K
        values = {
            "ith": K * self.I_thresh,
            "iw": K * self.I_width,
            "ig": K * self.I_gain,
            "itau": K * self.I_tau,
            "idth": K * self.I_th,
            "ix": self.I_x,
        }
        return {port.name: (values[port.name], port.polarity) for port in PORT_ROLES if port.role == "bias"}


def subckt(params: Params) -> Subckt:
    """The ladder of K stages for one capacitor value and gating gains (bias currents are port currents)."""
    K = params.K
    parts = _parts(params)
    # DPI k's output: straight into the one node that reads it at the ends, else into its fan-out
    dpi_out = {k: ("nb2" if k == 1 else f"np{K - 1}" if k == K else f"f{k}p") for k in range(1, K + 1)}
    name = f"cmru_k{K}_c{round(params.C * 1e15)}f_p{params.n_pin}"
    body = common.render(
        TEMPLATE,
        name=name,
        K=K,
        c_pf=f"{params.C * 1e12:g}",
        n_pin=params.n_pin,
        stages=range(1, K + 1),
        stage_inputs=["s1_in"] + [f"hc{k}" for k in range(2, K + 1)],
        x_outputs=[f"nb{k}" for k in range(2, K + 1)]
        + [f"np{k}" for k in range(1, K)]
        + [f"pc{k}" for k in range(1, K)],
        dpi_out=dpi_out,
        wd=dpi.W,
        ld=dpi.L,
        w_clr=W_CLEAR,
        l_clr=L_CLEAR,
        **parts,
    )
    return Subckt(name, PORTS, flatten(body, {s.name: s for s in parts.values()}))


def state_node(k: int) -> str:
    """The node holding stage k's state (the bistable cell's `b`, 1..K) inside the ladder."""
    return f"s{k}_b"


def state_nodes(levels: int) -> tuple[str, ...]:
    """The nodes of a ladder's stages 1..K: its level is the number set (a thermometer code)."""
    return tuple(state_node(k) for k in range(1, levels + 1))


def longest_frame(K: int, gains, i_unit: float = common.I_UNIT) -> float:
    """The longest frame period (s) whose ladders `design` can build for these stage gains (A) in a design of
    unit current `i_unit`: the DPI capacitor tops out at C_MAX, so tau, hence the frame, does too (ideal DPI,
    20 % spare for the calibrated tau and the bias grid). Without a stage current: any frame."""
    floor = common.min_current(i_unit)
    taus = [max(K * max(30e-12, g / X_RISE), floor) / K for g in gains if g > 0]
    if not taus:
        return math.inf
    i_tau = max(taus)  # the fastest DPI
    return 0.8 * C_RANGE[1] * common.thermal_voltage(27.0) / (dpi.KAPPA * i_tau) / TAU_OVER_FRAME


def supply_current(bias: dict, candidates=None, states=None, enabled: float = 1.0, xp=np):
    """Current (A) ladders draw from VDD through their own devices (SPICE's cells block), each frame booked
    at its level n (`states`, 0..K) with every set stage's DPI settled at G = G_OVER_X I_x.

    `bias` holds per unit the stage currents ``thresh``, ``gain`` and the design: ``levels`` (K), ``x``
    (I_x) and ``pin`` (n_pin I_x). The terms, as the ladder's pfets carry them:
    * always: the K threshold diodes on ``ith`` and the gating diode on ``ix``;
    * each set stage: its threshold copy (I_thresh) and its output three times (the DPI's input diode and
      tail, the copy into the output sum);
    * the live stage n + 1 as a bistable cell's copy: min(h, I_thresh) enabled, h held by its keeper;
    * the candidate's diode and its copies into stage 1 and the min(n, K - 1) stages a set stage unblocks;
    * the gating: BLOCK_RATIO I_x into each unblocking node, a pin current plus I_x per pinned stage
      (n - 1), 2 G per set middle DPI (stages 2..K - 1: its fan-out pair).
    Without candidates h = I_thresh, without states n = 0; without ``levels`` (compiler/power.py passes
    model arrays only) one bistable stage per unit. `xp`: numpy (a float) or jax.numpy (traceable)."""
    if "levels" not in bias:
        return bistable.supply_current(bias, candidates, states, enabled, xp)
    dtype = np.float64 if xp is np else xp.float32
    thresh, gain, x, pin = (xp.asarray(bias[key], dtype) for key in ("thresh", "gain", "x", "pin"))
    K = xp.asarray(bias["levels"], dtype) * xp.ones_like(thresh)
    h = thresh[None, :] if candidates is None else xp.asarray(candidates, dtype)
    n = xp.zeros_like(h) if states is None else xp.clip(xp.asarray(states, dtype), 0.0, K)
    unblocked = xp.minimum(n, K - 1)  # set stages below the top: each passes h to the stage above it
    pinned = xp.maximum(n - 1, 0.0)
    middle = xp.clip(n - 1, 0.0, K - 2)
    live = xp.where(n < K, enabled * xp.minimum(h, thresh) + (1 - enabled) * h, 0.0)
    per_frame = (
        n * (thresh + 3 * gain)
        + live
        + h * (2 + unblocked)
        + pinned * (pin + x)
        + BLOCK_RATIO * x * unblocked
        + 2 * G_OVER_X * x * middle
    )
    total = (K * thresh + x).sum() + xp.mean(per_frame, axis=0).sum()
    return float(total) if xp is np else total


def supply_bias(params_list) -> dict:
    """The `supply_current` bias of ladders (one Params per unit)."""
    keys = {"thresh": "I_thresh", "gain": "I_gain", "width": "I_width", "x": "I_x", "pin": "pin", "levels": "K"}
    return {key: np.array([getattr(p, name) for p in params_list], float) for key, name in keys.items()}


# Each unit's subcircuit depends on its design (`design`), so the compiler builds it per unit. The
# ladder's thresholds are its stages', so the bistable calibration programs it; its supply current is
# its K stages' with their gating (`supply_current`; `ladder_power` measures a whole ladder).
FACTS = MemoryCell(
    NAME,
    PORT_ROLES,
    bistable.FACTS.limits,
    calibration=bistable.NAME,
    supply_current=supply_current,
    state_nodes=state_nodes,
    shared=bistable.STARVE,
    mismatch=bistable.FACTS.mismatch,  # its thresholds and level are its stages'
    longest_frame=longest_frame,
)


def flatten(text: str, library: dict) -> str:
    """Expand every instance of a library subcircuit into its devices (one level): the ladder reuses the
    cells' netlists, and its own subcircuit holds only sky130 devices, as every cell's does (the layout
    backend draws devices). Internal nodes become <instance>_<node>, devices X<instance>_<name>."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if not (words and words[0][0] in "xX" and words[-1] in library):
            out.append(line)
            continue
        label, nets, sub = words[0][1:], words[1:-1], library[words[-1]]
        ports = dict(zip(sub.ports, nets))
        out.append(f"* {line}")
        for device in sub.text.splitlines():
            parts = device.split()
            if not parts or parts[0][0] not in "xX":
                continue
            model = next(i for i, w in enumerate(parts) if w.startswith("sky130_fd_pr__"))
            nodes = [ports.get(n, n if n == "0" else f"{label.lower()}_{n}") for n in parts[1:model]]
            out.append(" ".join([f"X{label}_{parts[0][1:]}", *nodes, *parts[model:]]))
    return "\n".join(out) + "\n"


def _parts(params: Params) -> dict:
    """Every subcircuit the template names, by its role."""
    K = params.K
    gate = dict(w=W_GATE, l=L_GATE)
    return {
        "cell": bistable.subckt(),
        "delay": dpi.subckt(params.delay()),
        "hin": mirror.subckt(mirror.Params("n", (1,))),
        "hout": mirror.subckt(mirror.Params("p", (1,) * K)),
        "xmir": mirror.subckt(
            mirror.Params("p", (BLOCK_RATIO,) * (K - 1) + (1,) * (K - 1) + (params.n_pin,) * (K - 1), **gate)
        ),
        "fan_p": mirror.subckt(mirror.Params("p", (1,), **gate)),
        "fan_n": mirror.subckt(mirror.Params("n", (1, 1), **gate)),
        "yout": mirror.subckt(mirror.Params("n", (1,))),
    }


def ideal(params: Params) -> tuple[float, float, float, int]:
    """(beta_hi, beta_lo, alpha, K) of the ideal ladder."""
    return params.I_thresh, params.I_thresh - params.I_width, params.I_gain, params.K


def run_frames(h, beta_hi, beta_lo, K, q0=0.0):
    """Level per frame for frame inputs h (the model zoo's FQ-CMRU, one unit)."""
    import jax.numpy as jnp

    from models.cells import fq_cmru_run

    h = jnp.asarray(h, jnp.float32)
    q = fq_cmru_run(
        {"beta_lo": jnp.float32(beta_lo), "delta": jnp.float32(beta_hi - beta_lo)},
        h[:, None],
        jnp.asarray([q0], jnp.float32),
        K,
        mode="sequential",
    )
    return np.asarray(q[:, 0])


def model_levels(p: Params, h) -> np.ndarray:
    """The level per frame the model's FQ-CMRU gives ladder `p` for frame inputs h (A)."""
    return run_frames(np.asarray(h) / p.I_gain, p.I_thresh / p.I_gain, (p.I_thresh - p.I_width) / p.I_gain, p.K)


def ladder_power(result, params_list) -> float:
    """Mean power per ladder (W) of a frames simulation: the supply pin plus every ladder's bias port
    currents, at VDD; the chip's starving bias (one per chip, shared by every bistable stage) excluded."""
    t = result[TIME]
    supply = -np.trapezoid(result[SUPPLY], t) / (t[-1] - t[0])
    bias = sum(v for p in params_list for v, _ in p.port_currents().values())
    return float(common.VDD * (supply + bias) / len(params_list))


# ----------------------------------------------------------------------------------------------
# Testbenches

FRAME = 10e-3  # s, the frame period of the ladder characterisation (the shortest a build chooses)
SAMPLE_AT = 0.97  # fraction of the frame at which a level is read (flows/testbench.py)
EDGE = 10e-6  # s, input and phase edges: 1 us edges stopped ngspice ("timestep too small")
SUPPLY = current("vdd")


def _output(i: int):
    """The output current of ladder i of a bench (its pin, held by source Vu<i>out)."""
    return current(f"vu{i}out")


def _stage_states(i: int, p: Params) -> tuple[Voltage, ...]:
    """The state nodes of ladder i's stages 1..K (instance XL<i> of a bench)."""
    return tuple(voltage(f"xl{i}", state_node(k)) for k in range(1, p.K + 1))


def window(phases: int = 1, phase: int = 1) -> tuple[float, float]:
    """The enable window (fractions of the frame) of a ladder in layer `phase` of `phases`."""
    from compiler.foundation.timing import window as slot

    return slot(phase, phases)


def _bench_lines(params: Params, label: str, prefix: str = "") -> list[str]:
    """Ideal bias sources and one ladder instance; its input is node <prefix>in, its output <prefix>o."""
    currents = params.port_currents()
    nets = {
        "vdd": "vdd",
        "in": f"{prefix}in",
        "out": f"{prefix}o",
        "vsp": "vsp",
        "vsn": "vsn",
        "en": "en",
        "enb": "enb",
    }
    lines = []
    for port, (value, direction) in currents.items():
        node = f"{prefix}{port}"
        nets[port] = node
        lines.append(
            f"I{prefix}{port} {node} 0 {value:.6g}" if direction == "n" else f"I{prefix}{port} vddb {node} {value:.6g}"
        )
    lines += [f"V{prefix}out {prefix}o 0 {bistable.V_OUT:g}", subckt(params).instance(label, nets)]
    return lines


def _frames_sim(
    params_list, hs, frame=FRAME, win=None, corner="tt", temp=27.0, mc_seed=None, free_running=False
) -> Simulation:
    """Ladders (one per params, independent) through frames of input hs[i] (A); en high in `win` of each frame."""
    win = win or window()
    frames = len(hs[0])
    parts = {s.name: s for s in map(subckt, params_list)}
    lines = [
        *(parts[n].text for n in sorted(parts)),
        bistable.starve_bias().text,
        "Vdd vdd 0 1.8",
        "Vbias vddb 0 1.8",
        bistable.starve_bias().instance("S", ["vddb", "vsp", "vsn"]),
    ]
    stimuli = []
    for i, (p, h) in enumerate(zip(params_list, hs)):
        lines += _bench_lines(p, f"L{i}", f"u{i}")
        times, values = [0.0], [float(h[0])]
        for k, v in enumerate(h):
            times += [k * frame + EDGE if k else EDGE, (k + 1) * frame]
            values += [float(v), float(v)]
        stimuli.append(Pwl(f"h{i}", "vddb", f"u{i}in", tuple(times[1:]), tuple(values[1:])))
    if free_running:
        lines += ["Ven en 0 1.8", "Venb enb 0 0"]
    else:
        t_en, v_en = [0.0], [0.0]
        for k in range(frames):
            for at, level in ((win[0], 1.8), (win[1], 0.0)):
                t_en += [(k + at) * frame, (k + at) * frame + EDGE]
                v_en += [v_en[-1], level]
        stimuli += [
            Pwl("en", "en", "0", tuple(t_en), tuple(v_en), kind="V"),
            Pwl("enb", "enb", "0", tuple(t_en), tuple(1.8 - v for v in v_en), kind="V"),
        ]
    states = [v for i, p in enumerate(params_list) for v in _stage_states(i, p)]
    return Simulation(
        "\n".join(lines),
        analyses=(Tran(frame / 200, frames * frame, tmax=frame / 50),),
        saves=(*map(_output, range(len(params_list))), SUPPLY, *states),
        initial=tuple(InitialCondition(v, 0.0) for v in states),
        stimuli=tuple(stimuli),
        options=OPTIONS,
        title=f"cmru frames K={params_list[0].K}",
        corner=corner,
        temp=temp,
        mc_seed=mc_seed,
        timeout=3600,
    )


def levels(result, params_list, frames: int, frame=FRAME) -> dict:
    """Per ladder, per frame (read at SAMPLE_AT): the output current (A), the nearest ladder level of it,
    and the thermometer count of set stages."""
    t = result[TIME]
    at = (np.arange(frames) + SAMPLE_AT) * frame
    out = {"current": [], "level": [], "stages": []}
    for i, p in enumerate(params_list):
        cur = np.interp(at, t, -result[_output(i)])
        states = np.stack([np.interp(at, t, result[v]) > 0.9 for v in _stage_states(i, p)], -1)
        out["current"].append(cur)
        out["level"].append(np.clip(np.round(cur / p.I_gain), 0, p.K))
        out["stages"].append(states.sum(-1))
    return {k: np.asarray(v) for k, v in out.items()}


def random_frames(n: int, beta_hi: float, beta_lo: float, rng, p_up=0.35, p_down=0.35) -> np.ndarray:
    """Frame inputs (A): supra (1.2-2 x beta_hi), sub (0.1-0.8 x beta_lo) or hold (inside the band)."""
    kind = rng.choice(3, size=n, p=[p_up, p_down, 1 - p_up - p_down])
    supra = beta_hi * rng.uniform(1.2, 2.0, n)
    sub = beta_lo * rng.uniform(0.1, 0.8, n)
    hold = beta_lo + (beta_hi - beta_lo) * rng.uniform(0.25, 0.75, n)
    return np.where(kind == 0, supra, np.where(kind == 1, sub, hold))


# ----------------------------------------------------------------------------------------------
# Design: the ladder parameters for a cell and a frame period


TAU_OVER_FRAME = 0.6  # DPI time constant / frame period (timing rules in the module docstring)
G_NOMINAL = 1e-9  # settled DPI output: the gating comparators switch at G/2 and G/4 (at any i_unit: the DPI's
# range, 10 pA up, would not hold its currents scaled to the smallest unit currents)
X_RISE = 33.0  # I_gain / I_tau of every DPI: a larger ratio shortens t_up below the window
C_RANGE = (dpi.C_MIN, dpi.C_MAX)


def design(
    K: int,
    I_thresh: float,
    I_width: float,
    I_gain: float,
    frame: float = FRAME,
    tau_over_frame: float = TAU_OVER_FRAME,
    dpi_calibration=None,
    quantize=None,
    i_unit: float = common.I_UNIT,
) -> Params:
    """Ladder parameters for a cell and a frame period (the compiler's inversion).

    * tau = tau_over_frame * frame at I_tau = max(30 pA, I_gain / X_RISE) per DPI; C follows from the DPI's
      calibrated tau (with its node's parasitic C) or from the ideal formula;
    * I_th so that the settled DPI output G (calibrated or ideal) is about G_NOMINAL, I_x = G / 4;
    * pin current above 2 I_thresh (a pinned stage stays set at zero input).
    `quantize(current)` maps a port current (A) to the one the bias generator delivers (default: exact).
    """
    q = quantize or (lambda current: current)
    # I_gain / I_tau sets the DPI's rise (t_up, `characterize`): hold it near X_RISE so t_up does not fall
    # below the window for large alpha; port currents stay in the bias generator's range
    floor = common.min_current(i_unit)
    I_tau = q(max(K * max(30e-12, I_gain / X_RISE), floor)) / K
    tau = tau_over_frame * frame
    if dpi_calibration is not None:
        lowest = dpi_calibration.table["fit"]["grid_tau"][0]  # below the table, tau scales as 1 / I_tau
        probe = dpi_calibration.parameters(dpi.Params(I_tau, I_tau, dpi.C_NOM))["tau"] * max(lowest / I_tau, 1.0)
        C = tau * (dpi.C_NOM + dpi_calibration.c_par) / probe - dpi_calibration.c_par
    else:
        C = tau * dpi.KAPPA * I_tau / common.thermal_voltage(27.0)
    if not C_RANGE[0] <= C <= C_RANGE[1]:
        raise CellParameterError(
            f"cmru: tau = {tau:g} s at I_tau = {I_tau:g} A needs C = {C:g} F, "
            f"outside {C_RANGE[0]:g}..{C_RANGE[1]:g} F. "
            "Choose a frame period with tau_over_frame * frame_period in about 1.5-60 ms."
        )
    C = round(C * 1e13) / 1e13  # 0.1 pF grid: few distinct DPI subcircuits
    I_th = q(max(K * min(max(G_NOMINAL / max(I_gain / I_tau - 1.0, 1.0), dpi.I_LO), 30 * I_tau), floor)) / K
    delay = dpi.Params(I_tau, I_th, C)
    G = (
        dpi_calibration.dc_gain(delay, I_gain) * I_gain
        if dpi_calibration is not None
        else I_th * (I_gain / I_tau - 1.0)
    )
    I_x = q(max(G / G_OVER_X, floor))
    n_pin = int(min(MAX_RATIO, max(1, math.ceil(2 * I_thresh / I_x))))
    return Params(K, I_thresh, I_width, I_gain, I_tau, I_th, C, I_x, n_pin, i_unit)


NOMINAL = dict(K=4, I_thresh=1e-9, I_width=0.4e-9, I_gain=1e-9)
HELD_OUT = (
    dict(K=4, I_thresh=1.5e-9, I_width=0.6e-9, I_gain=2e-9),
    dict(K=4, I_thresh=0.7e-9, I_width=0.35e-9, I_gain=0.6e-9),
    dict(K=6, I_thresh=2e-9, I_width=0.8e-9, I_gain=1.5e-9),
)


def frame_agreement(
    runner: Runner,
    cells_params,
    frames: int = 32,
    seed: int = 0,
    frame=FRAME,
    corner="tt",
    temp=27.0,
    mc_seed=None,
    win=None,
) -> dict:
    """Random supra/sub/hold frame sequences through independent ladders in one netlist: the level per
    frame (nearest ladder level of the output current) against the model's FQ-CMRU."""
    rng = np.random.default_rng(seed)
    hs = [random_frames(frames, p.I_thresh, p.I_thresh - p.I_width, rng) for p in cells_params]
    res = runner.run(_frames_sim(cells_params, hs, frame, win, corner, temp, mc_seed))
    got = levels(res, cells_params, frames, frame)
    ref = np.stack([model_levels(p, h) for p, h in zip(cells_params, hs)])
    return {
        "level_agreement": float(np.mean(got["level"] == ref)),
        "stage_agreement": float(np.mean(got["stages"] == ref)),
        "frames": int(ref.size),
        "ladders": len(cells_params),
        "wall_s": res.wall_time,
        "level_rms_of_alpha": float(
            np.sqrt(np.mean((got["current"] / np.array([[p.I_gain] for p in cells_params]) - ref) ** 2))
        ),
        "power_W_per_ladder": ladder_power(res, cells_params),
        "spice_levels": got["level"].tolist(),
        "reference_levels": ref.tolist(),
        "inputs": [h.tolist() for h in hs],
    }


# ----------------------------------------------------------------------------------------------
# Characterisation: free-running staircases

GRID_GAIN = (0.5e-9, 1e-9, 3e-9)  # I_gain: sets the DPI's input over I_tau, hence its rise time
RAMP = 20e-3  # s through +-15 % of a threshold (quasi-static for the first stage)
SPAN = 0.15


def _staircase_sim(p: Params, corner, temp, mc_seed=None) -> tuple[Simulation, dict]:
    """The ladder running free (en high): a slow ramp through beta_hi then a hold above it (the level climbs
    one stage per t_up: the gating delay), a slow ramp through beta_lo then a hold below (one per t_down)."""
    hi, lo = p.I_thresh, p.I_thresh - p.I_width
    tau = p.delay().tau_ideal(temp)
    climb = p.K * 3 * tau
    marks, t, pts = {}, 0.0, [(0.0, 0.0)]
    for name, dt, v in (
        ("pre", 2e-3, (1 - SPAN) * hi),
        ("ramp_up", RAMP, (1 + SPAN) * hi),
        ("climb", climb, (1 + SPAN) * hi),
        ("to_band", 1e-3, (1 + SPAN) * lo),
        ("ramp_down", RAMP, (1 - SPAN) * lo),
        ("descend", climb, (1 - SPAN) * lo),
    ):
        t += dt
        pts.append((t, v))
        marks[name] = t
    times, values = common.pwl(pts)
    lines = [
        subckt(p).text,
        bistable.starve_bias().text,
        "Vdd vdd 0 1.8",
        "Vbias vddb 0 1.8",
        bistable.starve_bias().instance("S", ["vddb", "vsp", "vsn"]),
        "Ven en 0 1.8",
        "Venb enb 0 0",
        *_bench_lines(p, "L0", "u0"),
    ]
    sim = Simulation(
        "\n".join(lines),
        analyses=(Tran(tau / 100, t, tmax=tau / 20),),
        saves=(_output(0), SUPPLY),
        initial=tuple(InitialCondition(v, 0.0) for v in _stage_states(0, p)),
        stimuli=(Pwl("h0", "vddb", "u0in", times, values),),
        options=OPTIONS,
        title=f"cmru staircase {p}",
        corner=corner,
        temp=temp,
        mc_seed=mc_seed,
        timeout=3600,
    )
    return sim, {"times": times, "values": values, "marks": marks}


def _measure_staircase(res, p: Params, stim) -> dict:
    t, i_out = res[TIME], -res[_output(0)]
    times, values, m = stim["times"], stim["values"], stim["marks"]
    a = p.I_gain
    ups = [common.crossing(t, i_out, (k + 0.5) * a, True, after=m["pre"]) for k in range(p.K)]
    downs = [common.crossing(t, i_out, (k - 0.5) * a, False, after=m["to_band"]) for k in range(p.K, 0, -1)]
    plateau = [
        common.mean_between(t, i_out, ups[k] + 0.3 * (ups[k + 1] - ups[k]), ups[k + 1] - 0.05 * (ups[k + 1] - ups[k]))
        for k in range(p.K - 1)
    ] + [common.mean_between(t, i_out, ups[-1] + 1e-3, m["climb"])]
    return {
        "params": [p.K, p.I_thresh, p.I_width, p.I_gain, p.I_tau, p.I_th, p.C, p.I_x, p.n_pin],
        "up": float(np.interp(ups[0], times, values)),
        "down": float(np.interp(downs[0], times, values)),
        "t_up": float(np.mean(np.diff(ups))),
        "t_down": float(np.mean(np.diff(downs))),
        "levels": [float(v) for v in plateau],
        "level_over_gain": float(plateau[-1] / (p.K * a)),
        "tau_ideal": p.delay().tau_ideal(),
        "trace": {"t": t[:: max(1, len(t) // 600)].tolist(), "i_out": i_out[:: max(1, len(t) // 600)].tolist()},
    }


def characterize(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2):
    """Staircases at the nominal thresholds over I_gain: the gating step times t_up, t_down (as multiples of
    the DPI's ideal tau, against I_gain / I_tau), the level per stage and the ladder's thresholds."""
    from compiler.foundation.errors import CalibrationMissing

    try:
        dpi_cal = dpi.load_calibration(corner, temp)
    except CalibrationMissing:
        dpi_cal = None
    points = [
        design(NOMINAL["K"], NOMINAL["I_thresh"], NOMINAL["I_width"], g, dpi_calibration=dpi_cal) for g in GRID_GAIN
    ]
    built = [_staircase_sim(p, corner, temp) for p in points]
    rows = [
        _measure_staircase(r, p, stim)
        for r, p, (_, stim) in zip(runner.run_many([s for s, _ in built], jobs=jobs), points, built)
    ]
    fit = {
        "grid_gain": list(GRID_GAIN),
        "x": [p.I_gain / p.I_tau for p in points],
        "t_up_over_tau": [r["t_up"] / r["tau_ideal"] for r in rows],
        "t_down_over_tau": [r["t_down"] / r["tau_ideal"] for r in rows],
        "level_over_gain": [r["level_over_gain"] for r in rows],
        "up_over_thresh": [r["up"] / NOMINAL["I_thresh"] for r in rows],
        "down_over_reset": [r["down"] / (NOMINAL["I_thresh"] - NOMINAL["I_width"]) for r in rows],
        "protocol": {"ramp": RAMP, "span": SPAN, "nominal": NOMINAL},
    }
    nominal = rows[GRID_GAIN.index(1e-9)]
    power = {"K": NOMINAL["K"], "I_gain": 1e-9, "watts": None}
    data = {
        "staircases": [{k: v for k, v in r.items() if k != "trace"} for r in rows],
        "nominal_trace": nominal["trace"],
    }
    power["watts"] = _power(runner, points[GRID_GAIN.index(1e-9)], corner, temp)
    return data, fit, {"power": power}


POWER_FRAMES = (1.5, 1.5, 0.7, 1.5, 0.3, 0.7, 0.3, 0.3)  # `_power`'s inputs in I_thresh: up, hold, down


def _power(runner: Runner, p: Params, corner, temp) -> float:
    """Mean power of one ladder over 8 frames (up, hold, down): its supply pin plus its bias port currents, at
    VDD (W). The starving bias (STARVE_UNITS i_unit x 2, one per chip, shared by every bistable stage) is not
    included."""
    h = np.array(POWER_FRAMES) * p.I_thresh
    res = runner.run(_frames_sim([p], [h], corner=corner, temp=temp))
    return ladder_power(res, [p])


class Calibration:
    """The ladder's step times and level from its staircases; its thresholds are its stages' (bistable)."""

    def __init__(self, table: dict):
        self.table = table
        f = table["fit"]
        self.log_x = np.log(f["x"])

    def _at(self, key, p: Params) -> float:
        return float(np.interp(math.log(p.I_gain / p.I_tau), self.log_x, self.table["fit"][key]))

    def step_times(self, p: Params) -> tuple[float, float]:
        """(t_up, t_down): how long after a stage switches its neighbours learn of it (s)."""
        tau = p.delay().tau_ideal()
        return self._at("t_up_over_tau", p) * tau, self._at("t_down_over_tau", p) * tau

    def level(self, p: Params) -> float:
        """Output current per level (A)."""
        return self._at("level_over_gain", p) * p.I_gain

    def timing_ok(self, p: Params, frame: float, win: tuple[float, float], t_switch: float = 0.0) -> dict:
        """The two timing rules of the module docstring, with their margins (s; positive = met)."""
        t_up, t_down = self.step_times(p)
        width = (win[1] - win[0]) * frame
        return {
            "no_cascade_margin": t_switch + min(t_up, t_down) - width,
            "ready_margin": frame + width - 2 * t_switch - max(t_up, t_down),
        }


def load_calibration(corner: str = "tt", temp: float = 27.0) -> Calibration:
    return Calibration(common.load_table(NAME, corner, temp))


def validate(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2, calibration=None) -> dict:
    """Held-out ladders (other thresholds, gains, K = 6) on random supra / sub / hold frame sequences:
    level agreement per frame with the model's FQ-CMRU, and the level current against the calibrated one."""
    cal = calibration or load_calibration(corner, temp)
    ps = [design(**d) for d in HELD_OUT]
    report = frame_agreement(runner, ps, frames=32, seed=7, corner=corner, temp=temp)
    levels_err = []
    for p, spice, ref in zip(ps, report["spice_levels"], report["reference_levels"]):
        levels_err.append(abs(cal.level(p) / p.I_gain - 1))
    report["calibrated_level_error_max"] = max(levels_err)
    return {k: v for k, v in report.items() if k not in ("inputs",)}


def mismatch(runner: Runner, corner: str = "tt", temp: float = 27.0, n: int = 8, seed: int = 1, jobs: int = 2) -> dict:
    """Level agreement of the nominal ladder on one random 32-frame sequence over n PDK mismatch draws."""
    p = design(**NOMINAL)
    rng = np.random.default_rng(seed)
    h = random_frames(32, p.I_thresh, p.I_thresh - p.I_width, rng)
    sims = [_frames_sim([p], [h], corner=corner, temp=temp, mc_seed=seed + k) for k in range(n)]
    ref = model_levels(p, h)
    agree = [float(np.mean(levels(r, [p], 32)["level"][0] == ref)) for r in runner.run_many(sims, jobs=jobs)]
    return {
        "n": n,
        "params": NOMINAL,
        "level_agreement": agree,
        "mean": float(np.mean(agree)),
        "min": float(np.min(agree)),
    }


def limit_frames(K: int, beta_hi: float, beta_lo: float, rng, extra: int = 16) -> np.ndarray:
    """Frame inputs (A) that use every level: K + 1 supra frames (the climb to the top and one saturating
    frame), then `extra` random supra / sub / hold frames."""
    climb = beta_hi * rng.uniform(1.2, 2.0, K + 1)
    return np.concatenate([climb, random_frames(extra, beta_hi, beta_lo, rng)])


def limits(
    runner: Runner,
    Ks=(4, 8, 16),
    tau_over_frames=(0.6,),
    frames=(FRAME,),
    mc: int = 0,
    corner="tt",
    temp: float = 27.0,
    jobs: int = 2,
    seed: int = 3,
    extra: int = 16,
    **cell,
) -> list[dict]:
    """How K, the frame period and the DPI's tau / T_f trade against fidelity and power: one nominal ladder
    (the NOMINAL biases unless `cell` gives others) per combination, through `limit_frames`, nominal and
    under `mc` PDK mismatch draws. Rows: level agreement per frame, level RMS (in alpha), mean power per
    ladder (supply pin and bias ports at VDD, starving bias excluded), the timing rules' margins, wall time."""
    biases = {k: v for k, v in {**NOMINAL, **cell}.items() if k != "K"}
    dpi_cal = dpi.load_calibration(corner, temp)
    cal = load_calibration(corner, temp)
    cases, sims = [], []
    for K in Ks:
        for frame in frames:
            for ratio in tau_over_frames:
                p = design(K, frame=frame, tau_over_frame=ratio, dpi_calibration=dpi_cal, **biases)
                h = limit_frames(K, p.I_thresh, p.I_thresh - p.I_width, np.random.default_rng(seed), extra)
                for draw in [None, *range(1, mc + 1)]:
                    cases.append((p, frame, ratio, draw, h))
                    sims.append(_frames_sim([p], [h], frame, corner=corner, temp=temp, mc_seed=draw))
    rows = []
    for (p, frame, ratio, draw, h), res in zip(cases, runner.run_many(sims, jobs=jobs)):
        got = levels(res, [p], len(h), frame)
        ref = model_levels(p, h)
        margins = cal.timing_ok(p, frame, window())
        rows.append(
            {
                "K": p.K,
                "frame_ms": frame * 1e3,
                "tau_over_frame": ratio,
                "mc_seed": draw,
                "C_pF": round(p.C * 1e12, 2),
                "frames": len(h),
                "level_agreement": float(np.mean(got["level"][0] == ref)),
                "level_rms_of_alpha": float(np.sqrt(np.mean((got["current"][0] / p.I_gain - ref) ** 2))),
                "power_W": ladder_power(res, [p]),
                "no_cascade_margin_ms": round(margins["no_cascade_margin"] * 1e3, 3),
                "ready_margin_ms": round(margins["ready_margin"] * 1e3, 3),
                "wall_s": round(res.wall_time, 1),
                "spice_levels": got["level"][0].astype(int).tolist(),
                "reference_levels": ref.astype(int).tolist(),
            }
        )
    return rows


def plot(table: dict, path) -> None:
    plt = common.agg_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    tr = table["data"]["nominal_trace"]
    axes[0].plot(np.asarray(tr["t"]) * 1e3, np.asarray(tr["i_out"]) * 1e9)
    axes[0].set(
        title="free-running staircase, K = 4, I_gain 1 nA (one step per gating delay)",
        xlabel="t [ms]",
        ylabel="I_out [nA]",
    )
    f = table["fit"]
    axes[1].semilogx(f["x"], f["t_up_over_tau"], "o-", label="t_up / tau")
    axes[1].semilogx(f["x"], f["t_down_over_tau"], "s-", label="t_down / tau")
    axes[1].set(title="gating delay after a switch", xlabel="I_gain / I_tau")
    axes[1].legend()
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    common.save_figure(fig, path)
