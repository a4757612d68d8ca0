"""The cell registry and what every cell promises: validation, netlists, tables, named errors (no SPICE)."""

import json
import re

import numpy as np
import pytest

import cells
from cells import bias, bistable, cmru, common, dpi, mirror, rectifier, wta
from compiler.foundation.errors import CalibrationMissing, CellParameterError, UsageError

INTERFACE = (
    "Params",
    "subckt",
    "ideal",
    "characterize",
    "load_calibration",
    "Calibration",
    "validate",
    "mismatch",
    "plot",
    "NAME",
)

EXAMPLES = {
    "mirror": mirror.Params("p", (1, 2, 3), 2),
    "rectifier": rectifier.Params((1, 2)),
    "bias": bias.Params(sources=(1, 4), sinks=(2,), den=2, starve=10),
    "bistable": bistable.Params(1e-9, 0.25e-9, 1e-9),
    "dpi": dpi.Params(0.1e-9, 1e-9, 1e-12),
    "wta": wta.Params(4, 2e-9),
    "cmru": cmru.Params(3, 1e-9, 0.25e-9, 1e-9, 40e-12, 1e-9, 5e-12, 0.25e-9),
}


@pytest.mark.parametrize("name", cells.names())
def test_every_registered_cell_has_the_interface_and_a_tt_table(name):
    module = cells.get(name)
    assert module.NAME == name
    for attr in INTERFACE:
        assert hasattr(module, attr), f"{name} lacks {attr}"
    table = common.load_table(name, "tt", 27.0)
    assert table["schema"] == common.SCHEMA and table["cell"] == name and table["corner"] == "tt"
    assert table["pdk"].startswith("sky130") and table["ngspice"].startswith("ngspice-")
    assert "characterize" in table["command"] and table["power"]["watts"] > 0
    assert isinstance(cells.load_calibration(name), module.Calibration)


@pytest.mark.parametrize("name", cells.names())
def test_subckt_ports_match_the_rendered_netlist_and_names_are_deterministic(name):
    module = cells.get(name)
    sub = module.subckt(EXAMPLES[name])
    header = next(line for line in sub.text.splitlines() if line.lower().startswith(".subckt"))
    assert header.split()[1] == sub.name
    assert tuple(header.split()[2:]) == sub.ports
    assert sub.text.rstrip().endswith(f".ends {sub.name}")
    assert module.subckt(EXAMPLES[name]).text == sub.text
    for device in re.findall(r"sky130_fd_pr__\w+", sub.text):
        assert device in (common.NFET, common.PFET, common.MIM)
    card = sub.instance("U1", list(sub.ports))
    assert card.split()[-1] == sub.name and len(card.split()) == len(sub.ports) + 2
    with pytest.raises(CellParameterError):
        sub.instance("U2", list(sub.ports)[:-1])


@pytest.mark.parametrize(
    "make",
    [
        lambda: mirror.Params("x", (1,)),
        lambda: mirror.Params("p", (0,)),
        lambda: mirror.Params("n", (1.5,)),
        lambda: mirror.Params("p", (1,), n_in=65),
        lambda: mirror.Params("p", (1,), l=1.0),
        lambda: bistable.Params(20e-9, 1e-9, 1e-9),  # threshold above weak inversion
        lambda: bistable.Params(1e-9, 1e-9, 1e-9),  # width >= threshold
        lambda: bistable.Params(1e-9, 1.2e-9, 1e-9),
        lambda: bistable.Params(1e-9, 0.05e-9, 1e-9),  # hysteresis too narrow to survive mismatch
        lambda: bistable.Params(1e-9, 0.25e-9, 0.01e-9),
        lambda: dpi.Params(0.1e-9, 1e-9, 0.1e-12),
        lambda: dpi.Params(1e-9, 100e-9),
        lambda: dpi.Params(1e-9, 0.05e-9),
        lambda: wta.Params(1),
        lambda: bias.Params(),
        lambda: bias.Params(sources=(1,), den=20),  # 50 pA output: below the range
    ],
)
def test_unrealisable_parameters_raise_a_named_error(make):
    with pytest.raises(CellParameterError) as info:
        make()
    assert isinstance(info.value, UsageError) and str(info.value)


def test_unknown_cell_and_missing_calibration_are_named_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown cell"):
        cells.get("opamp")
    with pytest.raises(CalibrationMissing, match="python -m compiler characterize bistable --corner ss --temp 85"):
        common.load_table("bistable", "ss", 85.0, directory=tmp_path)


