"""Backbone graphs: residual stacks of memory-cell blocks, built as plain data for any cell.

An optional ``linear -> relu`` encoder comes first. Each block is ``cell -> [linear -> relu] ->
residual add`` (the residual once widths match), followed by an optional ``linear -> relu`` head and a
linear readout giving per-frame logits and, for sequence classification, a ``mean_time`` pooling. With
an FQ cell every layer is hardware-mappable (mirror arrays, diode ReLU, current summing, no
normalisation); with the other cells the same skeleton gives the comparison models.
"""

from __future__ import annotations

from models.errors import InvalidGraph

CELLS = ("fq_bmru", "fq_cmru", "bmru", "cmru", "acmru", "lru", "mingru")
HARDWARE_CELLS = ("fq_bmru", "fq_cmru")


def cell_layer(cell: str, name: str, n_in: int, d: int, K: int = 4) -> dict:
    """The graph node for one recurrent layer, with the cell's deployed hyperparameters."""
    base = {"name": name, "type": cell, "in": n_in, "d": d}
    extra = {
        "fq_bmru": {},
        "fq_cmru": {"K": K},
        "bmru": {"eps": 0.0},
        "cmru": {"eps": 1.0},
        "acmru": {"eps": 1.0},
        "lru": {"r_min": 0.9, "r_max": 0.999},
        "mingru": {},
    }
    if cell not in extra:
        raise InvalidGraph(f"unknown cell {cell!r}; choose one of {CELLS}")
    return {**base, **extra[cell]}


def build_graph(
    cell: str,
    n_in: int,
    d: int,
    n_out: int,
    *,
    layers: int = 1,
    pool: bool = False,
    mlp: bool = False,
    K: int = 4,
    head: int = 0,
    encoder: int = 0,
) -> dict:
    """A stacked network: an optional ``encoder``-wide linear+ReLU layer on the inputs (features the
    first cells can latch, as in the published FC 4 -> ReLU), ``layers`` blocks of width d, an optional
    ``head``-wide linear+ReLU layer on the residual stream (per-frame nonlinear features of the latched
    states and the current input before pooling), readout to n_out, optional time pooling."""
    if layers < 1:
        raise InvalidGraph("a network needs at least one recurrent layer")
    nodes = [{"name": "x", "type": "input", "features": n_in}]
    edges = []
    prev, width = "x", n_in

    def add(node, *srcs):
        nodes.append(node)
        edges.extend([s, node["name"]] for s in srcs)
        return node["name"]

    if encoder:
        prev = add({"name": "encoder", "type": "linear", "in": n_in, "out": encoder}, prev)
        prev = add({"name": "encoder_relu", "type": "relu"}, prev)
        width = encoder

    for i in range(1, layers + 1):
        block_in, block_width = prev, width
        out = add(cell_layer(cell, f"cell{i}", width, d, K), prev)
        if mlp:
            out = add({"name": f"mlp{i}", "type": "linear", "in": d, "out": d}, out)
            out = add({"name": f"relu{i}", "type": "relu"}, out)
        if block_width == d:
            out = add({"name": f"res{i}", "type": "add"}, block_in, out)
        prev, width = out, d
    if head:
        prev = add({"name": "head", "type": "linear", "in": d, "out": head}, prev)
        prev = add({"name": "head_relu", "type": "relu"}, prev)
        width = head
    prev = add({"name": "readout", "type": "linear", "in": width, "out": n_out}, prev)
    if pool:
        prev = add({"name": "pool", "type": "mean_time"}, prev)
    return {"layers": nodes, "edges": edges, "inputs": ["x"], "outputs": [prev]}
