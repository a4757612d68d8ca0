"""`python -m compiler verify DIR`: simulate the built circuit in ngspice and compare it, frame by frame,
with the behavioural reference (the network the compiler meant to build, run by the zoo's own code).

Metrics: state agreement over (cell, frame) pairs; RMS error of the candidate
currents and of the outputs in units of i_unit; prediction agreement over sequences (classifiers); the
circuit's task metric on the simulated sequences next to the float model's. Exit status 1 when a
tolerance fails, so a designer can regression-test circuit fidelity in CI.

A simulation that fails (no convergence, over `--sim-timeout`) is listed in the report and the run
fails, but the other sequences are still compared: the metrics cover the sequences that simulated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cells.common import agg_pyplot
from compiler.backends.behavioural import reference
from compiler.backends.spice import write_netlist
from compiler.config import Config, read_user_yaml
from compiler.foundation.data import write_text_atomically
from compiler.foundation.errors import SimulationError, UsageError, file_label
from compiler.foundation.ngspice import Runner
from compiler.foundation.pdk import CORNERS
from compiler.foundation.simulation import TIME
from compiler.ir import IR, CurrentOutput
from flows import mc_model, parasitics
from flows.arguments import JOBS, SECONDS, TEMPERATURE, count
from flows.build import check_build_outputs
from flows.partition import (
    READOUT,
    held_replay,
    partitions,
    readout_alone,
    replay_start,
    replay_timing,
    replay_waveform,
)
from flows.report import SPICE_BLOCKS, power_estimate
from flows.sweep import EXECUTORS, run_all
from flows.testbench import bench, golden_outputs, isolated_bench, isolated_states, samples
from flows.tolerances import ToleranceFileError, load_tolerances  # noqa: F401 (ToleranceFileError: re-exported)
from models.checkpoint import load_checkpoint
from models.network import apply
from models.tasks import get_task

# The default verdict at the nominal condition (state agreement >= 0.99, prediction agreement >= 0.98):
# metric -> {"min": x} or {"max": x}.
TOLERANCES = {"state_agreement": {"min": 0.99}, "prediction_agreement": {"min": 0.98}}


def failures(metrics: dict, tolerances: dict) -> list[str]:
    """The metrics outside their tolerance (a metric the run did not produce is not judged)."""
    failed = []
    for metric, bound in tolerances.items():
        value = metrics.get(metric)
        if value is not None and (value < bound.get("min", -np.inf) or value > bound.get("max", np.inf)):
            failed.append(metric)
    return failed


class NotABuild(UsageError):
    """The directory is not a finished build."""


class NoDrawsToRun(UsageError):
    """`--no-spice` without `--mc-model`: nothing would run."""


class PostLayoutUnsupported(UsageError):
    """`--post-layout` with an option it does not run with."""


POST_LAYOUT = "verify_post_layout"  # DIR/verify_post_layout/: the extracted netlist's run, beside verify/


def _load(directory: Path) -> tuple[IR, Config]:
    """The build's IR and config, after checking that they, the model and the netlist are what the build
    wrote (manifest hashes): a verification is of the delivered circuit or of nothing."""
    if not (directory / "ir.json").is_file() or not (directory / "config.yaml").is_file():
        raise NotABuild(
            f"{file_label(directory)} is not a build directory (no ir.json / config.yaml); run "
            "`python -m compiler build MODEL.ckpt -o DIR` first."
        )
    check_build_outputs(directory, ("ir.json", "config.yaml", "model.ckpt", "netlist/"))
    try:
        ir = IR.from_json((directory / "ir.json").read_text())
        config = Config(**read_user_yaml(directory / "config.yaml", "build configuration", NotABuild))
        get_task(ir.meta["task"])
    except (ValueError, TypeError, KeyError) as exc:  # read_user_yaml raises NotABuild itself
        raise NotABuild(
            f"{file_label(directory)}: ir.json or config.yaml cannot be read ({type(exc).__name__}); "
            "rebuild it with `python -m compiler build`."
        ) from None
    return ir, config


def per_frame_layer(ir: IR) -> str:
    """The layer whose per-frame values the output pins carry (the readout before time pooling)."""
    graph, output = ir.meta["graph"], ir.of_kind(CurrentOutput)[0]
    layer = next(l for l in graph["layers"] if l["name"] == output.source)
    if layer["type"] == "mean_time":
        return next(src for src, dst in graph["edges"] if dst == output.source)
    return output.source


def verify(
    directory,
    sequences: int = 8,
    jobs: int = 1,
    corners=None,
    temps=None,
    mc: int = 0,
    runner: Runner | None = None,
    log=print,
    partitioned: bool = False,
    replay: str = "held",
    executor: str = "local",
    scheduler: str | None = None,
    tolerances: dict | None = None,
    frames: int | None = None,
    sim_timeout: float | None = None,
    diagnose: str = "differing",
    post_layout: bool = False,
) -> dict:
    """Verify a build at every corner x temperature asked for (default: the build's) and over `mc` seeded
    PDK mismatch draws at the first of them. The first condition is nominal: it sets the verdict.
    `partitioned` simulates layer by layer (flows/partition.py) instead of the whole netlist at once,
    each partition replaying the currents recorded upstream as `replay` says (REPLAYS).
    `sim_timeout` (s) caps each simulation; one that fails is reported and left out of the metrics.
    `diagnose` picks the sequences simulated again piece by piece (`_diagnosed`).
    `post_layout` simulates the netlist with the layout's wiring capacitance (flows/parasitics.py) and
    compares it with the schematic netlist on the same sequences too; reports go to DIR/verify_post_layout/."""
    directory = Path(directory)
    ir, config = _load(directory)
    if post_layout and partitioned:
        raise PostLayoutUnsupported("--post-layout simulates the whole netlist; leave out --partitioned.")
    _check_replay(replay)
    if post_layout:  # the isolated benches are of schematic cells: nothing for a post-layout run to add
        diagnose = "none"
    out = directory / (POST_LAYOUT if post_layout else "verify")
    extraction = parasitics.write_extracted(directory) if post_layout else None
    task = get_task(ir.meta["task"])
    x, y = task.test.x[:sequences], task.test.y[:sequences]
    if frames is not None:  # the first frames of each sequence (per-frame targets too): shorter transients
        x, y = x[:, :frames], (y[:, :frames] if np.ndim(y) >= 2 else y)
    corners = list(corners or [config.get("corner")])
    temps = [config.get("temp")] if temps is None else list(temps)
    conditions = [(c, t, None) for c in corners for t in temps] + [(corners[0], temps[0], s) for s in range(1, mc + 1)]
    frame = _frame_period(ir, config)
    runner = runner or Runner()
    if sim_timeout is not None:
        runner = dataclasses.replace(runner, timeout=sim_timeout)
    tolerances = {**TOLERANCES, **(tolerances or {})}
    rounds = len(partitions(ir)) if partitioned else 1
    start = time.perf_counter()
    total = (len(conditions) + post_layout) * len(x) * rounds
    with tqdm(total=total, desc="ngspice", unit="sim", disable=log is None) as bar:
        sweep = _Sweep(runner, jobs, executor, scheduler, lambda _: bar.update())
        if partitioned:
            flat = _partitioned(ir, directory, config, x, frame, conditions, sweep, replay)
        else:
            flat = _monolithic(ir, out / "netlist", config, x, frame, conditions, sweep, extraction)
        wall = time.perf_counter() - start
        # the schematic netlist at the nominal condition, from the cache when verify already ran it
        schematic = _monolithic(ir, out / "schematic", config, x, frame, conditions[:1], sweep) if post_layout else None
    start = time.perf_counter()
    _, traces = reference(ir, x)
    reference_s = time.perf_counter() - start
    results, failed_sims = [], []
    for i, (corner, temp, seed) in enumerate(conditions):
        got = flat[i * len(x) : (i + 1) * len(x)]
        done = [n for n, g in enumerate(got) if "error" not in g]
        failed_sims += [g for g in got if "error" in g]
        if not done and i == 0:
            raise SimulationError(
                f"every sequence failed to simulate at the nominal condition; the first: {got[0]['error']}"
            )
        got = [got[n] for n in done]
        metrics = _compare(ir, task, _take(traces, done), got, y[done], done) if got else {}
        metrics.update(
            {
                "corner": corner,
                "temp": temp,
                "mc_seed": seed,
                "simulated_sequences": len(got),
                "cached": sum(g["cached"] for g in got),
            }
        )
        results.append((metrics, got, done))
    nominal, got, done = results[0]
    nominal.update(
        {
            "sequences": len(x),
            "frames": int(x.shape[1]),
            "frame_period_s": frame,
            "simulation": "partitioned" if partitioned else "monolithic",
            "replay": replay if partitioned else None,
            "partitions": rounds,
            "wall_s": round(wall, 2),
            "wall_s_per_sequence": round(wall / len(flat), 2),
            "reference_s": round(reference_s, 3),  # the behavioural model on the same sequences
            "energy_per_inference_J": nominal["power_W"] * x.shape[1] * frame,
        }
    )
    estimate = power_estimate(ir, x[done], _take(traces, done))  # the build's model, on these sequences
    nominal["power_estimate_W"] = estimate["total_W"]
    nominal["power_estimate_by_block_W"] = {SPICE_BLOCKS[k]: v for k, v in estimate["blocks_W"].items()}
    if task.pool:
        float_pred = np.argmax(np.asarray(apply(*_float_model(directory), x)[0]), -1)
        nominal["float_accuracy"] = float(np.mean(float_pred == y))
        spice_pred = np.argmax(np.stack([g["outputs"] for g in got]).mean(axis=1), -1)
        nominal["trained_prediction_agreement"] = float(np.mean(spice_pred == float_pred[done]))
    diagnosed = _diagnosed(diagnose, ir, traces, got, done, nominal.get("disagreements", []), len(x))
    nominal["diagnosed_sequences"] = diagnosed
    nominal["isolated_state_agreement_by_cell"], nominal["isolated_disagreements"], failed_cells = _isolated(
        ir, traces, diagnosed, frame, corners[0], temps[0], sweep
    )
    nominal["isolated_output_rms_units"], failed_readout = _isolated_readout(
        ir, directory, config, traces, x, diagnosed, frame, corners[0], temps[0], sweep
    )
    nominal["simulation_failures"] = failed_sims + failed_cells + failed_readout
    nominal["conditions"] = [{k: m.get(k) for k in SUMMARY} for m, _, _ in results]
    nominal["tolerances"], nominal["failed"] = tolerances, failures(nominal, tolerances)
    if failed_sims:
        nominal["failed"].append("simulations")
    if post_layout:
        nominal["post_layout"] = _against_schematic(ir, task, got, done, schematic, extraction)
    _write_reports(out, nominal, got, _take(traces, done), ir, [m for m, _, _ in results], done[0])
    return nominal


@dataclass(frozen=True)
class _Sweep:
    """How this verification runs its simulations (flows/sweep.py), with the progress callback."""

    runner: Runner
    jobs: int
    executor: str
    scheduler: str | None
    on_done: object

    def run(self, sims: list) -> list:
        """Results, or in place of a simulation that failed its SimulationError."""
        return run_all(self.runner, sims, self.jobs, self.executor, self.scheduler, self.on_done, keep_going=True)


def _monolithic(
    ir: IR, netlist: Path, config, x, frame: float, conditions, sweep: _Sweep, extraction=None
) -> list[dict]:
    """The whole netlist per (condition, sequence): samples in that order. It is the built netlist with
    a 0 V supply probe per block (written to `netlist`, e.g. verify/netlist/), so SPICE gives the power of
    each block; with `extraction` (flows/parasitics.py) it carries the layout's wiring capacitance too."""
    write_netlist(ir, netlist, config, supply_probes=True)
    if extraction is not None:
        parasitics.annotate(netlist, extraction)
    runs = [(c, t, seed, n) for c, t, seed in conditions for n in range(len(x))]
    benches = [bench(ir, netlist, x[n], frame, c, t, seed) for c, t, seed, n in runs]
    results = sweep.run([sim for sim, _ in benches])
    return [
        _failed(r, "network", *run) if isinstance(r, SimulationError) else {**samples(r, where, ir), "cached": r.cached}
        for r, (_, where), run in zip(results, benches, runs)
    ]


def _against_schematic(ir: IR, task, got: list, done: list, schematic: list, extraction) -> dict:
    """The post-layout run against the schematic netlist's on the sequences both simulated (nominal
    condition): state agreement over (cell, frame, unit), prediction agreement over sequences, output RMS
    difference, the power of each; and the extracted capacitance with its largest nets."""
    pairs = [(g, schematic[n]) for g, n in zip(got, done) if "error" not in schematic[n]]
    if not pairs:
        return {"compared_sequences": 0}
    same = [np.asarray(p["states"][c]) == np.asarray(s["states"][c]) for p, s in pairs for c in p["states"]]
    post, schem = (np.stack([pair[k]["outputs"] for pair in pairs]) for k in (0, 1))
    post_pred, schem_pred = mc_model.predictions(post, task), mc_model.predictions(schem, task)
    return {
        "compared_sequences": len(pairs),
        "state_agreement_with_schematic": float(np.mean(np.concatenate([a.ravel() for a in same]))),
        "prediction_agreement_with_schematic": None if post_pred is None else float(np.mean(post_pred == schem_pred)),
        "output_rms_vs_schematic_units": float(np.sqrt(np.mean((post - schem) ** 2))),
        "power_W": float(np.mean([p["power_W"] for p, _ in pairs])),
        "schematic_power_W": float(np.mean([s["power_W"] for _, s in pairs])),
        "extracted_capacitance_fF": round(extraction.total_fF, 3),
        "extracted_nets": len(extraction.nets),
        "largest_nets": [
            {k: r[k] for k in ("cell", "net", "fF")} for r in sorted(extraction.nets, key=lambda r: -r["fF"])[:10]
        ],
        "largest_coupling": extraction.coupling[:1],
    }


def _failed(error: SimulationError, bench_name: str, corner: str, temp: float, seed, sequence: int) -> dict:
    """A report row for a simulation that failed: its condition, sequence, bench and error's first line."""
    return {
        "corner": corner,
        "temp": temp,
        "mc_seed": seed,
        "sequence": sequence,
        "bench": bench_name,
        "error": f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}",
    }


