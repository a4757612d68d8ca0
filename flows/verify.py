"""`python -m compiler verify DIR`: simulate the built circuit in ngspice and compare it, frame by frame,
with the behavioural reference (the network the compiler meant to build, run by the zoo's own code).

Metrics (DOMAIN.md section 6): state agreement over (cell, frame) pairs; RMS error of the candidate
currents and of the outputs in units of i_unit; prediction agreement over sequences (classifiers); the
circuit's task metric on the simulated sequences next to the float model's. Exit status 1 when a
tolerance fails, so a designer can regression-test circuit fidelity in CI.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from compiler.backends.behavioural import reference
from compiler.config import Config
from compiler.errors import UsageError
from compiler.ir import IR, CurrentOutput
from compiler.ngspice import Runner
from flows.testbench import bench, samples
from models.checkpoint import load_checkpoint
from models.network import apply
from models.tasks import get_task

TOLERANCES = {"state_agreement": 0.99, "prediction_agreement": 0.98}


class NotABuild(UsageError):
    """The directory is not a finished build."""


def _load(directory: Path) -> tuple[IR, Config]:
    try:
        ir = IR.from_json((directory / "ir.json").read_text())
        resolved = yaml.safe_load((directory / "config.yaml").read_text())
    except OSError:
        raise NotABuild(f"{directory} is not a build directory (no ir.json / config.yaml); run "
                        "`python -m compiler build MODEL.ckpt -o DIR` first.") from None
    if not (directory / "netlist" / "network.spice").is_file():
        raise NotABuild(f"{directory} has no netlist; rebuild it with `python -m compiler build`.")
    return ir, Config(**resolved)


def _per_frame_layer(ir: IR) -> str:
    """The layer whose per-frame values the output pins carry (the readout before time pooling)."""
    graph, output = ir.meta["graph"], ir.of_kind(CurrentOutput)[0]
    layer = next(l for l in graph["layers"] if l["name"] == output.source)
    if layer["type"] == "mean_time":
        return next(src for src, dst in graph["edges"] if dst == output.source)
    return output.source


def verify(directory, sequences: int = 8, jobs: int = 1, corner: str | None = None, temp: float | None = None,
           runner: Runner | None = None, log=print) -> dict:
    directory = Path(directory)
    ir, config = _load(directory)
    task = get_task(ir.meta["task"])
    x, y = task.test.x[:sequences], task.test.y[:sequences]
    corner = corner or config.get("corner")
    temp = config.get("temp") if temp is None else temp
    frame = config.get("frame_period")
    benches = [bench(ir, directory / "netlist", seq, frame, corner, temp) for seq in x]
    runner = runner or Runner()
    start = time.perf_counter()
    results = runner.run_many([sim for sim, _ in benches], jobs=jobs)
    wall = time.perf_counter() - start
    got = [samples(res, where, ir) for res, (_, where) in zip(results, benches)]
    _, traces = reference(ir, x)
    per_frame = _per_frame_layer(ir)
    ref_out = np.asarray(traces[per_frame]["y"])
    spice_out = np.stack([g["outputs"] for g in got])
    cells = list(got[0]["states"])
    state_ref = {c: np.asarray(traces[c]["q"]) for c in cells}
    state_spice = {c: np.stack([g["states"][c] for g in got]) for c in cells}
    cand_ref = {c: np.asarray(traces[c]["h"]) for c in cells}
    cand_spice = {c: np.stack([g["candidates"][c] for g in got]) for c in cells}
    metrics = {
        "sequences": len(x), "frames": int(x.shape[1]), "frame_period_s": frame, "corner": corner, "temp": temp,
        "state_agreement": float(np.mean(np.concatenate([(state_spice[c] == state_ref[c]).ravel() for c in cells])))
        if cells else None,
        "state_agreement_by_cell": {c: float(np.mean(state_spice[c] == state_ref[c])) for c in cells},
        "candidate_rms_units": {c: float(np.sqrt(np.mean((cand_spice[c] - cand_ref[c]) ** 2))) for c in cells},
        "output_rms_units": float(np.sqrt(np.mean((spice_out - ref_out) ** 2))),
        "wall_s": round(wall, 2), "wall_s_per_sequence": round(wall / len(x), 2),
        "cached": sum(r.cached for r in results),
    }
    if task.pool:
        spice_pred = np.argmax(spice_out.mean(axis=1), -1)
        ref_pred = np.argmax(ref_out.mean(axis=1), -1)
        float_out, _ = apply(*_float_model(ir), x)
        metrics.update({
            "prediction_agreement": float(np.mean(spice_pred == ref_pred)),
            "circuit_accuracy": float(np.mean(spice_pred == y)),
            "reference_accuracy": float(np.mean(ref_pred == y)),
            "float_accuracy": float(np.mean(np.argmax(np.asarray(float_out), -1) == y)),
        })
    failed = [k for k, limit in TOLERANCES.items() if metrics.get(k) is not None and metrics[k] < limit]
    metrics["tolerances"], metrics["failed"] = TOLERANCES, failed
    _write_reports(directory / "verify", metrics, state_spice, state_ref, spice_out, ref_out)
    return metrics


def _float_model(ir: IR):
    ckpt = load_checkpoint(ir.meta["model"])
    return ckpt.graph, ckpt.arrays


def _write_reports(out: Path, metrics: dict, state_spice, state_ref, spice_out, ref_out) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / "report.json", json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    _atomic(out / "report.md", markdown(metrics))
    _plot(out / "traces.png", state_spice, state_ref, spice_out, ref_out)


def markdown(metrics: dict) -> str:
    rows = [("sequences x frames", f"{metrics['sequences']} x {metrics['frames']} (frame {metrics['frame_period_s'] * 1e3:g} ms)"),
            ("corner, temperature", f"{metrics['corner']}, {metrics['temp']:g} C"),
            ("state agreement", metrics["state_agreement"]),
            ("output RMS error (units)", round(metrics["output_rms_units"], 4))]
    for key in ("prediction_agreement", "circuit_accuracy", "reference_accuracy", "float_accuracy"):
        if key in metrics:
            rows.append((key.replace("_", " "), metrics[key]))
    rows += [(f"candidate RMS error {c} (units)", round(v, 4)) for c, v in metrics["candidate_rms_units"].items()]
    rows.append(("SPICE wall time per sequence", f"{metrics['wall_s_per_sequence']} s ({metrics['cached']} cached)"))
    verdict = "PASS" if not metrics["failed"] else "FAIL: " + ", ".join(metrics["failed"])
    return "\n".join(["# Verification: SPICE against the behavioural reference", "", "| metric | value |",
                      "|---|---|", *[f"| {k} | {v} |" for k, v in rows], "", f"Tolerances {metrics['tolerances']}: {verdict}", ""])


def _plot(path: Path, state_spice, state_ref, spice_out, ref_out) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(state_spice)
    fig, axes = plt.subplots(1 + len(cells), 1, figsize=(8, 2.2 * (1 + len(cells))), squeeze=False)
    frames = np.arange(spice_out.shape[1])
    for k in range(spice_out.shape[2]):
        line, = axes[0, 0].plot(frames, spice_out[0, :, k], "o-", ms=3)
        axes[0, 0].plot(frames, ref_out[0, :, k], "--", color=line.get_color())
    axes[0, 0].set_title("sequence 0: output currents (units), SPICE (o-) vs reference (--)")
    for ax, c in zip(axes[1:, 0], cells):
        ax.imshow(np.concatenate([state_spice[c][0].T, state_ref[c][0].T]), aspect="auto", cmap="Greys",
                  interpolation="nearest")
        ax.set_title(f"{c}: states, SPICE (top rows) and reference (bottom rows)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def add_arguments(parser) -> None:
    parser.add_argument("directory", help="a build directory (`python -m compiler build ... -o DIR`)")
    parser.add_argument("--sequences", type=int, default=8, help="test sequences to simulate")
    parser.add_argument("--corner", default=None, help="process corner (default: the build's)")
    parser.add_argument("--temp", type=float, default=None, help="temperature in C (default: the build's)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="ngspice processes at once")


def run(args) -> int:
    if args.sequences < 1:
        raise UsageError("--sequences must be at least 1")
    metrics = verify(args.directory, args.sequences, args.jobs, args.corner, args.temp)
    print(markdown(metrics))
    print(f"reports: {Path(args.directory) / 'verify'}", file=sys.stderr)
    return 1 if metrics["failed"] else 0
