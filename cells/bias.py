"""The bias generator: one reference current fanned out to the bias currents of many cells.

Topology
* I_ref is drawn out of port ``ref`` through a pfet diode of ``den`` unit devices (4/8 um);
* sourcing outputs ``src<k>``: pfets of ``sources[k]`` units, I = I_ref * sources[k] / den
  (they feed the nfet bias diodes of the cells: bistable ``iw``/``ig``, DPI ``ith``/``itau``, WTA ``ib``);
* sinking outputs ``snk<k>``: a pfet copy of I_ref (``den`` units) into a cascoded nfet diode stack
  (``den`` units), copied by cascoded nfets of ``sinks[k]`` units (the pfet bias diodes: bistable ``ith``);
* optional starving biases (``starve`` > 0): ``vsn`` is an nfet 1/1 diode fed by a pfet output of
  ``starve`` units, ``vsp`` a pfet 1/1 diode drained by a cascoded nfet output of ``starve`` units;
  with I_ref = 1 nA, den = 1 and starve = 1 they are the 1 nA the bistable cells share.

Ports: ``vdd [vdd_reference] ref src1..srcK snk1..snkM [vsp vsn]``; ``vdd_reference`` (``reference_port``,
verification netlists only) supplies the fixed branches: the reference diode, the sink feed and the
starving diodes.
Ideal: every output = I_ref * m / den. Calibrated: the measured relative error of each output kind
(sourcing: one pfet mirror; sinking: pfet copy then nfet cascode) against unit-device current.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cells import common, mirror
from cells.common import Subckt
from compiler.foundation.errors import CellParameterError
from compiler.foundation.ngspice import Runner
from compiler.foundation.simulation import DC, Simulation, current, voltage

NAME = "bias"
# Relative sigma of a 1-unit output against a 1-unit diode under PDK mismatch, by the tap's polarity
# (sourcing: one pfet mirror; sinking: a pfet copy then an nfet cascode), 12 Monte Carlo draws at tt, 27 C.
TAP_SIGMA = {"p": 0.027, "n": 0.071}


def tap_sigma(polarity: str, units: int, denominator: int) -> float:
    """Relative sigma of a tap of `units` unit devices on a `denominator`-unit diode (Pelgrom scaling)."""
    return TAP_SIGMA[polarity] * float(np.sqrt((1 / units + 1 / denominator) / 2))


TEMPLATE = """\
* bias generator: I_ref / {{ den }} per unit; sources {{ sources }}, sinks {{ sinks }}, starve {{ starve }}
.subckt {{ name }} {{ ports | join(' ') }}
XMr ref ref {{ rsup }} {{ rsup }} {{ PFET }} W={{ w }} L={{ l }} m={{ den }}
{% for m in sources %}
XMs{{ loop.index }} src{{ loop.index }} ref vdd vdd {{ PFET }} W={{ w }} L={{ l }} m={{ m }}
{% endfor %}
{% if sinks or starve %}
XMp nd ref {{ rsup }} {{ rsup }} {{ PFET }} W={{ w }} L={{ l }} m={{ den }}
XMn xb xb 0 0 {{ NFET }} W={{ w }} L={{ l }} m={{ den }}
XMnc nd nd xb 0 {{ NFET }} W={{ w }} L={{ lc }} m={{ den }}
{% endif %}
{% for m in sinks %}
XMk{{ loop.index }} y{{ loop.index }} xb 0 0 {{ NFET }} W={{ w }} L={{ l }} m={{ m }}
XMkc{{ loop.index }} snk{{ loop.index }} nd y{{ loop.index }} 0 {{ NFET }} W={{ w }} L={{ lc }} m={{ m }}
{% endfor %}
{% if starve %}
XMsn vsn ref {{ rsup }} {{ rsup }} {{ PFET }} W={{ w }} L={{ l }} m={{ starve }}
XMsnd vsn vsn 0 0 {{ NFET }} W=1 L=1
XMsp ysp xb 0 0 {{ NFET }} W={{ w }} L={{ l }} m={{ starve }}
XMspc vsp nd ysp 0 {{ NFET }} W={{ w }} L={{ lc }} m={{ starve }}
XMspd vsp vsp {{ rsup }} {{ rsup }} {{ PFET }} W=1 L=1
{% endif %}
.ends {{ name }}
"""


@dataclass(frozen=True)
class Params:
    """Output multiplicities against `den` reference units. I_ref is the design's unit current (its
    outputs' floor scales with it, cells/common.py min_current); it also sets the characterised range."""

    sources: tuple[int, ...] = ()
    sinks: tuple[int, ...] = ()
    den: int = 1
    starve: int = 0
    i_ref: float = 1e-9
    # The fixed branches (reference diode, cascode feed, starving diodes) on a supply port of their own,
    # `vdd_reference`: a verification bench whose partitions each carry a copy of the reference counts
    # it once (flows/partition.py). The laid-out generator has one supply.
    reference_port: bool = False

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "sinks", tuple(self.sinks))
        common.check_int(NAME, "den", self.den, 1, mirror.MAX_UNITS)
        common.check_int(NAME, "starve", self.starve, 0, 16 * mirror.MAX_UNITS)  # 10 i_unit at 64 per i_unit
        for label, ms in (("sources", self.sources), ("sinks", self.sinks)):
            for k, m in enumerate(ms):
                common.check_int(NAME, f"{label}[{k}]", m, 1, mirror.MAX_UNITS)
        if not (self.sources or self.sinks or self.starve):
            raise CellParameterError("bias: a bias generator needs at least one output.")
        common.check_current(NAME, "i_ref", self.i_ref, lo=common.I_UNIT_MIN)
        for m in self.sources + self.sinks:
            common.check_current(
                NAME, "an output current", self.i_ref * m / self.den, lo=common.min_current(self.i_ref)
            )

    def currents(self) -> dict[str, float]:
        out = {f"src{k + 1}": self.i_ref * m / self.den for k, m in enumerate(self.sources)}
        out.update({f"snk{k + 1}": self.i_ref * m / self.den for k, m in enumerate(self.sinks)})
        return out


