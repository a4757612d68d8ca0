"""`make bench`: run the benchmarks, write benchmarks/results.json and benchmarks/results.md.

`python -m benchmarks.run [NAME ...] [--full | --quick]`: NAME picks benchmarks (default: all). The
default run takes 4 to 8 minutes on an idle 2-core machine (230 s in the committed results); --full adds
the slow items (all five corners, every zoo model's DRC, LVS and power, longer and more sequences, 64
cells, the CMRU ladder's whole limits study); --quick is a smoke test.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import Settings
from compiler.foundation.ngspice import ngspice_version

# The slowest and least certain last: an interrupted run has saved the others.
BENCHMARKS = (
    "model_load",
    "build",
    "zoo_figures",
    "cache",
    "verification",
    "behavioural",
    "replay",
    "cmru_limits",
    "scaling",
)
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="also the slow items (hours)")
    size.add_argument("--quick", action="store_true", help="smallest settings, to check the runner works")
    parser.add_argument("-o", "--out", default=str(HERE), help="directory for results.json and results.md")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    mode = "full" if args.full else "quick" if args.quick else "default"
    settings = Settings.of(mode)
    command = " ".join(["python -m benchmarks.run", *args.names, *([f"--{mode}"] if mode != "default" else [])])
    rows, seconds, begin = [], {}, time.perf_counter()
    for name in args.names or BENCHMARKS:
        start = time.perf_counter()
        for row in importlib.import_module(f"benchmarks.{name}").run(settings):
            rows.append(row)  # saved as it comes: an interrupted run keeps what it measured
            _save(Path(args.out), _report(command, mode, settings, rows, {"total": None, **seconds}))
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"{name}: {seconds[name]} s", flush=True)
    report = _report(command, mode, settings, rows, {"total": round(time.perf_counter() - begin, 1), **seconds})
    _save(Path(args.out), report)
    print(markdown(report))
    return 0


def _report(command: str, mode: str, settings: Settings, rows: list, seconds: dict) -> dict:
    return {
        "command": command,
        "mode": mode,
        "settings": dataclasses.asdict(settings),
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "ngspice": ngspice_version(),
        },
        "wall_s": seconds,
        "results": rows,
    }


def _save(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "results.json", json.dumps(report, indent=2) + "\n")
    _write(out / "results.md", markdown(report))


def markdown(report: dict) -> str:
    """One table per benchmark, columns in the order the rows first give them; the command in each row."""
    lines = [
        "# Benchmark results",
        "",
        f"`{report['command']}` on {report['date_utc']} UTC ({report['mode']} settings): "
        f"{report['wall_s']['total'] or 'unfinished: no total'} s in all.",
        "",
        f"Machine: `{json.dumps(report['machine'])}`",
        "",
        f"Settings (benchmarks/common.py MODES): `{json.dumps(report['settings'])}`",
        "",
    ]
    by_name: dict[str, list[dict]] = {}
    for row in report["results"]:
        by_name.setdefault(row["benchmark"], []).append(row)
    for name, rows in by_name.items():
        columns = list(dict.fromkeys(k for r in rows for k in r if k not in ("benchmark", "command"))) + ["command"]
        doc = importlib.import_module(f"benchmarks.{name}").__doc__.split("\n\n")[0].replace("\n", " ")
        lines += [
            f"## {name} ({report['wall_s'].get(name, '?')} s)",
            "",
            doc,
            "",
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
        ]
        lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|")


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