def _check_replay(replay: str) -> None:
    if replay not in REPLAYS:
        raise UsageError(f"unknown replay {replay!r}; choose from {', '.join(REPLAYS)}")


def _frame_period(ir: IR, config) -> float:
    """The build's frame period (from its config for builds before choose_frame set it in the IR)."""
    return ir.meta["frame_period"] if "frame_period" in ir.meta else config.get("frame_period")


def simulate(
    directory,
    sequences: int,
    frames: int | None = None,
    jobs: int = 1,
    partitioned: bool = False,
    replay: str = "held",
    runner: Runner | None = None,
) -> list[dict]:
    """The SPICE samples of the build's first test sequences (their first `frames`) at its own condition,
    one dict per sequence (states, candidates and outputs per frame in units, power): the whole netlist or
    partitioned, without the reference. What `verify` compares; for comparing simulations with each other
    (benchmarks/replay.py)."""
    _check_replay(replay)
    directory = Path(directory)
    ir, config = _load(directory)
    x = get_task(ir.meta["task"]).test.x[:sequences, :frames]
    conditions = [(config.get("corner"), config.get("temp"), None)]
    sweep = _Sweep(runner or Runner(), jobs, "local", None, None)
    if partitioned:
        return _partitioned(ir, directory, config, x, _frame_period(ir, config), conditions, sweep, replay)
    return _monolithic(ir, directory / "verify" / "netlist", config, x, _frame_period(ir, config), conditions, sweep)


