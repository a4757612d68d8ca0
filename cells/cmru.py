"""The native FQ-CMRU: a K-level ladder of bistable stages interleaved with DPI integrators.

Behaviour (the model's, models/cells.py `fq_cmru_step`): per frame, the level q in 0..K moves one up
when the candidate h > beta_hi, one down when h < beta_lo, and holds otherwise; the output sinks
q * alpha.

Topology (thermometer code: stage k is set <=> q >= k; K bistable cells, K DPIs, small mirrors):
* the candidate h enters ``in`` (cascoded nfet diode, the ReLU) and is copied (pfet 4/8) to the input
  of every stage;
* stage k is a bistable cell (cells/bistable.py) with the layer's I_thresh, I_width, I_gain, and the
  phase keeper on ``en``/``enb``: it can only switch while the layer's phase is high;
* its output sinks I_gain from the input diode of DPI k (cells/dpi.py), a low-pass of time constant
  tau: d_k = DPI output / G, with G its settled output, is a *delayed* copy of the stage's state;
* a pfet copy (the DPI's own 16/2 input device size) of that input current is the stage's share of the
  ladder output; the K shares meet at a cascoded nfet mirror that sinks q * I_gain from ``out``;
* block (stage k >= 2): a node gets G/2 sourced (the ``ix`` bias, 2 units) and DPI k-1's output sunk;
  the rectifier there conducts ReLU(G/2 - G d_{k-1}), and n_block copies of it sink from stage k's input.
  While stage k-1 is reset, stage k sees h - B (B = n_block G/2 > h_max - beta_hi): it cannot set;
* pin (stage k <= K-1): a node gets G/4 sourced (``ix``, 1 unit) and DPI k+1's output sunk; its pfet
  diode conducts ReLU(G d_{k+1} - G/4), and n_pin copies are sourced into stage k's input. While stage
  k+1 is set, stage k sees h + P (P = n_pin 3G/4 > beta_lo): it cannot reset;
* a DPI read by both neighbours (2 <= k <= K-1) fans out through a pfet and a cascoded nfet mirror.
Both gating currents saturate (they are 0 or their full value once the DPI has crossed the comparator
level), so the two *live* stages, the top set one (can reset) and the one above it (can set), see
exactly h: the ladder's thresholds are the bistable cell's. Every other stage is blocked or pinned.

Timing (why exactly one level per frame): the stages switch only in the enable window of the frame
(duration W), a switch takes t_sw (cells/bistable.py delay table), and a neighbour learns of it only
once the DPI has crossed its comparator level: t_up (rise from off to G/2, about (ln(I_th/i_off)/
(I_gain/I_tau - 1) + ln 2) tau) or t_down (decay from G to G/4, ln 4 tau). One level per frame needs
    t_sw + min(t_up, t_down) > W             (no cascade inside a window)
    t_sw + max(t_up, t_down) < T_f - margin  (the neighbour knows by the next frame's window)
measured on SPICE staircases by `characterize` (free-running ladder: one step per t_up or t_down).

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

from compiler.errors import CellParameterError
from compiler.ngspice import Runner, Simulation, Stimulus
from cells import bistable, common, dpi, mirror, rectifier
from cells.common import Subckt

NAME = "cmru"
PORTS = ("vdd", "in", "out", "ith", "iw", "ig", "itau", "idth", "ix", "vsp", "vsn", "en", "enb")
K_MAX = 16
W_GATE, L_GATE = 2.0, 4.0      # gating mirrors: only their sign matters (saturating comparators)
MAX_RATIO = 64

TEMPLATE = """\
* FQ-CMRU ladder, K = {{ K }} levels, DPI C = {{ c_pf }} pF, block x{{ n_block }}, pin x{{ n_pin }}
.subckt {{ name }} vdd in out ith iw ig itau idth ix vsp vsn en enb
* candidate: ReLU diode on in, one pfet copy per stage
{{ hin.instance('Hn', ['in', 'hp']) }}
{{ hout.instance('Hp', ['vdd', 'hp'] + stage_inputs) }}
* comparator levels: G/2 into each block node, G/4 into each pin node
{{ xmir.instance('Xb', ['vdd', 'ix'] + x_outputs) }}
{% for k in stages %}
* stage {{ k }}
{{ cell.instance('S' ~ k, ['vdd', 's' ~ k ~ '_in', 's' ~ k ~ '_o', 'ith', 'iw', 'ig', 'vsp', 'vsn', 'en', 'enb']) }}
{{ delay.instance('D' ~ k, ['vdd', 's' ~ k ~ '_o', dpi_out[k], 'idth', 'itau']) }}
XMo{{ k }} ysum s{{ k }}_o vdd vdd {{ PFET }} W={{ wd }} L={{ ld }}
{% if k > 1 %}
{{ block.instance('B' ~ k, ['nb' ~ k, 's' ~ k ~ '_in']) }}
{% endif %}
{% if k < K %}
{{ pin.instance('P' ~ k, ['vdd', 'np' ~ k, 's' ~ k ~ '_in']) }}
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
    comparator current I_x = G/4 (A); integer gains of the block and pin currents."""

    K: int
    I_thresh: float
    I_width: float
    I_gain: float
    I_tau: float
    I_th: float
    C: float
    I_x: float
    n_block: int = 8
    n_pin: int = 2

    def __post_init__(self):
        common.check_int(NAME, "K", self.K, 2, K_MAX)
        common.check_int(NAME, "n_block", self.n_block, 1, MAX_RATIO)
        common.check_int(NAME, "n_pin", self.n_pin, 1, MAX_RATIO)
        self.stage()   # the bistable cell's own validation
        self.delay()   # the DPI's
        common.check_current(NAME, "I_x", self.I_x, 10e-12, common.I_MAX)

    def stage(self) -> bistable.Params:
        return bistable.Params(self.I_thresh, self.I_width, self.I_gain)

    def delay(self) -> dpi.Params:
        return dpi.Params(self.I_tau, self.I_th, self.C)

    @property
    def block(self) -> float:
        """Current sunk from a blocked stage's input (ideal): n_block * G/2 = 2 n_block I_x."""
        return 2 * self.n_block * self.I_x

    @property
    def pin(self) -> float:
        """Current sourced into a pinned stage's input (ideal): n_pin * 3G/4 = 3 n_pin I_x."""
        return 3 * self.n_pin * self.I_x

    def port_currents(self) -> dict:
        """The bias current each port takes (A), with its direction ('n': drawn out, 'p': sourced in)."""
        K = self.K
        return {"ith": (K * self.I_thresh, "n"), "iw": (K * self.I_width, "p"), "ig": (K * self.I_gain, "p"),
                "itau": (K * self.I_tau, "p"), "idth": (K * self.I_th, "p"), "ix": (self.I_x, "n")}


