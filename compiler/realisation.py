"""The realisation rules: which value of each model parameter the circuit realises, one function per rule.

The passes build the circuit with these functions, and `Realisation.realise` composes the same functions
on a model's arrays, so that hardware-aware training (flows/train.py) trains the very network the
compiler will build, and the build report's realised model is that network too:

    weights   mirror ratios: round(|w| * D) unit devices (at most max_units) over the receiver's diode of
              D units, D the configured denominator lowered where the receiver's largest weight needs it
    biases    taps on the bias grid (i_unit / bias_denominator), raised to the cells' minimum current
              unless below half of it (then none)
    devices   each receiver's unit device: the smallest of the mirror's UNIT_DEVICES whose worst output keeps its
              mismatch sigma within the budget
    cells     the hysteresis window legalised (minimum current, minimum and maximum width), then the bias
              currents that realise it through the cell's calibration table, on the bias grid, and the
              thresholds and level those currents realise

Every function takes numpy arrays or scalars and computes in float64, so a pass and the realisation give
bit-identical values.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

import cells
from cells.bias import tap_sigma
from cells.common import min_current
from cells.mirror import UNIT_DEVICES, output_sigma
from compiler.foundation.errors import CalibrationMissing
from compiler.ir import IR, BiasArray, Receiver

MAX_WIDTH_RATIO = 0.9  # widest hysteresis window / threshold: keeps a positive reset level to compare against


# ---------------------------------------------------------------------------------------------- rules


FLOAT32_SLACK = 1e-6  # relative: a realised weight stored in float32 sits up to 6e-8 off its grid point


def ratio_denominator(largest: float, wanted: int, max_units: int) -> int:
    """A receiver's diode size: `wanted` unit devices, fewer where its largest weight would need more than
    `max_units` devices in one output. A largest weight of exactly max_units / D, as a checkpoint stores it
    in float32, keeps D: so realised weights realise to themselves."""
    fits = max_units * (1 + FLOAT32_SLACK)
    return wanted if largest * wanted <= fits else max(1, int(fits // largest))


def ratio_units(weights, denominator: int, max_units: int) -> np.ndarray:
    """Unit devices of mirror outputs realising non-negative weights over a `denominator`-unit diode."""
    return np.minimum(np.round(np.asarray(weights, np.float64) * denominator), max_units).astype(np.int64)


def unit_device(used, denominator: int, budget: float) -> tuple[float, float, float]:
    """(W, L, worst sigma) of a receiver's unit device: the smallest of the mirror's UNIT_DEVICES whose worst
    output among `used` ((polarity, units) pairs) has a relative sigma within `budget`, else the largest."""

    def worst(w, l):
        return max((output_sigma(pol, r, denominator, w, l) for pol, r in used), default=0.0)

    fitting = [wl for wl in UNIT_DEVICES if worst(*wl) <= budget]
    w, l = fitting[0] if fitting else UNIT_DEVICES[-1]
    return w, l, worst(w, l)


@dataclass(frozen=True)
class BiasGrid:
    """The bias generator's grid: taps of whole unit devices of `step` amperes each (i_unit /
    bias_denominator), none carrying less than `floor` (the cells' minimum current at this i_unit)."""

    step: float
    floor: float

    def units(self, current):
        """Tap unit devices of a bias current (A): rounded, and raised to the floor unless the current is
        below half of it, which is realised as no current at all."""
        magnitude = np.abs(np.asarray(current, np.float64))
        units = np.maximum(np.round(magnitude / self.step), math.ceil(self.floor / self.step - 1e-9))
        units = np.where(magnitude < self.floor / 2, 0, units).astype(np.int64)
        return int(units) if units.ndim == 0 else units

    def on_grid(self, current):
        """A non-negative current (A) on the grid."""
        return self.units(current) * self.step


def bias_grid(config) -> BiasGrid:
    """The bias grid of a build configuration."""
    i_unit = config.get("i_unit")
    return BiasGrid(i_unit / config.get("bias_denominator"), min_current(i_unit))


LEAKAGE_MARGIN = 10  # the cells' floor should stay this many times above their leakage


def leakage_warning(calibration_names, config) -> str | None:
    """What to do where the floor (0.1 unit) is within LEAKAGE_MARGIN of a memory cell's measured
    reset-state leakage at the configured corner and temperature (tt's at that temperature where the
    corner has no table), or None (also where neither has one)."""
    i_unit = config.get("i_unit")
    floor = min_current(i_unit)
    for name in dict.fromkeys(calibration_names):
        measured = _leakage(name, config.get("corner"), config.get("temp"))
        if measured is None:
            continue
        leak, corner = measured
        if leak * LEAKAGE_MARGIN > floor:
            needed = i_unit * leak * LEAKAGE_MARGIN / floor
            return (
                f"the {name} cell leaks {leak * 1e12:.3g} pA at {corner}, {config.get('temp'):g} C, "
                f"more than 1/{LEAKAGE_MARGIN} of the {floor * 1e12:.3g} pA floor (0.1 i_unit): a reset cell's "
                f"output is no longer negligible against the smallest currents. Raise i_unit to "
                f"{needed * 1e9:.2g} nA or more (and any per-stage i_unit by the same factor)."
            )
    return None


def _leakage(name: str, corner: str, temp: float) -> tuple[float, str] | None:
    """A cell's measured leakage (A) at the corner and temperature, else tt's at that temperature, and the
    corner it was measured at."""
    for table_corner in dict.fromkeys((corner, "tt")):
        try:
            return cells.load_calibration(name, table_corner, temp).leakage, table_corner
        except CalibrationMissing:
            continue
    return None


def cell_calibration(name: str, config):
    """A memory cell's calibrated model for the build's corner, temperature and unit current."""
    return cells.load_calibration(name, config.get("corner"), config.get("temp")).at_unit(config.get("i_unit"))


def legal_window(thresh, width, gain, lo: float, ratio: float):
    """A memory cell's (threshold, width, gain) clamped into what the cell realises (software units): the
    threshold at least `lo`, a window narrower than `ratio` x threshold widened about its centre, one
    reaching down to zero input capped at MAX_WIDTH_RATIO x threshold, and a gain below `lo` raised to `lo`
    (or switched off below lo / 2)."""
    t, w, g = (np.asarray(v, np.float64) for v in (thresh, width, gain))
    t = np.maximum(t, lo)
    narrow = w < ratio * t
    t = np.where(narrow, np.maximum((t - w / 2) / (1 - ratio / 2), lo), t)
    w = np.minimum(np.where(narrow, ratio * t, w), MAX_WIDTH_RATIO * t)
    g = np.where(g >= lo, g, np.where(g >= lo / 2, lo, 0.0))
    return t, w, g


def program(beta_hi, delta, alpha, calibration, grid: BiasGrid) -> tuple[tuple, tuple]:
    """Memory-cell units (A; arrays or scalars): the bias currents (I_thresh, I_width, I_gain) on the grid
    that realise the wanted (beta_hi, delta, alpha), and the (beta_hi, delta, alpha) they realise (the
    calibrated model, or the ideal equations without a calibration). A switched-off output (alpha = 0)
    still needs its thresholds."""
    beta_hi, delta, alpha = (np.asarray(v, np.float64) for v in (beta_hi, delta, alpha))
    on = alpha > 0
    if calibration is not None:
        i_thresh, i_width, i_gain = calibration.bias_currents(beta_hi, delta, np.where(on, alpha, beta_hi))
    else:
        i_thresh, i_width, i_gain = beta_hi, delta, alpha
    i_thresh, i_width = grid.on_grid(i_thresh), grid.on_grid(i_width)
    i_width = np.minimum(i_width, i_thresh - grid.step)  # rounding must leave a reset level above zero
    i_gain = np.where(on, grid.on_grid(i_gain), 0.0)
    if calibration is not None:
        hi, lo, level = calibration.thresholds(i_thresh, i_width, np.where(i_gain > 0, i_gain, i_thresh))
        level = np.where(i_gain > 0, level, 0.0)
    else:
        hi, lo, level = i_thresh, i_thresh - i_width, i_gain
    return (i_thresh, i_width, i_gain), (hi, hi - lo, level)


# ------------------------------------------------------------------------------- the whole network


@dataclass(frozen=True)
class MirrorGroup:
    """The layer weights that a receiver's mirrors copy (they share its diode, so its denominator)."""

    weights: tuple[str, ...]  # model arrays "<layer>.W"
    copies: tuple[float, ...]  # the weights of the receiver's other readers (1:1 copies)
    wanted: int
    max_units: int
    budget: float  # mismatch budget of one mirror output (relative sigma)

    def denominator(self, weights: dict) -> int:
        largest = max([*self.copies, *(float(np.max(np.abs(w), initial=0.0)) for w in weights.values())], default=0.0)
        return ratio_denominator(largest, self.wanted, self.max_units)


@dataclass(frozen=True)
class BiasPlan:
    name: str  # model array "<layer>.b"
    i_unit: float  # A per software unit at this stage
    accepts: str  # the direction its node takes: "n" sourced currents, "p" sunk ones


@dataclass(frozen=True)
class CellPlan:
    layer: str
    i_unit: float
    lo: float  # smallest current (software units)
    hi: float  # largest current (software units)
    ratio: float  # minimum width / threshold
    calibration: str | None  # the cell's calibration table, when the build calibrates
    mismatch: tuple[float, float, float]  # relative sigmas of its set and reset thresholds and level


@dataclass(frozen=True)
class Realisation:
    """What the circuit realises of each parameter of one network under one build configuration."""

    groups: tuple[MirrorGroup, ...]
    biases: tuple[BiasPlan, ...]
    cells: tuple[CellPlan, ...]
    i_unit: float  # the model's software unit (A)
    grid: BiasGrid  # the bias grid
    bias_denominator: int  # unit devices of the bias generator's diodes
    calibrations: dict  # calibration table name -> the cell's Calibration

    @classmethod
    def of(cls, ir: IR, config) -> Realisation:
        """The plan of a lowered IR (software units, before any pass) under `config`."""
        groups = []
        for rx in ir.of_kind(Receiver):
            readers = ir.readers(rx.name)
            if readers:
                copies = [abs(w) for a in readers if a.source != a.name for row in a.weights for w in row if w]
                groups.append(
                    MirrorGroup(
                        tuple(a.source for a in readers if a.source == a.name),
                        tuple(copies),
                        config.get("denominator", rx),
                        min(config.get("max_units", a) for a in readers),
                        min(config.get("mismatch_budget", a) for a in readers),
                    )
                )
        biases = tuple(
            BiasPlan(s.source, config.get("i_unit", s), ir.stage(ir.successors(s.name)[0]).accepts)
            for s in ir.of_kind(BiasArray)
        )
        plans, calibrations = [], {}
        for cell in ir.memory_cells():
            i_unit = config.get("i_unit", cell)
            lo, hi = cell.facts.limits.window(config.get("i_unit"), i_unit)
            name = cell.facts.calibration if config.get("calibrated") else None
            if name is not None and name not in calibrations:
                calibrations[name] = cell_calibration(name, config)
            ratio = config.get("min_width_ratio", cell)
            m = cell.facts.mismatch
            spread = (m.set, m.reset, m.level) if m else (0.0, 0.0, 0.0)
            plans.append(CellPlan(cell.name, i_unit, lo, hi, ratio, name, spread))
        return cls(
            tuple(groups),
            biases,
            tuple(plans),
            config.get("i_unit"),
            bias_grid(config),
            config.get("bias_denominator"),
            calibrations,
        )

    def realise(self, arrays: dict) -> dict:
        """The realised values of the model arrays the circuit sets (float32, software units); currents
        above a cell's range are first clamped to it (the compiler refuses them)."""
        out = {}
        for group in self.groups:
            weights = {name: np.asarray(arrays[name], np.float64) for name in group.weights}
            denominator = group.denominator(weights)
            for name, w in weights.items():
                positive = ratio_units(np.maximum(w, 0.0), denominator, group.max_units)
                negative = ratio_units(np.maximum(-w, 0.0), denominator, group.max_units)
                out[name] = (positive - negative) / denominator
        for bias in self.biases:
            amperes = np.asarray(arrays[bias.name], np.float64) * bias.i_unit
            out[bias.name] = self.grid.on_grid(amperes) * np.where(amperes >= 0, 1, -1) / self.i_unit
        for cell in self.cells:
            out.update(self.realise_cell(cell, arrays))
        return {name: np.asarray(value, np.float32) for name, value in out.items()}

    def settle(self, arrays: dict, rounds: int = 8) -> dict:
        """Realised values that realise to themselves, so that a checkpoint of them builds unchanged:
        calibration can push a legalised window back past a bound (a width above MAX_WIDTH_RATIO), which
        a second realisation moves again; repeated until nothing moves (at most `rounds` times)."""
        realised = self.realise(arrays)
        for _ in range(rounds):
            again = self.realise({**arrays, **realised})
            moving = sorted(name for name, value in realised.items() if not np.array_equal(again[name], value))
            if not moving:
                return realised
            realised = again
        warnings.warn(
            f"the realised values of {', '.join(moving)} still move after {rounds} rounds: a checkpoint of them "
            "may build onto other values than it holds",
            RuntimeWarning,
            stacklevel=2,
        )
        return realised

    def spread(self, realised: dict) -> dict:
        """The relative mismatch sigma of every element realising settled realised arrays (`settle`), in
        the form models.mismatch.perturb takes: "<layer>.W" and "<layer>.b" per element, and per memory
        cell "<layer>.set", ".reset" and ".level" (the cell facts' Monte Carlo sigmas)."""
        out = {}
        for group in self.groups:
            weights = {name: np.asarray(realised[name], np.float64) for name in group.weights}
            denominator = group.denominator(weights)
            units = {name: np.round(np.abs(w) * denominator).astype(np.int64) for name, w in weights.items()}
            used = [("p", int(round(c * denominator))) for c in group.copies]
            used += [
                ("p" if v > 0 else "n", int(u))
                for n, w in weights.items()
                for v, u in zip(w.ravel(), units[n].ravel())
                if u
            ]
            w_um, l_um, _ = unit_device(used, denominator, group.budget)
            for name, w in weights.items():
                out[name] = np.array(
                    [
                        output_sigma("p" if v > 0 else "n", int(u), denominator, w_um, l_um) if u else 0.0
                        for v, u in zip(w.ravel(), units[name].ravel())
                    ]
                ).reshape(w.shape)
        for bias in self.biases:
            value = np.asarray(realised[bias.name], np.float64)
            units = self.grid.units(value * self.i_unit)
            out[bias.name] = np.array(
                [
                    tap_sigma("p" if (v > 0) == (bias.accepts == "n") else "n", int(u), self.bias_denominator)
                    if u
                    else 0.0
                    for v, u in zip(np.ravel(value), np.ravel(units))
                ]
            ).reshape(value.shape)
        for cell in self.cells:
            size = np.shape(realised[f"{cell.layer}.alpha"])
            for name, sigma in zip(("set", "reset", "level"), cell.mismatch):
                out[f"{cell.layer}.{name}"] = np.full(size, sigma)
        return {name: np.asarray(value, np.float32) for name, value in out.items()}

    def realise_cell(self, cell: CellPlan, arrays: dict) -> dict:
        beta_lo, delta, alpha = (
            np.asarray(arrays[f"{cell.layer}.{p}"], np.float64) for p in ("beta_lo", "delta", "alpha")
        )
        thresh = np.minimum(beta_lo + delta, cell.hi)
        t, w, g = legal_window(thresh, np.minimum(delta, thresh), np.minimum(alpha, cell.hi), cell.lo, cell.ratio)
        calibration = self.calibrations.get(cell.calibration)
        _, (hi, width, level) = program(t * cell.i_unit, w * cell.i_unit, g * cell.i_unit, calibration, self.grid)
        return {
            f"{cell.layer}.beta_lo": (hi - width) / self.i_unit,
            f"{cell.layer}.delta": width / self.i_unit,
            f"{cell.layer}.alpha": level / self.i_unit,
        }
