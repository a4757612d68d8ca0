"""The rectifier (ReLU): a cascoded nfet diode at a summing node, copied by cascoded nfet outputs.

Currents of the layer (sourcing pfet mirrors for positive weights and biases, sinking nfet mirrors for
negative weights) meet at ``in``. A positive net current flows into the diode stack; a negative one
cannot (the node falls to ground and the sinking mirrors starve), so the diode current is
ReLU(sum). Outputs ``out<k>`` sink ratios[k] x that current (cascoded, so exact from 0.5 V up).
The voltage of ``in`` (measured 0.56-0.95 V for 0.1-10 nA) is the output voltage the layer's mirrors see;
the table records it so their calibration can be read at the right V_out.

Ports: ``in out1 .. outN``. Ideal: I_out,k = ratios[k] * max(I_in, 0).
The bistable cell has this same stack at its input, so an FQ-BMRU layer needs no separate rectifier;
this cell serves ReLU layers that feed mirrors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cells import common, mirror
from cells.common import Subckt
from compiler.foundation.ngspice import Runner
from compiler.foundation.simulation import DC, Simulation, current, swept, voltage

NAME = "rectifier"


@dataclass(frozen=True)
class Params:
    ratios: tuple[int, ...] = (1,)

    def __post_init__(self):
        mirror.Params("n", tuple(self.ratios))  # same validation as an nfet mirror array
        object.__setattr__(self, "ratios", tuple(self.ratios))


def subckt(params: Params = Params()) -> Subckt:
    inner = mirror.subckt(mirror.Params("n", params.ratios))
    name = "rectifier_" + "_".join(str(r) for r in params.ratios)
    text = inner.text.replace(inner.name, name).replace(
        "sinking cascoded nfet mirror", "rectifier (ReLU) with cascoded copies"
    )
    return Subckt(name, inner.ports, text)


def ideal(params: Params, i_in):
    return np.maximum(np.asarray(i_in, float), 0.0)[..., None] * np.asarray(params.ratios, float)


# ----------------------------------------------------------------------------------------------

LINEAR = (-2e-9, 10e-9, 0.25e-9)
V_OUT = 0.7
INPUT, OUT, CONTROL = voltage("in"), current("vo"), voltage("ctl")  # the input node, output and log control
LINEAR_INPUT = swept("Iin")  # the input current of the linear sweep


def _sim(corner, temp, kind, v_out=V_OUT, sweep=None):
    sub = subckt(Params((1,)))
    lines = [sub.text, "Vdd vdd 0 1.8", f"Vo o 0 {v_out:g}", sub.instance("R", ["in", "o"])]
    if kind == "linear":
        lines.append("Iin vdd in 0")
        analysis, saves = DC("Iin", *(sweep or LINEAR)), (INPUT, OUT)
    else:
        lines += ["Vctl ctl 0 0", "Bin vdd in I=1e-10*pow(10,v(ctl))"]
        analysis, saves = DC("Vctl", *(sweep or (-1.0, 2.0, 0.125))), (INPUT, OUT, CONTROL)  # 10 pA .. 10 nA
    return Simulation(
        "\n".join(lines), analyses=(analysis,), saves=saves, title=f"rectifier {kind}", corner=corner, temp=temp
    )


def characterize(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2):
    lin, log = runner.run_many([_sim(corner, temp, "linear"), _sim(corner, temp, "log")], jobs=jobs)
    i_lin = lin[LINEAR_INPUT]
    i_log = 1e-10 * 10 ** log[CONTROL]
    out_log = -log[OUT]
    fit = {
        "i_in": i_log.tolist(),
        "gain_error": (out_log / i_log - 1).tolist(),
        "leak": float(np.max(np.abs(-lin[OUT][i_lin < 0]))),
    }
    data = {
        "linear": {"i_in": i_lin.tolist(), "i_out": (-lin[OUT]).tolist(), "v_in": lin[INPUT].tolist()},
        "log": {"i_in": i_log.tolist(), "i_out": out_log.tolist(), "v_in": log[INPUT].tolist()},
    }
    k = int(np.argmin(np.abs(i_log - 1e-9)))
    power = {"i_in": 1e-9, "watts": float(common.VDD * (i_log[k] + out_log[k]))}
    return data, fit, {"power": power}


class Calibration:
    def __init__(self, table: dict):
        self.table = table
        self.i = np.asarray(table["fit"]["i_in"])
        self.err = np.asarray(table["fit"]["gain_error"])

    def output(self, i_in, ratio: int = 1):
        i_in = np.asarray(i_in, float)
        pos = np.maximum(i_in, 0.0)
        gain = 1 + common.log_interp(np.maximum(pos, self.i[0]), self.i, self.err)
        return ratio * pos * gain

    def node_voltage(self, i_in):
        """Voltage of the summing node at a net input current (what the layer's mirrors see)."""
        d = self.table["data"]["log"]
        return common.log_interp(np.maximum(i_in, d["i_in"][0]), d["i_in"], d["v_in"])


def load_calibration(corner: str = "tt", temp: float = 27.0) -> Calibration:
    return Calibration(common.load_table(NAME, corner, temp))


HELD_OUT_SWEEP = (-1.3e-9, 8e-9, 0.31e-9)


def validate(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2, calibration=None) -> dict:
    """Output error on input currents and an output voltage (1.0 V) not characterised."""
    cal = calibration or load_calibration(corner, temp)
    res = runner.run(_sim(corner, temp, "linear", v_out=1.0, sweep=HELD_OUT_SWEEP))
    i_in = res[LINEAR_INPUT]
    spice = -res[OUT]
    pos = i_in > 0.05e-9
    ideal_out, cal_out = ideal(Params(), i_in)[:, 0], cal.output(i_in)
    return {
        "ideal_max_rel_error": float(np.max(np.abs(ideal_out[pos] / spice[pos] - 1))),
        "calibrated_max_rel_error": float(np.max(np.abs(cal_out[pos] / spice[pos] - 1))),
        "negative_input_max_output": float(np.max(np.abs(spice[i_in < 0]))),
    }


def mismatch(runner: Runner, corner: str = "tt", temp: float = 27.0, n: int = 20, seed: int = 1) -> dict:
    """The rectifier copy is an nfet cascode mirror: its sigma is the mirror's nfet sigma."""
    return {"n": mirror.mismatch(runner, corner, temp, n=n, seed=seed)["n"]}


def plot(table: dict, path) -> None:
    plt = common.agg_pyplot()
    d = table["data"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(np.asarray(d["linear"]["i_in"]) * 1e9, np.asarray(d["linear"]["i_out"]) * 1e9, label="SPICE")
    axes[0].plot(
        np.asarray(d["linear"]["i_in"]) * 1e9, np.maximum(d["linear"]["i_in"], 0) * np.float64(1e9), "--", label="ideal"
    )
    axes[0].set(title="rectifier transfer", xlabel="net input [nA]", ylabel="output [nA]")
    axes[0].legend()
    axes[1].semilogx(table["fit"]["i_in"], 100 * np.asarray(table["fit"]["gain_error"]), label="gain error [%]")
    ax2 = axes[1].twinx()
    ax2.semilogx(d["log"]["i_in"], d["log"]["v_in"], "r", label="v(in) [V]")
    axes[1].set(title="gain error and summing-node voltage", xlabel="input [A]", ylabel="error [%]")
    ax2.set_ylabel("v(in) [V]", color="r")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    common.save_figure(fig, path)
