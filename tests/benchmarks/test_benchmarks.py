"""The benchmark modules on tiny inputs: the exponent fit, the settings, the tables, the commands."""

import dataclasses
import json

import numpy as np
import pytest

from benchmarks import run as bench_run
from benchmarks.common import (
    MODES,
    ZOO,
    Settings,
    build_command,
    rounded,
    task_frames,
    verify_command,
    whole_sequence_prediction,
    zoo_models,
)
from benchmarks.scaling import fit_exponent, synthetic_checkpoint
from cells import cmru
from models.checkpoint import load_checkpoint


def test_fit_exponent_recovers_a_power_law():
    cells = [4, 16, 64]
    a, b = fit_exponent(cells, [0.5 * c**1.7 for c in cells])
    assert b == pytest.approx(1.7) and np.exp(a) == pytest.approx(0.5)


def test_fit_exponent_is_least_squares_over_noisy_sizes():
    cells, seconds = [4, 16, 64], [10.0, 50.0, 120.0]
    _, b = fit_exponent(cells, seconds)
    assert b == pytest.approx(np.polyfit(np.log(cells), np.log(seconds), 1)[0])


def test_fit_exponent_needs_two_sizes():
    with pytest.raises(ValueError):
        fit_exponent([4], [1.0])


def test_default_run_is_a_subset_of_the_full_one():
    quick, default, full = MODES["quick"], MODES["default"], MODES["full"]
    assert Settings.of("default") is default
    for small in (quick, default):
        assert set(small.monolithic_cells) <= set(full.monolithic_cells)
        assert set(small.partitioned_cells) <= set(full.partitioned_cells) and len(small.partitioned_cells) >= 1
        assert small.sequences <= full.sequences and small.frames <= full.frames
    assert full.monolithic_cells == full.partitioned_cells == (4, 16, 64)
    assert len(default.monolithic_cells) >= 2 and len(default.partitioned_cells) >= 2  # an exponent each


def _ladders(settings):
    return {
        (K, tau, frame) for Ks, taus, frames, _ in settings.cmru_limits for K in Ks for tau in taus for frame in frames
    }


def test_every_ladder_of_the_smaller_runs_is_in_the_full_limits_study():
    full = _ladders(MODES["full"])
    assert _ladders(MODES["quick"]) <= full and _ladders(MODES["default"]) <= full
    assert max(K for K, _, _ in full) == cmru.K_MAX and any(
        mc for *_, mc in MODES["full"].cmru_limits
    )  # K_MAX, mismatch


def test_zoo_models_picks_by_name():
    every = zoo_models()
    assert every and all(p.name.startswith("fq_") for p in every)
    assert [p.stem for p in zoo_models(("fq_bmru_d4_flipflop",))] == ["fq_bmru_d4_flipflop"]


def test_verify_command_reproduces_the_settings():
    command = verify_command("fq_bmru_d4_digits_clock", 2, 1, jobs=2, replay="held")
    assert command == (
        "python -m compiler build models/zoo/fq_bmru_d4_digits_clock.ckpt --config "
        "models/zoo/fq_bmru_d4_digits_clock.yaml -o DIR --no-layout && "
        "FQRNN_CACHE_DIR=$(mktemp -d) python -m compiler verify DIR --sequences 2 --frames 1 -j 2 "
        "--partitioned"
    )
    exact = verify_command("fq_bmru_d4_digits_clock", 2, 1, jobs=2, replay="exact")
    assert exact == command + " --replay exact" and "--partitioned" not in verify_command("fq_bmru_d4_flipflop", 2, 1)
    assert "build C16.ckpt -o DIR" in verify_command("C16.ckpt", 1, 1)


def test_build_command_passes_a_zoo_models_own_config():
    assert build_command("fq_bmru_d4_digits_clock") == (
        "python -m compiler build models/zoo/fq_bmru_d4_digits_clock.ckpt "
        "--config models/zoo/fq_bmru_d4_digits_clock.yaml -o DIR"
    )
    assert (
        build_command("fq_cmru_d8_event_count")
        == "python -m compiler build models/zoo/fq_cmru_d8_event_count.ckpt -o DIR"
    )


@pytest.mark.tools
def test_prediction_agreement_counts_only_over_whole_sequences(tmp_path):
    from flows.build import build

    build(ZOO / "fq_bmru_d4_flipflop.ckpt", tmp_path / "b", layout=False, log=lambda *_: None)
    assert task_frames(tmp_path / "b") == 64
    assert whole_sequence_prediction({"frames": 64, "prediction_agreement": 0.5}, 64) == 0.5
    assert whole_sequence_prediction({"frames": 1, "prediction_agreement": 0.5}, 64) is None


