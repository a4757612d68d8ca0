"""Partitioned against monolithic simulation of one model: ngspice CPU per sequence, and how far the
sampled outputs and states of each partitioned replay (flows/verify.py REPLAYS) are from the monolithic
run's. Every simulation runs alone, with one thread and no cache; the CPU is the children's user + system
time. Differences are from the monolithic run (the first row). The monolithic run with whole model
files instead of the bins each instance selects (the setting before bins, bit-identical samples) is the
baseline of the CPU ratios. The monolithic run with its step cap a ninth larger shows how far the
simulator's own step choice moves the samples: read a replay's differences against that spread."""

from __future__ import annotations

import dataclasses
import resource

import numpy as np

from benchmarks.common import ZOO, Settings, build_command, built, rounded
from compiler.foundation.ngspice import Runner
from compiler.foundation.simulation import Simulation, Tran
from flows.verify import REPLAYS, simulate

STEP_CAP_SCALE = 10 / 9  # a ninth larger: the benches' cap of a 50th of a frame (flows/testbench.py) becomes a 45th


class _WholeModelFiles(Runner):
    """A runner that gives each simulation the whole files of the devices it uses, not their bins."""

    def run(self, sim, threads=None):
        return super().run(dataclasses.replace(sim, models="files"), threads=threads)


def with_larger_step_cap(sim: Simulation) -> Simulation:
    """`sim` with the step cap of each capped transient STEP_CAP_SCALE times larger."""
    analyses = tuple(
        dataclasses.replace(a, tmax=a.tmax * STEP_CAP_SCALE) if isinstance(a, Tran) and a.tmax else a
        for a in sim.analyses
    )
    return dataclasses.replace(sim, analyses=analyses)


class _LargerStepCap(Runner):
    """A runner that lets the simulator take steps STEP_CAP_SCALE times longer than each transient allows."""

    def run(self, sim, threads=None):
        return super().run(with_larger_step_cap(sim), threads=threads)


def run(settings: Settings) -> list[dict]:
    model, sequences, frames = settings.replay_model
    directory, _, _ = built(ZOO / f"{model}.ckpt", layout=False)
    plans = [("monolithic", Runner, None), ("monolithic, whole model files", _WholeModelFiles, None)]
    plans += [("monolithic, step cap a ninth larger", _LargerStepCap, None)]
    plans += [(f"partitioned, {replay} replay", Runner, replay) for replay in REPLAYS]
    got = {}
    for name, runner, replay in plans:
        before = _children_cpu()
        samples = simulate(
            directory, sequences, frames, 1, replay is not None, replay or "held", runner(cache=None, threads=1)
        )
        got[name] = (samples, _children_cpu() - before)
    reference, _ = got["monolithic"]
    _, baseline = got["monolithic, whole model files"]
    rows = []
    for name, (samples, cpu) in got.items():
        outputs = np.array([g["outputs"] - r["outputs"] for g, r in zip(samples, reference)])
        worst = np.abs(outputs).max(axis=-1)  # [sequence, frame]
        rows.append(
            {
                "benchmark": "replay",
                "model": model,
                "simulation": name,
                "sequences": sequences,
                "frames": frames or "all",
                "cpu_s_per_sequence": rounded(cpu / sequences),
                "cpu_ratio": rounded(baseline / cpu),
                "max_output_difference_units": float(f"{worst.max():.3g}"),
                "rms_output_difference_units": float(f"{np.sqrt(np.mean(outputs**2)):.3g}"),
                "frames_within_1e-4_units": f"{int(np.sum(worst <= 1e-4))}/{worst.size}",
                "states_differing": sum(
                    int(np.sum(g["states"][c] != r["states"][c]))
                    for g, r in zip(samples, reference)
                    for c in r["states"]
                ),
                "command": f"{build_command(model)} --no-layout; {settings.command('replay')}",
            }
        )
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
