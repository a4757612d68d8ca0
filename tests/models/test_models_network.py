"""Graphs and the network forward pass: shapes, traces, scan agreement, validation errors."""

import jax
import numpy as np
import pytest

from models.backbone import CELLS, build_graph
from models.errors import InvalidGraph, UnknownLayerType
from models.network import apply, expected_shapes, init_arrays, is_hardware_mappable, validate_graph

X = np.random.default_rng(0).uniform(0, 1, (2, 7, 3)).astype(np.float32)


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_builds_and_runs(cell):
    graph = build_graph(cell, 3, 4, 5, layers=2, pool=True, mlp=(cell == "lru"))
    arrays = init_arrays(graph, seed=1)
    assert {k: v.shape for k, v in arrays.items()} == expected_shapes(graph)
    y, traces = jax.jit(lambda a, x: apply(graph, a, x))(arrays, X)
    assert y.shape == (2, 5) and np.all(np.isfinite(np.asarray(y)))
    assert traces["readout"]["y"].shape == (2, 7, 5)  # per-frame logits before pooling
    assert is_hardware_mappable(graph) == cell.startswith("fq_")


def test_fq_traces_and_modes_agree():
    graph = build_graph("fq_cmru", 3, 4, 2, layers=2, pool=False, K=3)
    arrays = init_arrays(graph, seed=2)
    y_par, tr = jax.jit(lambda a, x: apply(graph, a, x))(arrays, X)
    y_seq, tr_seq = jax.jit(lambda a, x: apply(graph, a, x, mode="sequential"))(arrays, X)
    np.testing.assert_allclose(y_par, y_seq, atol=1e-6)
    for name in ("cell1", "cell2"):
        assert set(tr[name]) == {"h", "q", "y"}
        assert np.all(np.asarray(tr[name]["h"]) >= 0)  # candidate currents are non-negative
        q = np.asarray(tr[name]["q"])
        np.testing.assert_array_equal(q, np.clip(np.round(q), 0, 3))
        np.testing.assert_allclose(tr[name]["y"], arrays[f"{name}.alpha"] * q, rtol=1e-6)
        np.testing.assert_array_equal(tr[name]["q"], tr_seq[name]["q"])
    # the residual of block 2 is the current sum of block 1's output and cell 2's output
    np.testing.assert_allclose(tr["res2"]["y"], tr["cell1"]["y"] + tr["cell2"]["y"], rtol=1e-6)


def test_init_is_deterministic():
    g = build_graph("fq_bmru", 3, 4, 2)
    a, b, c = init_arrays(g, 0), init_arrays(g, 0), init_arrays(g, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_fq_init_starts_in_hold_band():
    g = build_graph("fq_bmru", 3, 8, 2)
    a = init_arrays(g, 0)
    lo, hi = a["cell1.beta_lo"], a["cell1.beta_lo"] + a["cell1.delta"]
    assert np.all(lo < a["cell1.b"]) and np.all(a["cell1.b"] < hi)


def test_validation_errors():
    g = build_graph("fq_bmru", 3, 4, 2, layers=2)
    bad = {**g, "layers": [dict(layer) for layer in g["layers"]]}
    bad["layers"][1]["type"] = "conv"
    with pytest.raises(UnknownLayerType):
        validate_graph(bad)
    with pytest.raises(InvalidGraph, match="points backwards"):
        validate_graph({**g, "edges": g["edges"] + [["readout", "cell1"]]})
    wide = {**g, "layers": [dict(layer) for layer in g["layers"]]}
    wide["layers"][1]["d"] = 9
    with pytest.raises(InvalidGraph, match="features"):
        validate_graph(wide)
    with pytest.raises(InvalidGraph, match="hyperparameter"):
        validate_graph({**g, "layers": [g["layers"][0], {**g["layers"][1], "K": 3}, *g["layers"][2:]]})


def test_an_encoder_comes_before_the_first_cells_and_the_residual_starts_at_its_width():
    from models.backbone import build_graph

    graph = build_graph("fq_bmru", 16, 4, 10, layers=2, pool=True, encoder=4, head=8)
    names = [layer["name"] for layer in graph["layers"]]
    assert names[:4] == ["x", "encoder", "encoder_relu", "cell1"]
    assert ["encoder_relu", "res1"] in graph["edges"]  # the encoder's width is d: the block adds its input
    assert ["x", "cell1"] not in graph["edges"]
    assert (
        build_graph("fq_bmru", 16, 4, 10, layers=2, pool=True, encoder=6)["edges"].count(["encoder_relu", "res1"]) == 0
    )