def reference_branches(sinks: bool, starve: bool) -> tuple[str, ...]:
    """The devices that draw the generator's fixed supply current (the reference, not its taps), for a
    generator with any sinking output and with starving outputs: the reference diode always, the sink
    feed with either, the starving diodes with the latter. A generator's set holds every smaller one's."""
    return ("XMr",) + (("XMp",) if sinks or starve else ()) + (("XMsn", "XMspd") if starve else ())


def subckt(params: Params) -> Subckt:
    ports = (
        "vdd",
        *(("vdd_reference",) if params.reference_port else ()),
        "ref",
        *(f"src{k + 1}" for k in range(len(params.sources))),
        *(f"snk{k + 1}" for k in range(len(params.sinks))),
        *(("vsp", "vsn") if params.starve else ()),
    )
    name = f"bias_d{params.den}_s{'_'.join(map(str, params.sources)) or 'x'}_k{'_'.join(map(str, params.sinks)) or 'x'}"
    if params.starve:
        name += f"_st{params.starve}"
    if params.reference_port:
        name += "_rs"
    if len(name) > 60:
        import hashlib

        name = "bias_" + hashlib.sha1(name.encode()).hexdigest()[:12]
    text = common.render(
        TEMPLATE,
        name=name,
        ports=ports,
        den=params.den,
        sources=list(params.sources),
        sinks=list(params.sinks),
        starve=params.starve,
        rsup="vdd_reference" if params.reference_port else "vdd",
        w=mirror.W_UNIT,
        l=mirror.L_UNIT,
        lc=mirror.L_CASCODE,
    )
    return Subckt(name, ports, text)


def ideal(params: Params, i_ref=None) -> dict[str, float]:
    i_ref = params.i_ref if i_ref is None else i_ref
    return {k: v * i_ref / params.i_ref for k, v in params.currents().items()}


def quantize(current: float, i_ref: float = 1e-9, den: int = 8) -> int:
    """The multiplicity m whose ideal output I_ref * m / den is nearest `current` (at least 1)."""
    return max(1, round(current / i_ref * den))


# ----------------------------------------------------------------------------------------------

V_SRC, V_SNK = 0.6, 1.1  # an nfet bias diode (sources feed it) and a pfet bias diode (sinks drain it)
CHAR = Params(sources=(1, 2, 4, 8), sinks=(1, 2, 4, 8), den=4, starve=0)
CONTROL = voltage("ctl")  # the swept control voltage: log10 of I_ref over 100 pA


def _sim(p: Params, corner, temp, sweep=(0.0, 2.0, 0.125), mc_seed=None):
    sub = subckt(p)
    lines = [sub.text, "Vdd vdd 0 1.8", "Vctl ctl 0 0", "Bref ref 0 I=1e-10*pow(10,v(ctl))"]
    nets = ["vdd", "ref"]
    for k in range(len(p.sources)):
        lines.append(f"Vs{k + 1} s{k + 1} 0 {V_SRC:g}")
        nets.append(f"s{k + 1}")
    for k in range(len(p.sinks)):
        lines.append(f"Vk{k + 1} k{k + 1} 0 {V_SNK:g}")
        nets.append(f"k{k + 1}")
    if p.starve:
        nets += ["vsp", "vsn"]
    lines.append(sub.instance("B", nets))
    saves = [current(f"vs{k + 1}") for k in range(len(p.sources))]
    saves += [current(f"vk{k + 1}") for k in range(len(p.sinks))]
    return Simulation(
        "\n".join(lines),
        analyses=(DC("Vctl", *sweep),),
        saves=(CONTROL, current("vdd"), *saves),
        title=f"bias {p}",
        corner=corner,
        temp=temp,
        mc_seed=mc_seed,
    )


def _outputs(res, p: Params):
    i_ref = 1e-10 * 10 ** res[CONTROL]
    src = [res[current(f"vs{k + 1}")] / (i_ref * m / p.den) - 1 for k, m in enumerate(p.sources)]
    snk = [-res[current(f"vk{k + 1}")] / (i_ref * m / p.den) - 1 for k, m in enumerate(p.sinks)]
    return i_ref, np.array(src), np.array(snk)