@pytest.mark.tools
def test_tables_are_written_atomically_and_read_back(tmp_path):
    path = common.write_table(
        "demo", "tt", 27.0, {"x": np.arange(3)}, {"k": np.float64(1.5)}, wall_time=1.0, directory=tmp_path
    )
    assert path.name == "demo_tt_27C.json"
    assert [p.name for p in tmp_path.iterdir()] == ["demo_tt_27C.json"]  # no temporary left behind
    table = common.load_table("demo", "tt", 27.0, directory=tmp_path)
    assert table["data"]["x"] == [0, 1, 2] and table["fit"]["k"] == 1.5
    json.loads(path.read_text())


def test_bistable_inversion_round_trips_through_the_calibrated_model():
    cal = bistable.load_calibration()
    for beta_hi, delta, alpha in ((1e-9, 0.25e-9, 1e-9), (3e-9, 0.5e-9, 2e-9), (0.4e-9, 0.2e-9, 0.3e-9)):
        p = cal.invert(beta_hi, delta, alpha)
        hi, lo, level = cal.thresholds(p.I_thresh, p.I_width, p.I_gain)
        assert hi == pytest.approx(beta_hi, rel=1e-4)
        assert hi - lo == pytest.approx(delta, rel=1e-4)
        assert level == pytest.approx(alpha, rel=1e-4)


def test_bistable_calibrated_model_is_jax_traceable():
    import jax
    import jax.numpy as jnp

    cal = bistable.load_calibration()
    f = jax.jit(lambda i: cal.thresholds(i, 0.25 * i, 1e-9, xp=jnp)[0])
    assert float(f(1e-9)) == pytest.approx(float(cal.thresholds(1e-9, 0.25e-9, 1e-9)[0]), rel=1e-5)
    out = bistable.run_frames(jnp.array([0.0, 2.0, 0.9, 0.1]), 1.0, 0.75, 3.0)
    assert out.tolist() == [0.0, 3.0, 3.0, 0.0]


def test_dpi_inversion_hits_the_requested_tau_and_gain():
    cal = dpi.load_calibration()
    p = cal.invert(tau=1e-3, gain=4.0, C=2e-12)
    q = cal.parameters(p)
    assert q["tau"] == pytest.approx(1e-3, rel=1e-3)
    assert q["i_th_eff"] / p.I_tau == pytest.approx(4.0, rel=1e-3)


def test_mirror_quantisation_and_calibrated_ratio_choice():
    assert mirror.quantize(0.75, 8) == (4, 3)
    assert mirror.quantize(2.0, 8) == (1, 2)
    assert mirror.quantize(0, 8) == (1, 0)
    cal = mirror.load_calibration()
    n_in, n_out = cal.ratio_for(1.5, "n", 1e-9, 8)
    assert n_out / n_in == pytest.approx(1.5)
    assert abs(cal.gain("p", 1, 1, 1e-9) - 1) < 0.01  # pfet L=8 mirrors are within 1 % at 0.7 V


def test_bias_multiplicity_and_wta_ideal():
    cal = bias.load_calibration()
    assert cal.multiplicity("source", 0.5e-9, 1e-9, 8) == 4
    out = wta.ideal(wta.Params(3), [[1e-9, 2e-9, 0.5e-9]])
    assert out.tolist() == [[0.0, 1e-9, 0.0]]


def test_bistable_supply_draws_its_threshold_and_as_much_of_its_copy_as_the_candidate_sinks():
    from cells import bistable

    bias = {"thresh": [1e-9, 2e-9]}
    candidates = [[0.5e-9, 3e-9], [1.5e-9, 1e-9]]  # unit 0 below then above I_thresh, unit 1 the reverse
    assert bistable.supply_current(bias) == pytest.approx(6e-9)  # without candidates: the copy at full
    assert bistable.supply_current(bias, candidates) == pytest.approx(3e-9 + 0.75e-9 + 1.5e-9)


@pytest.mark.parametrize("C", [0.5e-12, 1.8e-12, 1.81e-12, 5.3e-12, 11e-12, 20e-12])
def test_mim_plates_are_at_most_the_widest_and_keep_the_single_plate_capacitance(C):
    side, count = common.mim_plates(C)
    single = round((C / common.MIM_F_PER_UM2) ** 0.5, 3)

    def capacitance(s, n):
        return n * (common.MIM_F_PER_UM2 * s * s + 4 * common.MIM_F_PER_UM * s)

    assert side <= common.MIM_MAX_SIDE_UM
    assert count == 1 if single <= common.MIM_MAX_SIDE_UM else count > 1 and int(count**0.5) ** 2 == count
    assert capacitance(side, count) == pytest.approx(capacitance(single, 1), rel=1e-4)
