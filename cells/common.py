"""What every cell shares: device names, parameter checks, template rendering and calibration tables.

A calibration table is one JSON file per (cell, corner, temperature) under `cells/calibration/`:
`{schema, cell, corner, temp, pdk, ngspice, command, created, wall_time, data, fit}` where `data` holds
the raw sweep results and `fit` the fitted parameters the calibrated model and the compiler's inversion
read. Tables are written to a temporary file and renamed into place, so a reader never sees half a table.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import tempfile
from pathlib import Path

import jinja2
import numpy as np

from compiler.foundation.data import package_path
from compiler.foundation.errors import CalibrationMissing, CellParameterError

NFET = "sky130_fd_pr__nfet_01v8"
PFET = "sky130_fd_pr__pfet_01v8"
MIM = "sky130_fd_pr__cap_mim_m3_1"
MIM_F_PER_UM2 = 2.0e-15  # typical cap_mim_m3_1 area capacitance (sky130/devices.yaml)
MIM_F_PER_UM = 0.19e-15  # typical cap_mim_m3_1 perimeter capacitance (sky130/devices.yaml)
MIM_MAX_SIDE_UM = 30.0  # widest plate drawn: the open_pdks DRC deck flags a capm wider than 40 um (capm.6)


def mim_plates(C: float) -> tuple[float, int]:
    """(side in um, count) of equal square MIM plates in parallel for capacitance C: one plate of area
    C / MIM_F_PER_UM2 when it is at most MIM_MAX_SIDE_UM wide; otherwise the fewest plates of at most that
    side whose area and perimeter capacitance add up to that one plate's, so the circuit is unchanged."""
    side = round(math.sqrt(C / MIM_F_PER_UM2), 3)
    count = math.ceil(side / MIM_MAX_SIDE_UM) ** 2
    if count == 1:
        return side, 1
    each = (MIM_F_PER_UM2 * side**2 + 4 * MIM_F_PER_UM * side) / count
    b = 4 * MIM_F_PER_UM
    return round((-b + math.sqrt(b * b + 4 * MIM_F_PER_UM2 * each)) / (2 * MIM_F_PER_UM2), 3), count


VDD = 1.8
I_UNIT = 1e-9  # one software unit of current
SCHEMA = 1
CALIBRATION_DIR = package_path("cells", "calibration")

# Weak-inversion operating range of the cells' current sources at the characterised unit current I_UNIT.
# The floor scales with a design's i_unit (min_current): the memory cells' starving bias does too, and a
# weak-inversion circuit whose currents all scale together keeps its static behaviour; leakage (about
# 0.1 pA at tt, 27 C: the bistable tables' `low`) stays 50x below it down to i_unit = 0.05 nA. The
# ceiling is where the 4/8 um unit devices leave weak inversion, whatever the design.
I_MIN = 0.1e-9
I_MAX = 10e-9


I_UNIT_MIN = 0.05e-9  # the smallest unit current a design may use: its floor stays 50x above leakage


def min_current(i_unit: float) -> float:
    """The smallest current (A) a cell or bias tap realises in a design whose unit current is `i_unit`."""
    return I_MIN * (i_unit / I_UNIT)


_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True
)


def render(template: str, **values) -> str:
    """Render a cell's jinja2 netlist template; every name it uses must be given (StrictUndefined)."""
    return _compiled(template).render(NFET=NFET, PFET=PFET, MIM=MIM, **values)


@functools.lru_cache(maxsize=64)
def _compiled(template: str) -> jinja2.Template:
    """A template compiled once: a network renders the same cell template hundreds of times."""
    return _ENV.from_string(template)


def thermal_voltage(temp_c: float) -> float:
    return 1.380649e-23 * (temp_c + 273.15) / 1.602176634e-19


