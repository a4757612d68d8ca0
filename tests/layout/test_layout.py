"""Layout generator: transistor geometry, every cell of the library laid out, extracted and DRC-checked,
named errors, and byte-identical GDS for the same netlist (with a stored reference)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import klayout.db as kdb
import pytest
from layout_extract import extract, lvs_cell

import cells
from compiler.backends.layout import LayoutError, cell_block, layout_netlist, parse_spice, transistor, write_gds
from compiler.backends.layout_devices import Item, Lib, tech
from compiler.backends.layout_macro import lef, verilog
from flows.drc import run_drc

pytestmark = pytest.mark.tools  # draws with KLayout

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "layout.json"
GOLDEN_GDS = GOLDEN.with_name("layout_tiny.gds")


def region(lib: Lib, cell, name: str) -> kdb.Region:
    return kdb.Region(kdb.RecursiveShapeIterator(lib.layout, cell.kdb_cell, lib.index[name]))


def labels(lib: Lib, cell, metal: str = "met1") -> set:
    it = kdb.RecursiveShapeIterator(lib.layout, cell.kdb_cell, lib.pin_index[metal][1])
    it.max_depth = 0
    found = set()
    while not it.at_end():
        if it.shape().is_text():
            found.add(it.shape().text_string)
        it.next()
    return found


@pytest.mark.parametrize(
    "kind,w,l,nf,m",
    [
        ("n", 2.0, 4.0, 1, 3),
        ("p", 4.0, 8.0, 1, 2),
        ("n", 1.0, 0.5, 1, 1),
        ("p", 6.0, 0.15, 3, 1),
        ("n", 0.42, 0.15, 1, 4),
    ],
)
def test_transistor_gate_area_pins_and_extraction(kind, w, l, nf, m, tmp_path):
    lib, block = transistor(kind, w, l, nf=nf, m=m)
    gate = region(lib, block.cell, "poly") & region(lib, block.cell, "diff")
    assert gate.area() == pytest.approx(w * l * m * 1e6, abs=nf * m * 5 * 5)  # nm^2, on the 5 nm grid
    assert len(gate.merged()) == nf * m
    ports = {"d", "g", "s", "gnd" if kind == "n" else "b"}
    assert labels(lib, block.cell) == ports
    assert {net for _, net in block.terminals} == ports
    l2n = extract(lib.layout, block.cell.kdb_cell)
    netlist = l2n.netlist()
    netlist.flatten()
    netlist.combine_devices()
    (circuit,) = list(netlist.each_circuit_top_down())[:1]
    devices = list(circuit.each_device())
    assert len(devices) == 1
    assert devices[0].parameter("W") == pytest.approx(w * m, abs=0.01)
    assert devices[0].parameter("L") == pytest.approx(l, abs=0.001)
    d, g, s = (devices[0].net_for_terminal(t).name for t in ("D", "G", "S"))
    assert {d, s} == {"d", "s"} and g == "g"


def _library_subckts() -> dict:
    """One subcircuit per cell of the library (and the bistable's phase driver), small parameters."""
    mirror, bias, bistable = cells.get("mirror"), cells.get("bias"), cells.get("bistable")
    subs = [
        mirror.subckt(mirror.Params("n", (3, 1, 2), n_in=2, w=2.0, l=4.0)),
        mirror.subckt(mirror.Params("p", (1, 4), n_in=3, w=2.0, l=4.0)),
        cells.get("rectifier").subckt(cells.get("rectifier").Params((2, 1))),
        bias.subckt(bias.Params(sources=(2, 3), sinks=(1, 2), den=4, starve=40)),
        bistable.subckt(bistable.Params(I_thresh=1e-9, I_width=0.25e-9, I_gain=1e-9)),
        cells.get("dpi").subckt(cells.get("dpi").Params(I_tau=1e-10, I_th=1e-9, C=1e-12)),
        cells.get("wta").subckt(cells.get("wta").Params(n_inputs=3)),
    ]
    if hasattr(bistable, "phase_driver"):
        subs.append(bistable.phase_driver())
    return {s.name: s.text for s in subs}


@pytest.mark.parametrize("name,text", sorted(_library_subckts().items()))
def test_every_cell_lays_out_and_matches_its_netlist(name, text, tmp_path):
    lib = Lib(name)
    (sub,) = parse_spice(text).values()
    block, figures = cell_block(lib, sub)
    assert figures["units"] == sum(int(c.params.get("m", 1)) for c in sub.cards if "fet" in c.model)
    ok, extracted = lvs_cell(lib.layout, block.cell.kdb_cell, text, tmp_path)
    assert ok, extracted
    assert labels(lib, block.cell) >= set(sub.ports)


def test_every_cell_is_drc_clean(tmp_path):
    """All library cells side by side in one GDS, checked in one DRC run."""
    lib = Lib("library")
    top = lib.component("library")
    x = 0
    for name, text in sorted(_library_subckts().items()):
        block, _ = cell_block(lib, parse_spice(text)[name])
        top.kdb_cell.insert(kdb.CellInstArray(block.cell.kdb_cell.cell_index(), kdb.Trans(x, 0)))
        x += block.width + lib.r["block_gap"]
    write_gds(lib, Item(top, x, 0, 0, []), tmp_path / "library.gds")
    result = run_drc(tmp_path / "library.gds", tmp_path / "drc")
    assert result.total == 0, (tmp_path / "drc" / "report.md").read_text()


def test_the_extraction_check_can_fail(tmp_path):
    """A layout compared with a netlist that differs by one connection does not match."""
    text = _library_subckts()
    name = next(n for n in text if n.startswith("mirror_n"))
    lib = Lib(name)
    block, _ = cell_block(lib, parse_spice(text[name])[name])
    wrong = re.sub(r"^(XMo1 )(\S+)", r"\1out2", text[name], flags=re.M)
    assert wrong != text[name]
    ok, _ = lvs_cell(lib.layout, block.cell.kdb_cell, wrong, tmp_path)
    assert not ok


def test_named_errors():
    with pytest.raises(LayoutError, match="cannot lay out"):
        parse_spice(".subckt r a b\nR1 a b 1k\n.ends r\n")
    bad_body = ".subckt t d g s x\nXM1 d g s x sky130_fd_pr__nfet_01v8 W=1 L=1\n.ends t\n"
    with pytest.raises(LayoutError, match="substrate"):
        cell_block(Lib("t"), parse_spice(bad_body)["t"])
    with pytest.raises(LayoutError, match="W >="):
        transistor("n", 0.2, 1.0)
    with pytest.raises(LayoutError, match="kind"):
        transistor("x", 1.0, 1.0)


# A small network exercising every kind of element the layout draws: pfet and cascoded nfet mirrors,
# a MIM capacitor, a 0 V probe and node 0. Fixed text, so the reference below changes only when the
# generator does.
CELLS = """\
.subckt mp vdd in out1 out2
XMd in in vdd vdd sky130_fd_pr__pfet_01v8 W=2.0 L=4.0 m=2
XMo1 out1 in vdd vdd sky130_fd_pr__pfet_01v8 W=2.0 L=4.0 m=3
XMo2 out2 in vdd vdd sky130_fd_pr__pfet_01v8 W=2.0 L=4.0 m=1
.ends mp
.subckt mn in out1
XMd xb xb 0 0 sky130_fd_pr__nfet_01v8 W=2.0 L=4.0 m=2
XMdc in in xb 0 sky130_fd_pr__nfet_01v8 W=2.0 L=4.0 m=2
XMo1 y1 xb 0 0 sky130_fd_pr__nfet_01v8 W=2.0 L=4.0 m=5
XMoc1 out1 in y1 0 sky130_fd_pr__nfet_01v8 W=2.0 L=4.0 m=5
.ends mn
.subckt lp vdd in out
XM1 out in vdd vdd sky130_fd_pr__pfet_01v8 W=16 L=2
XM2 in in 0 0 sky130_fd_pr__nfet_01v8 W=1 L=0.5
XC out 0 sky130_fd_pr__cap_mim_m3_1 W=10 L=10
.ends lp
"""
NETWORK = """\
.subckt tiny vdd in_0 out_0
Xa vdd in_0 n1 n2 mp
Xb n1 out_0 mn
Vprobe n2 n3 0
Xc vdd n3 out_0 lp
.ends tiny
"""


def _tiny_gds(path: Path) -> dict:
    result = layout_netlist(CELLS, NETWORK, ["a", "b", "c"])
    write_gds(result.lib, result.top, path)
    return result.figures


def test_same_netlist_same_bytes_and_stored_reference(tmp_path):
    first = _tiny_gds(tmp_path / "a.gds")
    _tiny_gds(tmp_path / "b.gds")
    data = (tmp_path / "a.gds").read_bytes()
    assert data == (tmp_path / "b.gds").read_bytes()
    reference = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "area_um2": first["area_um2"],
        "unit_transistors": first["unit_transistors"],
        "cells": {n: {k: c[k] for k in ("width_um", "height_um", "units")} for n, c in first["cells"].items()},
    }
    if os.environ.get("FQRNN_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
    stored = json.loads(GOLDEN.read_text())
    assert reference["cells"] == stored["cells"], (
        "cell outlines changed: regenerate with FQRNN_UPDATE_GOLDEN=1 if meant"
    )
    assert reference == stored, "layout bytes changed: regenerate with FQRNN_UPDATE_GOLDEN=1 if meant"


def test_geometry_equals_the_stored_reference_layer_by_layer(tmp_path):
    """XOR of every layer against tests/golden/layout_tiny.gds: says which layers moved, not only that
    the bytes differ."""
    _tiny_gds(tmp_path / "new.gds")
    if os.environ.get("FQRNN_UPDATE_GOLDEN") == "1":
        GOLDEN_GDS.write_bytes((tmp_path / "new.gds").read_bytes())
    new, old = kdb.Layout(), kdb.Layout()
    new.read(str(tmp_path / "new.gds"))
    old.read(str(GOLDEN_GDS))
    differ = {}
    for info in sorted({(i.layer, i.datatype) for lay in (new, old) for i in lay.layer_infos()}):
        regions = []
        for lay in (new, old):
            index = lay.find_layer(*info)
            regions.append(
                kdb.Region() if index is None else kdb.Region(kdb.RecursiveShapeIterator(lay, lay.top_cell(), index))
            )
        xor = regions[0] ^ regions[1]
        if not xor.is_empty():
            differ[info] = xor.area() / 1e6
    assert not differ, f"layers that differ from the reference (um^2): {differ}; FQRNN_UPDATE_GOLDEN=1 if meant"


def test_tiny_network_top_level_pins_and_extraction(tmp_path):
    result = layout_netlist(CELLS, NETWORK, ["a", "b", "c"])
    assert labels(result.lib, result.top.cell, "met3") == {"vdd", "in_0", "out_0", tech()["nets"]["ground"]}
    assert result.figures["unit_transistors"] == 2 + 3 + 1 + 2 + 2 + 5 + 5 + 1 + 1
    write_gds(result.lib, result.top, tmp_path / "tiny.gds")
    assert run_drc(tmp_path / "tiny.gds", tmp_path / "drc").total == 0


def test_mirror_units_are_interdigitated_in_every_row():
    """The diode's units are spread over every row and, in each row, the diode and every output placed
    there are interleaved around one centroid (a gradient along the row cancels; one across rows does
    not: each output keeps to as few rows as it can, which keeps channels narrow)."""
    mirror = cells.get("mirror")
    sub = mirror.subckt(mirror.Params("p", (4, 8, 2), n_in=4, w=2.0, l=4.0))
    lib = Lib(sub.name)
    block, _ = cell_block(lib, parse_spice(sub.text)[sub.name])
    l2n = extract(lib.layout, block.cell.kdb_cell)
    netlist = l2n.netlist()
    netlist.flatten()
    rows: dict = {}
    for device in next(netlist.each_circuit_top_down()).each_device():
        (net,) = {device.net_for_terminal(t).name for t in ("D", "S")} - {"vdd"}
        rows.setdefault(round(device.trans.disp.y, 2), {}).setdefault(net, []).append(device.trans.disp.x)
    assert sum(len(xs) for row in rows.values() for xs in row.values()) == 4 + 4 + 8 + 2
    assert len(rows) > 1 and all("in" in row for row in rows.values())
    unit = lib.items[("fet", "p", 2.0, 4.0, 1)].width / 1000
    for row in rows.values():
        centre = sum(row["in"]) / len(row["in"])
        for net, xs in row.items():
            assert abs(sum(xs) / len(xs) - centre) <= 1.5 * unit, (net, row)


DEVICE_CELL = re.compile(
    r"(?:fq\w{6}|t\d)_(?:([np])fet_01v8_w(\w+)_l(\w+?)(?:_nf(\d+))?|([np])tap_h\d+|cap_mim_m3_1_w\w+)"
)


def test_every_device_cell_reads_alone_as_the_device_it_names(tmp_path):
    """A cell-by-cell GDS reader (Magic's) sees each device cell alone: a transistor cell extracts to its
    transistor with its W and L, a tap cell holds its tap's implant (and n-well), a capacitor cell to a MIM."""
    result = layout_netlist(CELLS, NETWORK, ["a", "b", "c"])
    write_gds(result.lib, result.top, tmp_path / "tiny.gds")
    layout = kdb.Layout()
    layout.read(str(tmp_path / "tiny.gds"))
    checked = set()
    for cell in list(layout.each_cell()):
        match = DEVICE_CELL.fullmatch(cell.name)
        if not match:
            continue
        fet, w, l, nf, tap = match.group(1, 2, 3, 4, 5)
        l2n = extract(layout, cell, combine=True)  # owns the netlist
        devices = [d for c in l2n.netlist().each_circuit() for d in c.each_device()]
        if fet:
            number = lambda token: float(token.replace("p", ".").replace("m", "-"))  # noqa: E731
            (device,) = devices
            assert device.device_class().name == f"sky130_fd_pr__{fet}fet_01v8", cell.name
            assert device.parameter("W") == pytest.approx(number(w), rel=1e-3), cell.name
            assert device.parameter("L") == pytest.approx(number(l), rel=1e-3), cell.name
            checked.add(fet)
        elif tap:
            implant, well = ("psdm", False) if tap == "p" else ("nsdm", True)
            area = kdb.Region(cell.begin_shapes_rec(layout.find_layer(*tech()["layers"]["tap"])))
            for layer, wanted in ((implant, True), ("nwell", well)):
                index = layout.find_layer(*tech()["layers"][layer])
                cover = kdb.Region(cell.begin_shapes_rec(index)) if index is not None else kdb.Region()
                assert (area - cover).is_empty() == wanted, f"{cell.name}: {layer}"
            checked.add(tap + "tap")
        else:
            assert [d.device_class().name for d in devices] == ["sky130_fd_pr__cap_mim_m3_1"], cell.name
            checked.add("mim")
    assert checked == {"n", "p", "ntap", "ptap", "mim"}


@pytest.mark.parametrize("side,metal", [("top", "met3"), ("left", "met4"), ("bottom", "met3"), ("right", "met3")])
def test_the_macro_has_its_pins_on_the_outline_and_every_shape_inside(side, metal, tmp_path):
    result = layout_netlist(CELLS, NETWORK, ["a", "b", "c"], pin_layer=metal, pin_side=side, prefix="t1")
    write_gds(result.lib, result.top, tmp_path / "m.gds")
    layout = kdb.Layout()
    layout.read(str(tmp_path / "m.gds"))
    top = layout.top_cell()
    (outline,) = [s.box for s in top.shapes(layout.find_layer(*tech()["layers"]["prboundary"])).each()]
    assert outline.left == 0 and outline.bottom == 0
    assert top.bbox() == outline, "every shape lies inside the outline, which is their extent"
    edge = {"top": outline.top, "bottom": outline.bottom, "left": outline.left, "right": outline.right}[side]
    pin_layer = layout.find_layer(*tech()["pins"][metal]["pin"])
    pins = [s.box for s in top.shapes(pin_layer).each()]
    assert len(pins) == len(result.macro.pins) == 4
    for box in pins:
        assert edge == {"top": box.top, "bottom": box.bottom, "left": box.left, "right": box.right}[side]
    assert all(len(c.name) <= 32 and c.name.startswith("t1_") for c in layout.each_cell())
    assert run_drc(tmp_path / "m.gds").total == 0
    text = lef(result.macro)
    assert f"SIZE {outline.width() / 1000:.3f} BY {outline.height() / 1000:.3f} ;" in text
    assert re.findall(r"PIN (\S+)", text) == [p.net for p in result.macro.pins]
    assert re.findall(r"inout (\w+)", verilog(result.macro)) == ["vdd", "gnd", "in_0", "out_0"]


def test_two_builds_merge_into_one_gds_without_a_name_clash(tmp_path):
    """Two different networks (one device width apart) laid out with their default prefixes: read into one
    layout, each top cell keeps exactly its own geometry (same cell names would merge and mix them)."""
    other = CELLS.replace(
        "XM1 out in vdd vdd sky130_fd_pr__pfet_01v8 W=16 L=2", "XM1 out in vdd vdd sky130_fd_pr__pfet_01v8 W=12 L=2"
    )
    assert other != CELLS
    for name, cells_text in (("a", CELLS), ("b", other)):
        result = layout_netlist(cells_text, NETWORK, ["a", "b", "c"])
        write_gds(result.lib, result.top, tmp_path / f"{name}.gds")
    merged = kdb.Layout()
    for name in "ab":
        merged.read(str(tmp_path / f"{name}.gds"))
    assert len(merged.top_cells()) == 2
    for name in "ab":
        alone = kdb.Layout()
        alone.read(str(tmp_path / f"{name}.gds"))
        top = merged.cell(alone.top_cell().name)
        for info in alone.layer_infos():
            mine = kdb.Region(alone.top_cell().begin_shapes_rec(alone.find_layer(info)))
            there = kdb.Region(top.begin_shapes_rec(merged.find_layer(info)))
            assert (mine ^ there).is_empty(), f"{name}: layer {info} changed in the merged GDS"


def test_the_default_prefix_follows_the_netlist_and_the_pins_and_the_views_repeat():
    def macro(**pins):
        return layout_netlist(CELLS, NETWORK, ["a", "b", "c"], **pins).macro

    first, again, turned = macro(), macro(), macro(pin_side="left")
    assert first.name == again.name and lef(first) == lef(again) and verilog(first) == verilog(again)
    assert turned.name != first.name  # two builds that differ only in their pins still merge
    assert set(first.names.values()) >= {"tiny", "tiny_core", "mp", "mn", "lp"}  # the cells of the GDS only
