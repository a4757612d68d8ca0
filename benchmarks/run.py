"""`make bench`: run the benchmarks, write benchmarks/results.json and benchmarks/results.md.

`python -m benchmarks.run [NAME ...] [--quick]`: NAME picks benchmarks (default: all).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
from pathlib import Path

from compiler.ngspice import ngspice_version

BENCHMARKS = ("model_load", "cache", "build")
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="fewer corners and repeats")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    rows = []
    for name in args.names or BENCHMARKS:
        start = time.perf_counter()
        found = importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        print(f"{name}: {time.perf_counter() - start:.1f} s")
        rows.extend(found)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ngspice": ngspice_version()},
        "results": rows,
    }
    _write(HERE / "results.json", json.dumps(report, indent=2) + "\n")
    _write(HERE / "results.md", _markdown(report))
    print(_markdown(report))
    return 0


def _markdown(report: dict) -> str:
    lines = ["# Benchmark results", "", f"Machine: {report['machine']}", ""]
    by_name: dict[str, list[dict]] = {}
    for row in report["results"]:
        by_name.setdefault(row["benchmark"], []).append(row)
    for name, rows in by_name.items():
        columns = [k for k in rows[0] if k != "benchmark"]
        lines += [f"## {name}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
