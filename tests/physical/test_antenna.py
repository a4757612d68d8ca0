"""The antenna check (flows/antenna.py, sky130/antenna.yaml) fires on a long wire to a lone gate, is
quiet once the wire also reaches a diffusion (a tie-down), and every layout the generator draws for a
gate-only port carries that tie-down."""

from __future__ import annotations

import pytest
from drawn import Drawing

from compiler.backends.layout import transistor, write_gds
from flows.antenna import run_antenna

pytestmark = pytest.mark.tools  # KLayout


def _gate_with_wire(tmp_path, length: float, tied: bool) -> str:
    """A 1 x 0.5 um nfet gate whose poly contact rises to a met2 wire `length` um long."""
    d = Drawing("ANT")
    d.box("diff", 0, 0, 1.5, 1.0)
    d.box("nsdm", -0.15, -0.15, 1.65, 1.15)
    d.box("poly", 0.5, -0.2, 1.0, 1.8)
    d.contact(0.75, 1.55, on="poly")
    d.centred("via", 0.75, 1.55, 0.075, 0.075)
    d.box("met2", 0.6, 1.4, 0.6 + length, 1.7)
    if tied:  # an n+ diffusion under the far end of the wire, contacted up to it
        x = length
        d.box("diff", x - 0.2, 3.0, x + 0.2, 3.4)
        d.box("nsdm", x - 0.35, 2.85, x + 0.35, 3.55)
        d.contact(x, 3.2, on="diff")
        d.box("met1", x - 0.13, 1.4, x + 0.13, 3.4)
        d.centred("via", x, 1.55, 0.075, 0.075)
    return d.save(tmp_path / f"ant_{length:g}_{tied}.gds")


def test_a_long_wire_to_a_lone_gate_fires_and_a_tie_down_clears_it(tmp_path):
    # met2 sidewall: 2 x 600 um x 0.36 um over 0.5 um^2 of gate is about 860, over the 400 limit
    fired = run_antenna(_gate_with_wire(tmp_path, 600.0, tied=False))
    assert fired.violations["met2"] >= 1 and fired.total == fired.violations["met2"]
    assert run_antenna(_gate_with_wire(tmp_path, 200.0, tied=False)).clean  # about 290: under the limit
    assert run_antenna(_gate_with_wire(tmp_path, 600.0, tied=True)).clean


def test_a_gate_only_port_gets_a_tie_down_on_its_own_net(tmp_path):

    from flows.gds import load_layer_map
    from flows.lvs import extract, load_extraction

    lib, block = transistor("n", 1.0, 0.5)  # its gate is a port that reaches nothing else in the cell
    write_gds(lib, block, tmp_path / "t.gds")
    (tie,) = [c for c in lib.layout.each_cell() if c.name.endswith("antenna_tie_down_n")]
    diff = tie.bbox_per_layer(lib.index["diff"])
    (where,) = [
        diff.transformed(i.trans).center() for i in block.cell.kdb_cell.each_inst() if i.cell_index == tie.cell_index()
    ]
    layers = load_layer_map()
    l2n = extract(lib.layout, block.cell.kdb_cell, layers, load_extraction(layer_map=layers), layers.ground)
    net = l2n.probe_net(l2n.layer_by_name("nsd"), where)  # the tie-down's n+ diffusion
    assert net is not None and net.name == "g"
    assert run_antenna(tmp_path / "t.gds").clean
