"""Per zoo model: transistors, area, SPICE power, energy per inference, the accuracy of the trained,
realised and simulated network and the circuit's prediction agreement with each, next to
the published schematic-level figures of a d=4, 2-layer network in 180 nm CMOS.

Power is measured in SPICE over the simulated frames (mean supply current x VDD, per supply block);
the energy per inference is that power over the task's whole sequence (frames x frame period). A
prediction is the readout after the whole sequence, so it is compared only when every frame was simulated.
"""

from __future__ import annotations

from benchmarks.common import (
    PUBLISHED_MODEL,
    Settings,
    build_command,
    built,
    rounded,
    task_frames,
    verified,
    verify_command,
    whole_sequence_prediction,
    zoo_models,
)
from compiler.foundation.errors import CompilerError

# The chain from the trained network to the circuit (flows/verify.py): column -> verify metric. The
# published agreement compares its circuit with its software model: the circuit-vs-trained column.
CHAIN = {
    "float_acc": "float_accuracy",
    "realised_acc": "reference_accuracy",
    "circuit_acc": "circuit_accuracy",
    "prediction_agreement": "prediction_agreement",
    "trained_prediction_agreement": "trained_prediction_agreement",
}

# Published figures: 180 nm CMOS, Spectre, schematic only: a d=4, 2-layer keyword-spotting network ('yes'
# against other words of recorded speech; its software accuracy is the float column).
PUBLISHED = {
    "benchmark": "zoo_figures",
    "model": "published d=4, 2 layers, keyword spotting on recorded speech (180 nm, schematic)",
    "transistors": 768,
    "unit_transistors": "",
    "area_mm2": "",
    "power_nW": 83.0,
    "cells_nW": 44.0,
    "arrays_nW": "",
    "bias_nW": "",
    "energy_per_inference_nJ": "",
    "float_acc": 0.942,
    "realised_acc": "",
    "circuit_acc": "",
    "prediction_agreement": "",
    "trained_prediction_agreement": round(49 / 50, 3),  # circuit vs its software model
    "state_agreement": "",
    "sequences": 50,
    "frames": "",
    "command": "published (schematic only)",
}


def run(settings: Settings) -> list[dict]:
    rows = []
    for ckpt in zoo_models(settings.zoo_figure_models, prefix="fq_bmru_"):
        sequences, frames = (
            (settings.sequences, settings.frames)
            if ckpt.stem == settings.timing_model  # its run
            else (settings.figure_sequences, settings.figure_frames)
        )
        try:
            directory, manifest, _ = built(ckpt, layout=True)
            metrics, _ = verified(directory, sequences, frames)
        except CompilerError as error:
            rows.append(
                {
                    "benchmark": "zoo_figures",
                    "model": ckpt.stem,
                    "command": f"{type(error).__name__}: {str(error)[:80]}",
                }
            )
            continue
        full_frames = task_frames(directory)
        blocks = metrics["power_by_block_W"]
        rows.append(
            {
                "benchmark": "zoo_figures",
                "model": ckpt.stem,
                "transistors": manifest["facts"]["netlist"]["transistor_instances"],
                "unit_transistors": manifest["facts"]["netlist"]["unit_devices"],
                "area_mm2": rounded(manifest["facts"]["layout"]["area_um2"] / 1e6),
                "power_nW": rounded(metrics["power_W"] * 1e9),
                **{f"{b}_nW": rounded(blocks[b] * 1e9) if b in blocks else "" for b in ("cells", "arrays", "bias")},
                "energy_per_inference_nJ": rounded(metrics["power_W"] * full_frames * metrics["frame_period_s"] * 1e9),
                **{column: whole_sequence_prediction(metrics, full_frames, key) for column, key in CHAIN.items()},
                "state_agreement": rounded(metrics["state_agreement"]),
                "sequences": metrics["sequences"],
                "frames": f"{metrics['frames']} of {full_frames}",
                "command": verify_command(ckpt.stem, sequences, frames)
                + f"; area: {build_command(ckpt.stem)} (layout/area.json)",
            }
        )
        if ckpt.stem == PUBLISHED_MODEL:
            rows.append(dict(PUBLISHED))
    return rows
