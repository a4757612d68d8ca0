"""Hardware-aware training (flows/train.py, models/train.py `Hardware`): the checkpoint it saves is the network
the circuit realises, it records the build settings it was trained for, and a build with others warns."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from compiler.config import Config, load_config
from compiler.frontend import load_network
from compiler.lower import lower
from compiler.realisation import Realisation
from flows.build import build
from flows.cli import main
from flows.train import hardware, realisation_settings, settings_mismatch
from models.checkpoint import save_checkpoint
from models.train import TrainConfig, graph_of, margin_loss, train

TINY = TrainConfig(task="flipflop", cell="fq_bmru", d=2, steps=60, eps_hold=10, eps_decay=20, eval_every=30)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny hardware-aware flip-flop, trained for a build with 8 unit devices per mirror diode, saved."""
    config = Config(model={"denominator": 8})
    result = train(TINY, progress=False, hardware=hardware(graph_of(TINY), config))
    path = tmp_path_factory.mktemp("hw") / "hw.ckpt"
    save_checkpoint(path, result.checkpoint)
    return path, config


def test_the_saved_checkpoint_is_the_realised_network(trained):
    path, config = trained
    network = load_network(path)
    arrays = dict(network.checkpoint.arrays)
    realised = Realisation.of(lower(network), config).realise(arrays)
    for key, value in realised.items():
        np.testing.assert_array_equal(value, arrays[key], err_msg=key)
    weights = arrays["cell1.W"] * 16  # every weight on the 1/16 mirror grid
    np.testing.assert_array_equal(weights, np.round(weights))


@pytest.mark.tools  # a build records the ngspice version
def test_the_checkpoint_records_its_build_settings_and_a_build_with_others_warns(trained, tmp_path, capsys):
    path, config = trained
    record = load_network(path).checkpoint.metadata["hardware_aware"]
    assert record["build_settings"] == realisation_settings(config)
    assert settings_mismatch({"hardware_aware": record}, config) is None
    other = settings_mismatch({"hardware_aware": record}, Config())
    assert other == "model.denominator: trained for 8, built with 16"
    smaller = Config(model={"denominator": 8, "i_unit": 0.2e-9})  # realises the same network
    assert settings_mismatch({"hardware_aware": record}, smaller) is None
    larger = settings_mismatch({"hardware_aware": record}, Config(model={"denominator": 8, "i_unit": 2e-9}))
    assert larger == "model.i_unit: trained for 1e-09, built with 2e-09"
    override = Config(model={"denominator": 8, "i_unit": 0.2e-9}, stages={"cell1": {"i_unit": 1e-9}})
    assert "stages.cell1.i_unit" in settings_mismatch({"hardware_aware": record}, override)  # not scaled alike
    build(path, tmp_path / "b", layout=False)
    assert "trained for other build settings" in capsys.readouterr().err
    assert "trained hardware-aware for other build settings" in (tmp_path / "b/reports/build.md").read_text()
    (tmp_path / "c.yaml").write_text("model:\n  denominator: 8\n  i_unit: 5.0e-10\n")
    build(path, tmp_path / "c", tmp_path / "c.yaml", layout=False)
    assert "trained hardware-aware for these build settings" in (tmp_path / "c/reports/build.md").read_text()


@pytest.mark.tools
def test_a_model_trained_without_the_circuit_says_so(small_ckpt, tmp_path):
    assert settings_mismatch({}, load_config(None)) is None
    build(small_ckpt, tmp_path / "b", layout=False)
    assert "not hardware-aware" in (tmp_path / "b/reports/build.md").read_text()


def test_the_margin_term_counts_only_decisions_that_change_the_state():
    graph = {"layers": [{"name": "c", "type": "fq_bmru"}]}
    params = {"c.beta_lo": jnp.array([1.0]), "c.delta": jnp.array([1.0])}  # thresholds 1 and 2

    def loss(h, q):
        traces = {"c": {"h": jnp.array(h)[None, :, None], "q": jnp.array(q, jnp.float32)[None, :, None]}}
        return float(margin_loss(graph, params, traces, 0.02))

    assert loss([2.0, 1.0], [1, 0]) == pytest.approx(1.0)  # set from 0 at beta_hi, then reset from 1 at beta_lo
    assert loss([2.5, 2.0], [1, 1]) == 0.0  # at beta_hi while already set: no decision at stake
    assert loss([1.0, 3.0], [0, 1]) == 0.0  # at beta_lo while already reset
    assert loss([2.02, 3.0], [1, 1]) == pytest.approx(0.25)  # 0.01 of beta_hi from it, margin 0.02: 0.5 of a frame


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--cell", "fq_bmru", "--d", "2", "-o", "x.ckpt"], "train needs --task"),
        (["train", "--zoo", "lru_d8_copy_first"], "is not a hardware-aware zoo model"),
        (
            ["train", "--task", "flipflop", "--cell", "fq_bmru", "--d", "2", "-o", "x.ckpt", "--margin", "-1"],
            "BadMargin",
        ),
        (["train", "--zoo", "fq_bmru_d4_flipflop", "-o", "x.ckpt", "--steps", "5"], "drop --steps"),
        (["train", "--task", "flipflop", "--cell", "bmru", "--d", "2", "-o", "x.ckpt"], "NotFirstQuadrant"),
        (["train", "--task", "flipflop", "--cell", "fq_bmru", "--d", "0", "-o", "x.ckpt"], "BadTrainConfig"),
        (["train", "--task", "flipflop", "--cell", "fq_bmru", "--d", "2", "-o", "no/x.ckpt"], "OutputPathError"),
    ],
)
def test_bad_training_requests_exit_2_before_training(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.ckpt").exists()


def test_training_under_mismatch_draws_a_chip_per_step_and_still_saves_the_realised_network():
    config = Config()
    chip = hardware(graph_of(TINY), config, mismatch=True)
    result = train(TINY, progress=False, hardware=chip)
    arrays = result.checkpoint.arrays
    assert result.checkpoint.metadata["hardware_aware"]["mismatch_noise"] is True
    realised = chip.realise(dict(arrays))
    for key, value in realised.items():
        np.testing.assert_array_equal(value, arrays[key], err_msg=key)
    spread = chip.spread(dict(arrays))
    assert set(spread) >= {"cell1.W", "cell1.b", "cell1.set", "cell1.reset", "cell1.level"}


def test_zoo_retraining_keeps_the_zoo_entrys_own_seed(monkeypatch, tmp_path):
    """`train --zoo NAME` trains the catalog's config (its seed), unless --seed is given."""
    import flows.train as flows_train
    import models.train as models_train

    seen = []

    def stop(cfg, progress=True, hardware=None):
        seen.append(cfg.seed)
        raise KeyboardInterrupt

    monkeypatch.setattr(models_train, "train", stop)
    monkeypatch.setattr(flows_train, "hardware", lambda *a, **k: None)
    out = str(tmp_path / "x.ckpt")
    assert main(["train", "--zoo", "fq_bmru_d8_digits_clock", "-o", out]) == 130
    assert main(["train", "--zoo", "fq_bmru_d8_digits_clock", "-o", out, "--seed", "5"]) == 130
    assert main(["train", "--task", "flipflop", "--cell", "fq_bmru", "--d", "2", "-o", out]) == 130
    assert seen == [1, 5, 0]
