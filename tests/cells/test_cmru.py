"""The FQ-CMRU ladder (cells/cmru.py): parameters, netlist, and SPICE frames against the model's counter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cells import bistable, cmru, common, dpi
from compiler.foundation.errors import CellParameterError


def nominal(**changes):
    return cmru.design(**{**cmru.NOMINAL, **changes})


def test_params_refuse_what_the_ladder_cannot_realise():
    for bad in ({"K": 1}, {"K": cmru.K_MAX + 1}, {"I_thresh": 50e-9}, {"I_width": 2e-9}):
        with pytest.raises(CellParameterError):
            cmru.Params(**{**nominal().__dict__, **bad})
    with pytest.raises(CellParameterError, match="frame period"):
        cmru.design(**cmru.NOMINAL, frame=1.0)  # tau 0.5 s: C far beyond the MIM range


def test_design_pins_with_margin_and_hits_tau():
    for thresh in (0.5e-9, 1e-9, 4e-9):
        p = cmru.design(**{**cmru.NOMINAL, "I_thresh": thresh, "I_width": 0.4 * thresh})
        assert p.pin >= 2 * p.I_thresh  # a pinned stage cannot reset at zero input
        assert p.delay().tau_ideal() == pytest.approx(cmru.TAU_OVER_FRAME * cmru.FRAME, rel=0.05)


def test_netlist_is_deterministic_and_reuses_the_cells():
    p = nominal()
    sub = cmru.subckt(p)
    assert sub.ports == cmru.PORTS and sub.text == cmru.subckt(nominal()).text
    devices = [line.split() for line in sub.text.splitlines() if line.startswith("X")]
    assert all(any(w.startswith("sky130_fd_pr__") for w in d) for d in devices)  # flat: devices only
    assert sub.text.count("* XS") == p.K and sub.text.count(" bistable") >= p.K  # the cells' own netlists
    assert sum(1 for d in devices if any(w.endswith("cap_mim_m3_1") for w in d)) == p.K  # one DPI capacitor a level
    assert sub.text.count("XMbs") == p.K - 1 and sub.text.count("XMps") == p.K - 1  # block above 1, pin below K
    assert f" {cmru.state_node(1)} " in sub.text
    two = cmru.subckt(nominal(K=2))  # no fan-out mirror when every DPI has one reader
    assert "* XF" not in two.text


def test_port_currents_tie_the_stages():
    p = nominal()
    currents = p.port_currents()
    assert currents["ith"] == (p.K * p.I_thresh, "n") and currents["ig"] == (p.K * p.I_gain, "p")
    assert currents["ix"] == (p.I_x, "n")


def _supply(p, h, levels, enabled=1 / 3, xp=np):
    """One ladder's supply current (A) over frames of candidates h and levels."""
    bias = cmru.supply_bias([p])
    return cmru.FACTS.supply_current(bias, np.reshape(h, (-1, 1)), np.reshape(levels, (-1, 1)), enabled, xp)


def test_supply_current_at_rest_is_the_bias_the_ladder_draws():
    """Level 0, no candidate: only the pfet diodes on the drawn-out ports (K threshold diodes, the gating one)."""
    for p in (nominal(), *(cmru.design(**d) for d in cmru.HELD_OUT)):
        drawn = sum(value for value, direction in p.port_currents().values() if direction == "n")
        assert _supply(p, 0.0, 0) == pytest.approx(drawn, rel=1e-9)


def test_supply_current_counts_every_stage_and_rises_with_level():
    p, q = nominal(), nominal(K=8)
    hold = p.I_thresh - 0.5 * p.I_width
    by_level = [_supply(p, hold, n) for n in range(p.K + 1)]
    assert np.all(np.diff(by_level) > 0)
    # each set stage: its threshold branch and diode, and its output into the DPI's diode, tail and the sum
    assert _supply(p, 0.0, p.K) >= p.K * (2 * p.I_thresh + 3 * p.I_gain)
    # below the top, the stages above the live one draw only their threshold diodes
    for n in range(p.K - 1):
        assert _supply(q, hold, n) - _supply(p, hold, n) == pytest.approx((q.K - p.K) * p.I_thresh, rel=1e-9)
    # without the ladder's design (model arrays): one bistable stage per unit
    bias = {k: v for k, v in cmru.supply_bias([p]).items() if k in ("thresh", "width", "gain")}
    assert cmru.supply_current(bias, [[hold]], [[2]]) == bistable.supply_current(bias, [[hold]], [[2]])


def test_supply_current_traces_with_jax():
    p = nominal()
    h = np.array([1.5, 0.7, 0.3, 1.2]) * p.I_thresh
    levels = np.array([1, 1, 0, 1])
    traced = jax.jit(lambda h: _supply(p, h, levels, xp=jnp))(h)
    assert float(traced) == pytest.approx(_supply(p, h, levels), rel=1e-5)


