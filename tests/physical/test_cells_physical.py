"""Every cell of the library, laid out by the layout backend, is DRC-clean under sky130/drc_rules.yaml and
LVS-clean against its own subcircuit (flows/drc.py, flows/lvs.py, real KLayout)."""

from __future__ import annotations

import pytest

import cells
from compiler.backends.layout import cell_block, parse_spice, write_gds
from compiler.backends.layout_devices import Lib
from flows.drc import run_drc
from flows.lvs import run_lvs

pytestmark = pytest.mark.tools  # DRC and LVS in KLayout


def library() -> dict:
    """One subcircuit per cell kind, with parameters that exercise m > 1, both polarities and MIM caps."""
    mirror, bias, bistable = cells.get("mirror"), cells.get("bias"), cells.get("bistable")
    subs = [
        mirror.subckt(mirror.Params("n", (5, 2), n_in=4, w=2.0, l=4.0)),
        mirror.subckt(mirror.Params("p", (3, 1, 6), n_in=2, w=4.0, l=8.0)),
        cells.get("rectifier").subckt(cells.get("rectifier").Params((1, 3))),
        bias.subckt(bias.Params(sources=(3, 1), sinks=(2,), den=4, starve=16)),
        bistable.subckt(bistable.Params(I_thresh=1e-9, I_width=0.25e-9, I_gain=1e-9)),
        cells.get("dpi").subckt(cells.get("dpi").Params(I_tau=1e-10, I_th=1e-9, C=0.5e-12)),
        cells.get("wta").subckt(cells.get("wta").Params(n_inputs=2)),
        cells.get("cmru").subckt(cells.get("cmru").design(**cells.get("cmru").NOMINAL)),
    ]
    return {s.name: s.text for s in subs}


CELLS = library()


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory):
    """name -> (gds path, spice path) of each cell laid out alone."""
    out = {}
    for name, text in CELLS.items():
        directory = tmp_path_factory.mktemp(name)
        lib = Lib(name)
        block, _ = cell_block(lib, parse_spice(text)[name])
        write_gds(lib, block, directory / "cell.gds")
        (directory / "cell.spice").write_text(text)
        out[name] = (directory / "cell.gds", directory / "cell.spice")
    return out


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_is_drc_clean(name, laid_out):
    gds, _ = laid_out[name]
    result = run_drc(gds, top=name)
    assert result.clean, {rule: result.locations[rule] for rule, n in result.violations.items() if n}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_is_lvs_clean(name, laid_out):
    gds, spice = laid_out[name]
    result = run_lvs(gds, schematic=[spice], layout_top=name, schematic_top=name)
    assert result.match, result.issues
    assert result.devices["layout"] == result.devices["schematic"]
