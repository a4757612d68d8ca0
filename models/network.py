"""Architecture graphs: validation, array specification, initialisation and the forward pass.

A graph is plain data (JSON-serialisable) so a checkpoint can be read without running code:
``{"layers": [{"name", "type", ...hyperparameters}], "edges": [[src, dst], ...],
"inputs": [name], "outputs": [name]}``. Layers are listed in dataflow order (every edge points
forward), which makes cycles impossible and evaluation a single pass.
"""

from __future__ import annotations

import math
import re

import jax.numpy as jnp
import numpy as np

from compiler.foundation.errors import shown  # noqa: F401 (models' modules import it from here)
from models.errors import InvalidGraph, UnknownLayerType
from models.layers import LAYER_TYPES, Context

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_LAYERS = 256
MAX_FEATURES = 1 << 16


def _check_hyper(layer: dict, spec: dict) -> None:
    name = layer["name"]
    allowed = {"name", "type"} | set(spec)
    extra = set(layer) - allowed
    if extra:
        raise InvalidGraph(
            f"layer {name!r} has unknown hyperparameters {shown(sorted(extra))}; "
            f"a {layer['type']} layer takes {sorted(spec)}"
        )
    for key, kind in spec.items():
        if key not in layer:
            raise InvalidGraph(f"layer {name!r} ({layer['type']}) lacks hyperparameter {key!r}")
        v = layer[key]
        if kind == "int":
            ok = isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_FEATURES
            want = f"an integer in [1, {MAX_FEATURES}]"
        else:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            lo_ok = v >= 0 if kind == "prob" else v > 0
            hi_ok = v <= 1 if kind == "prob" else v < 1
            ok = ok and lo_ok and hi_ok
            want = "a number in [0, 1]" if kind == "prob" else "a number in (0, 1)"
        if not ok:
            raise InvalidGraph(f"layer {name!r}: hyperparameter {key}={shown(v)} must be {want}")


def validate_graph(graph) -> dict:
    """Check the graph's structure and hyperparameters; return {layer name: output features}.

    Raises InvalidGraph / UnknownLayerType naming the offending layer or edge.
    """
    if not isinstance(graph, dict) or set(graph) != {"layers", "edges", "inputs", "outputs"}:
        raise InvalidGraph("graph must be an object with exactly the keys 'layers', 'edges', 'inputs', 'outputs'")
    layers, edges = graph["layers"], graph["edges"]
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise InvalidGraph(f"graph 'layers' must be a list of 1..{MAX_LAYERS} layer objects")
    order = {}
    for i, layer in enumerate(layers):
        if (
            not isinstance(layer, dict)
            or not isinstance(layer.get("name"), str)
            or not isinstance(layer.get("type"), str)
        ):
            raise InvalidGraph(f"layer #{i} must be an object with string 'name' and 'type'")
        if not _NAME.fullmatch(layer["name"]):
            raise InvalidGraph(f"layer name {shown(layer['name'])} must match {_NAME.pattern}")
        if layer["name"] in order:
            raise InvalidGraph(f"duplicate layer name {layer['name']!r}")
        if layer["type"] not in LAYER_TYPES:
            raise UnknownLayerType(
                f"layer {layer['name']!r} has unknown type {shown(layer['type'])}; "
                f"known types: {sorted(LAYER_TYPES)}. Upgrade the package or "
                "re-export the model with supported layers"
            )
        _check_hyper(layer, LAYER_TYPES[layer["type"]].hyper)
        order[layer["name"]] = i
    if not isinstance(edges, list):
        raise InvalidGraph("graph 'edges' must be a list of [src, dst] pairs")
    if len(edges) > MAX_LAYERS * MAX_LAYERS:
        raise InvalidGraph(f"graph has {len(edges)} edges; at most {MAX_LAYERS * MAX_LAYERS} are allowed")
    preds = {name: [] for name in order}
    for e in edges:
        if not (isinstance(e, list) and len(e) == 2 and all(isinstance(n, str) for n in e)):
            raise InvalidGraph(f"edge {shown(e, 160)} must be a [src, dst] pair of layer names")
        src, dst = e
        if src not in order or dst not in order:
            raise InvalidGraph(f"edge {shown(e, 160)} names a layer that does not exist")
        if order[src] >= order[dst]:
            raise InvalidGraph(f"edge {e!r} points backwards: list layers in dataflow order")
        if src in preds[dst]:
            raise InvalidGraph(
                f"edge {e!r} is listed twice: a layer takes each input once (to add a signal "
                "to itself, scale it with a linear layer)"
            )
        preds[dst].append(src)
    for key in ("inputs", "outputs"):
        names = graph[key]
        if not (isinstance(names, list) and len(names) == 1 and isinstance(names[0], str) and names[0] in order):
            raise InvalidGraph(f"graph {key!r} must list exactly one existing layer name")
    if layers[order[graph["inputs"][0]]]["type"] != "input":
        raise InvalidGraph("the graph input must be a layer of type 'input'")
    features: dict = {}
    pooled: dict = {}
    for layer in layers:
        name, lt = layer["name"], LAYER_TYPES[layer["type"]]
        src = preds[name]
        lo, hi = lt.n_inputs
        if not lo <= len(src) <= hi:
            raise InvalidGraph(f"layer {name!r} ({lt.name}) needs {lo}..{hi} inputs, has {len(src)}")
        fin = [features[s] for s in src]
        if len(set(fin)) > 1:
            raise InvalidGraph(f"layer {name!r} sums inputs of different widths {fin}")
        if any(pooled[s] for s in src) and (lt.pools_time or lt.name != "linear"):
            raise InvalidGraph(f"layer {name!r} follows a time pooling; only 'linear' may")
        width = fin[0] if fin else None
        if lt.in_key is not None and layer[lt.in_key] != width:
            raise InvalidGraph(f"layer {name!r}: {lt.in_key}={layer[lt.in_key]} but its input has {width} features")
        features[name] = lt.out_features(layer, width)
        pooled[name] = lt.pools_time or any(pooled[s] for s in src)
    return features


