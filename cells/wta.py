"""The readout: a current-mode winner-take-all (Lazzaro) over N class currents.

Topology, per input k: an nfet (4/8) with its gate on the common node ``vc`` sinks the input current
from ``in<k>``; a second nfet (4/4, gate ``in<k>``, source ``vc``) passes the share of the bias that
the input wins to ``out<k>``. A tail nfet (4/8, mirrored from the nfet diode on port ``ib``) sinks I_bias
from ``vc``. The input with the largest current raises its ``in`` node the most and takes I_bias.

Ports: ``in1..inN out1..outN ib``: class currents sourced into ``in<k>``; the winner's ``out<k>``
sinks about I_bias (keep the outputs at 0.8..1.5 V, e.g. pfet diodes of the output pads); I_bias is
sourced into ``ib``.

Ideal: out_k = I_bias if k = argmax(I_in) else 0. Calibrated: a soft WTA,
out_k = g * I_bias * I_k^n / sum_j I_j^n, with the selectivity n and scale g fitted per bias point.
A classifier's mean-over-time pooling can precede it as a DPI per class (cells.dpi).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from cells import common
from cells.common import Subckt
from compiler.foundation.ngspice import Runner
from compiler.foundation.simulation import DC, Simulation, current, voltage

NAME = "wta"
W, L, L_OUT = 4.0, 8.0, 4.0
V_OUT = 1.0

TEMPLATE = """\
* winner-take-all over {{ n }} inputs (Lazzaro), bias I_bias into ib
.subckt {{ name }} {{ ports | join(' ') }}
XMbd ib ib 0 0 {{ NFET }} W={{ w }} L={{ l }}
XMt vc ib 0 0 {{ NFET }} W={{ w }} L={{ l }}
{% for k in range(1, n + 1) %}
XMa{{ k }} in{{ k }} vc 0 0 {{ NFET }} W={{ w }} L={{ l }}
XMb{{ k }} out{{ k }} in{{ k }} vc 0 {{ NFET }} W={{ w }} L={{ lo }}
{% endfor %}
.ends {{ name }}
"""


@dataclass(frozen=True)
class Params:
    n_inputs: int
    I_bias: float = 1e-9

    def __post_init__(self):
        common.check_int(NAME, "n_inputs", self.n_inputs, 2, 64)
        common.check_current(NAME, "I_bias", self.I_bias)


def subckt(params: Params) -> Subckt:
    n = params.n_inputs
    ports = (*(f"in{k}" for k in range(1, n + 1)), *(f"out{k}" for k in range(1, n + 1)), "ib")
    name = f"wta{n}"
    return Subckt(name, ports, common.render(TEMPLATE, name=name, ports=ports, n=n, w=W, l=L, lo=L_OUT))


def ideal(params: Params, i_in):
    i_in = np.asarray(i_in, float)
    return params.I_bias * (i_in == i_in.max(axis=-1, keepdims=True))


def soft(i_in, I_bias, n, g):
    """The calibrated soft WTA (numpy or JAX arrays)."""
    i_in = np.asarray(i_in, float)
    w = (i_in / i_in.max(axis=-1, keepdims=True)) ** n
    return g * I_bias * w / w.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------

GRID = ((1e-9, 1e-9), (1e-9, 4e-9), (4e-9, 1e-9), (0.3e-9, 1e-9))  # (I_ref input, I_bias)
SWEEP = (-0.3, 0.3, 0.0125)  # log10(I_1 / I_2)
CONTROL = voltage("ctl")  # the swept log10(I_1 / I_2)


def _out(j: int, k: int):
    """Output k of WTA j of a bench (its pin, held by source Vo<j>_<k>)."""
    return current(f"vo{j}_{k}")


def _sim(settings, corner, temp, sweep=SWEEP, n_inputs=2, extra=()):
    """Independent 2-input WTAs: input 1 = I_ref * 10**v(ctl), input 2 = I_ref (and fixed extra inputs)."""
    p = Params(n_inputs)
    sub = subckt(p)
    lines = [sub.text, "Vdd vdd 0 1.8", "Vctl ctl 0 0"]
    for j, (i_ref, i_bias) in enumerate(settings):
        lines += [
            f"B{j} vdd i{j}_1 I={i_ref:.6g}*pow(10,v(ctl))",
            f"I{j}_2 vdd i{j}_2 {i_ref:.6g}",
            f"Ib{j} vdd ib{j} {i_bias:.6g}",
        ]
        for k, x in enumerate(extra, start=3):
            lines.append(f"I{j}_{k} vdd i{j}_{k} {x * i_ref:.6g}")
        for k in range(1, n_inputs + 1):
            lines.append(f"Vo{j}_{k} o{j}_{k} 0 {V_OUT:g}")
        lines.append(
            sub.instance(
                f"W{j}",
                [f"i{j}_{k}" for k in range(1, n_inputs + 1)]
                + [f"o{j}_{k}" for k in range(1, n_inputs + 1)]
                + [f"ib{j}"],
            )
        )
    saves = [_out(j, k) for j in range(len(settings)) for k in range(1, n_inputs + 1)]
    return Simulation(
        "\n".join(lines),
        analyses=(DC("Vctl", *sweep),),
        saves=(CONTROL, current("vdd"), *saves),
        title="wta",
        corner=corner,
        temp=temp,
    )


def _fit(ratio, out1, out2, i_bias):
    from scipy.optimize import least_squares

    def resid(x):
        n, g = x
        w1 = ratio**n
        return np.concatenate([g * w1 / (1 + w1) - out1 / i_bias, g / (1 + w1) - out2 / i_bias])

    sol = least_squares(resid, x0=[20.0, 1.0])
    return float(sol.x[0]), float(sol.x[1]), common.rms(resid(sol.x))


def characterize(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2):
    res = runner.run(_sim(GRID, corner, temp))
    ratio = 10 ** res[CONTROL]
    points = []
    for j, (i_ref, i_bias) in enumerate(GRID):
        o1, o2 = -res[_out(j, 1)], -res[_out(j, 2)]
        n, g, err = _fit(ratio, o1, o2, i_bias)
        # resolution: input ratio at which the winner carries 90 % of its final share
        share = o1 / (o1 + o2)
        r90 = float(np.interp(0.9, share, ratio))
        points.append(
            {
                "I_in": i_ref,
                "I_bias": i_bias,
                "n": n,
                "g": g,
                "fit_rms_of_bias": err,
                "ratio_for_90pct": r90,
                "out1": o1.tolist(),
                "out2": o2.tolist(),
            }
        )
    k = int(np.argmin(np.abs(res[CONTROL])))
    power = {
        "I_in": "2 x 1 nA",
        "I_bias": 1e-9,
        "watts": float(common.VDD * (2e-9 + 1e-9 + -res[_out(0, 1)][k] - res[_out(0, 2)][k])),
    }
    fit = {
        "grid": [[p["I_in"], p["I_bias"]] for p in points],
        "n": [p["n"] for p in points],
        "g": [p["g"] for p in points],
        "ratio_for_90pct": [p["ratio_for_90pct"] for p in points],
    }
    return {"ratio": ratio.tolist(), "points": points}, fit, {"power": power}


class Calibration:
    def __init__(self, table: dict):
        self.table = table

    def parameters(self, I_in: float, I_bias: float) -> tuple[float, float]:
        """(n, g) of the nearest characterised point in (log I_in, log I_bias)."""
        f = self.table["fit"]
        d = [math.hypot(math.log(a / I_in), math.log(b / I_bias)) for a, b in f["grid"]]
        k = int(np.argmin(d))
        return f["n"][k], f["g"][k]

    def outputs(self, i_in, I_bias: float):
        i_in = np.asarray(i_in, float)
        n, g = self.parameters(float(np.max(i_in)), I_bias)
        return soft(i_in, I_bias, n, g)


def load_calibration(corner: str = "tt", temp: float = 27.0) -> Calibration:
    return Calibration(common.load_table(NAME, corner, temp))


def validate(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2, calibration=None) -> dict:
    """3-input WTA (not characterised) at 1 nA inputs: output error ideal vs calibrated, in units of I_bias."""
    cal = calibration or load_calibration(corner, temp)
    sweep = (-0.2, 0.2, 0.02)
    res = runner.run(_sim([(1e-9, 1e-9)], corner, temp, sweep=sweep, n_inputs=3, extra=(0.8,)))
    ratio = 10 ** res[CONTROL]
    spice = np.stack([-res[_out(0, k)] for k in (1, 2, 3)], axis=-1)
    inputs = np.stack([ratio, np.ones_like(ratio), 0.8 * np.ones_like(ratio)], axis=-1) * 1e-9
    p = Params(3, 1e-9)
    e_ideal = common.rms(ideal(p, inputs) - spice) / 1e-9
    e_cal = common.rms(cal.outputs(inputs, 1e-9) - spice) / 1e-9
    winners = float(np.mean(np.argmax(spice, -1) == np.argmax(inputs, -1)))
    return {"ideal_rms_of_bias": e_ideal, "calibrated_rms_of_bias": e_cal, "winner_agreement": winners}


def mismatch(runner: Runner, corner: str = "tt", temp: float = 27.0, n: int = 8, seed: int = 1, jobs: int = 2) -> dict:
    """Input offset: the I_1/I_2 ratio at which outputs balance, over n Monte Carlo draws."""
    sims = [replace(_sim([(1e-9, 1e-9)], corner, temp), title="wta mc", mc_seed=seed + k) for k in range(n)]
    offsets = []
    for res in runner.run_many(sims, jobs=jobs):
        ratio = 10 ** res[CONTROL]
        o1, o2 = -res[_out(0, 1)], -res[_out(0, 2)]
        offsets.append(float(np.interp(0.5, o1 / (o1 + o2), np.log(ratio))))
    offsets = np.array(offsets)
    return {"n": n, "balance_log_ratio": {"mean": float(offsets.mean()), "sigma": float(offsets.std(ddof=1))}}


def plot(table: dict, path) -> None:
    plt = common.agg_pyplot()
    ratio = np.asarray(table["data"]["ratio"])
    fig, ax = plt.subplots(figsize=(7, 4))
    for p in table["data"]["points"]:
        ax.semilogx(
            ratio,
            np.asarray(p["out1"]) / p["I_bias"],
            label=f"I_in {p['I_in'] * 1e9:g} nA, I_bias {p['I_bias'] * 1e9:g} nA, n={p['n']:.1f}",
        )
    ax.set(title="WTA: output 1 / I_bias against I_1 / I_2", xlabel="I_1 / I_2", ylabel="share of I_bias")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    common.save_figure(fig, path)
