"""`python -m compiler SUBCOMMAND ...`: the command line a chip designer uses.

Each subcommand lives in its own flow module exposing `add_arguments(parser)` and `run(args) -> int`;
this file only wires them up and turns named errors into exit statuses (2 for bad input).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from compiler.foundation.errors import CompilerError, file_label
from flows import build, characterize, drc, explore, lvs, parasitics, starter_config, train, verify
from models.errors import UsageError as ModelUsageError

SUBCOMMANDS = {
    "train": (train, "train a model as the circuit realises it (hardware-aware), for a build configuration"),
    "build": (build, "compile a checkpoint into a sky130 netlist, reference model and report"),
    "config": (starter_config, "write a starter build configuration for a checkpoint"),
    "verify": (verify, "simulate the built circuit and compare it with the model, frame by frame"),
    "characterize": (characterize, "SPICE-characterise cells and write calibration tables"),
    "drc": (drc, "design-rule check of the built layout (the sky130 rule table, then the official KLayout decks)"),
    "lvs": (lvs, "compare the built layout's extracted netlist with the built SPICE netlist (KLayout, netgen)"),
    "explore": (explore, "sweep build settings over checkpoints: accuracy, power, area, transistors; the Pareto front"),
    "extract": (parasitics, "extract the wiring capacitance of every net from the layout into an extracted netlist"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m compiler", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(module=module)
        module.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate_as_exit) if main_thread else None
    try:
        return int(args.module.run(args) or 0)
    except (CompilerError, ModelUsageError) as error:  # the model zoo's own named errors (train)
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return error.exit_status
    except OSError as error:  # the file system refused: a path that cannot be read or written, a full disk
        where = f" {file_label(error.filename)}:" if error.filename else ""
        print(
            f"error: {type(error).__name__}:{where} {error.strerror or error}; check the path, its permissions "
            "and the free space",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def terminate_as_exit(signum, frame):
    """SIGTERM (a CI job's cancel, `kill`) unwinds like Ctrl-C, so the ngspice processes a run waits on
    are killed on the way (compiler/foundation/ngspice.py `kill_running`)."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