def subckt(params: Params) -> Subckt:
    """The ladder of K stages for one capacitor value and gating gains (bias currents are port currents)."""
    K = params.K
    parts = _parts(params)
    # DPI k's output: straight into the one node that reads it at the ends, else into its fan-out
    dpi_out = {k: ("nb2" if k == 1 else f"np{K - 1}" if k == K else f"f{k}p") for k in range(1, K + 1)}
    name = f"cmru_k{K}_c{round(params.C * 1e15)}f_b{params.n_block}_p{params.n_pin}"
    body = common.render(TEMPLATE, name=name, K=K, c_pf=f"{params.C * 1e12:g}", n_block=params.n_block,
                         n_pin=params.n_pin, stages=range(1, K + 1), stage_inputs=[f"s{k}_in" for k in range(1, K + 1)],
                         x_outputs=[f"nb{k}" for k in range(2, K + 1)] + [f"np{k}" for k in range(1, K)],
                         dpi_out=dpi_out, wd=dpi.W, ld=dpi.L, **parts)
    return Subckt(name, PORTS, body)


def dependencies(params: Params) -> list[Subckt]:
    """The subcircuits the ladder instantiates (a netlist defines each once, next to the ladder's)."""
    parts = _parts(params)
    if params.K < 3:
        parts = {k: v for k, v in parts.items() if not k.startswith("fan_")}
    return sorted({s.name: s for s in parts.values()}.values(), key=lambda s: s.name)


