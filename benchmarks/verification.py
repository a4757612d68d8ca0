"""Verification time per sequence: the whole netlist at once against layer by layer, with 1 and 2 ngspice
processes, each from an empty cache (the d=4 flip-flop zoo model; the d=4 digits model with --full).
The speedup is against the monolithic simulation in one process."""

from __future__ import annotations

from benchmarks.common import ZOO, Settings, built, rounded, simulation, verified, verify_command


def run(settings: Settings) -> list[dict]:
    directory, _, _ = built(ZOO / f"{settings.timing_model}.ckpt", layout=True)
    rows, baseline = [], None
    for replay in (None, "held", "exact"):
        for jobs in (1, 2):
            metrics, _ = verified(directory, settings.sequences, settings.frames, jobs, replay)
            baseline = baseline or metrics["wall_s"]  # monolithic, one process
            rows.append(
                {
                    "benchmark": "verification",
                    "model": settings.timing_model,
                    "simulation": simulation(replay),
                    "partitions": metrics["partitions"],
                    "jobs": jobs,
                    "sequences": metrics["sequences"],
                    "frames": metrics["frames"],
                    "wall_s": rounded(metrics["wall_s"]),
                    "s_per_sequence": rounded(metrics["wall_s_per_sequence"]),
                    "speedup": rounded(baseline / metrics["wall_s"]),
                    "cached": metrics["cached"],
                    "state_agreement": rounded(metrics["state_agreement"]),
                    "command": verify_command(settings.timing_model, settings.sequences, settings.frames, jobs, replay),
                }
            )
    return rows
