"""Phase schedule, partitioned simulation, sweep executors and tolerance files of the verification."""

import numpy as np
import pytest

from compiler.backends.spice import V_OUT, network_netlist, phase_pins, write_netlist
from compiler.config import Config
from compiler.foundation.ngspice import Runner, Simulation
from compiler.foundation.timing import slot, window
from compiler.frontend import load_network
from compiler.ir import IR, BiasGenerator, Bistable, CurrentInput, CurrentOutput, WeightArray
from compiler.lower import lower
from compiler.passes import run_pipeline
from flows.build import build
from flows.partition import (
    READOUT,
    held_replay,
    load_name,
    partitions,
    readout_alone,
    replay_start,
    replay_timing,
    replay_waveform,
)
from flows.sweep import run_all
from flows.testbench import bench, edge
from flows.verify import ToleranceFileError, failures, load_tolerances, simulate, verify


def _ir(path, **options):
    config = Config(model=options)
    ir, _ = run_pipeline(lower(load_network(path)), config)
    return ir, config


def test_layers_get_phases_in_dataflow_order(small_ckpt):
    ir, _ = _ir(small_ckpt)
    assert {c.name: c.phase for c in ir.of_kind(Bistable)} == {"cell1": 1, "cell2": 2}
    assert ir.meta["phases"] == 2 and phase_pins(ir) == ["ph_1", "ph_2"]
    free, _ = _ir(small_ckpt, phased=False)
    assert {c.phase for c in free.of_kind(Bistable)} == {0} and phase_pins(free) == []


def test_phase_windows_are_ordered_and_leave_the_frame_ends_free():
    spans = [window(p, 3) for p in (1, 2, 3)]
    assert spans[0][0] > 0 and spans[-1][1] < 1  # inputs settle before, outputs after
    for (rise, fall), (next_rise, _) in zip(spans, spans[1:]):
        assert rise < fall < next_rise  # never two layers enabled at once


def test_partitions_cut_at_the_receivers_of_cell_outputs(small_ckpt, tmp_path):
    ir, config = _ir(small_ckpt)
    parts = partitions(ir)
    assert [p.name for p in parts] == ["cell1", "cell2", READOUT]
    assert [p.replays for p in parts] == [(), ("cell1.rx.in",), ("res2.rx.in",)]  # one cut back, not every layer
    assert [p.records for p in parts] == ["cell1.rx.in", "res2.rx.in", None]
    for part, fed in zip(parts, ("cell1.rx", "res2.rx", None)):
        cells = part.ir.of_kind(Bistable)
        assert [c.name for c in cells] == ([] if part.name == READOUT else [part.name])
        assert all(isinstance(part.ir.stage(r), CurrentInput) for r in part.replays)
        (out,) = part.ir.of_kind(CurrentOutput)
        if fed:  # the cells and the residual copy flow into the load that stands for the receiver
            assert out.name == load_name(fed) and out.polarity == ir.stage(fed).polarity
            assert set(part.ir.predecessors(out.name)) == set(ir.predecessors(fed))
            reader = ir.readers(fed)[0]  # and into a copy of its diode, at the voltage it has in the network
            assert out.diode == (ir.stage(fed).denominator, reader.unit_w, reader.unit_l)
        else:
            assert out.diode == ()  # the real output pins: held at the harness voltage
        for gen in part.ir.of_kind(BiasGenerator):
            assert set(gen.taps) <= set(ir.of_kind(BiasGenerator)[0].taps)
        write_netlist(part.ir, tmp_path / part.name, config)
        assert (tmp_path / part.name / "network.spice").read_text().count(".subckt fqrnn_network") == 1
    arrays = {s.name for p in parts for s in p.ir.of_kind(WeightArray)}
    assert arrays == {s.name for s in ir.of_kind(WeightArray)}  # every weight is simulated somewhere
    taps = {t for p in parts for g in p.ir.of_kind(BiasGenerator) for t in g.taps}
    assert taps == set(ir.of_kind(BiasGenerator)[0].taps)
    alone = readout_alone(ir)  # the diagnostic's cut: at the cells, every other stage simulated
    assert alone.replays == ("cell1", "cell2") and "cell1.rx" in {s.name for s in alone.ir.stages}


def test_partitions_stay_one_layer_deep(checkpoint_factory, tmp_path):
    ir, _ = _ir(checkpoint_factory(tmp_path / "deep.ckpt", layers=5))
    sizes = [len(p.ir.stages) for p in partitions(ir)]
    assert len(sizes) == 6 and len(set(sizes[1:-1])) == 1  # every layer after the first holds as much