def _take(traces: dict, sequences: list) -> dict:
    """The reference traces of some sequences (those that simulated)."""
    return {layer: {k: np.asarray(v)[sequences] for k, v in signals.items()} for layer, signals in traces.items()}


# How a partition replays the currents recorded upstream (flows/partition.py): 'held' one step per frame
# where the downstream reads it (phased cells; free-running ones get the waveform), the fast one; 'exact'
# the recorded waveform within REPLAY_TOLERANCE, closer to the monolithic run and as slow as it from a
# few layers on (docs/measurements.md).
REPLAYS = ("held", "exact")
REPLAY_TOLERANCE = 1e-6  # of i_unit: how closely a replayed waveform follows the recorded one


def _partitioned(
    ir: IR, directory: Path, config, x, frame: float, conditions, sweep: _Sweep, replay: str = "held"
) -> list[dict]:
    """Partition by partition (flows/partition.py), each replaying the receiver inputs recorded upstream.
    Power is the circuit's supply blocks summed over partitions (not the bench's supply, which also feeds
    the load pins' receiver copies); one partition counts the bias reference they each carry.
    A run whose partition fails is not carried into the partitions after it."""
    runs = [(c, t, seed, n) for c, t, seed in conditions for n in range(len(x))]
    merged = [{"states": {}, "candidates": {}, "power_W": 0.0, "power_by_block_W": {}, "cached": True} for _ in runs]
    recorded = [{} for _ in runs]
    tolerance = REPLAY_TOLERANCE * ir.meta["i_unit"]
    parts = partitions(ir)
    consumer = {replayed: part for part in parts for replayed in part.replays}
    start = replay_start(frame)
    for part in parts:
        netlist = directory / "verify" / "partitions" / part.name
        write_netlist(part.ir, netlist, config, supply_probes=True)
        live = [i for i in range(len(runs)) if "error" not in merged[i]]
        benches = [
            bench(
                part.ir, netlist, x[runs[i][3]], frame, *runs[i][:3], replay={r: recorded[i][r] for r in part.replays}
            )
            for i in live
        ]
        results = sweep.run([sim for sim, _ in benches])
        for i, result, (_, where) in zip(live, results, benches):
            if isinstance(result, SimulationError):
                merged[i] = _failed(result, f"partition {part.name}", *runs[i])
                continue
            got, into = samples(result, where, part.ir), merged[i]
            into["states"].update(got["states"])
            into["candidates"].update(got["candidates"])
            into["power_W"] += sum(got["power_by_block_W"].values())
            for block, watts in got["power_by_block_W"].items():
                into["power_by_block_W"][block] = into["power_by_block_W"].get(block, 0.0) + watts
            into["cached"] = into["cached"] and result.cached
            if part.name == READOUT:
                into["outputs"] = got["outputs"]
            else:  # the current into the receiver its cells feed, replayed by the partition downstream
                sign = -1.0 if part.ir.of_kind(CurrentOutput)[0].polarity == "p" else 1.0  # sunk / sourced
                timing = replay_timing(part, consumer[part.records]) if replay == "held" else None
                recorded[i][part.records] = [
                    held_replay(result[TIME], sign * result[name], frame, x.shape[1], timing)
                    if timing
                    else replay_waveform(result[TIME], sign * result[name], tolerance, start)
                    for name in where.outputs
                ]
    return merged


