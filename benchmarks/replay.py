"""Partitioned against monolithic simulation of one model: ngspice CPU per sequence, and how far the
sampled outputs and states of each partitioned replay (flows/verify.py REPLAYS) are from the monolithic
run's. Every simulation runs alone, with one thread and no cache; the CPU is the children's user + system
time. The first row is the monolithic run with whole model files instead of the bins each instance
selects (the setting before bins, which gives bit-identical samples): the baseline of the ratios."""

from __future__ import annotations

import dataclasses
import resource

import numpy as np

from benchmarks.common import ZOO, Settings, build_command, built, rounded
from compiler.foundation.ngspice import Runner
from flows.verify import REPLAYS, simulate


class _WholeModelFiles(Runner):
    """A runner that gives each simulation the whole files of the devices it uses, not their bins."""

    def run(self, sim, threads=None):
        return super().run(dataclasses.replace(sim, models="files"), threads=threads)


def run(settings: Settings) -> list[dict]:
    model, sequences, frames = settings.replay_model
    directory, _, _ = built(ZOO / f"{model}.ckpt", layout=False)
    plans = [("monolithic, whole model files", _WholeModelFiles, None), ("monolithic", Runner, None)]
    plans += [(f"partitioned, {replay} replay", Runner, replay) for replay in REPLAYS]
    rows, baseline, reference = [], None, None
    for name, runner, replay in plans:
        before = _children_cpu()
        got = simulate(
            directory, sequences, frames, 1, replay is not None, replay or "held", runner(cache=None, threads=1)
        )
        cpu = _children_cpu() - before
        baseline, reference = baseline or cpu, reference or got
        outputs = np.array([g["outputs"] - r["outputs"] for g, r in zip(got, reference)])
        rows.append(
            {
                "benchmark": "replay",
                "model": model,
                "simulation": name,
                "sequences": sequences,
                "frames": frames or "all",
                "cpu_s_per_sequence": rounded(cpu / sequences),
                "cpu_ratio": rounded(baseline / cpu),
                "max_output_difference_units": float(f"{np.max(np.abs(outputs)):.3g}"),
                "rms_output_difference_units": float(f"{np.sqrt(np.mean(outputs**2)):.3g}"),
                "states_differing": sum(
                    int(np.sum(g["states"][c] != r["states"][c])) for g, r in zip(got, reference) for c in r["states"]
                ),
                "command": f"{build_command(model)} --no-layout; python -m benchmarks.run replay"
                + ("" if settings.replay_model == Settings.of("default").replay_model else " --full"),
            }
        )
    return rows


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
