"""A memory-cell kind the compiler has never seen, added only through its public registration points.

The toy cell is a threshold memory cell with a subcircuit of its own and its own bias port names,
programmed like the bistable cell by I_thresh, I_width and I_gain. It realises the model's FQ-BMRU
layers here, and it compiles through every pass to a netlist of its instances, wired by its facts.

Adding such a cell for real touches 3 non-test files:
  cells/toy.py              the cell module: its subcircuit and `FACTS` (cells/facts.py: ports with roles,
                            bias fields and polarities, limits, power model, calibration, state nodes)
  compiler/ir.py            its stage kind: `class Toy(Bistable)` naming `kind` and `facts`, and its
                            entry in STAGE_TYPES (so ir.json reads back)
  compiler/lower.py         its lowering rule: the RULES entry of the layer type it realises
No emitter is needed: the memory-cell emitter (compiler/backends/spice.py EMITTERS[Bistable]) wires any
cell whose bias currents alone program it from its facts; passes, report, partitions and test benches
read the same facts. More files only for more than a new circuit:
  cells/__init__.py         one CELLS line, for `python -m compiler characterize toy` to make its table
  compiler/backends/spice.py one EMITTERS entry, when each unit's subcircuit depends on a per-unit design
                            (as the FQ-CMRU ladder's does), with a pass that designs it (lower_cmru)
  compiler/frontend.py + models/  a new model layer type (its design rules, and the model's own cell)
"""

import dataclasses
from typing import ClassVar

import pytest

from cells import bistable
from cells.common import Subckt
from cells.facts import FactsError, Limits, MemoryCell, Port
from compiler import ir as ir_module
from compiler import lower as lower_module
from compiler.backends import spice
from compiler.config import Config
from compiler.frontend import load_network
from compiler.ir import IR, BiasGenerator, Bistable, Tap
from compiler.passes import run_pipeline
from flows.partition import partitions

TOY_TEXT = """\
* toy memory cell: a latch on the candidate current
.subckt toy_cell vdd in out tset twid tgain vsp vsn en enb
XMq out in 0 0 sky130_fd_pr__nfet_01v8 W=1 L=1
.ends toy_cell
"""
PORTS = (
    Port("vdd", "supply"),
    Port("in", "input"),
    Port("out", "output"),
    Port("tset", "bias", field="thresh", polarity="n"),
    Port("twid", "bias", field="width", polarity="p"),
    Port("tgain", "bias", field="gain", polarity="p"),
    Port("vsp", "shared"),
    Port("vsn", "shared"),
    Port("en", "enable"),
    Port("enb", "enable_b"),
)


def toy_subckt() -> Subckt:
    return Subckt("toy_cell", tuple(p.name for p in PORTS), TOY_TEXT)


TOY_FACTS = MemoryCell(
    "toy",
    PORTS,
    Limits(0.1e-9, 10e-9),
    calibration="bistable",
    supply_current=lambda bias, candidates=None, states=None, enabled=1.0, xp=None: 3 * sum(bias["thresh"]),
    state_nodes=lambda levels: ("q",),
    shared=bistable.STARVE,
    subckt=toy_subckt,
)


@dataclasses.dataclass(frozen=True)
class Toy(Bistable):
    """The toy cell's stage kind: a threshold memory cell whose circuit is the toy cell's."""

    kind: ClassVar[str] = "toy"
    facts: ClassVar[MemoryCell] = TOY_FACTS


@pytest.fixture
def toy_kind(monkeypatch):
    """The toy kind registered (stage kind, lowering rule for FQ-BMRU layers) for one test."""
    monkeypatch.setitem(ir_module.STAGE_TYPES, Toy.kind, Toy)
    monkeypatch.setitem(lower_module.RULES, "fq_bmru", lower_module.memory_rule(Toy))


def compiled(checkpoint) -> IR:
    ir, _ = run_pipeline(lower_module.lower(load_network(checkpoint)), Config())
    return ir


def test_a_toy_memory_cell_compiles_to_a_netlist_of_its_subcircuit(toy_kind, small_ckpt):
    ir = compiled(small_ckpt)
    toys = ir.memory_cells()
    assert toys and all(type(cell) is Toy and cell.programmed is not None for cell in toys)
    text, subckts = spice.network_netlist(ir)
    assert "toy_cell" in subckts and "bistable" not in subckts
    instances = [line for line in text.splitlines() if line.startswith("X") and line.endswith(" toy_cell")]
    assert len(instances) == sum(cell.size for cell in toys)
    (bias_line,) = [line for line in text.splitlines() if line.startswith("Xbias ")]
    taps = ir.stage("bias").taps
    for cell in toys:  # each programmed current reaches its unit's port named by the toy's facts
        for tap in (t for t in taps if t.stage == cell.name):
            port = TOY_FACTS.bias_port(tap.field).name
            assert f"{spice.net(cell.name, tap.unit)}_{port}" in bias_line.split()
    assert Tap("bistable_starve", "starve", 0, "p", 16 * bistable.STARVE_UNITS) in taps and bias_line.split()[
        -3:-1
    ] == ["vsp", "vsn"]
    assert IR.from_json(ir.to_json()) == ir  # the registered kind reads back from ir.json


def test_each_toy_layer_partition_keeps_its_shared_bias(toy_kind, small_ckpt):
    ir = compiled(small_ckpt)
    for part in partitions(ir)[:-1]:
        assert any(tap.stage == "bistable_starve" for tap in part.ir.stage("bias").taps)
    readout = partitions(ir)[-1].ir
    assert not any(tap.stage == "bistable_starve" for g in readout.of_kind(BiasGenerator) for tap in g.taps)


def test_a_registered_emitter_writes_the_kind(toy_kind, small_ckpt, monkeypatch):
    """A kind whose units need a subcircuit each registers its own emitter in EMITTERS."""

    def emit(nl, cell):
        spice.emit_memory_cell(
            nl, cell, lambda k: Subckt(f"toy_{k}", toy_subckt().ports, TOY_TEXT.replace("toy_cell", f"toy_{k}"))
        )

    monkeypatch.setitem(spice.EMITTERS, Toy, spice.Emitter("memory", emit))
    _, subckts = spice.network_netlist(compiled(small_ckpt))
    assert {"toy_0", "toy_3"} <= set(subckts) and "toy_cell" not in subckts


def test_a_kind_without_an_emitter_is_named(toy_kind, small_ckpt, monkeypatch):
    ir = compiled(small_ckpt)
    monkeypatch.setattr(Toy, "facts", dataclasses.replace(TOY_FACTS, subckt=None))  # a subcircuit per unit
    with pytest.raises(spice.NoEmitter, match="'toy': each unit's subcircuit depends on its design"):
        spice.network_netlist(ir)
    monkeypatch.delitem(spice.EMITTERS, Bistable)
    with pytest.raises(spice.NoEmitter, match="no netlist emitter for stage kind 'toy'"):
        spice.network_netlist(ir)


@pytest.mark.parametrize(
    "port",
    [
        dict(role="bias", field="thresh"),
        dict(role="bias", polarity="n"),
        dict(role="input", field="thresh", polarity="n"),
        dict(role="clock"),
    ],
)
def test_inconsistent_port_facts_are_refused(port):
    with pytest.raises(FactsError):
        Port("x", **port)
