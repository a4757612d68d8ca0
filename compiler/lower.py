"""Lowering: the layer graph becomes IR stages in software units, one circuit element per parameter.

Each layer's output is tracked either as a *node* (the producers whose currents meet there, not yet
received) or as a *signal* (a `Receiver` whose gate voltages mirrors can copy). A layer that mirrors
its input (weights) asks for a signal, which places a receiver on the node: the diode that is also the
ReLU. A layer that adds currents (residual `add`, outputs) takes the producers themselves when it is
their only consumer, and a 1:1 copy of the signal otherwise.

    input x          -> CurrentInput x
    fq_bmru c        -> WeightArray c.W (from the input's signal), BiasArray c.b, Bistable c
    fq_cmru c        -> the same with a Ladder c of K levels (`lower_cmru` sizes its DPIs and gating)
    linear l         -> WeightArray l.W, BiasArray l.b        (a node; `relu` receives it)
    add a            -> the union of its inputs' currents at one node
    outputs, mean_time -> CurrentOutput out (pooling = mean_time for classifiers)

Each layer type has one rule in `RULES`; a memory-cell layer's rule is `memory_rule(StageClass)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler.frontend import Network
from compiler.ir import IR, BiasArray, Bistable, CurrentInput, CurrentOutput, Ladder, Meta, Receiver, WeightArray


def _floats(values) -> tuple:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())


def _matrix(values) -> tuple:
    return tuple(_floats(row) for row in np.asarray(values, dtype=np.float64))


@dataclass
class Lowering:
    """The state of one lowering: the stages and edges so far, and where each layer's output is."""

    network: Network
    stages: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    nodes: dict = field(default_factory=dict)  # layer -> producer stage names (currents at a node)
    signals: dict = field(default_factory=dict)  # layer -> Receiver stage name
    sizes: dict = field(default_factory=dict)  # layer -> features

    def add(self, stage, *sources: str) -> str:
        self.stages.append(stage)
        self.edges.extend((s, stage.name) for s in sources)
        return stage.name

    def stage(self, name: str):
        return next(s for s in self.stages if s.name == name)

    def signal(self, layer: str) -> str:
        """The receiver of a layer's output, placed on first use."""
        if layer not in self.signals:
            producers = self.nodes[layer]
            sinking = any(self.stage(p).memory for p in producers)  # cell outputs sink
            self.signals[layer] = self.add(
                Receiver(f"{layer}.rx", self.sizes[layer], source=layer, polarity="p" if sinking else "n"),
                *producers,
            )
        return self.signals[layer]

    def currents(self, layer: str, consumer: str) -> list[str]:
        """Producers whose currents a summing consumer can take: the layer's own, or a 1:1 copy."""
        only_consumer = list(self.network.graph.successors(layer)) in ([consumer], [])
        producers = self.nodes.get(layer, [])
        # output pins count sourced current as positive; cell outputs sink, so they reach pins via a copy
        sinks_into_pin = consumer == "out" and any(self.stage(p).memory for p in producers)
        if layer in self.nodes and layer not in self.signals and only_consumer and not sinks_into_pin:
            return list(producers)
        n = self.sizes[layer]
        identity = _matrix(np.eye(n))
        copy = WeightArray(f"{consumer}.copy_{layer}", n, source=f"{layer} (copy)", n_in=n, weights=identity)
        return [self.add(copy, self.signal(layer))]

    def weights(self, name: str, n_out: int, n_in: int, pred: str) -> None:
        """A layer's W (reading its input's signal) and b."""
        rx = self.signal(pred)
        self.add(
            WeightArray(
                f"{name}.W", n_out, source=f"{name}.W", n_in=n_in, weights=_matrix(self.network.array(name, "W"))
            ),
            rx,
        )
        self.add(BiasArray(f"{name}.b", n_out, source=f"{name}.b", values=_floats(self.network.array(name, "b"))))

    def run(self) -> IR:
        net = self.network
        for name in net.order:
            layer = net.layer(name)
            # the frontend's design rules admit no layer type without a rule
            RULES[layer["type"]](self, name, layer, list(net.graph.predecessors(name)))
        (output,) = net.checkpoint.graph["outputs"]
        pooling = "mean_time" if net.layer(output)["type"] == "mean_time" else "none"
        self.add(
            CurrentOutput("out", self.sizes[output], source=output, pooling=pooling), *self.currents(output, "out")
        )
        meta = Meta(model=net.path, graph=net.checkpoint.graph, task=net.checkpoint.metadata.get("task"))
        return IR(tuple(self.stages), tuple(self.edges), meta)


def _input(lw: Lowering, name: str, layer: dict, preds: list) -> None:
    lw.sizes[name] = layer["features"]
    lw.nodes[name] = [lw.add(CurrentInput(name, layer["features"], source=name))]


def memory_rule(cls, **layer_fields):
    """The rule of a threshold memory-cell layer (W, b and one `cls` stage of d units): its threshold
    `thresh` is the model's beta_hi = beta_lo + delta, its `width` delta and its `gain` alpha.
    `layer_fields` maps further stage fields to the layer hyperparameter each takes (levels="K")."""

    def rule(lw: Lowering, name: str, layer: dict, preds: list) -> None:
        lw.sizes[name] = layer["d"]
        lw.weights(name, layer["d"], layer["in"], preds[0])
        beta_lo, delta = lw.network.array(name, "beta_lo"), lw.network.array(name, "delta")
        cell = cls(
            name,
            layer["d"],
            source=f"{name}.beta_lo, {name}.delta, {name}.alpha",
            thresh=_floats(beta_lo + delta),
            width=_floats(delta),
            gain=_floats(lw.network.array(name, "alpha")),
            **{key: int(layer[hyper]) for key, hyper in layer_fields.items()},
        )
        lw.nodes[name] = [lw.add(cell, f"{name}.W", f"{name}.b")]

    return rule


def _linear(lw: Lowering, name: str, layer: dict, preds: list) -> None:
    lw.sizes[name] = layer["out"]
    lw.weights(name, layer["out"], layer["in"], preds[0])
    lw.nodes[name] = [f"{name}.W", f"{name}.b"]


def _relu(lw: Lowering, name: str, layer: dict, preds: list) -> None:
    lw.sizes[name] = lw.sizes[preds[0]]
    lw.signals[name] = lw.signal(preds[0])


def _add(lw: Lowering, name: str, layer: dict, preds: list) -> None:
    lw.sizes[name] = lw.sizes[preds[0]]
    lw.nodes[name] = [p for pred in preds for p in lw.currents(pred, name)]


def _mean_time(lw: Lowering, name: str, layer: dict, preds: list) -> None:
    lw.sizes[name] = lw.sizes[preds[0]]
    lw.nodes[name] = lw.currents(preds[0], name)


# Each layer type's lowering rule: rule(lowering, layer name, layer dict, predecessor names).
RULES = {
    "input": _input,
    "fq_bmru": memory_rule(Bistable),
    "fq_cmru": memory_rule(Ladder, levels="K"),
    "linear": _linear,
    "relu": _relu,
    "add": _add,
    "mean_time": _mean_time,
}


def lower(network: Network) -> IR:
    """The IR of a validated network, in software units."""
    return Lowering(network).run()
