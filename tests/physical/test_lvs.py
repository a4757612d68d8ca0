"""LVS with real KLayout: the hand-drawn mirror matches its SPICE twin; a wrong W, a swapped net or a
missing device is reported as a mismatch; a build directory's netlist is read with its current probes."""

from __future__ import annotations

import json

import pytest
from drawn import MIRROR, MIRROR_SPICE, mirror_layout

from compiler.foundation.errors import SchematicMissing
from flows.cli import main
from flows.lvs import run_lvs

pytestmark = pytest.mark.tools  # LVS in KLayout


@pytest.fixture(scope="module")
def mirror_gds(tmp_path_factory):
    return mirror_layout().save(tmp_path_factory.mktemp("mirror") / "mirror.gds")


def lvs(tmp_path, gds, spice: str, **kwargs):
    path = tmp_path / "schematic.spice"
    path.write_text(spice)
    return run_lvs(gds, tmp_path / "lvs", schematic=[path], **kwargs)


def test_mirror_matches_its_schematic_with_devices_and_parameters(tmp_path, mirror_gds):
    result = lvs(tmp_path, mirror_gds, MIRROR_SPICE)
    assert result.match and result.issues == []
    assert result.devices["layout"] == {
        "sky130_fd_pr__cap_mim_m3_1": 1,
        "sky130_fd_pr__nfet_01v8": 2,
        "sky130_fd_pr__pfet_01v8": 1,
    }
    assert result.devices["layout"] == result.devices["schematic"]
    data = json.loads((tmp_path / "lvs" / "report.json").read_text())
    assert data["match"] and data["issues"] == 0
    assert "**match**" in (tmp_path / "lvs" / "report.md").read_text()
    assert (tmp_path / "lvs" / "report.lvsdb").stat().st_size > 0


def test_a_wrong_width_is_a_mismatch_naming_the_device(tmp_path, mirror_gds):
    result = lvs(
        tmp_path,
        mirror_gds,
        MIRROR_SPICE.replace(
            "XM2 out in 0 0 sky130_fd_pr__nfet_01v8 W=1 ", "XM2 out in 0 0 sky130_fd_pr__nfet_01v8 W=1.5 "
        ),
    )
    assert not result.match
    (device,) = [i for i in result.issues if i["kind"] == "device"]
    assert device["status"] == "ParametersDiffer" and "W=1.5" in device["schematic"] and "W=1 " in device["layout"]


def test_a_wrong_capacitor_area_is_a_mismatch(tmp_path, mirror_gds):
    result = lvs(tmp_path, mirror_gds, MIRROR_SPICE.replace("W=2 L=2", "W=2 L=3"))
    assert not result.match and any(i["kind"] == "device" for i in result.issues)


def test_a_swapped_gate_net_in_the_layout_is_a_mismatch(tmp_path):
    swapped = dict(MIRROR, M2=MIRROR["M2"][:5] + ({"d": "out", "g": "bias", "s": "gnd", "b": "gnd"},))
    gds = mirror_layout(swapped).save(tmp_path / "swapped.gds")
    result = lvs(tmp_path, gds, MIRROR_SPICE)
    assert not result.match and any(i["kind"] == "net" for i in result.issues)


def test_a_missing_device_is_a_mismatch(tmp_path, mirror_gds):
    without_m3 = MIRROR_SPICE.replace("XM3 in bias vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=0.6\n", "")
    result = lvs(tmp_path, mirror_gds, without_m3)
    assert not result.match
    assert result.devices["layout"]["sky130_fd_pr__pfet_01v8"] == 1
    assert "sky130_fd_pr__pfet_01v8" not in result.devices["schematic"]


def build_directory(tmp_path, gds_source):
    """A build directory as the compiler writes it: the mirror as a cell, a network with a 0 V probe,
    one transistor split into m=2 units of half the width."""
    (tmp_path / "layout").mkdir(parents=True)
    (tmp_path / "layout" / "top.gds").write_bytes(gds_source.read_bytes())
    (tmp_path / "netlist").mkdir()
    (tmp_path / "netlist" / "cells.spice").write_text(
        MIRROR_SPICE.replace(
            "XM2 out in 0 0 sky130_fd_pr__nfet_01v8 W=1 L=0.6", "XM2 out in 0 0 sky130_fd_pr__nfet_01v8 W=0.5 L=0.6 m=2"
        )
    )
    (tmp_path / "netlist" / "network.spice").write_text(
        ".subckt fqrnn_network vdd in out bias top\n"
        "VH_probe in in_probe 0\nIREF vdd bias 1n\n"
        "Xm in_probe out bias vdd top mirror\n.ends fqrnn_network\n"
    )
    return tmp_path


def test_build_directory_with_probes_multipliers_and_hierarchy_matches(tmp_path, mirror_gds):
    from pathlib import Path

    directory = build_directory(tmp_path / "build", Path(mirror_gds))
    assert main(["lvs", str(directory)]) == 0
    data = json.loads((directory / "lvs" / "report.json").read_text())
    assert data["match"] and data["schematic_top"].lower() == "fqrnn_network"


def test_missing_netlist_is_a_named_error_with_exit_2(tmp_path, mirror_gds):
    from pathlib import Path

    directory = build_directory(tmp_path / "build", Path(mirror_gds))
    (directory / "netlist" / "network.spice").unlink()
    with pytest.raises(SchematicMissing):
        run_lvs(directory)
    assert main(["lvs", str(directory)]) == 2


def test_parallel_cards_of_one_model_combine_into_the_drawn_device(tmp_path, mirror_gds):
    """Two half-width cards in parallel (like a bias output split into chunks) equal the one drawn device."""
    split = MIRROR_SPICE.replace(
        "XM2 out in 0 0 sky130_fd_pr__nfet_01v8 W=1 L=0.6",
        "XM2a out in 0 0 sky130_fd_pr__nfet_01v8 W=0.25 L=0.6\nXM2b out in 0 0 sky130_fd_pr__nfet_01v8 W=0.75 L=0.6",
    )
    result = lvs(tmp_path, mirror_gds, split)
    assert result.match, result.issues
