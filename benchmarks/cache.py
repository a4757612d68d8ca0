"""Simulation cache: a repeated simulation against a cold one."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from compiler.ngspice import Runner, Simulation
from compiler.simcache import SimCache

# A 16-stage pfet mirror ladder under a slow transient: a small but real simulation.
STAGES = 16
DECK = "\n".join(
    ["VDD vdd 0 1.8", "IREF d0 0 1n"]
    + [f"XM{i} d{i} d0 vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=4 m={1 + i % 4}" for i in range(STAGES)]
    + [f"V{i} d{i} 0 0.9" for i in range(1, STAGES)]
    + [".tran 10u 20m"]
)


def run(quick: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(cache=SimCache(Path(tmp)))
        sim = Simulation(DECK)
        start = time.perf_counter()
        cold = runner.run(sim)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = runner.run(sim)
        warm_s = time.perf_counter() - start
    assert not cold.cached and warm.cached
    return [{
        "benchmark": "cache", "cold_s": round(cold_s, 4), "hit_s": round(warm_s, 4),
        "speedup": round(cold_s / warm_s, 1),
        "command": "python -m benchmarks.run cache  (16-device pfet mirror, 20 ms transient)",
    }]