def characterize(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2):
    res = runner.run(_sim(CHAR, corner, temp))
    i_ref, src, snk = _outputs(res, CHAR)
    i_unit = i_ref / CHAR.den
    fit = {
        "i_unit": i_unit.tolist(),
        "source_error": src.mean(axis=0).tolist(),
        "sink_error": snk.mean(axis=0).tolist(),
        "source_spread": float(np.max(src.max(0) - src.min(0))),
        "sink_spread": float(np.max(snk.max(0) - snk.min(0))),
        "v_src": V_SRC,
        "v_snk": V_SNK,
    }
    data = {
        "params": {"sources": CHAR.sources, "sinks": CHAR.sinks, "den": CHAR.den},
        "i_ref": i_ref.tolist(),
        "source_error": src.tolist(),
        "sink_error": snk.tolist(),
    }
    # power of a one-source, one-sink generator at I_ref = 1 nA: its supply plus the sinks' currents
    p1 = Params(sources=(1,), sinks=(1,))
    r1 = runner.run(_sim(p1, corner, temp, sweep=(1.0, 1.0, 1.0)))
    power = {
        "i_ref": 1e-9,
        "outputs": "1 source + 1 sink of 1 nA",
        "watts": float(common.VDD * (-r1[current("vdd")][0] - r1[current("vk1")][0])),
    }
    return data, fit, {"power": power}


class Calibration:
    def __init__(self, table: dict):
        self.table = table
        f = table["fit"]
        self.i_unit = np.asarray(f["i_unit"])

    def current(self, kind: str, i_ref: float, m: int, den: int) -> float:
        """Calibrated output of a 'source' or 'sink' output of m units over den reference units."""
        err = common.log_interp(i_ref / den, self.i_unit, self.table["fit"][f"{kind}_error"])
        return float(i_ref * m / den * (1 + err))

    def multiplicity(self, kind: str, target: float, i_ref: float, den: int) -> int:
        """The m whose calibrated output is nearest `target`."""
        m0 = max(1, round(target / i_ref * den))
        cands = [m for m in (m0 - 1, m0, m0 + 1) if 1 <= m <= mirror.MAX_UNITS]
        return min(cands, key=lambda m: abs(self.current(kind, i_ref, m, den) - target))


def load_calibration(corner: str = "tt", temp: float = 27.0) -> Calibration:
    return Calibration(common.load_table(NAME, corner, temp))


HELD_OUT = Params(sources=(2, 5), sinks=(1, 7), den=3)
HELD_OUT_SWEEP = (0.31, 1.9, 0.53)


def validate(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2, calibration=None) -> dict:
    cal = calibration or load_calibration(corner, temp)
    res = runner.run(_sim(HELD_OUT, corner, temp, sweep=HELD_OUT_SWEEP))
    i_ref, src, snk = _outputs(res, HELD_OUT)
    ideal_err, cal_err = [], []
    for kind, errs, ms in (("source", src, HELD_OUT.sources), ("sink", snk, HELD_OUT.sinks)):
        for e, m in zip(errs, ms):
            spice = i_ref * m / HELD_OUT.den * (1 + e)
            model = np.array([cal.current(kind, i, m, HELD_OUT.den) for i in i_ref])
            ideal_err.extend(np.abs(e / (1 + e)))
            cal_err.extend(np.abs(model / spice - 1))
    return {"ideal_max_rel_error": float(max(ideal_err)), "calibrated_max_rel_error": float(max(cal_err))}


def mismatch(runner: Runner, corner: str = "tt", temp: float = 27.0, n: int = 8, seed: int = 1, jobs: int = 2) -> dict:
    """Sigma of a 1-unit source and sink output over n Monte Carlo draws (I_ref = 1 nA)."""
    p = Params(sources=(1,), sinks=(1,))
    results = runner.run_many(
        [_sim(p, corner, temp, sweep=(1.0, 1.0, 1.0), mc_seed=seed + k) for k in range(n)], jobs=jobs
    )
    src = np.array([r[current("vs1")][0] / 1e-9 for r in results])
    snk = np.array([-r[current("vk1")][0] / 1e-9 for r in results])
    return {
        "n": n,
        "source": {"mean": float(src.mean()), "sigma": float(src.std(ddof=1))},
        "sink": {"mean": float(snk.mean()), "sigma": float(snk.std(ddof=1))},
    }


def plot(table: dict, path) -> None:
    plt = common.agg_pyplot()
    d = table["data"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, style in (("source", "-"), ("sink", "--")):
        for m, e in zip(d["params"][f"{kind}s"], d[f"{kind}_error"]):
            ax.semilogx(d["i_ref"], 100 * np.asarray(e), style, label=f"{kind} x{m}/{d['params']['den']}")
    ax.set(title="bias generator output error", xlabel="I_ref [A]", ylabel="I_out / ideal - 1 [%]")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    common.save_figure(fig, path)