def test_replayed_waveform_stays_within_tolerance_with_few_corners(rng):
    t = np.sort(rng.uniform(0, 1, 4000))
    i = np.where(t > 0.3, 1e-9, 0.0) + np.where(t > 0.7, -0.5e-9, 0.0) + 1e-13 * rng.standard_normal(t.size)
    times, values = replay_waveform(t, i, 1e-12)
    assert len(times) < 40 and times[0] == t[0] and times[-1] == t[-1]
    assert np.max(np.abs(np.interp(t, times, values) - i)) <= 1.01e-12


def test_replayed_waveform_skips_the_upstream_start_up_steps(rng):
    t = np.concatenate([[0.0, 4e-13, 7.8e-11, 2e-6], np.linspace(1e-3, 1.0, 50)])
    i = 1e-9 + 1e-12 * rng.standard_normal(t.size)
    start = replay_start(0.1)
    assert 0 < start < 1e-3 and start < edge(0.1)
    times, values = replay_waveform(t, i, 1e-15, start)
    assert times[0] == 0.0 and values[0] == i[0]  # the first value, held until the recording is followed
    assert min(times[1:]) >= start and times[-1] == t[-1]
    assert np.allclose(np.interp(t[4:], times, values), i[4:], rtol=0, atol=1e-15)


def test_a_partition_bench_terminates_its_load_in_the_receivers_diode(small_ckpt, tmp_path):
    ir, config = _ir(small_ckpt)
    first, readout = partitions(ir)[0], partitions(ir)[-1]
    x = np.zeros((2, ir.stage("x").size))
    for part in (first, readout):
        write_netlist(part.ir, tmp_path / part.name, config)
        sim, _ = bench(
            part.ir, tmp_path / part.name, x, 0.01, replay={r: [((0.0,), (1e-10,))] * 8 for r in part.replays}
        )
        (out,) = part.ir.of_kind(CurrentOutput)
        lines = sim.circuit.splitlines()
        if out.diode:
            assert "VOUT0 out_0 load_0 0" in lines  # a 0 V probe into the diode, no fixed voltage
            load = next(line.split() for line in lines if line.startswith("XLOAD0 "))
            assert load[-2] == "load_0" and (load[1] == "vdd") == (out.polarity == "p")
            body = sim.circuit.split(f".subckt {load[-1]} ")[1].split(".ends")[0].splitlines()
            devices = [line for line in body if line.startswith("XM")]
            units, w, l = out.diode  # one diode of the receiver's unit devices, nothing copying it
            assert len(devices) == (1 if out.polarity == "p" else 2)
            assert all(f"W={w} L=" in d and d.endswith(f"m={units}") for d in devices) and f"L={l}" in devices[0]
        else:
            assert f"VOUT0 out_0 0 {V_OUT:g}" in lines


def test_one_partition_counts_the_bias_reference(small_ckpt):
    ir, _ = _ir(small_ckpt)
    biased = [part for part in partitions(ir) if part.ir.of_kind(BiasGenerator)]  # some have no taps
    counted = [part for part in biased if not part.ir.of_kind(BiasGenerator)[0].duplicate_reference]
    assert len(counted) == 1 and len(biased) >= 2
    assert counted[0].ir.shared_biases()  # the one with the starving diodes: every fixed branch
    duplicate = next(part for part in biased if part is not counted[0])
    assert IR.from_json(duplicate.ir.to_json()) == duplicate.ir  # the mark round-trips
    network, subckts = network_netlist(duplicate.ir, supply_probes=True)
    (line,) = [x for x in network.splitlines() if x.startswith("Xbias ")]
    assert line.split()[1:4] == ["vdd_bias", "vdd", "iref"]  # taps probed, the reference on plain VDD
    devices = [x.split() for x in subckts[line.split()[-1]].text.splitlines() if x.startswith("XM")]
    on_reference = {d[0] for d in devices if d[3:5] == ["vdd_reference", "vdd_reference"]}
    assert on_reference == {"XMr", "XMp", "XMsn", "XMspd"}  # every fixed pfet branch, and no tap
    assert all(d[3] == "vdd" for d in devices if d[0][:3] == "XMs" and d[0][3:].isdigit())
    (plain,) = [x for x in network_netlist(duplicate.ir)[0].splitlines() if x.startswith("Xbias ")]
    assert plain.split()[1:3] == ["vdd", "iref"]  # the laid-out netlist keeps one supply


