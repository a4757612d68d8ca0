"""Verification end to end: a small two-layer FQ-BMRU network built, simulated in ngspice, compared."""

import json

import numpy as np
import pytest

from compiler.foundation.ngspice import Runner
from compiler.foundation.simcache import SimCache
from compiler.ir import IR
from flows.build import build
from flows.verify import NotABuild, _disagreements, verify


@pytest.mark.tools
def test_circuit_matches_the_reference_frame_by_frame(small_ckpt, tmp_path):
    out = tmp_path / "b"
    build(small_ckpt, out, log=lambda *_: None)
    metrics = verify(out, sequences=2, jobs=2, log=lambda *_: None, diagnose="all")
    assert metrics["diagnosed_sequences"] == [0, 1]
    assert metrics["sequences"] == 2 and metrics["frames"] == 8 and metrics["reference_s"] > 0
    assert metrics["state_agreement"] >= 0.95
    assert max(metrics["candidate_rms_units"].values()) < 0.1
    assert metrics["output_rms_units"] < 0.1
    assert metrics["prediction_agreement"] == 1.0 and metrics["disagreements"] == []
    assert set(metrics["isolated_state_agreement_by_cell"]) == {"cell1", "cell2"}
    assert min(metrics["isolated_state_agreement_by_cell"].values()) >= 0.95  # each cell alone on golden inputs
    assert 0 <= metrics["isolated_output_rms_units"] < 0.1  # the readout alone on golden cell outputs
    ir = IR.from_json((out / "ir.json").read_text())
    for cell, agreement in metrics["isolated_state_agreement_by_cell"].items():  # each differing decision listed
        listed = [d for d in metrics["isolated_disagreements"] if d["cell"] == cell]
        assert len(listed) == round((1 - agreement) * 2 * 8 * ir.stage(cell).size)
        assert all(d["reference_state"] != d["spice_state"] for d in listed)
    report = json.loads((out / "verify" / "report.json").read_text())
    assert report["state_agreement"] == metrics["state_agreement"]
    # by default only the sequences that differ are diagnosed (the network runs come from the cache)
    again = verify(out, sequences=2, jobs=2, log=lambda *_: None)
    assert again["state_agreement"] == metrics["state_agreement"]
    if metrics["state_agreement"] == 1.0:
        assert again["diagnosed_sequences"] == [] and again["isolated_output_rms_units"] is None
    else:
        assert again["diagnosed_sequences"] and set(again["diagnosed_sequences"]) <= {0, 1}
    assert (out / "verify" / "report.md").read_text().startswith("# Verification")
    assert (out / "verify" / "traces.png").stat().st_size > 1000
    build_power = json.loads((out / "reports" / "build.json").read_text())["power_estimate"]["total_W"]
    assert 0.5 * build_power < metrics["power_W"] < 2 * build_power  # SPICE agrees with the estimate's scale
    assert metrics["energy_per_inference_J"] == pytest.approx(metrics["power_W"] * 8 * metrics["frame_period_s"])
    blocks = metrics["power_by_block_W"]  # every block takes VDD through its own probe: they add up
    assert set(blocks) == {"arrays", "cells", "bias"} and min(blocks.values()) > 0
    assert sum(blocks.values()) == pytest.approx(metrics["power_W"], rel=0.02)
    estimate = metrics["power_estimate_by_block_W"]  # the build's model on the same sequences
    assert set(estimate) == set(blocks) and sum(estimate.values()) == pytest.approx(metrics["power_estimate_W"])
    assert metrics["power_estimate_W"] == pytest.approx(metrics["power_W"], rel=0.15)


@pytest.mark.tools
def test_corners_and_monte_carlo_are_reported_per_condition(small_ckpt, tmp_path):
    out = tmp_path / "b"
    build(small_ckpt, out, log=lambda *_: None)
    metrics = verify(out, sequences=1, jobs=2, corners=["tt", "ff"], mc=1, log=None)
    conditions = metrics["conditions"]
    assert [(c["corner"], c["mc_seed"]) for c in conditions] == [("tt", None), ("ff", None), ("tt", 1)]
    ir = IR.from_json((out / "ir.json").read_text())
    decisions = metrics["frames"] * sum(ir.stage(cell).size for cell in ("cell1", "cell2"))  # of the one sequence
    lost = [round((1 - c["state_agreement"]) * decisions, 6) for c in conditions]
    assert decisions == 64 and lost == [0, 0, 6]  # every decision holds at tt and ff; mismatch draw 1 flips 6
    assert all(c["power_W"] > 0 for c in conditions)
    assert len({c["output_rms_units"] for c in conditions}) == 3  # the corner and the mismatch draw changed the circuit
    assert (out / "verify" / "conditions.png").is_file()
    assert "## Conditions" in (out / "verify" / "report.md").read_text()


@pytest.mark.tools
@pytest.mark.parametrize("partitioned, network", [(False, "network"), (True, "partition cell1")])
def test_a_failed_simulation_is_reported_and_the_other_sequences_still_compared(
    small_ckpt, tmp_path, partitioned, network
):
    out = tmp_path / "b"
    build(small_ckpt, out, log=lambda *_: None)
    runner = Runner(cache=SimCache(tmp_path / "cache"))
    kwargs = {"frames": 3, "log": None, "runner": runner, "partitioned": partitioned}
    whole = verify(out, sequences=1, **kwargs)  # sequence 0, simulated and cached
    metrics = verify(out, sequences=2, sim_timeout=0.01, **kwargs)  # sequence 1 cannot finish in 10 ms
    assert metrics["sequences"] == 2 and metrics["simulated_sequences"] == 1
    failures = metrics["simulation_failures"]  # the network and the isolated benches of sequence 1 not cached
    assert {f["sequence"] for f in failures} == {1} and all(
        f["error"].startswith("SimulationTimeout") for f in failures
    )
    benches = [f["bench"] for f in failures]  # a partitioned run stops at its first failed partition
    assert benches.count(network) == 1 and "cell1 alone on golden inputs" in benches
    assert set(benches) <= {network, "cell1 alone on golden inputs", "cell2 alone on golden inputs", "readout alone"}
    assert "simulations" in metrics["failed"]
    assert metrics["state_agreement"] == whole["state_agreement"]  # compared on sequence 0 alone
    assert metrics["output_rms_units"] == pytest.approx(whole["output_rms_units"], rel=1e-4)
    assert "## Simulations that failed" in (out / "verify" / "report.md").read_text()


def test_verify_needs_a_build_directory(tmp_path):
    with pytest.raises(NotABuild, match="python -m compiler build"):
        verify(tmp_path)


def test_a_prediction_disagreement_names_the_sequence_its_margin_and_the_states_that_differed():
    ref_scores = np.array([[0.1, 2.0, 0.5], [1.0, 1.2, 0.0], [3.0, 0.0, 0.0]])
    spice_pred = np.array([1, 0, 0])  # the second flipped: its reference margin was 0.2 units
    agree = {"cell1": np.array([[True, True], [True, False], [True, True]]), "cell2": np.ones((3, 2), bool)}
    simulated = [0, 2, 3]  # test sequence 1 failed to simulate: the rows name test sequences, not positions
    assert _disagreements(ref_scores, spice_pred, agree, simulated) == [
        {
            "sequence": 2,
            "reference": 1,
            "spice": 0,
            "reference_margin_units": 0.2,
            "state_mismatches": {"cell1": 1, "cell2": 0},
        }
    ]
