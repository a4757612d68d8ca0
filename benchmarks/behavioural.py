"""The behavioural model against SPICE on the same sequences: how much faster it is and how well they agree.

The behavioural time includes its JIT compilation (a designer pays it once per run); the SPICE time is
one ngspice process from an empty cache. Same simulations as the verification benchmark.
"""

from __future__ import annotations

from benchmarks.common import (
    ZOO,
    Settings,
    built,
    rounded,
    simulation,
    task_frames,
    verified,
    verify_command,
    whole_sequence_prediction,
)


def run(settings: Settings) -> list[dict]:
    directory, _, _ = built(ZOO / f"{settings.timing_model}.ckpt", layout=True)
    rows, frames = [], task_frames(directory)
    for replay in (None, "held"):
        metrics, _ = verified(directory, settings.sequences, settings.frames, 1, replay)
        rows.append(
            {
                "benchmark": "behavioural",
                "model": settings.timing_model,
                "spice": simulation(replay),
                "sequences": metrics["sequences"],
                "frames": metrics["frames"],
                "spice_s": rounded(metrics["wall_s"]),
                "behavioural_s": rounded(metrics["reference_s"]),
                "speed_ratio": rounded(metrics["wall_s"] / metrics["reference_s"]) if metrics["reference_s"] else None,
                "state_agreement": rounded(metrics["state_agreement"]),
                "prediction_agreement": whole_sequence_prediction(metrics, frames),
                "output_rms_units": rounded(metrics["output_rms_units"]),
                "command": verify_command(settings.timing_model, settings.sequences, settings.frames, 1, replay),
            }
        )
    return rows