def test_supply_current_meets_the_calibrated_ladder_power():
    """The calibration's one-ladder power (SPICE, `_power`): its supply pin, as `ladder_power` books it with
    every bias port current on top."""
    p = cmru.design(**cmru.NOMINAL, dpi_calibration=dpi.load_calibration("tt", 27.0))
    table = common.load_table(cmru.NAME, "tt", 27.0)["power"]
    assert (table["K"], table["I_gain"]) == (p.K, p.I_gain)
    pin = table["watts"] / common.VDD - sum(value for value, _ in p.port_currents().values())
    h = np.array(cmru.POWER_FRAMES) * p.I_thresh
    rise, fall = cmru.window()
    assert _supply(p, h, cmru.model_levels(p, h), fall - rise) == pytest.approx(pin, rel=0.05)


def test_frames_move_one_level_at_a_time(runner, report):
    """K = 2: up twice (the second saturates), hold, down twice (the second saturates) in SPICE."""
    p = nominal(K=2)
    h = np.array([1.5, 1.5, 1.5, 0.8, 0.3, 0.3, 0.3]) * p.I_thresh
    res = runner.run(cmru._frames_sim([p], [h]))
    got = cmru.levels(res, [p], len(h))
    ref = cmru.model_levels(p, h)
    report(spice=got["level"][0].tolist(), reference=ref.tolist())
    assert ref.tolist() == [1, 2, 2, 2, 1, 0, 0]
    assert got["level"][0].tolist() == ref.tolist()
    assert got["stages"][0].tolist() == ref.tolist()  # the thermometer code agrees with the current
    assert np.allclose(got["current"][0], ref * p.I_gain, atol=0.05 * p.I_gain)


def test_netlist_clears_each_dpi_outside_the_window():
    """Every stage's DPI capacitor has a path to ground through enb and the stage's decision node."""
    p = nominal(K=3)
    text = cmru.subckt(p).text
    lines = text.splitlines()
    for k in range(1, p.K + 1):
        (top,) = [line.split() for line in lines if line.startswith(f"XMre{k} ")]
        (bottom,) = [line.split() for line in lines if line.startswith(f"XMrs{k} ")]
        assert top[1:3] == [f"d{k}_vc", "enb"] and top[3] == bottom[1]  # drain on the capacitor, gate enb
        assert bottom[2:4] == [f"s{k}_a", "0"]  # gate on a, source to ground
        assert f"XD{k}_C d{k}_vc 0 " in text  # d<k>_vc is the capacitor's node


def test_up_after_down_moves_one_level(runner, report):
    """A stage set in the frame right after its reset: without the DPI clear its DPI kept d of about 0.2,
    crossed the block level inside the window, and the stage above set too (this case: 1 -> 0 -> 2)."""
    p = cmru.design(2, 1e-9, 0.4e-9, 3.2e-9, dpi_calibration=dpi.load_calibration("tt", 27.0))
    h = np.array([1.9, 0.3, 1.9]) * p.I_thresh
    res = runner.run(cmru._frames_sim([p], [h]))
    got = cmru.levels(res, [p], len(h))
    ref = cmru.model_levels(p, h)
    report(spice=got["level"][0].tolist(), reference=ref.tolist())
    assert ref.tolist() == [1, 0, 1]
    assert got["level"][0].tolist() == ref.tolist() and got["stages"][0].tolist() == ref.tolist()


def test_limits_row_per_combination_climbs_to_the_top(runner):
    """The limits study's frames reach level K and saturate; each row is one ladder, measured."""
    rows = cmru.limits(runner, Ks=(2,), tau_over_frames=(0.6, 0.9), extra=2, jobs=2)
    assert [(r["K"], r["tau_over_frame"]) for r in rows] == [(2, 0.6), (2, 0.9)]
    for r in rows:
        assert r["reference_levels"][:3] == [1, 2, 2] and r["frames"] == 5
        assert r["level_agreement"] == 1.0 and r["spice_levels"] == r["reference_levels"]
        assert 5e-9 < r["power_W"] < 200e-9
    assert rows[1]["C_pF"] > rows[0]["C_pF"]  # a longer tau at the same I_tau takes a larger capacitor


@pytest.mark.slow
def test_random_frames_agree_with_the_model(runner, report):
    ps = [nominal(), *(cmru.design(**d) for d in cmru.HELD_OUT)]
    r = cmru.frame_agreement(runner, ps, frames=32, seed=1)
    report(level_agreement=r["level_agreement"], frames=r["frames"], power_per_ladder=r["power_W_per_ladder"])
    assert r["level_agreement"] >= 0.99


@pytest.mark.slow
def test_mismatch_level_agreement(runner, report):
    r = cmru.mismatch(runner, n=4)
    report(**{f"seed{k}": v for k, v in enumerate(r["level_agreement"], 1)})
    assert r["min"] >= 0.9