def _parts(params: Params) -> dict:
    """Every subcircuit the template names, by its role."""
    K = params.K
    gate = dict(w=W_GATE, l=L_GATE)
    return {
        "cell": bistable.subckt(), "delay": dpi.subckt(params.delay()),
        "hin": mirror.subckt(mirror.Params("n", (1,))), "hout": mirror.subckt(mirror.Params("p", (1,) * K)),
        "xmir": mirror.subckt(mirror.Params("p", (2,) * (K - 1) + (1,) * (K - 1), **gate)),
        "block": rectifier.subckt(rectifier.Params((params.n_block,))),
        "pin": mirror.subckt(mirror.Params("p", (params.n_pin,), **gate)),
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
    q = fq_cmru_run({"beta_lo": jnp.float32(beta_lo), "delta": jnp.float32(beta_hi - beta_lo)}, h[:, None],
                    jnp.asarray([q0], jnp.float32), K, mode="sequential")
    return np.asarray(q[:, 0])


# ----------------------------------------------------------------------------------------------
# Testbenches

FRAME = 10e-3          # s, the compiler's default frame period
SAMPLE_AT = 0.97       # fraction of the frame at which a level is read (flows/testbench.py)
EDGE = 1e-6


def window(phases: int = 1, phase: int = 1) -> tuple[float, float]:
    """The enable window (fractions of the frame) of a ladder in layer `phase` of `phases`."""
    from compiler.passes.schedule_phases import window as slot

    return slot(phase, phases)


def _bench_lines(params: Params, label: str, prefix: str = "") -> list[str]:
    """Ideal bias sources and one ladder instance; its input is node <prefix>in, its output <prefix>o."""
    currents = params.port_currents()
    nets = {"vdd": "vdd", "in": f"{prefix}in", "out": f"{prefix}o", "vsp": "vsp", "vsn": "vsn", "en": "en", "enb": "enb"}
    lines = []
    for port, (value, direction) in currents.items():
        node = f"{prefix}{port}"
        nets[port] = node
        lines.append(f"I{prefix}{port} {node} 0 {value:.6g}" if direction == "n" else f"I{prefix}{port} vddb {node} {value:.6g}")
    lines += [f"V{prefix}out {prefix}o 0 {bistable.V_OUT:g}", subckt(params).instance(label, nets)]
    return lines


def _frames_sim(params_list, hs, frame=FRAME, win=None, corner="tt", temp=27.0, mc_seed=None,
                free_running=False) -> Simulation:
    """Ladders (one per params, independent) through frames of input hs[i] (A); en high in `win` of each frame."""
    win = win or window()
    frames = len(hs[0])
    parts = {s.name: s for p in params_list for s in (*dependencies(p), subckt(p))}
    lines = [*(parts[n].text for n in sorted(parts)), bistable.starve_bias().text, "Vdd vdd 0 1.8", "Vbias vddb 0 1.8",
             bistable.starve_bias().instance("S", ["vddb", "vsp", "vsn"])]
    stimuli = []
    for i, (p, h) in enumerate(zip(params_list, hs)):
        lines += _bench_lines(p, f"L{i}", f"u{i}")
        times, values = [0.0], [float(h[0])]
        for k, v in enumerate(h):
            times += [k * frame + EDGE if k else EDGE, (k + 1) * frame]
            values += [float(v), float(v)]
        stimuli.append(Stimulus(f"h{i}", "vddb", f"u{i}in", tuple(times[1:]), tuple(values[1:])))
        lines += [f".ic v(xl{i}.xs{k}.b)=0" for k in range(1, p.K + 1)]
    if free_running:
        lines += ["Ven en 0 1.8", "Venb enb 0 0"]
    else:
        t_en, v_en = [0.0], [0.0]
        for k in range(frames):
            for at, level in ((win[0], 1.8), (win[1], 0.0)):
                t_en += [(k + at) * frame, (k + at) * frame + EDGE]
                v_en += [v_en[-1], level]
        stimuli += [Stimulus("en", "en", "0", tuple(t_en), tuple(v_en), kind="V"),
                    Stimulus("enb", "enb", "0", tuple(t_en), tuple(1.8 - v for v in v_en), kind="V")]
    saves = [f"i(vu{i}out)" for i in range(len(params_list))] + ["i(vdd)"]
    saves += [f"v(xl{i}.xs{k}.b)" for i, p in enumerate(params_list) for k in range(1, p.K + 1)]
    lines += [".save " + " ".join(saves), f".tran {frame / 200:g} {frames * frame:g} 0 {frame / 50:g}"]
    return Simulation("\n".join(lines), title=f"cmru frames K={params_list[0].K}", corner=corner, temp=temp,
                      mc_seed=mc_seed, stimuli=tuple(stimuli), timeout=3600)


def levels(result, params_list, frames: int, frame=FRAME) -> dict:
    """Per ladder, per frame (read at SAMPLE_AT): the output current (A), the nearest ladder level of it,
    and the thermometer count of set stages."""
    t = result["time"]
    at = (np.arange(frames) + SAMPLE_AT) * frame
    out = {"current": [], "level": [], "stages": []}
    for i, p in enumerate(params_list):
        cur = np.interp(at, t, -result[f"i(vu{i}out)"])
        states = np.stack([np.interp(at, t, result[f"v(xl{i}.xs{k}.b)"]) > 0.9 for k in range(1, p.K + 1)], -1)
        out["current"].append(cur)
        out["level"].append(np.clip(np.round(cur / p.I_gain), 0, p.K))
        out["stages"].append(states.sum(-1))
    return {k: np.asarray(v) for k, v in out.items()}
