"""`python -m compiler config MODEL.ckpt`: a starter YAML configuration listing every stage of the model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from compiler.config import starter_config
from compiler.frontend import load_network
from compiler.lower import lower


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="a model checkpoint (.ckpt)")
    parser.add_argument("-o", "--out", default=None, help="write the YAML here instead of the terminal")


def run(args) -> int:
    text = starter_config(lower(load_network(args.checkpoint)))
    if args.out is None:
        print(text, end="")
        return 0
    out = Path(args.out)
    fd, tmp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", prefix=".config-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0