def test_held_replay_steps_once_per_frame_to_where_the_downstream_reads(small_ckpt):
    ir, _ = _ir(small_ckpt)
    first, second, readout = partitions(ir)
    change, sample = replay_timing(first, second)  # cell1 switches in slot 1, cell2 reads in phase 2
    assert change == pytest.approx(slot(2)) and sample == pytest.approx(window(2, 2)[1])
    assert replay_timing(second, readout)[1] > window(2, 2)[1]  # the readout's: where the frame is sampled
    period, frames = 0.1, 3
    t = np.linspace(0, frames * period, 3001)
    # a residual sum that steps in the input slot and in the cells' slot of every frame
    i = 1e-9 * (1 + np.floor(t / period) + ((t / period) % 1 > 0.3))
    times, values = held_replay(t, i, period, frames, (change, sample))
    assert len(times) == 2 + 2 * frames and values[0] == i[0]  # one edge per frame, no burst per step
    for f in range(frames):
        read = (f + sample) * period
        assert np.interp(read, times, values) == pytest.approx(np.interp(read, t, i))  # where it is read
        assert np.interp((f + change) * period - 1e-9, times, values) == pytest.approx(
            i[0] if f == 0 else values[2 * f]
        )
    free, _ = _ir(small_ckpt, phased=False)
    assert replay_timing(*partitions(free)[:2]) is None  # free-running cells: the waveform is replayed


def test_tolerance_files_replace_defaults_and_reject_mistakes(tmp_path):
    good = tmp_path / "tol.yaml"
    good.write_text("state_agreement: {min: 0.9}\noutput_rms_units: {max: 0.5}\n")
    tolerances = load_tolerances(good)
    assert failures({"state_agreement": 0.95, "output_rms_units": 0.6}, tolerances) == ["output_rms_units"]
    for text, match in (
        ("state_agrement: {min: 0.9}\n", "unknown metric"),
        ("state_agreement: 0.9\n", "min: number"),
        ("- 1\n", "mapping"),
    ):
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(ToleranceFileError, match=match):
            load_tolerances(tmp_path / "bad.yaml")


@pytest.mark.tools
def test_dask_executor_gives_the_local_results(tmp_path):
    pytest.importorskip("dask.distributed")
    sims = [Simulation(f"V1 a 0 1\nR1 a b 1k\nR2 b 0 {r}k\n.op", models="none") for r in (1, 3)]
    runner = Runner(cache=None)
    local = run_all(runner, sims, jobs=2)
    remote = run_all(runner, sims, jobs=2, executor="dask")
    for a, b in zip(local, remote):
        assert a["v(b)"][0] == pytest.approx(b["v(b)"][0])
    assert remote[1]["v(b)"][0] == pytest.approx(0.75)


@pytest.mark.tools
def test_partitioned_simulation_agrees_with_the_monolithic_one(small_ckpt, tmp_path):
    out = tmp_path / "b"
    build(small_ckpt, out, log=lambda *_: None)
    (whole,) = simulate(out, 1, jobs=2)
    (exact,) = simulate(out, 1, jobs=2, partitioned=True, replay="exact")
    for cell in whole["states"]:  # replayed as recorded into the receivers' own diodes: the same circuit
        assert np.array_equal(whole["states"][cell], exact["states"][cell])
    assert np.max(np.abs(whole["outputs"] - exact["outputs"])) < 1e-3  # units; simulator noise is about 1e-4
    blocks, parts = whole["power_by_block_W"], exact["power_by_block_W"]
    for block in ("arrays", "cells", "bias"):  # each stage, and the bias reference, counted in one partition
        assert parts[block] == pytest.approx(blocks[block], rel=0.02)
    assert exact["power_W"] == pytest.approx(whole["power_W"], rel=0.02)  # not the bench's supply: it feeds the loads
    metrics = verify(out, sequences=1, jobs=2, log=None, diagnose="none")
    held = verify(out, sequences=1, jobs=2, log=None, diagnose="none", partitioned=True)  # held by default
    assert held["simulation"] == "partitioned" and held["partitions"] == 3 and held["replay"] == "held"
    assert held["state_agreement"] == pytest.approx(metrics["state_agreement"], abs=1 / 32)
    assert held["prediction_agreement"] == metrics["prediction_agreement"]
    assert abs(held["output_rms_units"] - metrics["output_rms_units"]) < 0.05