def check_current(cell: str, name: str, value: float, lo: float = I_MIN, hi: float = I_MAX) -> None:
    """Raise CellParameterError unless lo <= value <= hi (amperes)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value)) or not lo <= value <= hi:
        raise CellParameterError(
            f"{cell}: {name} = {value!r} A is outside the range this cell realises in weak inversion "
            f"({lo:.3g} A to {hi:.3g} A). Rescale I_unit or the layer so the current falls inside."
        )


def check_int(cell: str, name: str, value, lo: int, hi: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
        raise CellParameterError(f"{cell}: {name} = {value!r} must be an integer from {lo} to {hi}.")


def fmt_current(value: float) -> str:
    """A current as a short deterministic SPICE-friendly token, e.g. 1.5e-09 -> '1p5n'."""
    for scale, unit in ((1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")):
        if abs(value) >= scale or unit == "f":
            text = f"{value / scale:.4g}"
            return text.replace(".", "p").replace("-", "m") + unit
    raise AssertionError


# ----------------------------------------------------------------------------------------------
# Calibration tables


def table_path(cell: str, corner: str, temp: float, directory: Path | None = None) -> Path:
    return Path(directory or CALIBRATION_DIR) / f"{cell}_{corner}_{temp:g}C.json"


def write_table(
    cell: str,
    corner: str,
    temp: float,
    data: dict,
    fit: dict,
    *,
    wall_time: float,
    directory: Path | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a versioned calibration table atomically and return its path."""
    from compiler.foundation.ngspice import ngspice_version
    from compiler.foundation.pdk import find_models

    table = {
        "schema": SCHEMA,
        "cell": cell,
        "corner": corner,
        "temp": temp,
        "pdk": find_models().source,
        "ngspice": ngspice_version(),
        "command": f"python -m compiler characterize {cell} --corner {corner} --temp {temp:g}",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_time": round(wall_time, 3),
        **(extra or {}),
        "data": _plain(data),
        "fit": _plain(fit),
    }
    path = table_path(cell, corner, temp, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(table, out, indent=1, sort_keys=False)
            out.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; tables are read by everyone who compiles
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_table(cell: str, corner: str = "tt", temp: float = 27.0, directory: Path | None = None) -> dict:
    """The calibration table of a cell, or CalibrationMissing saying how to make it."""
    path = table_path(cell, corner, temp, directory)
    if not path.is_file():
        raise CalibrationMissing(
            f"no calibration table for cell {cell!r} at corner {corner}, {temp:g} C ({path}). "
            f"Run `python -m compiler characterize {cell} --corner {corner} --temp {temp:g}`."
        )
    table = json.loads(path.read_text())
    if table.get("schema") != SCHEMA:
        raise CalibrationMissing(
            f"{path} has schema {table.get('schema')!r}, this code reads schema {SCHEMA}; re-run "
            f"`python -m compiler characterize {cell} --corner {corner} --temp {temp:g}`."
        )
    return table


def _plain(value):
    """JSON-safe copy: numpy arrays and scalars become lists and floats."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------------------------
# Small numeric helpers shared by the calibrated models


def log_interp(x, xs, ys):
    """Piecewise-linear interpolation in log(x), clamped at the ends (numpy)."""
    return np.interp(np.log(np.asarray(x, float)), np.log(np.asarray(xs, float)), np.asarray(ys, float))


def rms(a) -> float:
    a = np.asarray(a, float)
    return float(np.sqrt(np.mean(a * a)))


def crossing(t, y, level, rising: bool, after: float = -np.inf) -> float:
    """First time after `after` that y crosses `level` in the given direction (linear interpolation), NaN if none."""
    t, y = np.asarray(t), np.asarray(y)
    above = y > level
    idx = np.nonzero((above[1:] != above[:-1]) & (above[1:] == rising) & (t[1:] > after))[0]
    if idx.size == 0:
        return float("nan")
    i = idx[0]
    return float(t[i] + (level - y[i]) * (t[i + 1] - t[i]) / (y[i + 1] - y[i]))


def pwl(points) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(times, values) of a PWL stimulus from [(t, v), ...]."""
    return tuple(float(t) for t, _ in points), tuple(float(v) for _, v in points)


def mean_between(t, y, t0: float, t1: float) -> float:
    """Time-weighted mean of y over [t0, t1]."""
    t, y = np.asarray(t), np.asarray(y)
    grid = np.linspace(t0, t1, 401)
    return float(np.mean(np.interp(grid, t, y)))


def save_figure(fig, path) -> None:
    """Lay out, write and close a cell's figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    agg_pyplot().close(fig)


def agg_pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class Subckt:
    """A rendered subcircuit: its name (deterministic in the parameters), its ports in order, its text."""

    __slots__ = ("name", "ports", "text")

    def __init__(self, name: str, ports: tuple[str, ...], text: str):
        self.name, self.ports, self.text = name, tuple(ports), text

    def instance(self, label: str, nets: dict[str, str] | list[str]) -> str:
        """An `X` card connecting the ports to `nets` (a port->net mapping or a list in port order)."""
        if isinstance(nets, dict):
            missing = [p for p in self.ports if p not in nets]
            if missing:
                raise CellParameterError(f"instance {label} of {self.name} leaves ports {missing} unconnected.")
            nets = [nets[p] for p in self.ports]
        if len(nets) != len(self.ports):
            raise CellParameterError(f"{self.name} has {len(self.ports)} ports {self.ports}, got {len(nets)} nets.")
        return f"X{label} {' '.join(nets)} {self.name}"

    def __repr__(self) -> str:
        return f"Subckt({self.name!r}, ports={self.ports})"
