"""Calibrated models against real ngspice (tt, 27 C) on held-out stimuli, next to the ideal equations.

Targets of the cell library: bistable thresholds and levels within 3 %, mirror ratios within 1 %, DPI
step and multi-step responses within 2 % rms of peak. The ideal errors are printed, not bounded.
"""

import pytest

from cells import bias, bistable, dpi, mirror, rectifier, wta


def test_cells_mirror_calibrated_ratio_within_1_percent(runner, report):
    result = mirror.validate(runner)
    for pol in ("p", "n"):
        r = result[pol]
        report(polarity=pol, ideal_max=r["ideal_max_rel_error"], calibrated_max=r["calibrated_max_rel_error"])
        assert r["calibrated_max_rel_error"] < 0.01
        assert r["calibrated_max_rel_error"] <= r["ideal_max_rel_error"] + 1e-4


def test_cells_bistable_thresholds_and_levels_within_3_percent(runner, report):
    result = bistable.validate(runner)
    report(
        ideal_max=result["ideal_max_rel_error"],
        calibrated_max=result["calibrated_max_rel_error"],
        frame_agreement=result["frames"]["agreement"],
    )
    assert result["calibrated_max_rel_error"] < 0.03
    assert result["calibrated_max_rel_error"] < result["ideal_max_rel_error"]
    assert result["frames"]["agreement"] == 1.0
    for point in result["points"]:
        up, down, level = point["spice"]
        assert level == pytest.approx(point["params"][2], rel=0.03)  # the cascoded output source
        assert 0 < down < up


@pytest.mark.parametrize("i_unit", [0.1e-9, 0.05e-9])
def test_cells_bistable_tables_serve_a_smaller_unit_current(runner, report, i_unit):
    """A design of a smaller unit current feeds its starving bias STARVE_UNITS x i_unit; its cells'
    thresholds and level are then the tables' (measured at I_UNIT) with the current axes scaled
    (Calibration.at_unit), down to thresholds of 0.3 units, within the library's 3 % and tighter."""
    scale = i_unit / bistable.common.I_UNIT
    table = bistable.load_calibration().at_unit(i_unit)
    params = [
        bistable.Params(t * scale, r * t * scale, g * scale, i_unit=i_unit)
        for t, r, g in ((1e-9, 0.25, 1e-9), (0.3e-9, 0.5, 2e-9), (4e-9, 0.15, 0.5e-9))
    ]
    for p, m in zip(params, bistable.measure(runner, params, ramp_time=bistable.RAMP_TIME / scale)):
        up, down, level = table.thresholds(p.I_thresh, p.I_width, p.I_gain)
        errors = [
            abs(m["up"] - up) / p.I_thresh,
            abs(m["down"] - down) / p.I_thresh,
            abs(m["level"] - level) / p.I_gain,
        ]
        report(i_unit=i_unit, I_thresh=p.I_thresh, errors=[round(e, 4) for e in errors])
        assert max(errors) < 0.015


def test_cells_bistable_holds_while_its_phase_is_low(runner, report):
    """Inputs beyond both thresholds in disabled frames must not move the state (the phase keeper)."""
    result = bistable.phase_check(runner)
    report(agreement=result["agreement"])
    assert result["agreement"] == 1.0
    assert any(result["spice"]) and not all(result["spice"])


def test_cells_dpi_multistep_response_within_2_percent_rms(runner, report):
    result = dpi.validate(runner)
    for point in result["points"]:
        report(params=point["params"], ideal=point["ideal_rms_of_peak"], calibrated=point["calibrated_rms_of_peak"])
    assert result["calibrated_max_rms_of_peak"] < 0.02
    assert result["calibrated_max_rms_of_peak"] < result["ideal_max_rms_of_peak"]


def test_cells_rectifier_is_a_relu(runner, report):
    result = rectifier.validate(runner)
    report(**result)
    assert result["calibrated_max_rel_error"] < 0.01
    assert result["negative_input_max_output"] < 1e-12


def test_cells_bias_outputs_within_1_percent(runner, report):
    result = bias.validate(runner)
    report(**result)
    assert result["calibrated_max_rel_error"] < 0.01


def test_cells_wta_picks_the_winner(runner, report):
    result = wta.validate(runner)
    report(**result)
    assert result["calibrated_rms_of_bias"] < 0.02
    assert result["winner_agreement"] > 0.9  # ties (equal inputs) are the only disagreements


def test_cells_bistable_power_and_delay_are_recorded():
    table = bistable.load_calibration().table
    assert 1e-9 < table["power"]["watts"] < 20e-9
    cal = bistable.load_calibration()
    slow, fast = cal.delay(1e-9, 0.05), cal.delay(1e-9, 1.0)
    assert fast < slow < 1e-3
    assert cal.delay(4e-9, 0.2) < cal.delay(1e-9, 0.2)
