"""Frontend: checkpoints to a checked layer graph, and the named design-rule errors."""

import numpy as np
import pytest

from compiler.frontend import BadCheckpoint, NotFirstQuadrant, UnsupportedLayer, WeightNotRealisable, load_network
from models.backbone import build_graph
from models.checkpoint import Checkpoint, save_checkpoint
from models.network import init_arrays


def test_loads_a_zoo_checkpoint_into_a_graph(small_ckpt):
    net = load_network(small_ckpt)
    assert net.order[0] == "x" and "cell1" in net.graph and net.graph.has_edge("x", "cell1")
    assert net.array("cell1", "W").shape == (4, 8)


def test_corrupt_checkpoint_is_a_named_error(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(BadCheckpoint, match="BadMagic|CorruptCheckpoint"):
        load_network(bad)


def test_missing_file_is_a_named_error(tmp_path):
    with pytest.raises(BadCheckpoint, match="cannot read"):
        load_network(tmp_path / "absent.ckpt")


@pytest.mark.parametrize(
    "cell, error, hint",
    [
        ("bmru", NotFirstQuadrant, "--cell fq_bmru"),
        ("lru", UnsupportedLayer, "hardware-mappable"),
    ],
)
def test_cells_without_a_circuit_are_rejected_with_advice(tmp_path, cell, error, hint):
    graph = build_graph(cell, 4, 4, 2, layers=1, pool=True)
    path = tmp_path / f"{cell}.ckpt"
    save_checkpoint(path, Checkpoint(graph, init_arrays(graph, 0), {}))
    with pytest.raises(error, match=hint):
        load_network(path)


def test_weights_off_the_mirror_grid_are_rejected(tmp_path, checkpoint_factory):
    def huge(graph, arrays):
        arrays["cell1.W"] = arrays["cell1.W"].copy()
        arrays["cell1.W"][0, 0] = 100.0

    with pytest.raises(WeightNotRealisable, match="cell1"):
        load_network(checkpoint_factory(tmp_path / "w.ckpt", edit=huge))


def test_signed_linear_inside_the_network_is_rejected(tmp_path):
    graph = build_graph("fq_bmru", 3, 4, 2, layers=1, pool=False)
    # put a linear layer between the cell and the readout with no relu: its output would be signed
    graph["layers"].insert(2, {"name": "mix", "type": "linear", "in": 4, "out": 4})
    graph["edges"] = [["x", "cell1"], ["cell1", "mix"], ["mix", "readout"]]
    arrays = init_arrays(graph, 0)
    path = tmp_path / "mix.ckpt"
    save_checkpoint(path, Checkpoint(graph, arrays, {}))
    with pytest.raises(NotFirstQuadrant, match="mix"):
        load_network(path)
    assert np.all(np.isfinite(arrays["mix.W"]))


def test_an_input_encoder_lowers_to_a_mirror_array_whose_diode_relu_feeds_the_first_cells(tmp_path):
    from compiler.lower import lower

    graph = build_graph("fq_bmru", 8, 4, 3, layers=2, pool=True, encoder=5)
    path = tmp_path / "encoder.ckpt"
    save_checkpoint(path, Checkpoint(graph, init_arrays(graph, 0), {"task": "digits_rows"}))
    ir = lower(load_network(path))
    encoder = ir.stage("encoder.W")
    assert (encoder.size, encoder.n_in) == (5, 8) and "x.rx" in ir.predecessors("encoder.W")
    assert "encoder.rx" in ir.predecessors("cell1.W")
    assert "x.rx" not in ir.predecessors("cell1.W")
