"""Post-layout extraction (flows/parasitics.py): the wiring capacitance of a hand-drawn cell and of a
small build, its extracted netlist, and `verify --post-layout` against the schematic run."""

from __future__ import annotations

import json

import pytest

from flows import parasitics
from flows.build import build
from flows.verify import verify
from tests.physical.drawn import MIRROR_SPICE, TRACK_PITCH, mirror_layout

pytestmark = pytest.mark.tools

TABLE = parasitics.load_parasitics()
EXTENSION = 10.0  # um of met2 added to one net's track


def _drawn(tmp_path, extend: bool) -> dict:
    d = mirror_layout()
    if extend:  # the `out` track (fourth of the sorted nets) runs EXTENSION um further right
        x = max(x for x, _ in d.columns["out"]) + 0.2
        y = 3.5 + sorted(d.columns).index("out") * TRACK_PITCH
        d.box("met2", x, y - 0.13, x + EXTENSION, y + 0.13)
    spice = tmp_path / "mirror.spice"
    spice.write_text(MIRROR_SPICE)
    extraction = parasitics.extract_cell(d.layout, d.cell, [spice], "mirror")
    return {r["net"]: r for r in extraction.nets}


def test_a_longer_wire_has_its_area_and_fringe_more_and_the_mim_plate_none(tmp_path):
    short, long = _drawn(tmp_path, False), _drawn(tmp_path, True)
    assert set(short) == {"in", "out", "bias", "vdd"}  # ground carries none; `top` is all MIM plate
    met2 = TABLE["substrate"]["met2"]
    added = (EXTENSION * 0.26 * met2["area"] + 2 * EXTENSION * met2["perimeter"]) * 1e-3  # fF
    assert long["out"]["fF"] - short["out"]["fF"] == pytest.approx(added, rel=1e-3)
    assert all(long[n]["fF"] == short[n]["fF"] for n in ("in", "bias", "vdd"))
    assert all(r["fF"] > 0 for r in short.values())


@pytest.fixture(scope="module")
def flipflop(tmp_path_factory):
    out = tmp_path_factory.mktemp("pl") / "ff"
    build(
        "models/zoo/fq_bmru_d4_flipflop.ckpt",
        out,
        config_path="models/zoo/fq_bmru_d4_flipflop.yaml",
        log=lambda *_: None,
    )
    return out


def test_every_net_with_wire_gets_a_capacitor_in_the_extracted_netlist(flipflop):
    extraction = parasitics.write_extracted(flipflop)
    report = json.loads((flipflop / "reports" / "parasitics.json").read_text())
    assert report["total_fF"] == pytest.approx(extraction.total_fF, abs=1e-3) and extraction.total_fF > 0
    cells = (flipflop / parasitics.EXTRACTED / "cells.spice").read_text()
    network = (flipflop / parasitics.EXTRACTED / "network.spice").read_text()
    for row in extraction.nets:
        text = network if row["cell"] == "fqrnn_network" else cells
        assert row["fF"] > 0 and (f"Cpar_{row['net']} {row['net']} 0 " in text) == (row["fF"] >= TABLE["threshold_fF"])
    assert {r["cell"] for r in extraction.nets} >= {"bistable", "fqrnn_network"}
    assert (flipflop / "netlist" / "cells.spice").read_text().count("Cpar_") == 0  # the build's is untouched


@pytest.mark.slow  # two transients and an extraction: about a minute alone, two on a shared machine
def test_post_layout_run_simulates_and_agrees_with_the_schematic_run(flipflop):
    metrics = verify(flipflop, sequences=1, frames=3, post_layout=True, log=None)
    post = metrics["post_layout"]
    assert post["compared_sequences"] == 1
    assert post["state_agreement_with_schematic"] >= 0.99
    assert post["power_W"] > 0 and post["schematic_power_W"] > 0
    assert (flipflop / "verify_post_layout" / "report.md").read_text().count("post-layout vs schematic") >= 2
    assert not (flipflop / "verify").exists()  # the schematic run's folder is not written
