"""Current-mirror arrays: the weights of a Linear layer as integer ratios of identical unit devices.

Topology
* ``polarity="p"`` (sourcing, positive weights): a pfet diode of ``n_in`` unit devices takes the input
  current out of port ``in``; output k is a pfet of ``ratios[k]`` unit devices sourcing into ``out<k>``.
  pfets with L = 8 have little DIBL: no cascode needed.
* ``polarity="n"`` (sinking, negative weights): nfet DIBL makes plain nfet mirrors err by several
  percent (docs/measurements.md), so the nfet array is cascoded: a stacked pair of diodes (unit W/L
  4/8 below, cascode 4/4 above) takes the input current into ``in``; output k is the same stack of
  ``ratios[k]`` unit devices sinking from ``out<k>``. The bottom devices then see the same V_DS as the
  diode, whatever the output voltage above the compliance (about 0.5 V).

Ports: ``vdd in out1 .. outN`` (pfet) and ``in out1 .. outN`` (nfet; ground is node 0).
Ideal: I_out,k = ratios[k] / n_in * I_in. Unit devices 4/8 um (32 um^2): measured mismatch sigma of a
1:1 copy 3.4 % (pfet) and 5.8 % (nfet cascode), docs/measurements.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cells import common
from cells.common import Subckt
from compiler.foundation.errors import CellParameterError
from compiler.foundation.ngspice import Runner
from compiler.foundation.simulation import DC, Op, Simulation, current, voltage

NAME = "mirror"
POLARITIES = ("p", "n")
W_UNIT, L_UNIT = 4.0, 8.0  # unit device, both polarities
L_CASCODE = 4.0  # nfet cascode device (same W)
MAX_UNITS = 64  # largest multiplicity of one device
V_OUT_NOMINAL = 0.7  # voltage of a summing node (the cascoded nfet diode of the next stage)
# Pelgrom coefficient of the relative current sigma of one device (x um), by polarity: at or above the
# sigmas measured on this library's mirrors.
PELGROM = {"n": 0.30, "p": 0.20}
UNIT_DEVICES = ((2.0, 4.0), (4.0, 8.0), (8.0, 8.0), (8.0, 16.0))  # the unit devices W x L (um) a build picks from


def output_sigma(polarity: str, ratio: int, denominator: int, w: float, l: float) -> float:
    """Expected relative sigma of one mirror output of `ratio` units against a `denominator`-unit diode."""
    return PELGROM[polarity] * math.sqrt(1 / ratio + 1 / denominator) / math.sqrt(w * l)


TEMPLATE = """\
* {{ name }}: {{ 'sourcing pfet' if polarity == 'p' else 'sinking cascoded nfet' }} mirror, gains {{ gains }}
.subckt {{ name }} {{ ports | join(' ') }}
{% if polarity == 'p' %}
XMd in in vdd vdd {{ PFET }} W={{ w }} L={{ l }} m={{ n_in }}
{% for r in ratios %}
XMo{{ loop.index }} out{{ loop.index }} in vdd vdd {{ PFET }} W={{ w }} L={{ l }} m={{ r }}
{% endfor %}
{% else %}
XMd xb xb 0 0 {{ NFET }} W={{ w }} L={{ l }} m={{ n_in }}
XMdc in in xb 0 {{ NFET }} W={{ w }} L={{ lc }} m={{ n_in }}
{% for r in ratios %}
XMo{{ loop.index }} y{{ loop.index }} xb 0 0 {{ NFET }} W={{ w }} L={{ l }} m={{ r }}
XMoc{{ loop.index }} out{{ loop.index }} in y{{ loop.index }} 0 {{ NFET }} W={{ w }} L={{ lc }} m={{ r }}
{% endfor %}
{% endif %}
.ends {{ name }}
"""


@dataclass(frozen=True)
class Params:
    """A mirror array: `ratios[k]` unit output devices per output against `n_in` unit input devices."""

    polarity: str
    ratios: tuple[int, ...]
    n_in: int = 1
    w: float = W_UNIT
    l: float = L_UNIT

    def __post_init__(self):
        if self.polarity not in POLARITIES:
            raise CellParameterError(
                f"mirror: polarity must be 'p' (sourcing) or 'n' (sinking), not {self.polarity!r}."
            )
        object.__setattr__(self, "ratios", tuple(self.ratios))
        if not 0 <= len(self.ratios) <= 256:  # no output: a bare diode, the receiver of an unread signal
            raise CellParameterError(f"mirror: an array has 0 to 256 outputs, got {len(self.ratios)}.")
        for k, r in enumerate(self.ratios):
            common.check_int("mirror", f"ratios[{k}]", r, 1, MAX_UNITS)
        common.check_int("mirror", "n_in", self.n_in, 1, MAX_UNITS)
        if self.l < 2.0 or self.w < 0.5:
            raise CellParameterError(
                f"mirror: unit device W/L = {self.w}/{self.l} um; weak-inversion mirrors need L >= 2 um "
                "(pfet output conductance) and W >= 0.5 um."
            )

    @property
    def gains(self) -> tuple[float, ...]:
        return tuple(r / self.n_in for r in self.ratios)

    @property
    def transistors(self) -> int:
        per = 1 if self.polarity == "p" else 2
        return per * (1 + len(self.ratios))


def subckt(params: Params) -> Subckt:
    """The array as a `.subckt`; its name is deterministic in the parameters."""
    ports = (
        (("vdd",) if params.polarity == "p" else ()) + ("in",) + tuple(f"out{k + 1}" for k in range(len(params.ratios)))
    )
    tag = "_".join(str(r) for r in params.ratios)
    size = "" if (params.w, params.l) == (W_UNIT, L_UNIT) else f"w{params.w:g}l{params.l:g}_".replace(".", "p")
    name = f"mirror_{params.polarity}{params.n_in}_{size}{tag}"
    if len(name) > 60:
        import hashlib

        name = (
            f"mirror_{params.polarity}{params.n_in}_{len(params.ratios)}o_"
            + hashlib.sha1((size + tag).encode()).hexdigest()[:10]
        )
    text = common.render(
        TEMPLATE,
        name=name,
        ports=ports,
        polarity=params.polarity,
        ratios=params.ratios,
        n_in=params.n_in,
        w=params.w,
        l=params.l,
        lc=L_CASCODE,
        gains=", ".join(f"{g:g}" for g in params.gains),
    )
    return Subckt(name, ports, text)


def ideal(params: Params, i_in):
    """Output currents of the ideal mirror, shape (..., outputs)."""
    return np.asarray(i_in, float)[..., None] * np.asarray(params.gains)


def quantize(weight: float, max_units: int = 16) -> tuple[int, int]:
    """(n_in, n_out) with n_out/n_in closest to |weight|, both <= max_units (0 weight -> (1, 0))."""
    w = abs(float(weight))
    if w == 0:
        return (1, 0)
    best = None
    for n_in in range(1, max_units + 1):
        n_out = min(max_units, max(1, round(w * n_in)))
        err = abs(n_out / n_in - w)
        if best is None or err < best[0] - 1e-15:
            best = (err, n_in, n_out)
    return best[1], best[2]


# ----------------------------------------------------------------------------------------------
# Characterisation

SWEEP_DECADES = (0.0, 2.0, 0.125)  # log10(I_unit_in / 100 pA): 100 pA .. 10 nA, 17 points
GAIN_SET = ((1, (1, 2, 4, 8)), (2, (1, 3)), (4, (3, 5)))
V_OUT_SET = (0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5)


CONTROL = voltage("ctl")  # the swept control voltage: log10 of the unit current over 100 pA


def _bench(polarity: str, instances, decades=SWEEP_DECADES, **settings) -> tuple[Simulation, list]:
    """A bench of independent mirrors driven by one swept control voltage.

    `instances` is [(n_in, ratios, v_out)]; every input current is n_in * 100 pA * 10**v(ctl) so the
    unit devices of every instance carry the same current. Returns the simulation (`settings`: its title,
    corner, temperature) and, per output, (n_in, ratio, v_out, vector).
    """
    lines, outputs, defs = ["Vdd vdd 0 1.8", "Vctl ctl 0 0"], [], {}
    for j, (n_in, ratios, v_out) in enumerate(instances):
        p = Params(polarity, tuple(ratios), n_in)
        sub = subckt(p)
        defs[sub.name] = sub.text
        src = f"B{j} in{j} 0" if polarity == "p" else f"B{j} vdd in{j}"
        lines.append(f"{src} I={n_in * 1e-10:.6g}*pow(10,v(ctl))")
        nets = (["vdd"] if polarity == "p" else []) + [f"in{j}"] + [f"o{j}_{k}" for k in range(len(ratios))]
        lines.append(sub.instance(f"M{j}", nets))
        for k, r in enumerate(ratios):
            lines.append(f"Vo{j}_{k} o{j}_{k} 0 {v_out:g}")
            outputs.append((n_in, r, v_out, current(f"vo{j}_{k}")))
    sim = Simulation(
        "\n".join([*defs.values(), *lines]),
        analyses=(DC("Vctl", *decades),),
        saves=(CONTROL, current("vdd"), *(o[3] for o in outputs)),
        **settings,
    )
    return sim, outputs


def _gains(result, polarity, outputs):
    sign = 1.0 if polarity == "p" else -1.0
    i_unit = 1e-10 * 10 ** result[CONTROL]
    rows = []
    for n_in, r, v_out, vec in outputs:
        i_out = sign * result[vec]
        rows.append({"n_in": n_in, "ratio": r, "v_out": v_out, "gain": (i_out / (n_in * i_unit)).tolist()})
    return i_unit, rows


def characterize(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2):
    """Mirror gain against ratio and unit current (at V_OUT_NOMINAL) and against output voltage (1:1)."""
    sims, meta = [], []
    for pol in POLARITIES:
        inst_a = [(n_in, ratios, V_OUT_NOMINAL) for n_in, ratios in GAIN_SET]
        inst_b = [(1, (1,), v) for v in V_OUT_SET]
        for kind, inst in (("ratio", inst_a), ("vout", inst_b)):
            sim, outputs = _bench(pol, inst, title=f"mirror {pol} {kind}", corner=corner, temp=temp)
            sims.append(sim)
            meta.append((pol, kind, outputs))
    results = runner.run_many(sims, jobs=jobs)
    data = {"i_unit": None, "v_out": list(V_OUT_SET), "v_out_nominal": V_OUT_NOMINAL}
    fit = {}
    for (pol, kind, outputs), res in zip(meta, results):
        i_unit, rows = _gains(res, pol, outputs)
        data["i_unit"] = i_unit.tolist()
        data[f"{pol}_{kind}"] = rows
    for pol in POLARITIES:
        # Relative error against (log unit current, output voltage), from the 1:1 V_out sweep; the
        # ratio sweep shows the error does not depend on the ratio (identical unit devices).
        err = np.array([np.asarray(row["gain"]) / (row["ratio"] / row["n_in"]) - 1 for row in data[f"{pol}_vout"]])
        fit[pol] = {"error_vs_vout_current": err.tolist()}
        ratio_err = np.array(
            [np.asarray(row["gain"]) / (row["ratio"] / row["n_in"]) - 1 for row in data[f"{pol}_ratio"]]
        )
        fit[pol]["ratio_spread"] = float(np.max(ratio_err.max(axis=0) - ratio_err.min(axis=0)))
        ok = np.all(np.abs(err) < 0.01, axis=1)
        fit[pol]["compliance_v_out"] = [float(v) for v, good in zip(V_OUT_SET, ok) if good]
    by_pol = {}
    for pol in POLARITIES:  # a 1:1 mirror at 1 nA: input plus output current, all from the 1.8 V rail
        row = next(r for r in data[f"{pol}_vout"] if r["v_out"] == V_OUT_NOMINAL)
        i_out = float(common.log_interp(1e-9, data["i_unit"], row["gain"])) * 1e-9
        by_pol[pol] = (1e-9 + i_out) * common.VDD
    power = {"i_in": 1e-9, "ratio": "1:1", "watts": max(by_pol.values()), "by_polarity": by_pol}
    return data, fit, {"power": power}


# ----------------------------------------------------------------------------------------------
# Calibrated model and inversion


@dataclass
class Calibration:
    """Mirror gains corrected by the measured error surface e(I_unit, V_out) of each polarity."""

    table: dict
    i_unit: np.ndarray = field(init=False)
    v_out: np.ndarray = field(init=False)

    def __post_init__(self):
        self.i_unit = np.asarray(self.table["data"]["i_unit"])
        self.v_out = np.asarray(self.table["data"]["v_out"])

    def error(self, polarity: str, i_unit, v_out=V_OUT_NOMINAL):
        """Relative gain error at a unit-device current and output voltage (bilinear, log current)."""
        surface = np.asarray(self.table["fit"][polarity]["error_vs_vout_current"])  # [v_out, current]
        i_unit, v_out = np.broadcast_arrays(np.asarray(i_unit, float), np.asarray(v_out, float))
        per_v = np.array([common.log_interp(i_unit, self.i_unit, row) for row in surface])  # [v, ...]
        flat_v = v_out.reshape(-1)
        flat = per_v.reshape(len(self.v_out), -1)
        out = np.array([np.interp(flat_v[j], self.v_out, flat[:, j]) for j in range(flat_v.size)])
        return out.reshape(i_unit.shape)

    def gain(self, polarity: str, n_in: int, n_out: int, i_in, v_out=V_OUT_NOMINAL):
        """Calibrated I_out / I_in of one output."""
        return n_out / n_in * (1 + self.error(polarity, np.asarray(i_in, float) / n_in, v_out))

    def ratio_for(
        self, target_gain: float, polarity: str, i_in: float, max_units: int = 16, v_out=V_OUT_NOMINAL
    ) -> tuple[int, int]:
        """The (n_in, n_out) whose calibrated gain at `i_in` is closest to `target_gain`."""
        if target_gain <= 0:
            raise CellParameterError("mirror: a mirror realises only positive gains; split the weight's sign first.")
        best = None
        for n_in in range(1, max_units + 1):
            for n_out in {max(1, math.floor(target_gain * n_in)), min(max_units, math.ceil(target_gain * n_in))}:
                if not 1 <= n_out <= max_units:
                    continue
                err = abs(float(self.gain(polarity, n_in, n_out, i_in, v_out)) - target_gain)
                if best is None or err < best[0] - 1e-15:
                    best = (err, n_in, n_out)
        return best[1], best[2]


def load_calibration(corner: str = "tt", temp: float = 27.0) -> Calibration:
    return Calibration(common.load_table(NAME, corner, temp))


# ----------------------------------------------------------------------------------------------
# Held-out validation, mismatch, plot

HELD_OUT = (3, (2, 7, 16))
HELD_OUT_V = (0.8, 1.0)
HELD_OUT_DECADES = (0.27, 1.95, 0.56)  # 186 pA, 676 pA, 2.5 nA, 8.5 nA of unit current (off the grid)


def validate(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2, calibration=None) -> dict:
    """Gain error of ideal and calibrated models against SPICE on ratios, currents and V_out not characterised."""
    cal = calibration or load_calibration(corner, temp)
    n_in, ratios = HELD_OUT
    sims, metas = [], []
    for pol in POLARITIES:
        sim, outputs = _bench(
            pol,
            [(n_in, ratios, v) for v in HELD_OUT_V],
            HELD_OUT_DECADES,
            title=f"mirror {pol} held-out",
            corner=corner,
            temp=temp,
        )
        sims.append(sim)
        metas.append((pol, outputs))
    report = {}
    for (pol, outputs), res in zip(metas, runner.run_many(sims, jobs=jobs)):
        i_unit, rows = _gains(res, pol, outputs)
        ideal_err, cal_err = [], []
        for row in rows:
            spice = np.asarray(row["gain"])
            ideal_g = row["ratio"] / row["n_in"]
            cal_g = cal.gain(pol, row["n_in"], row["ratio"], i_unit * row["n_in"], row["v_out"])
            ideal_err.extend(np.abs(ideal_g / spice - 1))
            cal_err.extend(np.abs(cal_g / spice - 1))
        report[pol] = {
            "ideal_max_rel_error": float(np.max(ideal_err)),
            "calibrated_max_rel_error": float(np.max(cal_err)),
            "ideal_rms_rel_error": common.rms(ideal_err),
            "calibrated_rms_rel_error": common.rms(cal_err),
        }
    return report


def mismatch(
    runner: Runner,
    corner: str = "tt",
    temp: float = 27.0,
    n: int = 40,
    seed: int = 1,
    i_in: float = 1e-9,
    jobs: int = 2,
    chunk: int = 5,
) -> dict:
    """Sigma of the 1:1 gain over `n` mirrors of each polarity with PDK mismatch Monte Carlo on.

    Mismatch decks get slow faster than linearly in their instance count (each instance draws its
    own model), so the mirrors go `chunk` to a netlist, each netlist with its own seed.
    """
    report = {}
    for pol in POLARITIES:
        sub = subckt(Params(pol, (1,)))
        sims = []
        for c in range(0, n, chunk):
            lines = [sub.text, "Vdd vdd 0 1.8"]
            for j in range(c, min(n, c + chunk)):
                src = f"I{j} in{j} 0 {i_in:g}" if pol == "p" else f"I{j} vdd in{j} {i_in:g}"
                lines += [
                    src,
                    sub.instance(f"M{j}", (["vdd"] if pol == "p" else []) + [f"in{j}", f"o{j}"]),
                    f"Vo{j} o{j} 0 {V_OUT_NOMINAL:g}",
                ]
            sims.append(
                Simulation(
                    "\n".join(lines),
                    analyses=(Op(),),
                    saves=tuple(current(f"vo{j}") for j in range(c, min(n, c + chunk))),
                    title=f"mirror {pol} mismatch",
                    corner=corner,
                    temp=temp,
                    mc_seed=seed + c,
                )
            )
        sign = 1 if pol == "p" else -1
        gains = []
        for c, res in zip(range(0, n, chunk), runner.run_many(sims, jobs=jobs)):
            gains += [sign * res[current(f"vo{j}")][0] / i_in for j in range(c, min(n, c + chunk))]
        gains = np.array(gains)
        report[pol] = {
            "n": n,
            "mean": float(gains.mean()),
            "sigma": float(gains.std(ddof=1)),
            "area_um2_per_unit": W_UNIT * L_UNIT,
        }
    return report


def plot(table: dict, path) -> None:
    plt = common.agg_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    i_unit = np.asarray(table["data"]["i_unit"])
    for ax, pol in zip(axes, POLARITIES):
        for v, err in zip(table["data"]["v_out"], table["fit"][pol]["error_vs_vout_current"]):
            ax.semilogx(i_unit, 100 * np.asarray(err), label=f"V_out {v:g} V")
        for row in table["data"][f"{pol}_ratio"]:
            g = np.asarray(row["gain"]) / (row["ratio"] / row["n_in"]) - 1
            ax.semilogx(i_unit, 100 * g, "k:", lw=0.8)
        ax.set_title(
            f"{'pfet sourcing' if pol == 'p' else 'nfet cascode sinking'} mirror error (dotted: ratios at 0.7 V)"
        )
        ax.set_xlabel("unit-device current [A]")
        ax.set_ylim(-5, 5)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("I_out / (ratio * I_in) - 1 [%]")
    axes[1].legend(fontsize=7)
    common.save_figure(fig, path)
