"""The n-type differential-pair integrator (DPI): a subthreshold current-mode low-pass filter.

Ideal (large-signal): tau * dI_out/dt + I_out = (I_th / I_tau) * I_in, tau = C * U_T / (kappa * I_tau).
The full ideal equation of this circuit, which the behavioural models integrate, is in log domain
(u = ln I_out):  tau * du/dt = (I_in / I_tau) / (1 + (I_out / I_th)^a) - 1, with a = 1 ideally; its
steady state is I_out = I_th * (I_in / I_tau - 1)^(1/a), i.e. (I_th / I_tau) * I_in when I_in >> I_tau.

Topology (n-type; every exponential device W/L 16/2):
* a pfet diode takes I_in out of port ``in`` and mirrors it into the tail of a pfet pair;
* pair branch 1 (gate = drain = ``vc``) charges the MIM capacitor C (``sky130_fd_pr__cap_mim_m3_1``,
  2 fF/um^2, square); branch 2 (gate = the I_th diode) dumps to ground;
* an nfet leak (gate ``vtau``) discharges ``vc`` with I_tau; the output nfet (gate ``vc``) sinks I_out
  from ``out``; the branch-2 gate and the leak gate are nfet diodes on ports ``ith`` and ``itau``.

Ports: ``vdd in out ith itau``: I_in drawn out of ``in``; I_out sunk from ``out``; I_th and I_tau
sourced into ``ith`` and ``itau``.

Calibrated model: the same ODE with three fitted parameters per bias point, tau, a and g (I_th scale),
interpolated over (log I_tau, log I_th/I_tau); tau scales with (C + C_par) where C_par is the gate
capacitance on ``vc`` fitted from two capacitor values.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from cells import common
from cells.common import Subckt
from compiler.foundation.errors import CellParameterError
from compiler.foundation.ngspice import Runner
from compiler.foundation.simulation import TIME, Pwl, Simulation, Tran, current

NAME = "dpi"
PORTS = ("vdd", "in", "out", "ith", "itau")
W, L = 16.0, 2.0
KAPPA = 0.69  # nfet 16/2 subthreshold slope factor at 0.1-1 nA (the ideal model; calibration fits tau)
C_MIN, C_MAX = 0.5e-12, 20e-12
I_LO, I_HI = 10e-12, 10e-9

TEMPLATE = """\
* n-type DPI low-pass filter, C = {{ c_pf }} pF (MIM {{ plates }}{{ side }} x {{ side }} um)
.subckt {{ name }} vdd in out ith itau
XMind in in vdd vdd {{ PFET }} W={{ w }} L={{ l }}
XMtail vx in vdd vdd {{ PFET }} W={{ w }} L={{ l }}
XM2 vc vc vx vdd {{ PFET }} W={{ w }} L={{ l }}
XM1 0 ith vx vdd {{ PFET }} W={{ w }} L={{ l }}
XMthd ith ith 0 0 {{ NFET }} W={{ w }} L={{ l }}
XMtaud itau itau 0 0 {{ NFET }} W={{ w }} L={{ l }}
XMtau vc itau 0 0 {{ NFET }} W={{ w }} L={{ l }}
XMout out vc 0 0 {{ NFET }} W={{ w }} L={{ l }}
XC vc 0 {{ MIM }} W={{ side }} L={{ side }}{{ multiplier }}
.ends {{ name }}
"""


@dataclass(frozen=True)
class Params:
    """I_tau (leak, sets tau), I_th (sets the gain I_th/I_tau), C (farads, MIM)."""

    I_tau: float
    I_th: float
    C: float = 1e-12

    def __post_init__(self):
        common.check_current(NAME, "I_tau", self.I_tau, I_LO, I_HI)
        common.check_current(NAME, "I_th", self.I_th, I_LO, I_HI)
        if not (isinstance(self.C, (int, float)) and C_MIN <= self.C <= C_MAX):
            raise CellParameterError(
                f"dpi: C = {self.C!r} F is outside {C_MIN:g}..{C_MAX:g} F; below 0.5 pF the 0.2 pF of gate "
                "capacitance dominates tau, above 20 pF the MIM plate exceeds 100 x 100 um."
            )
        if not 0.1 <= self.I_th / self.I_tau <= 30:
            raise CellParameterError(
                f"dpi: gain I_th / I_tau = {self.I_th / self.I_tau:.3g} is outside 0.1..30, where the "
                "pair leaves its exponential range."
            )

    def tau_ideal(self, temp: float = 27.0) -> float:
        return self.C * common.thermal_voltage(temp) / (KAPPA * self.I_tau)


def subckt(params: Params) -> Subckt:
    """The DPI of one capacitor value (the bias currents are port currents)."""
    side, plates = common.mim_plates(params.C)
    name = f"dpi_c{round(params.C * 1e15)}f"  # e.g. dpi_c1000f for 1 pF
    many = plates > 1
    text = common.render(
        TEMPLATE,
        name=name,
        w=W,
        l=L,
        side=side,
        plates=f"{plates} x " if many else "",
        multiplier=f" m={plates} mf={plates}" if many else "",  # mf: the model's mismatch of the whole array
        c_pf=f"{params.C * 1e12:g}",
    )
    return Subckt(name, PORTS, text)


# ----------------------------------------------------------------------------------------------
# The behavioural model (JAX): one ODE, ideal or calibrated parameters


@functools.cache
def _integrator():
    import jax
    import jax.numpy as jnp

    def integrate(theta, x_in, h, u0):
        """u = ln(I_out / I_th) on a uniform grid, time in units of the nominal tau0.

        theta = (ln tau/tau0, a, ln g); x_in[k] = I_in / I_tau held over step k of length h * tau0;
        RK4 with 4 substeps; u never falls below u0 (the measured off-state leakage).
        """
        rate, a, log_g = jnp.exp(-theta[0]), theta[1], theta[2]

        def f(u, x):
            return (x / (1.0 + jnp.exp(a * (u - log_g))) - 1.0) * rate

        def body(u, x):
            q = h / 4
            for _ in range(4):
                k1 = f(u, x)
                k2 = f(u + q / 2 * k1, x)
                k3 = f(u + q / 2 * k2, x)
                k4 = f(u + q * k3, x)
                u = jnp.maximum(u + q / 6 * (k1 + 2 * k2 + 2 * k3 + k4), u0)
            return u, u

        _, us = jax.lax.scan(body, u0, x_in)
        return jnp.concatenate([jnp.reshape(u0, (1,)), us[:-1]])

    return jax.jit(integrate), jax.jit(jax.jacfwd(integrate))


def _args(i_in, dt, I_tau, tau0, I_th, i_off):
    return (
        np.asarray(np.asarray(i_in, float) / I_tau, np.float32),
        np.float32(dt / tau0),
        np.float32(math.log(i_off / I_th)),
    )


def response(i_in, dt: float, I_tau: float, tau: float, a: float, i_th_eff: float, i_off: float = 1e-15):
    """I_out on the grid of `i_in` (A, sampled every dt, piecewise constant), starting at i_off."""
    x, h, u0 = _args(i_in, dt, I_tau, tau, i_th_eff, i_off)
    u = _integrator()[0](np.zeros(3, np.float32) + np.array([0.0, a, 0.0], np.float32), x, h, u0)
    return i_th_eff * np.exp(np.asarray(u, float))


def ideal(params: Params, i_in, dt: float, temp: float = 27.0, i_off: float = 1e-15):
    """The ideal DPI (kappa = 0.69, nominal C, a = 1, no I_th error) driven by samples i_in."""
    return response(i_in, dt, params.I_tau, params.tau_ideal(temp), 1.0, params.I_th, i_off)


# ----------------------------------------------------------------------------------------------
# Testbench and fit

LEVELS = (0, 4, 12, 6, 20, 2, 0)  # input steps in units of I_tau, each held HOLD_TAUS ideal taus
HOLD_TAUS = 10
GRID_TAU = (0.03e-9, 0.1e-9, 0.3e-9, 1e-9)
GRID_GAIN = (1.0, 3.0, 10.0)
C_NOM, C_SECOND = 1e-12, 4e-12
SAMPLES_PER_TAU = 50


def _steps_sim(instances, levels, hold_taus, corner, temp, mc_seed=None):
    """One netlist of independent DPIs sharing I_tau and C (one time scale); returns sim, grid, dt."""
    p0 = instances[0]
    tau = p0.tau_ideal(temp)
    sub = subckt(p0)
    t_hold = hold_taus * tau
    lines = [sub.text]
    stimuli = []
    for k, p in enumerate(instances):
        assert p.I_tau == p0.I_tau and p.C == p0.C
        lines += [
            f"Vdd{k} vdd{k} 0 1.8",
            f"Ith{k} vdd{k} ith{k} {p.I_th:.6g}",
            f"Itau{k} vdd{k} itau{k} {p.I_tau:.6g}",
            f"Vout{k} o{k} 0 1.0",
            sub.instance(f"D{k}", [f"vdd{k}", f"in{k}", f"o{k}", f"ith{k}", f"itau{k}"]),
        ]
        times, values = [], []
        for j, lev in enumerate(levels):
            times += [j * t_hold + (1e-3 * tau if j else 0.0), (j + 1) * t_hold]
            values += [lev * p.I_tau, lev * p.I_tau]
        stimuli.append(Pwl(f"in{k}", f"in{k}", "0", tuple(times), tuple(values)))
    t_end = len(levels) * t_hold
    saves = [v for k in range(len(instances)) for v in (current(f"vout{k}"), current(f"vdd{k}"))]
    sim = Simulation(
        "\n".join(lines),
        analyses=(Tran(tau / 50, t_end, tmax=tau / 10),),
        saves=tuple(saves),
        stimuli=tuple(stimuli),
        title=f"dpi steps I_tau={p0.I_tau:g} C={p0.C:g}",
        corner=corner,
        temp=temp,
        mc_seed=mc_seed,
    )
    dt = tau / SAMPLES_PER_TAU
    grid = np.arange(int(round(t_end / dt))) * dt
    return sim, grid, dt, t_hold


def _input_on_grid(grid, dt, levels, t_hold, i_tau):
    """Per-step input (value held over [t, t + dt)), matching the PWL up to the 1e-3 tau edges."""
    idx = np.minimum((grid + dt / 2) // t_hold, len(levels) - 1).astype(int)
    return np.asarray(levels, float)[idx] * i_tau


def _fit_one(i_spice, i_in, dt, p: Params, temp):
    """Least-squares fit of (tau, a, g) of the log-domain ODE to one SPICE trace (JAX Jacobian)."""
    from scipy.optimize import least_squares

    peak = float(np.max(i_spice))
    i_off = max(float(i_spice[0]), 1e-16)
    tau0 = p.tau_ideal(temp)
    run, jac = _integrator()
    x, h, u0 = _args(i_in, dt, p.I_tau, tau0, p.I_th, i_off)
    scale = p.I_th / peak

    def resid(th):
        return scale * np.exp(np.asarray(run(np.asarray(th, np.float32), x, h, u0), float)) - i_spice / peak

    def jacobian(th):
        th32 = np.asarray(th, np.float32)
        e = scale * np.exp(np.asarray(run(th32, x, h, u0), float))
        return e[:, None] * np.asarray(jac(th32, x, h, u0), float)

    sol = least_squares(resid, x0=[0.1, 1.0, 0.0], jac=jacobian, max_nfev=100)
    tau, a, g = tau0 * math.exp(sol.x[0]), float(sol.x[1]), math.exp(sol.x[2])
    ideal_err = common.rms(ideal(p, i_in, dt, temp, i_off) - i_spice) / peak
    return {
        "tau": tau,
        "a": a,
        "g": g,
        "i_off": i_off,
        "fit_rms_of_peak": common.rms(resid(sol.x)),
        "ideal_rms_of_peak": ideal_err,
        "tau_ideal": tau0,
    }


def measure(runner: Runner, groups, corner="tt", temp=27.0, jobs=2, levels=LEVELS, hold_taus=HOLD_TAUS):
    """Simulate groups of DPIs (each group shares I_tau and C); return (params, grid, dt, i_in, i_out, i_vdd)."""
    built = [_steps_sim(g, levels, hold_taus, corner, temp) for g in groups]
    results = runner.run_many([b[0] for b in built], jobs=jobs)
    out = []
    for group, (sim, grid, dt, t_hold), res in zip(groups, built, results):
        for k, p in enumerate(group):
            i_out = np.interp(grid, res[TIME], -res[current(f"vout{k}")])
            i_vdd = np.interp(grid, res[TIME], -res[current(f"vdd{k}")])
            out.append((p, grid, dt, _input_on_grid(grid, dt, levels, t_hold, p.I_tau), i_out, i_vdd))
    return out


def characterize(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2):
    groups = [[Params(t, g * t, C_NOM) for g in GRID_GAIN] for t in GRID_TAU]
    groups.append([Params(1e-9, g * 1e-9, C_SECOND) for g in GRID_GAIN])
    rows = measure(runner, groups, corner, temp, jobs)
    points, traces = [], {}
    for p, grid, dt, i_in, i_out, i_vdd in rows:
        fit = _fit_one(i_out, i_in, dt, p, temp)
        points.append({"I_tau": p.I_tau, "I_th": p.I_th, "C": p.C, **fit})
        if p.I_tau == 0.1e-9 and p.I_th == 1e-9 and p.C == C_NOM:
            step = slice(None, None, 5)
            traces = {
                "t": grid[step].tolist(),
                "i_in": i_in[step].tolist(),
                "i_out": i_out[step].tolist(),
                "params": [p.I_tau, p.I_th, p.C],
            }
            k = int(np.searchsorted(grid, 2.9 * HOLD_TAUS * p.tau_ideal(temp)))  # end of the 12 I_tau step
            power = {
                "I_tau": p.I_tau,
                "I_th": p.I_th,
                "C": p.C,
                "I_in": 12 * p.I_tau,
                "watts": float(common.VDD * (i_vdd[k] + p.I_th + p.I_tau)),
            }
    # parasitic capacitance on vc from the two capacitor values at I_tau = 1 nA
    c_par = []
    for g in GRID_GAIN:
        t1 = next(
            q["tau"] for q in points if q["I_tau"] == 1e-9 and q["C"] == C_NOM and abs(q["I_th"] - g * 1e-9) < 1e-15
        )
        t4 = next(q["tau"] for q in points if q["C"] == C_SECOND and abs(q["I_th"] - g * 1e-9) < 1e-15)
        c_par.append((C_SECOND - (t4 / t1) * C_NOM) / (t4 / t1 - 1))
    fit = {
        "grid_tau": list(GRID_TAU),
        "grid_gain": list(GRID_GAIN),
        "c_nominal": C_NOM,
        "c_par": float(np.mean(c_par)),
        "tau_C": [
            [
                next(q["tau"] for q in points if q["I_tau"] == t and q["C"] == C_NOM and abs(q["I_th"] - g * t) < 1e-18)
                for g in GRID_GAIN
            ]
            for t in GRID_TAU
        ],
        "a": [
            [
                next(q["a"] for q in points if q["I_tau"] == t and q["C"] == C_NOM and abs(q["I_th"] - g * t) < 1e-18)
                for g in GRID_GAIN
            ]
            for t in GRID_TAU
        ],
        "g": [
            [
                next(q["g"] for q in points if q["I_tau"] == t and q["C"] == C_NOM and abs(q["I_th"] - g * t) < 1e-18)
                for g in GRID_GAIN
            ]
            for t in GRID_TAU
        ],
        "i_off": [
            [
                next(
                    q["i_off"] for q in points if q["I_tau"] == t and q["C"] == C_NOM and abs(q["I_th"] - g * t) < 1e-18
                )
                for g in GRID_GAIN
            ]
            for t in GRID_TAU
        ],
        "protocol": {"levels_of_I_tau": list(LEVELS), "hold_taus": HOLD_TAUS},
    }
    return {"points": points, "nominal_trace": traces}, fit, {"power": power}


class Calibration:
    """tau, a and g interpolated bilinearly in (log I_tau, log I_th/I_tau); tau scaled to any C."""

    def __init__(self, table: dict):
        self.table = table
        f = table["fit"]
        self.lt, self.lg = np.log(f["grid_tau"]), np.log(f["grid_gain"])
        self.c_par, self.c_nom = f["c_par"], f["c_nominal"]

    def _interp(self, key, I_tau, I_th, log=False):
        tab = np.asarray(self.table["fit"][key], float)
        if log:
            tab = np.log(tab)
        rows = np.array([np.interp(math.log(I_tau), self.lt, tab[:, j]) for j in range(tab.shape[1])])
        v = float(np.interp(math.log(I_th / I_tau), self.lg, rows))
        return math.exp(v) if log else v

    def parameters(self, p: Params) -> dict:
        """Calibrated (tau, a, I_th_eff, i_off) of a DPI."""
        tau = self._interp("tau_C", p.I_tau, p.I_th, log=True) * (p.C + self.c_par) / (self.c_nom + self.c_par)
        return {
            "tau": tau,
            "a": self._interp("a", p.I_tau, p.I_th),
            "i_th_eff": p.I_th * self._interp("g", p.I_tau, p.I_th),
            "i_off": self._interp("i_off", p.I_tau, p.I_th, log=True) if "i_off" in self.table["fit"] else 1e-15,
        }

    def response(self, p: Params, i_in, dt: float, i_off: float | None = None):
        q = self.parameters(p)
        return response(i_in, dt, p.I_tau, q["tau"], q["a"], q["i_th_eff"], i_off if i_off is not None else q["i_off"])

    def dc_gain(self, p: Params, i_in: float) -> float:
        """Calibrated steady-state I_out / I_in."""
        q = self.parameters(p)
        ratio = i_in / p.I_tau - 1
        return q["i_th_eff"] * ratio ** (1 / q["a"]) / i_in if ratio > 0 else 0.0

    def invert(self, tau: float, gain: float, C: float = C_NOM, i_in: float | None = None) -> Params:
        """Biases whose calibrated DPI has time constant `tau` (s) and large-signal gain I_th/I_tau_eff = `gain`."""
        i_tau = C * common.thermal_voltage(27.0) / (KAPPA * tau)
        i_th = gain * i_tau
        for _ in range(30):
            p = Params(min(max(i_tau, I_LO), I_HI), min(max(i_th, I_LO), I_HI), C)
            q = self.parameters(p)
            i_tau *= q["tau"] / tau
            i_th = gain * i_tau / (q["i_th_eff"] / p.I_th)
        return Params(i_tau, i_th, C)


def load_calibration(corner: str = "tt", temp: float = 27.0) -> Calibration:
    return Calibration(common.load_table(NAME, corner, temp))


# ----------------------------------------------------------------------------------------------
# Held-out validation, mismatch, plot

HELD_OUT = ((Params(0.5e-9, 2e-9, 2e-12), Params(0.5e-9, 1e-9, 2e-12)), (Params(0.2e-9, 0.4e-9, 1e-12),))
HELD_OUT_LEVELS = (0, 7, 3, 15, 0, 9, 0)


def validate(runner: Runner, corner: str = "tt", temp: float = 27.0, jobs: int = 2, calibration=None) -> dict:
    """rms error (% of peak) of ideal and calibrated DPI against SPICE on biases and steps not characterised."""
    cal = calibration or load_calibration(corner, temp)
    rows = measure(runner, [list(g) for g in HELD_OUT], corner, temp, jobs, levels=HELD_OUT_LEVELS, hold_taus=8)
    report = {"points": []}
    for p, grid, dt, i_in, i_out, _ in rows:
        peak, i_off = float(i_out.max()), max(float(i_out[0]), 1e-16)
        e_ideal = common.rms(ideal(p, i_in, dt, temp, i_off) - i_out) / peak
        e_cal = common.rms(cal.response(p, i_in, dt, i_off) - i_out) / peak
        report["points"].append(
            {"params": [p.I_tau, p.I_th, p.C], "ideal_rms_of_peak": e_ideal, "calibrated_rms_of_peak": e_cal}
        )
    report["ideal_max_rms_of_peak"] = max(q["ideal_rms_of_peak"] for q in report["points"])
    report["calibrated_max_rms_of_peak"] = max(q["calibrated_rms_of_peak"] for q in report["points"])
    return report


def mismatch(runner: Runner, corner: str = "tt", temp: float = 27.0, n: int = 8, seed: int = 1, jobs: int = 2) -> dict:
    """Sigma of the fitted tau, gain scale and steady-state output over n Monte Carlo draws."""
    p = Params(0.1e-9, 1e-9, C_NOM)
    built = [_steps_sim([p], (0, 12, 0), 8, corner, temp, mc_seed=seed + k) for k in range(n)]
    results = runner.run_many([b[0] for b in built], jobs=jobs)
    taus, finals = [], []
    for (sim, grid, dt, t_hold), res in zip(built, results):
        i_out = np.interp(grid, res[TIME], -res[current("vout0")])
        finals.append(float(np.interp(2 * t_hold - dt, grid, i_out)))
        k0 = int(np.searchsorted(grid, 2 * t_hold)) + 1
        decay = i_out[k0:]
        good = decay > 0.01 * decay[0]
        slope = np.polyfit(grid[k0:][good], np.log(decay[good]), 1)[0]
        taus.append(-1 / slope)
    taus, finals = np.array(taus), np.array(finals)
    return {
        "n": n,
        "params": [p.I_tau, p.I_th, p.C],
        "tau": {"mean": float(taus.mean()), "rel_sigma": float(taus.std(ddof=1) / taus.mean())},
        "steady_output": {"mean": float(finals.mean()), "rel_sigma": float(finals.std(ddof=1) / finals.mean())},
    }


def plot(table: dict, path) -> None:
    plt = common.agg_pyplot()
    tr = table["data"]["nominal_trace"]
    p = Params(*tr["params"])
    cal = Calibration(table)
    t, i_in, i_out = np.asarray(tr["t"]), np.asarray(tr["i_in"]), np.asarray(tr["i_out"])
    dt = t[1] - t[0]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].plot(t * 1e3, i_out * 1e9, "k", label="SPICE")
    axes[0].plot(t * 1e3, ideal(p, i_in, dt, i_off=max(i_out[0], 1e-16)) * 1e9, "--", label="ideal")
    axes[0].plot(t * 1e3, cal.response(p, i_in, dt, max(i_out[0], 1e-16)) * 1e9, ":", label="calibrated")
    axes[0].plot(t * 1e3, i_in * 1e9 * p.I_th / p.I_tau / 10, color="0.7", lw=0.8, label="I_in x gain / 10")
    axes[0].set(
        title=f"DPI step response (I_tau {p.I_tau * 1e9:g} nA, I_th {p.I_th * 1e9:g} nA, C 1 pF)",
        xlabel="t [ms]",
        ylabel="I_out [nA]",
    )
    axes[0].legend()
    f = table["fit"]
    for j, g in enumerate(f["grid_gain"]):
        axes[1].loglog(f["grid_tau"], [row[j] for row in f["tau_C"]], "o-", label=f"tau, I_th/I_tau={g:g}")
    axes[1].loglog(
        f["grid_tau"],
        [C_NOM * common.thermal_voltage(table["temp"]) / (KAPPA * t) for t in f["grid_tau"]],
        "k--",
        label="ideal C U_T/(kappa I_tau)",
    )
    axes[1].set(title="tau vs I_tau (C = 1 pF)", xlabel="I_tau [A]", ylabel="tau [s]")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    common.save_figure(fig, path)
