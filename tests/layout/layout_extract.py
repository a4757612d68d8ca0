"""The project's LVS (flows/lvs.py) applied to single cells drawn in memory by the layout tests."""

from __future__ import annotations

import klayout.db as kdb

from flows.gds import load_layer_map
from flows.lvs import compare, load_extraction
from flows.lvs import extract as extract_lvs


def extract(layout: kdb.Layout, cell: kdb.Cell, combine: bool = False):
    """The extraction of `cell` (flat; every drawn unit a device with its position unless `combine`)."""
    layer_map = load_layer_map()
    return extract_lvs(layout, cell, layer_map, load_extraction(layer_map=layer_map), layer_map.ground, combine)


def lvs_cell(layout: kdb.Layout, cell: kdb.Cell, subckt_text: str, tmp_path) -> tuple[bool, str]:
    """Compare `cell` with the subcircuit text; returns (match, extracted netlist text)."""
    path = tmp_path / f"{cell.name}.spice"
    path.write_text(subckt_text)
    result, lvs = compare(layout, cell, [path], cell.name)
    return result.match, lvs.netlist().to_s()