def predecessors(graph) -> dict:
    preds = {layer["name"]: [] for layer in graph["layers"]}
    for src, dst in graph["edges"]:
        preds[dst].append(src)
    return preds


def expected_shapes(graph) -> dict:
    """{"<layer>.<param>": shape} for every array the graph needs."""
    out = {}
    for layer in graph["layers"]:
        for param, shape in LAYER_TYPES[layer["type"]].shapes(layer).items():
            out[f"{layer['name']}.{param}"] = tuple(shape)
    return out


def init_arrays(graph, seed: int) -> dict:
    """Deterministic initial arrays (numpy float32), one generator stream for the whole graph."""
    validate_graph(graph)
    rng = np.random.default_rng(seed)
    arrays = {}
    for layer in graph["layers"]:
        for param, value in LAYER_TYPES[layer["type"]].init(rng, layer).items():
            arrays[f"{layer['name']}.{param}"] = value
    return arrays


def layer_params(arrays, layer) -> dict:
    prefix = layer["name"] + "."
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def apply(graph, arrays, x, *, eps=None, mode: str = "associative"):
    """Run the network on x ``[..., T, F]``; return (output, traces).

    ``output`` is the value of the graph output (per-frame ``[..., T, n]``, or ``[..., n]`` after a
    ``mean_time`` layer). ``traces[layer]`` is that layer's dict of intermediate signals
    (e.g. ``h`` candidate currents, ``q`` state levels, ``y`` outputs). ``eps`` overrides the eps
    of annealable cells (training only); ``mode`` selects the associative or sequential scan.
    Pure and jittable for a fixed graph.
    """
    ctx = Context(eps=eps, mode=mode)
    preds = predecessors(graph)
    values, traces = {}, {}
    x = jnp.asarray(x, jnp.float32)
    for layer in graph["layers"]:
        name, lt = layer["name"], LAYER_TYPES[layer["type"]]
        inputs = [values[s] for s in preds[name]] if preds[name] else [x]
        params = {k: jnp.asarray(v) for k, v in layer_params(arrays, layer).items()}
        values[name], traces[name] = lt.forward(params, layer, inputs, ctx)
    return values[graph["outputs"][0]], traces


def is_hardware_mappable(graph) -> bool:
    return all(LAYER_TYPES[layer["type"]].hardware for layer in graph["layers"])


def has_annealed_cells(graph) -> bool:
    return any(LAYER_TYPES[layer["type"]].anneal for layer in graph["layers"])
