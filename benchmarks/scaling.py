"""How verification time grows with the number of memory cells: the exponent b of time ~ cells^b.

Synthetic FQ-BMRU networks (random weights, seed 0) of 1, 4 and 16 layers of 4 cells (4, 16, 64 cells;
64 only with --full) on the flip-flop task's inputs (4 channels), one test sequence each, from an
empty cache. Layers of a fixed width keep every partition the same size, so the partitioned exponent
shows what cutting the network layer by layer buys against one transient of all the cells.
"""

from __future__ import annotations

import functools

import numpy as np

from benchmarks.common import Settings, built, rounded, simulation, verified, verify_command, workdir
from compiler.foundation.errors import CompilerError

WIDTH = 4  # cells per layer
TASK = "flipflop"  # 4 input channels, 2 outputs per frame


def fit_exponent(cells, seconds) -> tuple[float, float]:
    """(a, b) of the least-squares fit log(seconds) = a + b log(cells); needs two sizes or more."""
    if len(cells) < 2:
        raise ValueError("an exponent needs at least two network sizes")
    b, a = np.polyfit(np.log(np.asarray(cells, float)), np.log(np.asarray(seconds, float)), 1)
    return float(a), float(b)


def synthetic_checkpoint(path, cells: int, width: int = WIDTH, seed: int = 0):
    """A random FQ-BMRU checkpoint of `cells` cells in layers of `width`, for the flip-flop task's inputs."""
    from models.backbone import build_graph
    from models.checkpoint import Checkpoint, save_checkpoint
    from models.network import init_arrays

    if cells % width:
        raise ValueError(f"{cells} cells do not make whole layers of {width}")
    graph = build_graph("fq_bmru", 4, width, 2, layers=cells // width)
    save_checkpoint(path, Checkpoint(graph, init_arrays(graph, seed), {"task": TASK}))
    return path


def run(settings: Settings):
    """Rows as they are measured (the 64-cell runs take minutes), each fit after its sizes."""
    plans = (
        (None, settings.monolithic_cells),
        ("held", settings.partitioned_cells),
        ("exact", settings.partitioned_cells),
    )
    for replay, sizes in plans:
        measured = {}
        for cells in sizes:
            try:
                metrics, _ = verified(_network(cells), 1, settings.scaling_frames, 1, replay)
            except CompilerError as error:  # a failed size is reported; the fit uses the others
                yield _row(cells, settings, replay, note=f"{type(error).__name__}: {str(error)[:80]}")
                continue
            measured[cells] = metrics["wall_s"]
            yield _row(cells, settings, replay, wall_s=rounded(metrics["wall_s"]), cached=metrics["cached"])
        if len(measured) >= 2:
            _, b = fit_exponent(list(measured), list(measured.values()))
            yield _row("fit " + ", ".join(map(str, measured)), settings, replay, exponent=round(b, 2))


@functools.lru_cache(maxsize=None)
def _network(cells: int):
    """The build directory of the synthetic network of `cells` cells (one per run)."""
    ckpt = synthetic_checkpoint(workdir(f"cells{cells}") / f"fq_bmru_{cells}cells.ckpt", cells)
    return built(ckpt, layout=False)[0]


def _row(cells, settings: Settings, replay: str | None, **figures) -> dict:
    if isinstance(cells, int):
        command = f"python -m benchmarks.scaling {cells} C{cells}.ckpt && " + verify_command(
            f"C{cells}.ckpt", 1, settings.scaling_frames, 1, replay
        )
    else:
        command = "least squares log(wall_s) = a + b log(cells) over the rows above (benchmarks.scaling.fit_exponent)"
    return {
        "benchmark": "scaling",
        "simulation": simulation(replay),
        "cells": cells,
        "layers": cells // WIDTH if isinstance(cells, int) else "",
        "frames": settings.scaling_frames,
        "wall_s": "",
        "cached": "",
        "exponent": "",
        **figures,
        "command": command,
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.scaling CELLS OUT.ckpt`: write the synthetic network the benchmark times."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=main.__doc__)
    parser.add_argument("cells", type=int, help=f"number of memory cells, a multiple of {WIDTH}")
    parser.add_argument("out", help="checkpoint path")
    args = parser.parse_args(argv)
    synthetic_checkpoint(args.out, args.cells)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
