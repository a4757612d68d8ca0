"""IR: lowering a network, validation of stages and edges, and a lossless JSON round trip."""

import pytest

from compiler.frontend import load_network
from compiler.ir import IR, Bistable, CurrentInput, IRError, Receiver, WeightArray
from compiler.lower import lower


def test_lowering_maps_every_parameter_to_one_stage(small_ckpt):
    ir = lower(load_network(small_ckpt))
    kinds = {s.name: s.kind for s in ir.stages}
    assert kinds["x"] == "current_input" and kinds["x.rx"] == "receiver"
    assert kinds["cell1.W"] == "weight_array" and kinds["cell1.b"] == "bias_array" and kinds["cell1"] == "bistable"
    assert kinds["out"] == "current_output" and ir.stage("out").pooling == "mean_time"
    # the residual add of layer 2 sums a copy of cell1's output with cell2's own currents
    assert set(ir.predecessors("res2.rx")) == {"res2.copy_cell1", "cell2"}
    cell = ir.stage("cell1")
    net = load_network(small_ckpt)
    assert cell.thresh == pytest.approx(net.array("cell1", "beta_lo") + net.array("cell1", "delta"))


def test_ir_round_trips_through_json(small_ckpt):
    ir = lower(load_network(small_ckpt))
    again = IR.from_json(ir.to_json())
    assert again == ir
    assert again.to_json() == ir.to_json()


def test_stage_invariants_are_checked():
    with pytest.raises(IRError, match="width"):
        Bistable("c", 1, thresh=(1.0,), width=(2.0,), gain=(1.0,))
    with pytest.raises(IRError, match="rows"):
        WeightArray("w", 2, n_in=2, weights=((1.0, 2.0),))
    with pytest.raises(IRError, match="size"):
        Receiver("r", 0)


def test_edges_must_follow_current_flow():
    x, rx = CurrentInput("x", 2), Receiver("x.rx", 2)
    IR((x, rx), (("x", "x.rx"),))
    with pytest.raises(IRError, match="cannot drive"):
        IR((rx, x), (("x.rx", "x"),))
    with pytest.raises(IRError, match="backwards"):
        IR((x, rx), (("x.rx", "x"),))


def test_malformed_ir_json_is_a_named_error():
    with pytest.raises(IRError, match="unknown stage kind"):
        IR.from_dict({"stages": [{"kind": "teleporter", "name": "t", "size": 1}], "edges": []})