ISOLATED_LISTED = 50  # isolated disagreements listed in the report (the agreement counts them all)


DIAGNOSE = ("differing", "all", "none")


def _diagnosed(diagnose: str, ir: IR, traces, got: list, done: list, disagreements: list, sequences: int) -> list:
    """The test sequences to diagnose alone (cells on golden candidates, the readout on golden cell
    outputs): those whose states or prediction differ, or that failed to simulate, at the nominal
    condition ("differing"), every sequence ("all"), or none."""
    if diagnose == "all":
        return list(range(sequences))
    if diagnose == "none":
        return []
    differ = {d["sequence"] for d in disagreements} | (set(range(sequences)) - set(done))
    for g, n in zip(got, done):
        if any(np.any(np.asarray(g["states"][c]) != np.asarray(traces[c]["q"])[n]) for c in g["states"]):
            differ.add(n)
    return sorted(int(n) for n in differ)


def _isolated(
    ir: IR, traces, sequences: list, frame: float, corner: str, temp: float, sweep: _Sweep
) -> tuple[dict, list, list]:
    """Each layer of cells alone on golden (reference) candidate currents: its own error, without what
    the layers before it propagate. Compared with the in-network agreement it locates a fault. Also the
    decisions that differ, with the candidate and the unit's realised thresholds (units): a candidate
    within the calibration error of a threshold is a tie the circuit cannot be expected to break alike.
    Last, the simulations that failed (left out of the agreement)."""
    jobs_list = [
        (cell.name, n, *isolated_bench(ir, cell.name, np.asarray(traces[cell.name]["h"][n]), frame, corner, temp))
        for cell in ir.memory_cells()
        if cell.facts.name == "bistable"  # its bench is the bistable's
        for n in sequences
    ]
    results = run_all(
        sweep.runner, [sim for _, _, sim, _ in jobs_list], sweep.jobs, sweep.executor, sweep.scheduler, keep_going=True
    )
    agree, differ, failed = {}, [], []
    scale = ir.meta["i_unit"]
    for (cell, n, _, states), result in zip(jobs_list, results):
        if isinstance(result, SimulationError):
            failed.append(_failed(result, f"{cell} alone on golden inputs", corner, temp, None, n))
            continue
        got = isolated_states(result, states, traces[cell]["q"].shape[1], frame, ir.meta["vdd"])
        same = got == np.asarray(traces[cell]["q"][n])
        agree.setdefault(cell, []).append(same)
        stage = ir.stage(cell)
        for t, k in np.argwhere(~same)[: max(0, ISOLATED_LISTED - len(differ))]:
            differ.append(
                {
                    "cell": cell,
                    "sequence": n,
                    "frame": int(t),
                    "unit": int(k),
                    "reference_state": float(traces[cell]["q"][n][t, k] > 0),
                    "spice_state": float(got[t, k] > 0),
                    "candidate_units": round(float(traces[cell]["h"][n][t, k]), 5),
                    "beta_hi_units": round(stage.thresh[k] / scale, 5),
                    "beta_lo_units": round((stage.thresh[k] - stage.width[k]) / scale, 5),
                }
            )
    return {cell: float(np.mean(a)) for cell, a in agree.items()}, differ, failed


