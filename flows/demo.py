"""`make demo`: the main job on the bundled default model, the zoo's FQ-BMRU d=4 on sequential digits.

It builds the model with the configuration it ships with (netlist, layout, reference, report), then
simulates the circuit in ngspice on the first test sequences and compares it with the model, frame by
frame. Every number it prints is computed in this run. Exit status: the build's if it fails, else `verify`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compiler.foundation.errors import UsageError
from compiler.foundation.ngspice import available_cores
from flows.arguments import count
from flows.cli import main as cli
from models.catalog import build_config, zoo_path

DEFAULT_MODEL = zoo_path("fq_bmru_d4_digits_clock")
OUT = Path("build") / "demo"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.demo", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default=str(OUT), help=f"build directory (default: {OUT})")
    parser.add_argument(
        "--sequences", type=count(0, 100_000), default=2, help="test sequences to verify (0: build only)"
    )
    args = parser.parse_args(argv)
    try:
        jobs = min(available_cores(), 2 * args.sequences)  # its widest batch: each sequence's cells alone
    except UsageError as error:  # a bad FQRNN_NGSPICE_CORES
        parser.error(str(error))
    config = build_config(DEFAULT_MODEL)
    status = cli(["build", str(DEFAULT_MODEL), "-o", args.out, "-f", *(["--config", str(config)] if config else [])])
    if status or args.sequences < 1:
        return status
    return cli(["verify", args.out, "--sequences", str(args.sequences), "--partitioned", "-j", str(jobs)])


if __name__ == "__main__":
    sys.exit(main())