def test_rounded_keeps_significant_digits():
    assert rounded(123.456) == 123.0 and rounded(0.0012345) == 0.00123 and rounded(None) is None and rounded(7) == 7


@pytest.mark.parametrize("cells, layers", [(4, 1), (16, 4)])
def test_synthetic_network_has_layers_of_four_cells(tmp_path, cells, layers):
    graph = load_checkpoint(synthetic_checkpoint(tmp_path / "n.ckpt", cells)).graph
    assert sum(layer["type"] == "fq_bmru" for layer in graph["layers"]) == layers


def test_synthetic_network_needs_whole_layers(tmp_path):
    with pytest.raises(ValueError):
        synthetic_checkpoint(tmp_path / "n.ckpt", 6)


def test_markdown_has_one_table_per_benchmark_with_the_command_last():
    report = {
        "command": "python -m benchmarks.run",
        "mode": "default",
        "settings": {},
        "date_utc": "d",
        "machine": {},
        "wall_s": {"total": 1.0, "cache": 1.0},
        "results": [
            {"benchmark": "cache", "what": "a", "cold_s": 1.0, "command": "x | y"},
            {"benchmark": "cache", "what": "b", "speedup": 2.0, "command": "z"},
        ],
    }
    text = bench_run.markdown(report)
    assert "| what | cold_s | speedup | command |" in text
    assert "| a | 1.0 |  | x \\| y |" in text and "| b |  | 2.0 | z |" in text
    assert text == bench_run.markdown(json.loads(json.dumps(report)))  # deterministic


def test_runner_rejects_unknown_benchmarks():
    with pytest.raises(SystemExit):
        bench_run.main(["no_such_benchmark"])


@pytest.mark.parametrize("option", ["--frames", "--sim-timeout"])
def test_verify_cli_rejects_zero_frames_and_timeout(tmp_path, option, capsys):
    from flows.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["verify", str(tmp_path), option, "0"])
    assert stop.value.code == 2 and option in capsys.readouterr().err


def test_verify_simulates_only_the_first_frames(tmp_path, fresh_runner):
    """A real ngspice run of a one-cell network: --frames 1 gives one frame per sequence."""
    from flows.build import build
    from flows.verify import verify

    ckpt = synthetic_checkpoint(tmp_path / "one.ckpt", 1, width=1)
    build(ckpt, tmp_path / "b", layout=False, log=lambda *_: None)
    metrics = verify(tmp_path / "b", 1, frames=1, runner=fresh_runner, log=None)
    assert metrics["frames"] == 1 and metrics["sequences"] == 1 and metrics["cached"] == 0
    assert metrics["energy_per_inference_J"] == pytest.approx(metrics["power_W"] * metrics["frame_period_s"])


def test_settings_command_names_its_mode():
    assert MODES["default"].command("replay") == "python -m benchmarks.run replay"
    assert MODES["quick"].command("replay") == "python -m benchmarks.run replay --quick"
    assert MODES["full"].command("scaling") == "python -m benchmarks.run scaling --full"
    custom = dataclasses.replace(MODES["quick"], sequences=3)
    assert "custom settings" in custom.command("replay")  # no run flag reproduces it


def test_replay_benchmark_times_the_d4_digits_sequence_by_default():
    model, sequences, frames = MODES["default"].replay_model
    assert model == "fq_bmru_d4_digits_clock" and sequences >= 1 and frames is None  # whole sequences
    assert (ZOO / f"{model}.ckpt").is_file()


def test_larger_step_cap_scales_only_the_transients_cap():
    from benchmarks.replay import STEP_CAP_SCALE, with_larger_step_cap
    from compiler.foundation.simulation import Op, Simulation, Tran

    sim = Simulation("R1 a 0 1k", analyses=(Op(), Tran(1e-6, 1e-3, tmax=2e-6), Tran(1e-6, 1e-3)), models="none")
    op, capped, free = with_larger_step_cap(sim).analyses
    assert op == Op() and free == Tran(1e-6, 1e-3)
    assert capped == Tran(1e-6, 1e-3, tmax=pytest.approx(2e-6 * STEP_CAP_SCALE)) and STEP_CAP_SCALE > 1