def _isolated_readout(
    ir: IR, directory: Path, config, traces, x, sequences: list, frame: float, corner: str, temp: float, sweep: _Sweep
) -> tuple[float | None, list]:
    """The readout alone (flows/partition.py `readout_alone`) on the reference's cell outputs: the output
    error the readout makes by itself, next to the one it shows inside the network; and the simulations
    that failed."""
    readout = readout_alone(ir)
    if not readout.replays or not sequences:
        return None, []
    netlist = directory / "verify" / "isolated" / READOUT
    write_netlist(readout.ir, netlist, config)
    benches = [
        bench(
            readout.ir,
            netlist,
            x[n],
            frame,
            corner,
            temp,
            replay={c: golden_outputs(ir, c, traces[c]["q"][n], frame) for c in readout.replays},
        )
        for n in sequences
    ]
    results = run_all(
        sweep.runner, [sim for sim, _ in benches], sweep.jobs, sweep.executor, sweep.scheduler, keep_going=True
    )
    failed = [
        _failed(r, "readout alone", corner, temp, None, sequences[k])
        for k, r in enumerate(results)
        if isinstance(r, SimulationError)
    ]
    done = [k for k, r in enumerate(results) if not isinstance(r, SimulationError)]
    if not done:
        return None, failed
    got = np.stack([samples(results[k], benches[k][1], readout.ir)["outputs"] for k in done])
    want = np.asarray(traces[per_frame_layer(ir)]["y"])[[sequences[k] for k in done]]
    return float(np.sqrt(np.mean((got - want) ** 2))), failed


# The chain from the trained network to the circuit, as the report names it.
CHAIN_ROWS = {
    "float_accuracy": "accuracy of the trained (float) model",
    "reference_accuracy": "accuracy of the realised model (the circuit's reference)",
    "circuit_accuracy": "accuracy of the circuit (SPICE)",
    "prediction_agreement": "prediction agreement, circuit vs realised model",
    "trained_prediction_agreement": "prediction agreement, circuit vs trained model",
}
SUMMARY = (
    "corner",
    "temp",
    "mc_seed",
    "simulated_sequences",
    "state_agreement",
    "prediction_agreement",
    "output_rms_units",
    "power_W",
)


def _compare(ir: IR, task, traces, got: list, y, sequences: list) -> dict:
    """The verification metrics of one condition's samples against the reference traces (`sequences`:
    the test sequence each sample is of)."""
    ref_out = np.asarray(traces[per_frame_layer(ir)]["y"])
    spice_out = np.stack([g["outputs"] for g in got])
    cells = list(got[0]["states"])
    agree = {c: np.stack([g["states"][c] for g in got]) == np.asarray(traces[c]["q"]) for c in cells}
    cand = {c: np.stack([g["candidates"][c] for g in got]) - np.asarray(traces[c]["h"]) for c in cells}
    metrics = {
        "state_agreement": float(np.mean(np.concatenate([a.ravel() for a in agree.values()]))) if cells else None,
        "state_agreement_by_cell": {c: float(np.mean(a)) for c, a in agree.items()},
        "candidate_rms_units": {c: float(np.sqrt(np.mean(d**2))) for c, d in cand.items()},
        "output_rms_units": float(np.sqrt(np.mean((spice_out - ref_out) ** 2))),
        "power_W": float(np.mean([g["power_W"] for g in got])),
        "power_by_block_W": {
            b: float(np.mean([g["power_by_block_W"][b] for g in got])) for b in got[0]["power_by_block_W"]
        },
    }
    ladders = [c for c in cells if ir.stage(c).top_level > 1]
    if ladders:  # an FQ-CMRU unit's state is its level (0..K): level agreement per (unit, frame)
        metrics["level_agreement"] = float(np.mean(np.concatenate([agree[c].ravel() for c in ladders])))
    spice_pred, ref_pred = mc_model.predictions(spice_out, task), mc_model.predictions(ref_out, task)
    if ref_pred is not None:
        y = y if task.pool else np.asarray(y)[:, -1]
        metrics.update(
            {
                "prediction_agreement": float(np.mean(spice_pred == ref_pred)),
                "circuit_accuracy": float(np.mean(spice_pred == y)),
                "reference_accuracy": float(np.mean(ref_pred == y)),
                "disagreements": _disagreements(
                    ref_out.mean(axis=1) if task.pool else ref_out[:, -1], spice_pred, agree, sequences
                ),
            }
        )
    return metrics


