"""`make demo`: compile the bundled default model (the zoo's FQ-BMRU d=4 on sequential digits) and, when
the verification flow is present, check the circuit against the model in ngspice. Every number it
prints is computed in this run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flows.build import add_arguments, run

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "zoo" / "fq_bmru_d4_digits_rows.ckpt"
OUT = Path("build") / "demo"


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m flows.demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv if argv is not None else [str(DEFAULT_MODEL), "-o", str(OUT), "-f"])
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
