"""The realisation rules (compiler/realisation.py) are the passes' own: realising a zoo model's arrays gives
exactly the model the compiled IR realises, and realised values realise to themselves once settled."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cells.common import I_UNIT_MIN
from compiler.backends.behavioural import arrays_from_ir
from compiler.config import Config, load_config
from compiler.frontend import load_network
from compiler.lower import lower
from compiler.passes import run_pipeline
from compiler.realisation import Realisation, legal_window, ratio_denominator, ratio_units
from models.catalog import ZOO, build_config, zoo_path

FQ_ZOO = sorted(name for name, cfg in ZOO.items() if cfg.cell.startswith("fq_"))


@pytest.mark.parametrize("name", FQ_ZOO)
def test_realising_the_arrays_equals_the_compiled_circuit_bit_for_bit(name):
    network = load_network(zoo_path(name))
    config = load_config(build_config(zoo_path(name)))
    ir, _ = run_pipeline(lower(network), config)
    realised = Realisation.of(lower(network), config).realise(dict(network.checkpoint.arrays))
    want = arrays_from_ir(ir)
    assert sorted(realised) == sorted(want)
    for key, value in want.items():
        np.testing.assert_array_equal(realised[key], value, err_msg=key)


@pytest.mark.parametrize("name", FQ_ZOO)
def test_the_realisation_does_not_depend_on_the_unit_current(name):
    """Grids, floors, starving bias and calibration lookups all scale with i_unit, so a model trained at
    1 nA realises bit for bit the same down to the smallest unit current (so a build at a smaller i_unit
    than the checkpoint was trained for does not warn, flows/train.py)."""
    network = load_network(zoo_path(name))
    arrays = dict(network.checkpoint.arrays)
    at_one = Realisation.of(lower(network), Config()).realise(arrays)
    for i_unit in (0.5e-9, 0.2e-9, 0.1e-9, I_UNIT_MIN):
        realised = Realisation.of(lower(network), Config(model={"i_unit": i_unit})).realise(arrays)
        for key, value in at_one.items():
            np.testing.assert_array_equal(realised[key], value, err_msg=f"{key} at i_unit {i_unit:g}")


@pytest.mark.parametrize("threshold", [1.144, 2.586, 3.951])
def test_settled_values_realise_to_themselves(threshold):
    """A window legalised to the widest allowed (0.9 of its threshold) can come out of the calibration a
    little wider, which a second realisation narrows again: at these thresholds one realisation moves,
    a settled one does not."""
    name = "fq_bmru_d8_event_count"
    network = load_network(zoo_path(name))
    plan = Realisation.of(lower(network), load_config(build_config(zoo_path(name))))
    arrays = dict(network.checkpoint.arrays)
    beta_hi = np.full(arrays["cell1.alpha"].shape, threshold, np.float32)
    arrays["cell1.delta"] = beta_hi * np.float32(0.95)
    arrays["cell1.beta_lo"] = beta_hi - arrays["cell1.delta"]
    once = plan.realise(arrays)
    assert any(not np.array_equal(plan.realise({**arrays, **once})[k], v) for k, v in once.items())
    settled = plan.settle(arrays)
    again = plan.realise({**arrays, **settled})
    for key, value in settled.items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)


def test_rules_on_hand_values():
    assert ratio_denominator(largest=2.0, wanted=16, max_units=64) == 16
    assert ratio_denominator(largest=8.0, wanted=16, max_units=64) == 8
    np.testing.assert_array_equal(ratio_units([0.5, 0.53, 5.0], 16, 64), [8, 8, 64])
    t, w, g = legal_window(1.0, 0.05, 0.04, lo=0.1, ratio=0.15)
    assert float(w) == pytest.approx(0.15 * float(t)) and float(t - w / 2) == pytest.approx(0.975)
    assert float(g) == 0.0  # below half the minimum current: switched off


def test_a_floor_near_the_cells_leakage_is_a_warning_that_says_which_unit_current_to_use():
    from compiler.config import Config
    from compiler.realisation import leakage_warning

    hot = leakage_warning(["bistable"], Config(model={"i_unit": 1e-10, "temp": 85.0}))
    assert "2.62 pA at tt, 85 C" in hot and "Raise i_unit to 0.26 nA" in hot
    assert leakage_warning(["bistable"], Config(model={"i_unit": 3e-10, "temp": 85.0})) is None
    assert leakage_warning(["bistable"], Config(model={"i_unit": 5e-11})) is None  # 0.13 pA at 27 C
    ss = leakage_warning(["bistable"], Config(model={"i_unit": 1e-10, "corner": "ss", "temp": 85.0}))
    assert "2.62 pA at tt, 85 C" in ss  # no ss table at 85 C: tt's leakage at 85 C
    assert leakage_warning(["bistable"], Config(model={"i_unit": 1e-10, "temp": 60.0})) is None  # no table


def test_a_weight_realised_at_the_largest_output_keeps_its_denominator_when_stored_in_float32():
    """A realised largest weight of max_units / D, stored in float32 (a hair above it for most D), must
    realise on D again: otherwise a checkpoint of realised weights builds onto another grid."""
    from compiler.realisation import ratio_denominator, ratio_units

    for d in range(1, 16):
        stored = float(np.float32(64 / d))
        assert ratio_denominator(stored, 16, 64) == d
        assert ratio_units(stored, d, 64) == 64
    assert ratio_denominator(64 / 13 * 1.001, 16, 64) == 12  # a weight truly above it still does not fit


def test_settle_warns_when_the_realised_values_keep_moving(monkeypatch):
    import itertools

    from compiler.realisation import Realisation

    plan = Realisation((), (), (), 1e-9, None, 16, {})
    flip = itertools.cycle([{"cell1.W": np.float32([1.0])}, {"cell1.W": np.float32([2.0])}])
    monkeypatch.setattr(Realisation, "realise", lambda self, arrays: next(flip))
    with pytest.warns(RuntimeWarning, match=r"cell1\.W still move after 8 rounds"):
        plan.settle({})
    steady = itertools.repeat({"cell1.W": np.float32([1.0])})
    monkeypatch.setattr(Realisation, "realise", lambda self, arrays: next(steady))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plan.settle({})["cell1.W"] == 1.0
