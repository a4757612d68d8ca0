"""FQ-CMRU through the compiler: frontend, the lower_cmru pass, the SPICE netlist of the event-counting model."""

from pathlib import Path

import numpy as np
import pytest

from cells import cmru
from compiler.backends.spice import network_netlist, write_netlist
from compiler.config import Config
from compiler.frontend import DesignRuleError, load_network
from compiler.ir import IR, CurrentInput, Ladder
from compiler.lower import lower
from compiler.passes import lower_cmru, run_pipeline
from flows.testbench import bench
from models.backbone import build_graph
from models.checkpoint import Checkpoint, save_checkpoint
from models.network import init_arrays

ZOO = Path(__file__).resolve().parents[2] / "models" / "zoo" / "fq_cmru_d8_event_count.ckpt"
CONFIG = Config()


def cmru_checkpoint(path, K=3):
    graph = build_graph("fq_cmru", 1, 3, 2, K=K)
    save_checkpoint(path, Checkpoint(graph, init_arrays(graph, 0), {"task": "event_count"}))
    return path


def test_frontend_lowers_fq_cmru_to_a_ladder(tmp_path):
    ir = lower(load_network(cmru_checkpoint(tmp_path / "c.ckpt")))
    (ladder,) = ir.of_kind(Ladder)
    assert ladder.levels == 3 and ladder.size == 3
    assert ir.stage(f"{ladder.name}.rx").polarity == "p"  # its outputs sink, like a bistable layer's


def test_frontend_refuses_a_one_level_counter(tmp_path):
    with pytest.raises(DesignRuleError, match="K = 1"):
        load_network(cmru_checkpoint(tmp_path / "c.ckpt", K=1))


def test_pass_designs_each_ladder_and_its_bias_taps():
    ir = lower(load_network(ZOO))
    before, _ = run_pipeline(ir, CONFIG, upto="assign_biases")
    after = lower_cmru.run(before, CONFIG)
    (ladder,) = after.of_kind(Ladder)
    K = ladder.levels
    taps_before = {t[:3]: t[4] for t in before.stage("bias").taps}
    taps_after = {t[:3]: t[4] for t in after.stage("bias").taps}
    for key, units in taps_before.items():
        assert taps_after[key] == units * (K if key[0] == ladder.name else 1)
    for field in lower_cmru.LADDER_PORTS:
        assert all((ladder.name, field, k) in taps_after for k in range(ladder.size))
    for k in range(ladder.size):
        p = lower_cmru.params(ladder, k, after.meta.i_unit)
        assert p.pin >= 2 * p.I_thresh and p.delay().tau_ideal() == pytest.approx(
            cmru.TAU_OVER_FRAME * after.meta.frame_period, rel=0.25
        )
    assert IR.from_json(after.to_json()) == after
    assert lower_cmru.run(IR(before.stages, before.edges, before.meta), CONFIG) == after  # pure


def test_netlist_instantiates_one_ladder_per_unit():
    ir, _ = run_pipeline(lower(load_network(ZOO)), CONFIG)
    text, subckts = network_netlist(ir)
    assert sum(1 for line in text.splitlines() if line.startswith("Xcell1_") and " cmru_k4_" in line) == 8
    assert "bistable" not in subckts and all(not name.startswith("dpi_") for name in subckts)  # the ladders are flat
    assert network_netlist(ir)[0] == text


@pytest.mark.tools
@pytest.mark.slow
def test_build_and_verify_the_event_counting_model(tmp_path):
    from flows.build import build
    from flows.verify import verify

    build(ZOO, tmp_path / "b", layout=False, log=lambda *_: None)
    m = verify(tmp_path / "b", sequences=1, jobs=1, log=None)
    assert m["level_agreement"] >= 0.99 and m["prediction_agreement"] == 1.0


def test_ladder_benches_tie_every_node_weakly_to_ground(tmp_path, small_ckpt):
    """A ladder's switched-off series switches leave nodes that only junctions hold: its decks add rshunt
    (cells/cmru.py OPTIONS), a network of bistable cells keeps the mandatory options alone."""
    for path, options in ((ZOO, cmru.OPTIONS), (small_ckpt, ())):
        ir, _ = run_pipeline(lower(load_network(path)), CONFIG)
        write_netlist(ir, tmp_path / path.stem, CONFIG)
        sim, _ = bench(ir, tmp_path / path.stem, np.zeros((2, ir.of_kind(CurrentInput)[0].size)), 0.01)
        assert sim.options == options and ("rshunt" in sim.deck()) == bool(options)


@pytest.mark.parametrize("i_unit", [0.1e-9, 0.05e-9])
def test_the_ladders_build_at_a_smaller_unit_current(tmp_path, i_unit):
    """Their stages' currents and floor follow i_unit (the DPI and comparator biases keep their 1 nA
    design, inside the DPI's range): the zoo's event counter builds down to the smallest unit current."""
    config = Config(model={"i_unit": i_unit})
    ir, _ = run_pipeline(lower(load_network(ZOO)), config)
    write_netlist(ir, tmp_path / "n", config)
    at_one, _ = run_pipeline(lower(load_network(ZOO)), CONFIG)
    for low, one in zip(ir.of_kind(Ladder), at_one.of_kind(Ladder)):
        scaled = np.asarray(one.programmed.thresh) * (i_unit / 1e-9)
        np.testing.assert_allclose(np.asarray(low.programmed.thresh), scaled, rtol=1e-9)
