"""Build time per zoo model (no layout): checkpoint to netlist, reference and report."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from compiler.errors import UsageError
from flows.build import build

ZOO = Path(__file__).resolve().parent.parent / "models" / "zoo"


def run(quick: bool = False) -> list[dict]:
    rows = []
    for ckpt in sorted(ZOO.glob("fq_*.ckpt")):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            try:
                manifest = build(ckpt, Path(tmp) / "b", log=lambda *_: None)
            except UsageError as error:
                rows.append({"benchmark": "build", "model": ckpt.stem, "seconds": None,
                             "note": f"{type(error).__name__}", "command": f"python -m compiler build {ckpt.name}"})
                continue
            seconds = time.perf_counter() - start
        facts = manifest["facts"]["netlist"]
        rows.append({"benchmark": "build", "model": ckpt.stem, "seconds": round(seconds, 2),
                     "transistors": facts["transistor_instances"], "note": "",
                     "command": f"python -m compiler build models/zoo/{ckpt.name} -o DIR"})
    return rows
