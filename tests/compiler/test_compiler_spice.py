"""SPICE backend: the netlist simulates in ngspice and realises the weights it was compiled from."""

import numpy as np
import pytest

from compiler.backends.spice import write_netlist
from compiler.config import Config
from compiler.foundation.ngspice import Runner, Simulation
from compiler.frontend import load_network
from compiler.ir import WeightArray
from compiler.lower import lower
from compiler.passes import run_pipeline
from models.checkpoint import Checkpoint, save_checkpoint


def _linear_model(path, weights, bias):
    graph = {
        "layers": [
            {"name": "x", "type": "input", "features": weights.shape[1]},
            {"name": "readout", "type": "linear", "in": weights.shape[1], "out": weights.shape[0]},
        ],
        "edges": [["x", "readout"]],
        "inputs": ["x"],
        "outputs": ["readout"],
    }
    arrays = {"readout.W": weights.astype(np.float32), "readout.b": bias.astype(np.float32)}
    save_checkpoint(path, Checkpoint(graph, arrays, {}))
    return path


@pytest.mark.tools
def test_weights_and_biases_are_realised_in_spice(tmp_path):
    """A signed 3x4 linear layer at DC: output pin currents equal W_realised x + b within 2 %."""
    # input 2 is read by no weight: its pin still needs the receiver's diode
    weights = np.array([[1.0, -0.5, 0.0, 2.0], [-1.5, 0.75, 0.0, 0.0], [0.5, 0.5, 0.0, 1.25]])
    bias = np.array([0.5, 2.0, -0.5])
    config = Config()
    ir, _ = run_pipeline(lower(load_network(_linear_model(tmp_path / "lin.ckpt", weights, bias))), config)
    write_netlist(ir, tmp_path / "netlist", config)
    x = np.array([1.0, 0.6, 0.3, 0.8])  # input currents in units of i_unit
    netlist = tmp_path / "netlist"
    circuit = "\n".join(
        [
            (netlist / "cells.spice").read_text(),
            (netlist / "network.spice").read_text(),
            "VDD vdd 0 1.8",
            "IREF iref 0 1n",
            *[f"IIN{j} 0 in_{j} {x[j] * 1e-9:g}" for j in range(4)],
            *[f"VOUT{k} out_{k} 0 0.9" for k in range(3)],
            "XNET vdd iref in_0 in_1 in_2 in_3 out_0 out_1 out_2 fqrnn_network",
            ".op",
        ]
    )
    assert "Xx_rx_2_n in_2 mirror_n" in (netlist / "network.spice").read_text()
    result = Runner().run(Simulation(circuit))
    measured = np.array([result[f"i(vout{k})"][0] for k in range(3)]) / 1e-9  # sourced into each pin
    realised = np.array(ir.stage("readout.W").realised()) @ x + np.array(ir.stage("readout.b").values) / 1e-9
    np.testing.assert_allclose(measured, realised, rtol=0.02, atol=0.02)
    assert np.max(np.abs(realised - (weights @ x + bias))) < 0.1  # and the realised weights are the model's


def test_same_ir_gives_byte_identical_netlists(small_ckpt, tmp_path):
    config = Config()
    ir, _ = run_pipeline(lower(load_network(small_ckpt)), config)
    write_netlist(ir, tmp_path / "a", config)
    write_netlist(ir, tmp_path / "b", config)
    for name in ("cells.spice", "network.spice", "models.spice", "top.spice"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_netlist_instantiates_one_bistable_cell_per_unit(small_ckpt, tmp_path):
    config = Config()
    ir, _ = run_pipeline(lower(load_network(small_ckpt)), config)
    summary = write_netlist(ir, tmp_path / "n", config)
    assert summary["by_cell"]["bistable"] == 8  # two layers of d = 4
    assert summary["by_cell"]["phase"] == 2  # one phase driver per layer
    network = (tmp_path / "n" / "network.spice").read_text()
    assert network.count(" bistable\n") == 8
    assert summary["transistor_instances"] >= 8 * 18
    weights = sum(1 for a in ir.of_kind(WeightArray) for row in a.pos_ratios + a.neg_ratios for r in row if r)
    assert summary["unit_devices"] > weights  # every realised weight is at least one unit device


def test_a_tap_above_one_output_is_split_evenly_and_builds(tmp_path):
    """A bias of 65 grid steps (4.0625 units) is two outputs of 33 and 32, not 64 and a 1-step output under
    the bias generator's floor (which refused the netlist)."""
    from compiler.backends.spice import _chunks

    assert [_chunks(u) for u in (1, 64, 65, 128, 129)] == [[1], [64], [33, 32], [64, 64], [43, 43, 43]]
    path = _linear_model(tmp_path / "m.ckpt", np.array([[0.5, 0.25]]), np.array([65 / 16]))
    config = Config()
    ir, _ = run_pipeline(lower(load_network(path)), config)
    write_netlist(ir, tmp_path / "n", config)
    assert " m=33" in (tmp_path / "n" / "cells.spice").read_text()