def _disagreements(ref_scores, spice_pred, agree: dict, sequences: list) -> list[dict]:
    """Each sequence whose SPICE prediction differs: the reference's margin (top score minus the runner-up,
    units) and how many cell states differed. States that all agree point at the readout's own error against
    a small margin; a differing state points at a cell decision upstream."""
    ranked = np.sort(ref_scores, -1)
    rows = []
    for n in np.flatnonzero(np.argmax(ref_scores, -1) != spice_pred):
        rows.append(
            {
                "sequence": int(sequences[n]),
                "reference": int(np.argmax(ref_scores[n])),
                "spice": int(spice_pred[n]),
                "reference_margin_units": round(float(ranked[n, -1] - ranked[n, -2]), 4),
                "state_mismatches": {c: int(np.sum(~a[n])) for c, a in agree.items()},
            }
        )
    return rows


def _float_model(directory: Path):
    """The trained model, from the build's own copy of its checkpoint."""
    ckpt = load_checkpoint(directory / "model.ckpt")
    return ckpt.graph, ckpt.arrays


def _write_reports(out: Path, metrics: dict, got: list, traces, ir: IR, conditions: list, first: int) -> None:
    """report.json, report.md and the plots; `first` is the test sequence of got[0] (the traces plot's)."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "report.json", json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    write_text_atomically(out / "report.md", markdown(metrics))
    cells = list(got[0]["states"])
    state_spice = {c: np.stack([g["states"][c] for g in got]) for c in cells}
    state_ref = {c: np.asarray(traces[c]["q"]) for c in cells}
    spice_out = np.stack([g["outputs"] for g in got])
    _plot(out / "traces.png", state_spice, state_ref, spice_out, np.asarray(traces[per_frame_layer(ir)]["y"]), first)
    if len(conditions) > 1:
        _plot_conditions(out / "conditions.png", conditions)


def markdown(metrics: dict) -> str:
    rows = [
        (
            "sequences x frames",
            f"{metrics['sequences']} x {metrics['frames']} (frame {metrics['frame_period_s'] * 1e3:g} ms)"
            + (f"; {metrics['simulated_sequences']} simulated" if metrics["simulation_failures"] else ""),
        ),
        ("corner, temperature", f"{metrics['corner']}, {metrics['temp']:g} C"),
        ("state agreement", metrics["state_agreement"]),
        *([("level agreement (FQ-CMRU ladders)", metrics["level_agreement"])] if "level_agreement" in metrics else []),
        ("output RMS error (units)", round(metrics["output_rms_units"], 4)),
        *(
            [
                (
                    "output RMS error of the readout alone on golden cell outputs (units)",
                    round(metrics["isolated_output_rms_units"], 4),
                )
            ]
            if metrics.get("isolated_output_rms_units") is not None
            else []
        ),
    ]
    for key, label in CHAIN_ROWS.items():
        if key in metrics:
            rows.append((label, metrics[key]))
    rows += [(f"candidate RMS error {c} (units)", round(v, 4)) for c, v in metrics["candidate_rms_units"].items()]
    rows += [
        (
            f"state agreement {c}: in the network / alone on golden inputs (sequences "
            f"{', '.join(map(str, metrics.get('diagnosed_sequences', []))) or 'none'})",
            f"{metrics['state_agreement_by_cell'][c]:.4g} / {v:.4g}",
        )
        for c, v in metrics.get("isolated_state_agreement_by_cell", {}).items()
    ]
    estimate = metrics.get("power_estimate_by_block_W", {})
    summed = " (partitioned: the supply blocks summed over partitions, the bias reference counted once)"
    rows.append(
        (
            "power from SPICE (mean supply current x VDD) / the build's estimate on the same sequences"
            + (summed if metrics["simulation"] == "partitioned" else ""),
            f"{metrics['power_W'] * 1e9:.1f} / {metrics['power_estimate_W'] * 1e9:.1f} nW",
        )
    )
    rows += [
        (
            f"power from SPICE / estimate: {block}",
            f"{watts * 1e9:.1f} / {estimate.get(block, float('nan')) * 1e9:.1f} nW",
        )
        for block, watts in metrics["power_by_block_W"].items()
    ]
    rows.append(("energy per inference", f"{metrics['energy_per_inference_J'] * 1e9:.2f} nJ"))
    rows.append(
        (
            f"SPICE wall time per sequence ({metrics['simulation']}, {metrics['partitions']} partitions"
            + (f", {metrics['replay']} replay)" if metrics.get("replay") else ")"),
            f"{metrics['wall_s_per_sequence']} s ({metrics['cached']} cached)",
        )
    )
    rows.append(("behavioural reference, all sequences", f"{metrics['reference_s']} s (jit compile included)"))
    if metrics.get("disagreements"):
        rows.append(
            (
                "prediction disagreements: sequence (reference margin in units; differing states)",
                "; ".join(
                    f"{d['sequence']} ({d['reference_margin_units']:.3g}; {sum(d['state_mismatches'].values())})"
                    for d in metrics["disagreements"]
                ),
            )
        )
    verdict = "PASS" if not metrics["failed"] else "FAIL: " + ", ".join(metrics["failed"])
    lines = [
        "# Verification: SPICE against the behavioural reference",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
        f"Tolerances {metrics['tolerances']}: {verdict}",
        "",
    ]
    if metrics["simulation_failures"]:
        lines += [
            "## Simulations that failed (left out of the metrics)",
            "",
            "| corner | temp | Monte Carlo seed | sequence | bench | error |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {f['corner']} | {f['temp']:g} | {f['mc_seed']} | {f['sequence']} | {f['bench']} | {f['error']} |"
            for f in metrics["simulation_failures"]
        ]
        lines.append("")
    if metrics.get("isolated_disagreements"):
        lines += [
            "## Cell decisions that differ alone on golden inputs",
            "",
            "| cell | sequence | frame | unit | candidate | beta_lo | beta_hi | reference -> SPICE |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {d['cell']} | {d['sequence']} | {d['frame']} | {d['unit']} | {d['candidate_units']:.5g} | "
            f"{d['beta_lo_units']:.5g} | {d['beta_hi_units']:.5g} | {d['reference_state']:g} -> {d['spice_state']:g} |"
            for d in metrics["isolated_disagreements"]
        ]
        lines.append("")
    if "post_layout" in metrics:
        lines += _post_layout_markdown(metrics["post_layout"])
    if len(metrics["conditions"]) > 1:
        lines += [
            "## Conditions (corner, temperature, Monte Carlo seed)",
            "",
            "| " + " | ".join(SUMMARY) + " |",
            "|" + "---|" * len(SUMMARY),
        ]
        lines += ["| " + " | ".join(_fmt(c[k]) for k in SUMMARY) + " |" for c in metrics["conditions"]]
        lines.append("")
    return "\n".join(lines)


def _post_layout_markdown(post: dict) -> list[str]:
    """The post-layout section: the extracted netlist against the schematic netlist, same sequences."""
    if not post["compared_sequences"]:
        return ["## Post-layout against the schematic netlist", "", "No sequence simulated in both.", ""]
    rows = [
        ("sequences simulated in both", post["compared_sequences"]),
        ("state agreement, post-layout vs schematic", _fmt(post["state_agreement_with_schematic"])),
        ("prediction agreement, post-layout vs schematic", _fmt(post["prediction_agreement_with_schematic"])),
        ("output RMS difference, post-layout vs schematic (units)", _fmt(post["output_rms_vs_schematic_units"])),
        (
            "power from SPICE, post-layout / schematic",
            f"{post['power_W'] * 1e9:.1f} / {post['schematic_power_W'] * 1e9:.1f} nW",
        ),
        ("extracted wiring capacitance", f"{post['extracted_capacitance_fF']:.1f} fF on {post['extracted_nets']} nets"),
        (
            "largest nets (subcircuit: net fF)",
            "; ".join(f"{r['cell']}: {r['net']} {r['fF']:.1f}" for r in post["largest_nets"]),
        ),
    ]
    if post["largest_coupling"]:
        c = post["largest_coupling"][0]
        rows.append(
            (
                "largest wire-over-wire coupling (not simulated)",
                f"{c['cell']}: {' / '.join(c['nets'])} {c['fF']:.2f} fF",
            )
        )
    return [
        "## Post-layout against the schematic netlist (same sequences, nominal condition)",
        "",
        "Per-net capacitance: reports/parasitics.md of the build.",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
    ]


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plot_conditions(path: Path, conditions: list) -> None:
    """Histogram of state and prediction agreement over the conditions (corners and mismatch draws)."""
    plt = agg_pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    for key in ("state_agreement", "prediction_agreement"):
        values = [c[key] for c in conditions if c.get(key) is not None]
        if values:
            ax.hist(values, bins=10, range=(0, 1), alpha=0.6, label=key.replace("_", " "))
    ax.set(xlabel="agreement with the reference", ylabel="conditions")
    ax.legend()
    _save(fig, path, plt)


def _save(fig, path: Path, plt) -> None:
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def _plot(path: Path, state_spice, state_ref, spice_out, ref_out, sequence: int) -> None:
    plt = agg_pyplot()
    cells = list(state_spice)
    fig, axes = plt.subplots(1 + len(cells), 1, figsize=(8, 2.2 * (1 + len(cells))), squeeze=False)
    frames = np.arange(spice_out.shape[1])
    for k in range(spice_out.shape[2]):
        (line,) = axes[0, 0].plot(frames, spice_out[0, :, k], "o-", ms=3)
        axes[0, 0].plot(frames, ref_out[0, :, k], "--", color=line.get_color())
    axes[0, 0].set_title(f"sequence {sequence}: output currents (units), SPICE (o-) vs reference (--)")
    for ax, c in zip(axes[1:, 0], cells):
        ax.imshow(
            np.concatenate([state_spice[c][0].T, state_ref[c][0].T]),
            aspect="auto",
            cmap="Greys",
            interpolation="nearest",
        )
        ax.set_title(f"{c}: states, SPICE (top rows) and reference (bottom rows)")
    _save(fig, path, plt)


def add_arguments(parser) -> None:
    parser.add_argument("directory", help="a build directory (`python -m compiler build ... -o DIR`)")
    parser.add_argument("--sequences", type=count(1, 100_000), default=8, help="test sequences to simulate")
    parser.add_argument(
        "--frames", type=count(1, 100_000), default=None, help="simulate only the first N frames of each (default: all)"
    )
    parser.add_argument(
        "--corner", default=None, help="comma-separated process corners, e.g. tt,ss,ff (default: the build's)"
    )
    parser.add_argument(
        "--temp", type=TEMPERATURE, nargs="+", default=None, help="temperatures in C (default: the build's)"
    )
    parser.add_argument("--mc", type=count(0, 10_000), default=0, help="PDK mismatch Monte Carlo runs (seeds 1..N)")
    parser.add_argument("-j", "--jobs", type=JOBS, default=1, help="ngspice processes (or Dask workers) at once")
    parser.add_argument(
        "--partitioned",
        action="store_true",
        help="simulate layer by layer, replaying recorded cell currents (faster on large networks)",
    )
    parser.add_argument(
        "--replay",
        choices=REPLAYS,
        default="held",
        help="with --partitioned: replay each recorded current held, one step per frame (default; fast at any "
        "depth, outputs off by up to a few 1e-2 units), or exact, as recorded (closer to the whole netlist, "
        "as slow as it from a few layers on)",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: a pool of ngspice processes; dask: dask.distributed",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address (default with --executor dask: a LocalCluster of -j workers)",
    )
    parser.add_argument(
        "--sim-timeout",
        type=SECONDS,
        default=None,
        help="seconds each simulation may run; one that runs longer fails and is reported",
    )
    parser.add_argument(
        "--diagnose",
        choices=DIAGNOSE,
        default="differing",
        help="sequences whose cells and readout are simulated again alone on golden inputs, to locate an "
        "error: those that differ at the nominal condition (default), all, or none",
    )
    parser.add_argument(
        "--mc-model",
        type=count(0, 1_000_000),
        default=0,
        help="mismatch draws of the statistical behavioural model (seconds; beside the SPICE draws of --mc)",
    )
    parser.add_argument(
        "--no-spice", action="store_true", help="run only the statistical model (with --mc-model), no ngspice"
    )
    parser.add_argument(
        "--post-layout",
        action="store_true",
        help="simulate the netlist with the layout's wiring capacitance (`python -m compiler extract`) and compare "
        "it with the schematic netlist on the same sequences; reports in DIR/verify_post_layout",
    )
    parser.add_argument(
        "--tolerances",
        default=None,
        help="YAML of metric: {min: x, max: y} bounds (either or both) that replace the defaults",
    )


def run(args) -> int:
    corners = args.corner.split(",") if args.corner else None
    for corner in corners or ():
        if corner not in CORNERS:
            raise UsageError(f"unknown corner {corner!r} in --corner; choose from {', '.join(CORNERS)}")
    tolerances = load_tolerances(args.tolerances) if args.tolerances else None
    if args.no_spice:
        if not args.mc_model:
            raise NoDrawsToRun("--no-spice runs only the statistical model: give it --mc-model N (draws)")
        return _statistical(args, {})
    metrics = verify(
        args.directory,
        args.sequences,
        args.jobs,
        corners,
        args.temp,
        args.mc,
        partitioned=args.partitioned,
        replay=args.replay,
        executor=args.executor,
        scheduler=args.scheduler,
        tolerances=tolerances,
        frames=args.frames,
        sim_timeout=args.sim_timeout,
        diagnose=args.diagnose,
        post_layout=args.post_layout,
    )
    print(markdown(metrics))
    if args.mc_model:
        _statistical(args, metrics)
    print(f"reports: {Path(args.directory) / (POST_LAYOUT if args.post_layout else 'verify')}", file=sys.stderr)
    return 1 if metrics["failed"] else 0


def _statistical(args, metrics: dict) -> int:
    """The statistical model's draws on verify's sequences, beside the SPICE draws of `metrics`."""
    directory = Path(args.directory)
    ir, _ = _load(directory)
    task = get_task(ir.meta["task"])
    x = task.test.x[: args.sequences]
    if args.frames is not None:
        x = x[:, : args.frames]
    model = mc_model.statistics(ir, task, x, per_frame_layer(ir), args.mc_model)
    spice = mc_model.spice_draws(metrics.get("conditions", []))
    text = mc_model.markdown(model, spice)
    (directory / "verify").mkdir(parents=True, exist_ok=True)
    write_text_atomically(
        directory / "verify" / "mc_model.json", json.dumps({"model": model, "spice": spice}, indent=1) + "\n"
    )
    write_text_atomically(directory / "verify" / "mc_model.md", text)
    print(text)
    return 0
