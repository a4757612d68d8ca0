"""Two ngspice builds on the zoo's verification decks: equal results, and the CPU each takes.

`python -m benchmarks.simulators OTHER [--frames N] [--models NAME ...]` builds every FQ zoo model with
the configuration it ships, writes the verification deck of its first test sequence (its first N
frames), and runs it on the default ngspice ($FQRNN_NGSPICE, else `ngspice` on PATH) and on OTHER, one
after the other, without the cache. It reports, per model, the ngspice CPU seconds of each (the child's
user + system time), the sampled states that differ and the largest difference of a sampled candidate
or output current in unit currents. A newer ngspice is worth preferring only where every state is equal
and the currents agree far inside the cells' calibration error.
"""

from __future__ import annotations

import argparse
import resource

import numpy as np
import yaml

from benchmarks.common import built, zoo_models
from compiler.backends.spice import write_netlist
from compiler.config import Config
from compiler.foundation.ngspice import Runner, default_executable, ngspice_version
from compiler.foundation.simulation import TIME
from compiler.ir import IR
from flows.testbench import bench
from models.tasks import get_task


def run(other: str, frames: int | None, models: tuple = ("*",)) -> list[dict]:
    """One row per zoo model: CPU seconds on each ngspice, differing states, largest current difference."""
    rows = []
    for checkpoint in zoo_models(models):
        directory, _, _ = built(checkpoint, layout=False)
        ir = IR.from_json((directory / "ir.json").read_text())
        config = Config(**yaml.safe_load((directory / "config.yaml").read_text()))
        write_netlist(ir, directory / "simulators", config, supply_probes=True)
        x = get_task(ir.meta["task"]).test.x[0][:frames]
        sim, where = bench(ir, directory / "simulators", x, ir.meta["frame_period"])
        results, seconds = [], []
        for executable in (default_executable(), other):
            before = _children_cpu()
            results.append(Runner(cache=None, executable=executable, threads=1).run(sim))
            seconds.append(_children_cpu() - before)
        rows.append({"model": checkpoint.stem, "frames": len(x), **_compare(results, where, ir), "cpu_s": seconds})
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _compare(results: list, where, ir: IR) -> dict:
    """States that differ at the sample times, and the largest sampled current difference (units)."""
    states = [name for unit in where.states.values() for nodes in unit for name in nodes]
    currents = [name for group in where.candidates.values() for name in group] + list(where.outputs)
    a, b = ({n: np.interp(where.sample_times, r[TIME], r[n]) for n in states + currents} for r in results)
    vdd, i_unit = ir.meta["vdd"], ir.meta["i_unit"]
    flips = sum(int(np.sum((a[n] > vdd / 2) != (b[n] > vdd / 2))) for n in states)
    worst = max(float(np.max(np.abs(a[n] - b[n]))) for n in currents) / i_unit
    return {"states": len(states) * len(where.sample_times), "states_differing": flips, "max_current_units": worst}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.simulators", description=__doc__.splitlines()[0])
    parser.add_argument("other", help="the other ngspice: a path or a name on PATH")
    parser.add_argument("--frames", type=int, default=None, help="first frames of the sequence (default: all)")
    parser.add_argument("--models", nargs="*", default=["*"], help="zoo model names (default: every FQ model)")
    args = parser.parse_args(argv)
    versions = [ngspice_version(e) for e in (default_executable(), args.other)]
    print(f"A: {versions[0]}\nB: {versions[1]}")
    print("| model | frames | states differing | largest current difference (units) | CPU A (s) | CPU B (s) | A / B |")
    print("|---|---|---|---|---|---|---|")
    for row in run(args.other, args.frames, tuple(args.models)):
        a, b = row["cpu_s"]
        print(
            f"| {row['model']} | {row['frames']} | {row['states_differing']} of {row['states']} | "
            f"{row['max_current_units']:.2e} | {a:.1f} | {b:.1f} | {a / b:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
