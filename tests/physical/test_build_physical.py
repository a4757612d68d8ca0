"""DRC and LVS (the project's rule table, KLayout's comparison) of a small network laid out by the layout
backend. A netlist that no longer says what the layout draws (one W, one connection) must fail LVS. The official
decks and netgen, on zoo builds too: test_signoff.py."""

from __future__ import annotations

import json
import re
import shutil

import pytest

import cells
from compiler.backends.layout import write_layout
from flows.cli import main

pytestmark = pytest.mark.tools  # DRC and LVS in KLayout


def small_network() -> tuple[str, str]:
    """(cells.spice, network.spice): a receiver pair, a bias generator and a 0 V current probe."""
    mirror, bias = cells.get("mirror"), cells.get("bias")
    subs = [
        mirror.subckt(mirror.Params("n", (3, 2), n_in=2, w=2.0, l=4.0)),
        mirror.subckt(mirror.Params("p", (1,), n_in=2, w=2.0, l=4.0)),
        bias.subckt(bias.Params(sources=(2,), sinks=(1,), den=4, starve=0)),
    ]
    n, p, b = (s.name for s in subs)
    network = (
        ".subckt fqrnn_network vdd iref in_0 out_0\n"
        f"Xrx_n in_0 h x_p {n}\nXrx_p vdd x_p out_0 {p}\n"
        f"VH_probe h h_in 0\nXbias vdd iref h_in out_0 {b}\n.ends fqrnn_network\n"
    )
    return "".join(s.text for s in subs), network


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    directory = tmp_path_factory.mktemp("build")
    cells_text, network = small_network()
    (directory / "netlist").mkdir()
    (directory / "netlist" / "cells.spice").write_text(cells_text)
    (directory / "netlist" / "network.spice").write_text(network)
    write_layout(directory / "netlist", directory / "layout", png=False)
    return directory


def test_small_build_is_drc_and_lvs_clean(small_build):
    assert main(["drc", str(small_build), "--deck", "table"]) == 0
    assert main(["lvs", str(small_build), "--no-netgen"]) == 0
    lvs = json.loads((small_build / "lvs" / "report.json").read_text())
    assert lvs["match"] and lvs["devices"]["layout"] == lvs["devices"]["schematic"]
    assert json.loads((small_build / "drc" / "report.json").read_text())["violations"] == 0


@pytest.mark.parametrize(
    "edit",
    [
        (r"(XMo1 y1 xb 0 0 sky130_fd_pr__nfet_01v8 W=)2\.0", r"\g<1>2.5"),  # one width
        (r"^(XMoc2 )out2", r"\1out1"),  # one connection
    ],
)
def test_lvs_fails_when_the_netlist_differs_from_the_layout(small_build, tmp_path, edit):
    changed = tmp_path / "build"
    shutil.copytree(small_build, changed)
    path = changed / "netlist" / "cells.spice"
    text = path.read_text()
    edited = re.sub(edit[0], edit[1], text, count=1, flags=re.M)
    assert edited != text
    path.write_text(edited)
    assert main(["lvs", str(changed), "--no-netgen"]) == 1
    assert json.loads((changed / "lvs" / "report.json").read_text())["issues"] > 0
