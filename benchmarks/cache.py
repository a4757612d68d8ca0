"""Simulation cache: a repeated simulation against a cold one, and a repeated verification against a cold one."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import ZOO, Settings, built, reverified, rounded, verify_command
from compiler.foundation.ngspice import Runner
from compiler.foundation.simcache import SimCache
from compiler.foundation.simulation import Simulation, Tran

# A 16-stage pfet mirror ladder under a slow transient: a small but real simulation.
STAGES = 16
DECK = "\n".join(
    ["VDD vdd 0 1.8", "IREF d0 0 1n"]
    + [f"XM{i} d{i} d0 vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=4 m={1 + i % 4}" for i in range(STAGES)]
    + [f"V{i} d{i} 0 0.9" for i in range(1, STAGES)]
)


def run(settings: Settings) -> list[dict]:
    return [_simulation(), _verification(settings)]


def _simulation() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(cache=SimCache(Path(tmp)))
        sim = Simulation(DECK, analyses=(Tran(10e-6, 20e-3),))
        start = time.perf_counter()
        cold = runner.run(sim)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = runner.run(sim)
        warm_s = time.perf_counter() - start
    assert not cold.cached and warm.cached
    return {
        "benchmark": "cache",
        "what": "one simulation",
        "cold_s": rounded(cold_s),
        "repeat_s": rounded(warm_s),
        "speedup": rounded(cold_s / warm_s),
        "cached": "0 -> 1",
        "command": "python -m benchmarks.run cache  (16-device pfet mirror, 20 ms transient)",
    }


def _verification(settings: Settings) -> dict:
    """`verify` from an empty cache and then again on it: the whole command and its SPICE part (wall_s)."""
    directory, _, _ = built(ZOO / f"{settings.timing_model}.ckpt", layout=True)
    cold, repeat = reverified(directory, settings.sequences, settings.frames)
    command = verify_command(settings.timing_model, settings.sequences, settings.frames, cache="C")
    return {
        "benchmark": "cache",
        "what": f"verify {settings.timing_model} (whole command)",
        "cold_s": rounded(cold["command_s"]),
        "repeat_s": rounded(repeat["command_s"]),
        "speedup": rounded(cold["command_s"] / repeat["command_s"]),
        "spice_cold_s": rounded(cold["wall_s"]),
        "spice_repeat_s": rounded(repeat["wall_s"]),
        "cached": f"{cold['cached']} -> {repeat['cached']} of {repeat['sequences']}",
        "command": f"{command}, twice with the same C=$(mktemp -d)",
    }
