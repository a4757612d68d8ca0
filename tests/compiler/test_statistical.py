"""The statistical behavioural model (compiler/backends/statistical.py, `verify --mc-model`): element sigmas
from the cell library, draws that spread as those sigmas say, and a report without ngspice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cells import bistable
from cells.mirror import output_sigma
from compiler.backends.behavioural import arrays_from_ir
from compiler.backends.statistical import draw, monte_carlo, sigmas
from compiler.config import Config, load_config
from compiler.frontend import load_network
from compiler.ir import WeightArray
from compiler.lower import lower
from compiler.passes import run_pipeline
from flows.cli import main
from models.tasks import get_task


@pytest.fixture
def ir(small_ckpt):
    return run_pipeline(lower(load_network(small_ckpt)), Config())[0]


def test_weight_sigmas_are_pelgrom_of_each_output_and_cells_take_their_facts(ir):
    spread = sigmas(ir)
    stage = next(s for s in ir.of_kind(WeightArray) if s.source == s.name)
    for p, n, sig in zip(np.ravel(stage.pos_ratios), np.ravel(stage.neg_ratios), np.ravel(spread[stage.source])):
        size = (stage.denominator, stage.unit_w, stage.unit_l)
        assert sig == (output_sigma("p", p, *size) if p else output_sigma("n", n, *size) if n else 0.0)
    m = bistable.FACTS.mismatch
    assert [float(spread[f"cell1.{k}"][0]) for k in ("set", "reset", "level")] == [m.set, m.reset, m.level]
    assert all(np.all(v > 0) for k, v in spread.items() if k.endswith(".b") and np.any(arrays_from_ir(ir)[k]))


def test_draws_spread_as_their_sigmas_and_keep_every_reset_threshold_below_its_set_threshold(ir):
    import jax

    drawn = draw(ir, jax.random.PRNGKey(0), 4000)
    nominal, m = arrays_from_ir(ir), bistable.FACTS.mismatch
    hi = np.asarray(drawn["cell1.beta_lo"] + drawn["cell1.delta"])
    want = nominal["cell1.beta_lo"] + nominal["cell1.delta"]
    np.testing.assert_allclose(hi.std(0) / want, m.set, rtol=0.1)
    np.testing.assert_allclose(hi.mean(0), want, rtol=0.01)
    assert np.all(np.asarray(drawn["cell1.delta"]) >= 0)
    spread = sigmas(ir)
    arrays = [k for k in spread if k.rsplit(".", 1)[1] in ("W", "b")]
    assert "cell1.W" in arrays and "cell1.b" in arrays  # a memory-cell layer's own mirrors and taps draw too
    for name in arrays:
        used = np.nonzero(np.asarray(nominal[name]) * np.asarray(spread[name]))
        spread_drawn = np.asarray(drawn[name]).std(0)[used] / np.abs(np.asarray(nominal[name])[used])
        np.testing.assert_allclose(spread_drawn, np.asarray(spread[name])[used], rtol=0.1, err_msg=name)


def test_without_draws_spread_the_model_is_the_reference(ir, monkeypatch):
    """With every sigma zero, each draw computes what the behavioural reference computes."""
    import compiler.backends.statistical as statistical

    zero = {k: np.zeros_like(v) for k, v in sigmas(ir).items()}
    monkeypatch.setattr(statistical, "sigmas", lambda ir: zero)
    x = get_task("digits_rows").test.x[:3]
    monkeypatch.setattr(statistical, "CHUNK_VALUES", 1)  # one draw per chunk: the chunks join up
    chunks = list(monte_carlo(ir, x, "readout", draws=4))
    assert [len(out) for out, _ in chunks] == [1, 1, 1, 1]
    out = np.concatenate([out for out, _ in chunks])
    states = {"cell1": np.concatenate([q["cell1"] for _, q in chunks])}
    from compiler.backends.behavioural import reference

    _, traces = reference(ir, x)
    for k in range(4):
        np.testing.assert_allclose(out[k], np.asarray(traces["readout"]["y"]), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(states["cell1"][k], np.asarray(traces["cell1"]["q"]))


@pytest.mark.tools  # the build records the ngspice version; the model itself runs no simulator
def test_verify_mc_model_without_spice_writes_its_report(small_ckpt, tmp_path, capsys):
    from flows.build import build

    build(small_ckpt, tmp_path / "b", layout=False)
    assert main(["verify", str(tmp_path / "b"), "--no-spice", "--mc-model", "300", "--sequences", "5"]) == 0
    report = json.loads((tmp_path / "b/verify/mc_model.json").read_text())
    assert report["model"]["draws"] == 300 and report["spice"] == {}
    assert len(report["model"]["prediction_kept_by_sequence"]) == 5
    q = report["model"]["quantiles"]["state_agreement"]
    assert 0 < q["q0"] <= q["q50"] <= q["q100"] <= 1
    assert "statistical behavioural model" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "b"), "--no-spice"]) == 2


@pytest.mark.parametrize("name", ["fq_bmru_d4_digits_clock", "fq_cmru_d8_event_count"])
def test_training_draws_the_sigmas_the_built_circuit_has(name):
    """The realisation's spread (what hardware-aware training draws from) equals the statistical model's
    sigmas of the compiled circuit, element by element."""
    from compiler.realisation import Realisation
    from models.catalog import build_config, zoo_path

    network = load_network(zoo_path(name))
    config = load_config(build_config(zoo_path(name)))
    plan = Realisation.of(lower(network), config)
    spread = plan.spread({**network.checkpoint.arrays, **plan.settle(dict(network.checkpoint.arrays))})
    built = sigmas(run_pipeline(lower(network), config)[0])
    assert sorted(spread) == sorted(built)
    for key, value in built.items():
        np.testing.assert_allclose(spread[key], value, rtol=1e-6, err_msg=key)
