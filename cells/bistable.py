"""The bistable memory cell (FQ-BMRU stage): a Schmitt trigger on a current with three bias currents.

Behaviour (ideal): the state sets when the input exceeds beta_hi = I_thresh, resets when it falls
below beta_lo = I_thresh - I_width, and holds in between; the output sinks I_gain when set, 0 else.

Topology (22 transistors: a 9-transistor current-starved-inverter core whose input copy and output
source are cascoded, so its threshold and level carry no systematic offset, plus a phase keeper):
* input: a cascoded nfet diode stack (4/8 under 4/4) takes the candidate current into ``in``; it is
  also the layer's ReLU (a net negative current only pulls ``in`` to ground). A cascoded copy sinks
  the input from the decision node ``a``, so the copy does not depend on the voltage of ``a``;
* ``a`` is pulled up by I_thresh (pfet 4/8 mirror of the pfet diode on port ``ith``);
* a current-starved inverter (1 i_unit from the shared ``vsp``/``vsn`` biases) drives ``b`` = state;
* positive feedback: when ``b`` is high, a switch adds an I_width sink (nfet 4/8) on ``a``;
* output: a cascoded nfet source (4/8 under 4/4, mirrored from the cascoded diode on port ``ig``)
  sinks I_gain from ``out`` through a switch on ``b`` placed between the source and its cascode, which
  keeps the turn-on glitch on ``out`` small (docs/measurements.md).
* phase keeper (4 switches): while ``en`` is low, a switch path gated by the state pulls ``a`` hard to the
  rail that agrees with ``b`` (ground when set, VDD when reset), so the cell holds whatever its input does.
  A network enables each layer in its own slot of the frame, after the layer before it has settled:
  a cell then never latches a transient candidate (the inter-layer race of free-running cells).
  With ``en`` tied to VDD and ``enb`` to ground the cell runs free (unclocked).

Ports: ``vdd in out ith iw ig vsp vsn en enb``
* ``in``   candidate current, sourced into the cell (>= 0; negative net current reads as 0)
* ``out``  sinks I_gain when set (keep it at 0.5..1.5 V, e.g. a pfet diode of the next stage)
* ``ith``  I_thresh, drawn out of this port (a sinking bias output)
* ``iw``, ``ig``  I_width and I_gain, sourced into these ports (sourcing bias outputs)
* ``vsp``, ``vsn``  shared starving-bias gate voltages (pfet / nfet diodes carrying 1 i_unit)
* ``en``, ``enb``  the layer's phase (high: the cell follows its input) and its complement
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from cells import common
from cells.common import Subckt
from cells.facts import Limits, MemoryCell, Mismatch, Port, SharedBias
from compiler.foundation.errors import CellParameterError
from compiler.foundation.ngspice import Runner
from compiler.foundation.simulation import TIME, Pwl, Simulation, Tran, current

NAME = "bistable"
# The ports with their roles (cells/facts.py): I_thresh is drawn out of `ith`, I_width and I_gain are
# sourced into `iw` and `ig`; each takes the stage field of its name.
PORT_ROLES = (
    Port("vdd", "supply"),
    Port("in", "input"),
    Port("out", "output"),
    Port("ith", "bias", field="thresh", polarity="n"),
    Port("iw", "bias", field="width", polarity="p"),
    Port("ig", "bias", field="gain", polarity="p"),
    Port("vsp", "shared"),
    Port("vsn", "shared"),
    Port("en", "enable"),
    Port("enb", "enable_b"),
)
PORTS = tuple(p.name for p in PORT_ROLES)
FREE_RUNNING = ("vdd", "0")  # (en, enb) of a cell that is always enabled
W_SRC, L_SRC = 4.0, 8.0  # current sources and mirrors (threshold mismatch sigma 4.2 % measured at 4/8)
L_CASCODE = 4.0
# Inverter starving current (shared bias), in units of the design's i_unit. It sets how fast the state
# node slews and, through the inverter's trip points, where the thresholds fall (calibrated), not the
# static current of a cell; the chip pays it twice (two diodes). Its choice: docs/measurements.md,
# "Low power".
STARVE_UNITS = 1
I_STARVE = STARVE_UNITS * common.I_UNIT  # the starving current the calibration tables are measured with
MIN_WIDTH_RATIO = 0.1  # I_width / I_thresh below this loses the hysteresis to mismatch
V_OUT = 1.0  # output node voltage in characterisation (a pfet diode of the next stage)

TEMPLATE = """\
* bistable memory cell: set above I_thresh, reset below I_thresh - I_width, output I_gain when set
.subckt {{ name }} vdd in out ith iw ig vsp vsn en enb
* input: cascoded nfet diode (the ReLU) and its cascoded copy sinking from decision node a
XMi1 x1 x1 0 0 {{ NFET }} W={{ w }} L={{ l }}
XMi1c in in x1 0 {{ NFET }} W={{ w }} L={{ lc }}
XMi2 x2 x1 0 0 {{ NFET }} W={{ w }} L={{ l }}
XMi2c a in x2 0 {{ NFET }} W={{ w }} L={{ lc }}
* threshold: I_thresh sourced into a
XMthd ith ith vdd vdd {{ PFET }} W={{ w }} L={{ l }}
XMth a ith vdd vdd {{ PFET }} W={{ w }} L={{ l }}
* current-starved inverter a -> b (b = state)
XMsp sp vsp vdd vdd {{ PFET }} W=1 L=1
XMip b a sp vdd {{ PFET }} W=1 L=0.5
XMin b a sn 0 {{ NFET }} W=1 L=0.5
XMsn sn vsn 0 0 {{ NFET }} W=1 L=1
* hysteresis: I_width sunk from a while the state is set
XMwd iw iw 0 0 {{ NFET }} W={{ w }} L={{ l }}
XMhs a b h 0 {{ NFET }} W=1 L=0.5
XMh h iw 0 0 {{ NFET }} W={{ w }} L={{ l }}
* output: I_gain sunk from out while the state is set; cascode on top, switch below it (no charge glitch on out)
XMgd y1 y1 0 0 {{ NFET }} W={{ w }} L={{ l }}
XMgdc ig ig y1 0 {{ NFET }} W={{ w }} L={{ lc }}
XMgc out ig g2 0 {{ NFET }} W={{ w }} L={{ lc }}
XMgs g2 b g 0 {{ NFET }} W=1 L=0.5
XMg g y1 0 0 {{ NFET }} W={{ w }} L={{ l }}
* phase keeper: while en is low, a is held at the rail that agrees with b
XMkn a b kn 0 {{ NFET }} W=1 L=0.5
XMkne kn enb 0 0 {{ NFET }} W=1 L=0.5
XMkp a b kp vdd {{ PFET }} W=1 L=0.5
XMkpe kp en vdd vdd {{ PFET }} W=1 L=0.5
.ends {{ name }}
"""

STARVE_BIAS = """\
* shared starving bias of the bistable cells: vsp, vsn carry {{ i }} each (one per chip)
.subckt bistable_starve_bias vdd vsp vsn
Isp vsp 0 {{ i }}
XMspd vsp vsp vdd vdd {{ PFET }} W=1 L=1
Isn vdd vsn {{ i }}
XMsnd vsn vsn 0 0 {{ NFET }} W=1 L=1
.ends bistable_starve_bias
"""

PHASE_DRIVER = """\
* phase driver of one layer of bistable cells: en follows ph, enb is its complement (one per layer)
.subckt phase_driver vdd ph en enb
XMbp enb ph vdd vdd {{ PFET }} W=2 L=0.5
XMbn enb ph 0 0 {{ NFET }} W=1 L=0.5
XMep en enb vdd vdd {{ PFET }} W=2 L=0.5
XMen en enb 0 0 {{ NFET }} W=1 L=0.5
.ends phase_driver
"""


@dataclass(frozen=True)
class Params:
    """Bias currents in amperes: I_thresh = beta_hi, I_width = beta_hi - beta_lo, I_gain = alpha, of a cell
    in a design whose unit current is `i_unit` (its starving bias is STARVE_UNITS x i_unit)."""

    I_thresh: float
    I_width: float
    I_gain: float
    i_unit: float = common.I_UNIT

    def __post_init__(self):
        floor = common.min_current(self.i_unit)
        common.check_current(NAME, "I_thresh", self.I_thresh, lo=floor)
        common.check_current(NAME, "I_gain", self.I_gain, lo=floor)
        if (
            not (isinstance(self.I_width, (int, float)) and math.isfinite(self.I_width))
            or self.I_width >= self.I_thresh
        ):
            raise CellParameterError(
                f"bistable: I_width = {self.I_width!r} A must be below I_thresh = {self.I_thresh:g} A "
                "(the reset threshold I_thresh - I_width must stay positive)."
            )
        if self.I_width < MIN_WIDTH_RATIO * self.I_thresh:
            raise CellParameterError(
                f"bistable: I_width = {self.I_width:g} A is below {MIN_WIDTH_RATIO:g} x I_thresh; the hysteresis "
                "would be lost to mismatch. Widen delta in the model or clamp it to the minimum."
            )


def subckt(params: Params | None = None) -> Subckt:
    """The cell netlist. The bias currents are port currents, so one subckt serves every unit."""
    text = common.render(TEMPLATE, name=NAME, w=W_SRC, l=L_SRC, lc=L_CASCODE)
    return Subckt(NAME, PORTS, text)


def starve_bias(i_unit: float = common.I_UNIT) -> Subckt:
    """The shared starving bias of a design whose unit current is `i_unit` (ideal sources of STARVE_UNITS
    i_unit; a chip takes them from the bias generator)."""
    current = STARVE_UNITS * i_unit
    return Subckt("bistable_starve_bias", ("vdd", "vsp", "vsn"), common.render(STARVE_BIAS, i=f"{current:g}"))


def phase_driver() -> Subckt:
    """Two inverters turning a layer's phase input into the en/enb pair its cells' keepers need."""
    return Subckt("phase_driver", ("vdd", "ph", "en", "enb"), common.render(PHASE_DRIVER))


def ideal(params: Params) -> tuple[float, float, float]:
    """(beta_hi, beta_lo, alpha) of the ideal cell."""
    return params.I_thresh, params.I_thresh - params.I_width, params.I_gain


def supply_current(bias: dict, candidates=None, states=None, enabled: float = 1.0, xp=np):
    """Current (A) cells draw from VDD through their own devices, given the per-unit currents of each bias
    field (``bias["thresh"]``: every unit's I_thresh): I_thresh through the pfet diode on ``ith``, and
    through its copy onto ``a``: while the cell is enabled, as much of I_thresh as the input copy sinks
    there, min(h, I_thresh), for candidates h ([samples, units], A; all of I_thresh when not given); while
    its phase keeper holds it (the share 1 - `enabled` of the frame), all of I_thresh when set (``a`` held at
    ground) and h when reset (the keeper's pfet feeds the input copy), given the units' `states` ([samples,
    units], > 0: set). I_width and I_gain come from the bias generator's pfets; the starving inverters draw
    only while they switch. `xp`: numpy (a float) or jax.numpy (traceable, for training)."""
    dtype = np.float64 if xp is np else xp.float32
    thresh = xp.asarray(bias["thresh"], dtype)
    if candidates is None:
        total = 2 * thresh.sum()
    else:
        h = xp.asarray(candidates, dtype)
        through_copy = xp.minimum(h, thresh)
        if states is not None and enabled < 1:
            held = xp.where(xp.asarray(states) > 0, thresh, h)
            through_copy = enabled * through_copy + (1 - enabled) * held
        total = thresh.sum() + xp.mean(through_copy, axis=0).sum()
    return float(total) if xp is np else total


def state_nodes(levels: int = 1) -> tuple[str, ...]:
    """The node holding a cell's state: ``b`` (high when set)."""
    return ("b",)


# The starving current every bistable inverter shares: one bias-generator tap per chip, whose vsn pfet
# output and vsp diode each carry it from VDD. It scales with the design's i_unit, so the cell's static
# behaviour is that of the tables (Calibration.at_unit) and its inverters switch as fast relative to
# the signals at any i_unit.
STARVE = SharedBias("bistable_starve", "starve", STARVE_UNITS, ports=("vsp", "vsn"), branches=2)
FACTS = MemoryCell(
    NAME,
    PORT_ROLES,
    Limits(common.I_MIN, common.I_MAX),
    calibration=NAME,
    supply_current=supply_current,
    state_nodes=state_nodes,
    shared=STARVE,
    subckt=subckt,
    mismatch=Mismatch(set=0.042, reset=0.043, level=0.040, draws=12),  # at 1 / 0.25 / 1 nA, tt, 27 C
)


# ----------------------------------------------------------------------------------------------
# Testbenches

RAMP_TIME = 0.1  # seconds per slow window: quasi-static (the window spans 0.3 * I_thresh)
SPAN = 0.15  # half-width of each slow window, as a fraction of I_thresh
HOLD = 2e-3
OUT, SUPPLY = current("vout"), current("vdd")  # a bench's output and supply currents


def _ramp_stimulus(p: Params, ramp_time=RAMP_TIME):
    """Fast to below the set threshold, slow through it, hold, fast to above reset, slow through it, hold
    (the fast steps and holds last longer in a design of a smaller unit current, whose cell is slower)."""
    hi, lo, span = p.I_thresh, p.I_thresh - p.I_width, SPAN * p.I_thresh
    slower = common.I_UNIT / p.i_unit
    t, pts = 0.0, [(0.0, 0.0)]
    for dt, v in (
        (1e-3 * slower, hi - span),
        (ramp_time, hi + span),
        (HOLD * slower, hi + span),
        (1e-3 * slower, lo + span),
        (ramp_time, max(lo - span, 0.0)),
        (HOLD * slower, max(lo - span, 0.0)),
    ):
        t += dt
        pts.append((t, v))
    return pts


def _bench_circuit(p: Params, enable) -> str:
    """One cell with its starving bias, bias currents from ideal sources, the output held at V_OUT and
    `enable` = (en, enb) nets: the elements every bench of the cell shares (the input comes as a stimulus)."""
    return "\n".join(
        [
            subckt().text,
            starve_bias(p.i_unit).text,
            "Vdd vdd 0 1.8",
            "Vbias vddb 0 1.8",
            starve_bias(p.i_unit).instance("S", ["vddb", "vsp", "vsn"]),
            f"Ith ith 0 {p.I_thresh:.6g}",
            f"Iw vddb iw {p.I_width:.6g}",
            f"Ig vddb ig {p.I_gain:.6g}",
            f"Vout vo 0 {V_OUT:g}",
            subckt().instance("C", ["vdd", "in", "vo", "ith", "iw", "ig", "vsp", "vsn", *enable]),
        ]
    )


def _hysteresis_sim(p: Params, corner, temp, ramp_time=RAMP_TIME, mc_seed=None) -> tuple[Simulation, list]:
    pts = _ramp_stimulus(p, ramp_time)
    circuit = _bench_circuit(p, FREE_RUNNING)
    times, values = common.pwl(pts)
    sim = Simulation(
        circuit,
        analyses=(Tran(ramp_time / 1000, pts[-1][0], tmax=ramp_time / 100),),
        saves=(OUT, SUPPLY),
        stimuli=(Pwl("in", "vddb", "in", times, values),),
        title=f"bistable hysteresis {p}",
        corner=corner,
        temp=temp,
        mc_seed=mc_seed,
    )
    return sim, pts


def _measure_hysteresis(res, p: Params, pts) -> dict:
    t = res[TIME]
    i_out = -res[OUT]
    times, values = common.pwl(pts)
    i_in = np.interp(t, times, values)
    half = 0.5 * p.I_gain
    t_up = common.crossing(t, i_out, half, rising=True)
    t_dn = common.crossing(t, i_out, half, rising=False, after=times[3])
    up = float(np.interp(t_up, times, values)) if math.isfinite(t_up) else float("nan")
    down = float(np.interp(t_dn, times, values)) if math.isfinite(t_dn) else float("nan")
    hold_set, hold_reset = times[3] - times[2], times[6] - times[5]
    reset_window = (times[5] + 0.2 * hold_reset, times[6])
    level = common.mean_between(t, i_out, times[2] + 0.2 * hold_set, times[3])
    low = common.mean_between(t, i_out, *reset_window)
    # supply of the cell: its vdd pin plus the bias currents it takes from the bias generator
    i_supply = -res[SUPPLY] + p.I_width + p.I_gain
    p_set = common.VDD * common.mean_between(t, i_supply, times[2] + 0.2 * hold_set, times[3])
    p_reset = common.VDD * common.mean_between(t, i_supply, *reset_window)
    # turn-on glitch: peak output and the charge above I_gain in the 200 us after the set crossing
    after = (t > t_up - 1e-6) & (t < t_up + 200e-6) if math.isfinite(t_up) else np.zeros_like(t, bool)
    glitch_q = float(np.trapezoid(np.clip(i_out[after] - level, 0, None), t[after])) if after.any() else float("nan")
    return {
        "I_thresh": p.I_thresh,
        "I_width": p.I_width,
        "I_gain": p.I_gain,
        "up": up,
        "down": down,
        "level": level,
        "low": low,
        "power_set": p_set,
        "power_reset": p_reset,
        "peak_over_gain": float(i_out.max() / p.I_gain),
        "glitch_charge": glitch_q,
        "loop": {"i_in": i_in[:: max(1, len(t) // 400)].tolist(), "i_out": i_out[:: max(1, len(t) // 400)].tolist()},
    }


def measure(runner: Runner, params_list, corner="tt", temp=27.0, jobs=2, ramp_time=RAMP_TIME) -> list[dict]:
    """Thresholds, level and power of each parameter set, one slow-transient simulation each."""
    built = [_hysteresis_sim(p, corner, temp, ramp_time) for p in params_list]
    results = runner.run_many([s for s, _ in built], jobs=jobs)
    return [_measure_hysteresis(r, p, pts) for r, p, (_, pts) in zip(results, params_list, built)]


OVERDRIVES = (0.05, 0.1, 0.2, 0.5, 1.0)


def _delay_sim(p: Params, up: float, corner, temp) -> tuple[Simulation, float]:
    """One netlist, one cell per overdrive: input steps from 0.5 * up to (1 + d) * up at t0."""
    t0, t_end = 0.2e-3, 0.2e-3 + 2e-3 * (1e-9 / p.I_thresh)
    lines = [
        subckt().text,
        starve_bias(p.i_unit).text,
        "Vdd vdd 0 1.8",
        "Vbias vddb 0 1.8",
        starve_bias(p.i_unit).instance("S", ["vddb", "vsp", "vsn"]),
    ]
    stimuli = []
    for k, d in enumerate(OVERDRIVES):
        lines += [
            f"Ith{k} ith{k} 0 {p.I_thresh:.6g}",
            f"Iw{k} vddb iw{k} {p.I_width:.6g}",
            f"Ig{k} vddb ig{k} {p.I_gain:.6g}",
            f"Vout{k} vo{k} 0 {V_OUT:g}",
            subckt().instance(
                f"C{k}", ["vdd", f"in{k}", f"vo{k}", f"ith{k}", f"iw{k}", f"ig{k}", "vsp", "vsn", *FREE_RUNNING]
            ),
        ]
        stimuli.append(
            Pwl(f"in{k}", "vddb", f"in{k}", (0, t0, t0 + 1e-7, t_end), (0.5 * up, 0.5 * up, (1 + d) * up, (1 + d) * up))
        )
    return Simulation(
        "\n".join(lines),
        analyses=(Tran(t_end / 2000, t_end, tmax=t_end / 400),),
        saves=tuple(current(f"vout{k}") for k in range(len(OVERDRIVES))),
        stimuli=tuple(stimuli),
        title=f"bistable delay {p}",
        corner=corner,
        temp=temp,
    ), t0


# ----------------------------------------------------------------------------------------------
# Characterisation

GRID_THRESH = (0.25e-9, 0.5e-9, 1e-9, 2e-9, 4e-9, 8e-9)
GRID_RATIO = (0.1, 0.25, 0.5, 0.8)
GRID_GAIN = (0.25e-9, 0.5e-9, 1e-9, 2e-9, 4e-9, 8e-9)
NOMINAL = Params(1e-9, 0.25e-9, 1e-9)
DELAY_THRESH = (1e-9, 4e-9)


def characterize(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2):
    grid = [Params(i, r * i, 1e-9) for i in GRID_THRESH for r in GRID_RATIO]
    gains = [Params(1e-9, 0.25e-9, g) for g in GRID_GAIN if g != 1e-9]
    rows = measure(runner, grid + gains, corner, temp, jobs)
    hyst, level_rows = rows[: len(grid)], rows[len(grid) :]
    nominal = next(r for r in hyst if r["I_thresh"] == 1e-9 and abs(r["I_width"] - 0.25e-9) < 1e-15)
    level_rows = sorted(level_rows + [nominal], key=lambda r: r["I_gain"])
    up = np.array([[r["up"] for r in hyst if r["I_thresh"] == i] for i in GRID_THRESH])  # [thresh, ratio]
    width = np.array([[r["up"] - r["down"] for r in hyst if r["I_thresh"] == i] for i in GRID_THRESH])
    iw = np.array(GRID_RATIO)[None, :] * np.array(GRID_THRESH)[:, None]
    fit = {
        "grid_thresh": list(GRID_THRESH),
        "grid_ratio": list(GRID_RATIO),
        "grid_gain": list(GRID_GAIN),
        "up_over_thresh": (up / np.array(GRID_THRESH)[:, None]).tolist(),
        "width_over_iwidth": (width / iw).tolist(),
        "level_over_gain": [r["level"] / r["I_gain"] for r in level_rows],
        "protocol": {"ramp_time": RAMP_TIME, "span": SPAN, "v_out": V_OUT, "i_starve": I_STARVE},
    }
    # switching delay against overdrive, at two threshold currents
    sims = []
    for i in DELAY_THRESH:
        row = next(r for r in hyst if r["I_thresh"] == i and abs(r["I_width"] - 0.25 * i) < 1e-15)
        sims.append((_delay_sim(Params(i, 0.25 * i, 1e-9), row["up"], corner, temp), i))
    delays = {}
    for ((sim, t0), i), res in zip(sims, runner.run_many([s for (s, _), _ in sims], jobs=jobs)):
        delays[f"{i:g}"] = [
            common.crossing(res[TIME], -res[current(f"vout{k}")], 0.5e-9, True) - t0 for k in range(len(OVERDRIVES))
        ]
    fit["delay"] = {"overdrive": list(OVERDRIVES), "by_thresh": delays}
    data = {
        "hysteresis": [{k: v for k, v in r.items() if k != "loop"} for r in hyst],
        "level": [{k: v for k, v in r.items() if k != "loop"} for r in level_rows],
        "nominal_loop": nominal["loop"],
    }
    fit["glitch"] = {
        "peak_over_gain_max": max(r["peak_over_gain"] for r in rows),
        "charge_max": max(r["glitch_charge"] for r in rows),
        "nominal_peak_over_gain": nominal["peak_over_gain"],
        "nominal_charge": nominal["glitch_charge"],
    }
    power = {
        "I_thresh": 1e-9,
        "I_width": 0.25e-9,
        "I_gain": 1e-9,
        "set": nominal["power_set"],
        "reset": nominal["power_reset"],
        "watts": 0.5 * (nominal["power_set"] + nominal["power_reset"]),
    }
    return data, fit, {"power": power}


# ----------------------------------------------------------------------------------------------
# Calibrated model


class Calibration:
    """Thresholds and level from the measured tables: bilinear in (log I_thresh, I_width/I_thresh)."""

    def __init__(self, table: dict):
        self.table = table
        fit = table["fit"]
        self.log_thresh = np.log(np.asarray(fit["grid_thresh"]))
        self.ratio = np.asarray(fit["grid_ratio"])
        self.log_gain = np.log(np.asarray(fit["grid_gain"]))
        self.up_tab = np.asarray(fit["up_over_thresh"])
        self.width_tab = np.asarray(fit["width_over_iwidth"])
        self.level_tab = np.asarray(fit["level_over_gain"])

    def _bilinear(self, tab, i_thresh, ratio, xp=np):
        rows = xp.stack(
            [
                xp.interp(xp.log(i_thresh), xp.asarray(self.log_thresh), xp.asarray(tab[:, j]))
                for j in range(tab.shape[1])
            ]
        )
        return (
            xp.interp(ratio, xp.asarray(self.ratio), rows)
            if np.ndim(ratio) == 0
            else xp.stack([xp.interp(r, xp.asarray(self.ratio), rows[:, k]) for k, r in enumerate(ratio)])
        )

    def thresholds(self, I_thresh, I_width, I_gain, xp=np):
        """(beta_hi, beta_lo, alpha) the circuit realises for these bias currents (scalars; xp = numpy or jax.numpy)."""
        ratio = I_width / I_thresh
        up = I_thresh * self._bilinear(self.up_tab, I_thresh, ratio, xp)
        width = I_width * self._bilinear(self.width_tab, I_thresh, ratio, xp)
        level = I_gain * xp.interp(xp.log(I_gain), xp.asarray(self.log_gain), xp.asarray(self.level_tab))
        return up, up - width, level

    @property
    def leakage(self) -> float:
        """The largest output current measured in the reset state (A): leakage, which does not scale
        with the unit current as the table's current axes do."""
        return max(row["low"] for row in self.table["data"]["level"])

    def at_unit(self, i_unit: float) -> "Calibration":
        """The table for a design whose unit current is `i_unit` (A): measured with the starving bias at
        STARVE_UNITS x I_UNIT, it serves a starving bias of STARVE_UNITS x i_unit with its current axes
        scaled by i_unit / I_UNIT (weak inversion: scaling every current keeps the static behaviour)."""
        if i_unit == common.I_UNIT:
            return self
        scaled = copy.copy(self)
        scaled.log_thresh = self.log_thresh + math.log(i_unit / common.I_UNIT)
        scaled.log_gain = self.log_gain + math.log(i_unit / common.I_UNIT)
        return scaled

    def invert(self, beta_hi: float, delta: float, alpha: float) -> Params:
        """Bias currents whose calibrated cell has set threshold beta_hi, width delta and level alpha (A)."""
        return Params(*(float(current) for current in self.bias_currents(beta_hi, delta, alpha)))

    def bias_currents(self, beta_hi, delta, alpha, iterations: int = 40) -> tuple:
        """(I_thresh, I_width, I_gain) realising beta_hi, delta, alpha (A; arrays of units or scalars): the
        fixed point of the calibrated model, iterated until no unit moves or `iterations` are done."""
        beta_hi, delta, alpha = (np.asarray(v, np.float64) for v in (beta_hi, delta, alpha))
        if not (np.all(beta_hi > 0) and np.all(0 < delta) and np.all(delta < beta_hi) and np.all(alpha > 0)):
            raise CellParameterError(
                f"bistable: need 0 < delta < beta_hi and alpha > 0, got beta_hi={beta_hi}, delta={delta}, "
                f"alpha={alpha}."
            )
        ith, iw = beta_hi, delta
        for _ in range(iterations):
            ratio = np.minimum(np.maximum(iw / ith, self.ratio[0]), self.ratio[-1])
            new_ith = beta_hi / self._bilinear(self.up_tab, ith, ratio)
            new_iw = delta / self._bilinear(self.width_tab, new_ith, ratio)
            if np.array_equal(new_ith, ith) and np.array_equal(new_iw, iw):
                break
            ith, iw = new_ith, new_iw
        ig = alpha
        for _ in range(iterations):
            new_ig = alpha / np.interp(np.log(ig), self.log_gain, self.level_tab)
            if np.array_equal(new_ig, ig):
                break
            ig = new_ig
        return ith, iw, ig

    def delay(self, I_thresh: float, overdrive: float) -> float:
        """Switching delay (s) after a step to (1 + overdrive) * beta_hi: log-log interpolation, scaled 1/I."""
        d = self.table["fit"]["delay"]
        ref = min(d["by_thresh"], key=lambda k: abs(math.log(float(k) / I_thresh)))
        od, dl = np.log(d["overdrive"]), np.log(d["by_thresh"][ref])
        return float(np.exp(np.interp(math.log(overdrive), od, dl))) * float(ref) / I_thresh


def step(state, h, beta_hi, beta_lo):
    """One frame of the cell (JAX): the model zoo's FQ-BMRU step, so cell and model share one equation."""
    from models.cells import fq_bmru_step

    return fq_bmru_step({"beta_lo": beta_lo, "delta": beta_hi - beta_lo}, h, state)


def run_frames(h, beta_hi, beta_lo, alpha, state0=0.0):
    """Output current per frame for a sequence of frame inputs h (JAX scan)."""
    from models.cells import fq_bmru_run

    h = jnp.asarray(h, jnp.float32)
    q = fq_bmru_run(
        {"beta_lo": beta_lo, "delta": beta_hi - beta_lo},
        h[:, None],
        jnp.asarray([state0], jnp.float32),
        mode="sequential",
    )
    return alpha * q[:, 0]


def load_calibration(corner: str = "tt", temp: float = 27.0) -> Calibration:
    return Calibration(common.load_table(NAME, corner, temp))


# ----------------------------------------------------------------------------------------------
# Held-out validation, mismatch, plot

HELD_OUT = (Params(1.5e-9, 0.525e-9, 3e-9), Params(0.7e-9, 0.42e-9, 0.6e-9), Params(5e-9, 1e-9, 1.5e-9))
FRAME = 1e-3
ENABLE_WINDOW = (0.3, 0.9)  # part of an enabled frame during which the phase is high
VDD_PHASE = 1.8


def _frames_sim(p: Params, h, corner, temp, enable=None):
    """The cell through frames of input h; with `enable` (a bool per frame) its phase is high only in the
    middle of the enabled frames (ENABLE_WINDOW), as a network schedules it; otherwise it runs free."""
    times, values = [0.0], [float(h[0])]
    for k, v in enumerate(h):
        times += [k * FRAME + 1e-6 if k else 0.0, (k + 1) * FRAME]
        values += [float(v), float(v)]
    stimuli = [Pwl("in", "vddb", "in", tuple(times[1:]), tuple(values[1:]))]
    phase = list(FREE_RUNNING)
    if enable is not None:
        phase = ["en", "enb"]
        t_en, v_en = [0.0], [0.0]
        for k, on in enumerate(enable):
            if on:
                start, stop = ((k + w) * FRAME for w in ENABLE_WINDOW)
                t_en += [start, start + 1e-6, stop, stop + 1e-6]
                v_en += [0.0, VDD_PHASE, VDD_PHASE, 0.0]
        t_en.append(len(h) * FRAME)
        v_en.append(0.0)
        stimuli += [
            Pwl("en", "en", "0", tuple(t_en), tuple(v_en), kind="V"),
            Pwl("enb", "enb", "0", tuple(t_en), tuple(VDD_PHASE - v for v in v_en), kind="V"),
        ]
    circuit = _bench_circuit(p, phase)
    return Simulation(
        circuit,
        analyses=(Tran(FRAME / 200, len(h) * FRAME, tmax=FRAME / 50),),
        saves=(OUT,),
        stimuli=tuple(stimuli),
        title="bistable frames",
        corner=corner,
        temp=temp,
    )


def _frame_outputs(runner: Runner, p: Params, h, corner, temp, enable=None) -> np.ndarray:
    """Output current at the end of each frame."""
    res = runner.run(_frames_sim(p, h, corner, temp, enable))
    ends = (np.arange(len(h)) + 1) * FRAME - 0.02 * FRAME
    return np.interp(ends, res[TIME], -res[OUT])


def phase_check(runner: Runner, corner: str = "tt", temp: float = 27.0) -> dict:
    """The keeper: a frame sequence crossing both thresholds, the cell enabled only in some frames. The
    state must follow the FQ-BMRU in enabled frames and hold in the others, whatever the input does."""
    p = NOMINAL
    h = np.array([1.5, 0.2, 1.5, 1.5, 0.2, 0.2, 1.5, 0.9, 0.2, 1.5]) * p.I_thresh
    enable = np.array([1, 0, 0, 1, 0, 1, 0, 1, 1, 0], bool)
    spice = _frame_outputs(runner, p, h, corner, temp, enable) > p.I_gain / 2
    state, expected = 0.0, []
    for v, on in zip(h, enable):
        if on:
            state = 1.0 if v > p.I_thresh else 0.0 if v < p.I_thresh - p.I_width else state
        expected.append(state > 0.5)
    return {
        "agreement": float(np.mean(spice == np.array(expected))),
        "spice": spice.tolist(),
        "expected": expected,
        "enable": enable.tolist(),
    }


def validate(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2, calibration=None) -> dict:
    """Ideal and calibrated thresholds/levels against SPICE at held-out biases, and a frame sequence."""
    cal = calibration or load_calibration(corner, temp)
    rows = measure(runner, HELD_OUT, corner, temp, jobs)
    report = {"points": []}
    worst = {"ideal": 0.0, "calibrated": 0.0}
    for p, row in zip(HELD_OUT, rows):
        spice = (row["up"], row["down"], row["level"])
        model = tuple(float(x) for x in cal.thresholds(p.I_thresh, p.I_width, p.I_gain))
        entry = {"params": [p.I_thresh, p.I_width, p.I_gain], "spice": spice}
        for name, pred in (("ideal", ideal(p)), ("calibrated", model)):
            errs = [abs(a / b - 1) for a, b in zip(pred, spice)]
            entry[name] = {"up": errs[0], "down": errs[1], "level": errs[2]}
            worst[name] = max(worst[name], *errs)
        report["points"].append(entry)
    report["ideal_max_rel_error"], report["calibrated_max_rel_error"] = worst["ideal"], worst["calibrated"]
    # frame sequence through the first held-out cell: state per frame, calibrated model vs SPICE
    p = HELD_OUT[0]
    hi, lo, alpha = (float(x) for x in cal.thresholds(p.I_thresh, p.I_width, p.I_gain))
    h = np.array([0.2, 1.2, 0.8, 0.9, 0.5, 0.9, 1.4, 0.2, 0.95, 1.1]) * p.I_thresh
    spice_out = _frame_outputs(runner, p, h, corner, temp)
    model_out = np.asarray(run_frames(h, hi, lo, alpha))
    report["frames"] = {
        "agreement": float(np.mean((spice_out > alpha / 2) == (model_out > alpha / 2))),
        "rms_error_of_alpha": common.rms((spice_out - model_out) / alpha),
    }
    return report


def mismatch(
    runner: Runner,
    corner: str = "tt",
    temp: float = 27.0,
    n: int = 8,
    seed: int = 1,
    params: Params = NOMINAL,
    jobs: int = 2,
) -> dict:
    """Sigma of set/reset thresholds, width and level over `n` Monte Carlo draws (one cell per draw)."""
    built = [_hysteresis_sim(params, corner, temp, mc_seed=seed + k) for k in range(n)]
    results = runner.run_many([s for s, _ in built], jobs=jobs)
    rows = [_measure_hysteresis(r, params, pts) for r, (_, pts) in zip(results, built)]
    out = {"n": n, "params": [params.I_thresh, params.I_width, params.I_gain]}
    for key, f in (
        ("up", lambda r: r["up"]),
        ("down", lambda r: r["down"]),
        ("width", lambda r: r["up"] - r["down"]),
        ("level", lambda r: r["level"]),
    ):
        v = np.array([f(r) for r in rows])
        out[key] = {
            "mean": float(v.mean()),
            "sigma": float(v.std(ddof=1)),
            "rel_sigma": float(v.std(ddof=1) / v.mean()),
        }
    return out


def plot(table: dict, path) -> None:
    plt = common.agg_pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    loop = table["data"]["nominal_loop"]
    axes[0].plot(np.asarray(loop["i_in"]) * 1e9, np.asarray(loop["i_out"]) * 1e9)
    axes[0].set(
        title="hysteresis loop (I_thresh 1 nA, I_width 0.25 nA, I_gain 1 nA)",
        xlabel="I_in [nA]",
        ylabel="I_out [nA] (turn-on glitch clipped)",
        ylim=(-0.1, 1.5),
    )
    fit = table["fit"]
    for j, r in enumerate(fit["grid_ratio"]):
        axes[1].semilogx(fit["grid_thresh"], [row[j] for row in fit["up_over_thresh"]], "o-", label=f"up, r={r:g}")
        axes[1].semilogx(
            fit["grid_thresh"], [row[j] for row in fit["width_over_iwidth"]], "s--", label=f"width, r={r:g}"
        )
    axes[1].semilogx(fit["grid_gain"], fit["level_over_gain"], "k^-", label="level / I_gain (vs I_gain)")
    axes[1].set(title="measured / ideal", xlabel="I_thresh (or I_gain) [A]")
    axes[1].legend(fontsize=6)
    for k, v in fit["delay"]["by_thresh"].items():
        axes[2].loglog(fit["delay"]["overdrive"], v, "o-", label=f"I_thresh {float(k) * 1e9:g} nA")
    axes[2].set(title="switching delay", xlabel="overdrive (I_in / up - 1)", ylabel="delay [s]")
    axes[2].legend()
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    common.save_figure(fig, path)
