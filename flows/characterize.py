"""`python -m compiler characterize [CELL...]`: SPICE-characterise cells and write calibration tables.

For each cell: run its sweeps (cached, `-j` ngspice processes at once), write the versioned table
`<cell>_<corner>_<temp>C.json` into the output directory, draw its plot, and (with `--validate`)
check the calibrated model against SPICE on held-out stimuli. A Markdown and a JSON report sum up
wall times (and how many simulations came from the cache), power at nominal bias and model errors.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import cells
from cells import common
from compiler.foundation.errors import UsageError, file_label
from compiler.foundation.ngspice import Runner
from compiler.foundation.pdk import CORNERS
from flows.arguments import JOBS, TEMPERATURE, count


def add_arguments(parser) -> None:
    parser.add_argument(
        "cells", nargs="*", metavar="CELL", help=f"cells to characterise (default: all of {', '.join(cells.names())})"
    )
    parser.add_argument("--corner", default="tt", choices=CORNERS, help="process corner (default tt)")
    parser.add_argument("--temp", type=TEMPERATURE, default=27.0, help="temperature in Celsius (default 27)")
    parser.add_argument("-j", "--jobs", type=JOBS, default=2, help="ngspice processes at once (default 2)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help=f"directory for tables, plots and report (default {common.CALIBRATION_DIR}, "
        "the tables the compiler reads)",
    )
    parser.add_argument(
        "--validate",
        action="store_true",
        help="also compare ideal and calibrated models with SPICE on held-out stimuli",
    )
    parser.add_argument(
        "--mc",
        type=count(0, 10_000),
        default=0,
        metavar="N",
        help="also run PDK mismatch Monte Carlo with N instances per cell parameter",
    )


class CalibrationReadOnly(UsageError):
    """`characterize` without -o writes into the installed calibration folder, and that folder is read-only."""


def output_dir(output: Path | str | None) -> Path:
    """Where tables go: `output`, else the calibration folder the compiler reads (in a checkout, the
    repository's cells/calibration/), which must then be writable: an installed package's often is not."""
    if output is not None:
        return Path(output)
    if not os.access(common.CALIBRATION_DIR, os.W_OK | os.X_OK):
        raise CalibrationReadOnly(
            f"cannot write calibration tables into {file_label(common.CALIBRATION_DIR)}: "
            "the installed package's calibration folder is read-only. Pass -o DIR to "
            "write them elsewhere, or characterize in a checkout (editable install)."
        )
    return common.CALIBRATION_DIR


class _CountingRunner(Runner):
    """A runner that remembers how many simulations it ran and how many came from the cache."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ran = self.hits = 0
        self._lock = threading.Lock()  # run_many calls run from several threads
        self.ngspice_seconds = 0.0  # ngspice wall time of every result, cached ones at their original cost

    def run(self, sim, **kwargs):
        result = super().run(sim, **kwargs)
        with self._lock:
            self.ran += 1
            self.hits += int(result.cached)
            self.ngspice_seconds += result.wall_time
        return result


def characterize_cell(
    name: str,
    corner: str = "tt",
    temp: float = 27.0,
    jobs: int = 2,
    output: Path | None = None,
    validate: bool = False,
    mc: int = 0,
    runner: Runner | None = None,
) -> dict:
    """Characterise one cell; write its table and plot; return a summary for the report."""
    module = cells.get(name)
    output = output_dir(output)  # a read-only default fails before the sweep
    runner = runner or _CountingRunner()
    ran0, hits0 = getattr(runner, "ran", 0), getattr(runner, "hits", 0)
    spice0 = getattr(runner, "ngspice_seconds", 0.0)
    start = time.perf_counter()
    data, fit, extra = module.characterize(runner, corner, temp, jobs)
    wall = time.perf_counter() - start
    spice = round(getattr(runner, "ngspice_seconds", 0.0) - spice0, 2)
    path = common.write_table(
        name, corner, temp, data, fit, wall_time=wall, directory=output, extra={"ngspice_seconds": spice, **extra}
    )
    table = json.loads(path.read_text())
    plots = output / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    plot_path = plots / f"{name}_{corner}_{temp:g}C.png"
    module.plot(table, plot_path)
    summary = {
        "cell": name,
        "corner": corner,
        "temp": temp,
        "table": str(path),
        "plot": str(plot_path),
        "wall_time": round(wall, 2),
        "ngspice_seconds": spice,
        "simulations": getattr(runner, "ran", 0) - ran0,
        "cached": getattr(runner, "hits", 0) - hits0,
        "power": extra.get("power"),
    }
    if validate:
        start = time.perf_counter()
        summary["validation"] = module.validate(runner, corner, temp, jobs, calibration=module.Calibration(table))
        summary["validation_wall_time"] = round(time.perf_counter() - start, 2)
    if mc:
        start = time.perf_counter()
        summary["mismatch"] = module.mismatch(runner, corner, temp, n=mc)
        summary["mismatch_wall_time"] = round(time.perf_counter() - start, 2)
    return summary


def _markdown(summaries: list[dict]) -> str:
    lines = [
        "# Cell characterisation",
        "",
        "| cell | corner | temp | wall s | ngspice s (cold cost) | sims (cached) | power at nominal bias |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['cell']} | {s['corner']} | {s['temp']:g} | {s['wall_time']} | {s['ngspice_seconds']} | "
            f"{s['simulations']} ({s['cached']}) | {_power(s['power'])} |"
        )
    for s in summaries:
        for key in ("validation", "mismatch"):
            if key in s:
                lines += ["", f"## {s['cell']}: {key}", "", "```", json.dumps(s[key], indent=1), "```"]
    return "\n".join(lines) + "\n"


def _power(power) -> str:
    if not power:
        return "-"
    if "watts" in power:
        return f"{power['watts'] * 1e9:.3g} nW"
    return ", ".join(f"{k}: {_power(v)}" for k, v in power.items())


def run(args) -> int:
    names = args.cells or list(cells.names())
    for name in names:
        cells.get(name)  # unknown names fail before any simulation
    out = output_dir(args.output)
    runner = _CountingRunner()
    summaries = []
    for name in names:
        summary = characterize_cell(
            name, args.corner, args.temp, max(1, args.jobs), out, args.validate, args.mc, runner
        )
        summaries.append(summary)
        print(
            f"{name}: {summary['simulations']} simulations ({summary['cached']} cached) in "
            f"{summary['wall_time']} s -> {summary['table']}",
            flush=True,
        )
    report = _markdown(summaries)
    stem = f"report_{args.corner}_{args.temp:g}C"
    (out / f"{stem}.md").write_text(report)
    (out / f"{stem}.json").write_text(json.dumps(summaries, indent=1) + "\n")
    print(report)
    return 0
