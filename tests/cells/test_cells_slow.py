"""Slow set: every cell at the five process corners, and PDK mismatch Monte Carlo sigmas at tt.

Run with `python -m pytest -m slow tests/cells -s` to see the measured figures. The corner tests
characterise into a temporary directory (cached simulations make a re-run cheap) and check the
calibrated model of that corner against SPICE on the held-out stimuli.
"""

import math

import pytest

import cells
from compiler.foundation.pdk import CORNERS
from flows.characterize import characterize_cell

pytestmark = pytest.mark.slow

TARGETS = {  # (key in the validation result, bound)
    "mirror": lambda r: max(r["p"]["calibrated_max_rel_error"], r["n"]["calibrated_max_rel_error"]) < 0.01,
    "rectifier": lambda r: r["calibrated_max_rel_error"] < 0.01,
    "bias": lambda r: r["calibrated_max_rel_error"] < 0.01,
    "bistable": lambda r: r["calibrated_max_rel_error"] < 0.03 and r["frames"]["agreement"] == 1.0,
    "dpi": lambda r: r["calibrated_max_rms_of_peak"] < 0.02,
    "wta": lambda r: r["calibrated_rms_of_bias"] < 0.02,
    "cmru": lambda r: r["level_agreement"] == 1.0 and r["calibrated_level_error_max"] < 0.02,
}


@pytest.mark.parametrize("corner", CORNERS)
@pytest.mark.parametrize("name", cells.names())
def test_cells_calibrated_model_holds_at_every_corner(name, corner, tmp_path, runner, report):
    summary = characterize_cell(name, corner, 27.0, jobs=2, output=tmp_path, validate=True, runner=runner)
    report(
        cell=name,
        corner=corner,
        wall=summary["wall_time"],
        power=summary["power"]["watts"],
        validation=summary["validation"],
    )
    assert TARGETS[name](summary["validation"]), summary["validation"]


def test_cells_mismatch_sigmas_at_tt(runner, report):
    """Sigma of each cell parameter for the chosen device sizes (PDK Monte Carlo, tt, 27 C)."""
    m = cells.get("mirror").mismatch(runner, n=40)
    report(mirror_p_sigma=m["p"]["sigma"], mirror_n_sigma=m["n"]["sigma"])
    assert m["p"]["sigma"] < 0.06 and m["n"]["sigma"] < 0.08

    b = cells.get("bistable").mismatch(runner, n=12)
    report(**{f"bistable_{k}_rel_sigma": b[k]["rel_sigma"] for k in ("up", "down", "width", "level")})
    assert b["up"]["rel_sigma"] < 0.10 and b["level"]["rel_sigma"] < 0.10
    assert b["width"]["mean"] > 0

    d = cells.get("dpi").mismatch(runner, n=12)
    report(dpi_tau_rel_sigma=d["tau"]["rel_sigma"], dpi_output_rel_sigma=d["steady_output"]["rel_sigma"])
    assert d["tau"]["rel_sigma"] < 0.2

    # The bias generator and the WTA are built of the mirror's unit devices (4/8 um): their spread follows
    # the mirror's above. A factor of 2 either way covers n = 12 draws; a spread near 0 would mean the
    # Monte Carlo draw missed the devices.
    p_sigma, n_sigma = m["p"]["sigma"], m["n"]["sigma"]
    g = cells.get("bias").mismatch(runner, n=12)
    source, sink = (g[k]["sigma"] / g[k]["mean"] for k in ("source", "sink"))
    report(bias_source_rel_sigma=source, bias_sink_rel_sigma=sink)
    assert 0.5 * p_sigma < source < 2 * p_sigma  # one pfet copy
    series = math.hypot(p_sigma, n_sigma)  # a pfet copy, then an nfet cascode copy
    assert 0.5 * series < sink < 2 * series
    assert g["source"]["mean"] == pytest.approx(1.0, abs=0.1) and g["sink"]["mean"] == pytest.approx(1.0, abs=0.1)

    w = cells.get("wta").mismatch(runner, n=12)["balance_log_ratio"]
    report(wta_offset_log_ratio_sigma=w["sigma"], wta_offset_log_ratio_mean=w["mean"])
    assert 0.5 * n_sigma < w["sigma"] < 2 * n_sigma  # the two input nfets, as in a 1:1 nfet copy
    assert abs(w["mean"]) < w["sigma"]  # a symmetric circuit: no offset beyond the random one
