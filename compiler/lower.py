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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler.frontend import Network
from compiler.ir import IR, BiasArray, Bistable, CurrentInput, CurrentOutput, Ladder, Receiver, WeightArray


def _floats(values) -> tuple:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())


def _matrix(values) -> tuple:
    return tuple(_floats(row) for row in np.asarray(values, dtype=np.float64))


@dataclass
class _Lowering:
    network: Network
    stages: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    nodes: dict = field(default_factory=dict)      # layer -> producer stage names (currents at a node)
    signals: dict = field(default_factory=dict)    # layer -> Receiver stage name
    sizes: dict = field(default_factory=dict)      # layer -> features

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
            sinking = any(isinstance(self.stage(p), Bistable) for p in producers)  # cell outputs sink
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
        sinks_into_pin = consumer == "out" and any(isinstance(self.stage(p), Bistable) for p in producers)
        if layer in self.nodes and layer not in self.signals and only_consumer and not sinks_into_pin:
            return list(producers)
        n = self.sizes[layer]
        identity = _matrix(np.eye(n))
        copy = WeightArray(f"{consumer}.copy_{layer}", n, source=f"{layer} (copy)", n_in=n, weights=identity)
        return [self.add(copy, self.signal(layer))]

    def run(self) -> IR:
        net = self.network
        for name in net.order:
            layer = net.layer(name)
            kind = layer["type"]
            preds = list(net.graph.predecessors(name))
            if kind == "input":
                self.sizes[name] = layer["features"]
                self.nodes[name] = [self.add(CurrentInput(name, layer["features"], source=name))]
            elif kind in ("fq_bmru", "fq_cmru"):
                self.sizes[name] = layer["d"]
                self._weights(name, layer["d"], layer["in"], preds[0])
                beta_lo, delta = net.array(name, "beta_lo"), net.array(name, "delta")
                extra = {"levels": int(layer["K"])} if kind == "fq_cmru" else {}
                cell = (Ladder if kind == "fq_cmru" else Bistable)(
                    name, layer["d"], source=f"{name}.beta_lo, {name}.delta, {name}.alpha",
                    thresh=_floats(beta_lo + delta), width=_floats(delta), gain=_floats(net.array(name, "alpha")),
                    **extra,
                )
                self.nodes[name] = [self.add(cell, f"{name}.W", f"{name}.b")]
            elif kind == "linear":
                self.sizes[name] = layer["out"]
                self._weights(name, layer["out"], layer["in"], preds[0])
                self.nodes[name] = [f"{name}.W", f"{name}.b"]
            elif kind == "relu":
                self.sizes[name] = self.sizes[preds[0]]
                self.signals[name] = self.signal(preds[0])
            elif kind == "add":
                self.sizes[name] = self.sizes[preds[0]]
                self.nodes[name] = [p for pred in preds for p in self.currents(pred, name)]
            elif kind == "mean_time":
                self.sizes[name] = self.sizes[preds[0]]
                self.nodes[name] = self.currents(preds[0], name)
            else:  # the frontend's design rules admit nothing else
                raise AssertionError(kind)
        (output,) = net.checkpoint.graph["outputs"]
        pooling = "mean_time" if net.layer(output)["type"] == "mean_time" else "none"
        self.add(CurrentOutput("out", self.sizes[output], source=output, pooling=pooling),
                 *self.currents(output, "out"))
        meta = {"model": net.path, "graph": net.checkpoint.graph, "task": net.checkpoint.metadata.get("task")}
        return IR(tuple(self.stages), tuple(self.edges), meta)

    def _weights(self, name: str, n_out: int, n_in: int, pred: str) -> None:
        rx = self.signal(pred)
        self.add(WeightArray(f"{name}.W", n_out, source=f"{name}.W", n_in=n_in,
                             weights=_matrix(self.network.array(name, "W"))), rx)
        self.add(BiasArray(f"{name}.b", n_out, source=f"{name}.b", values=_floats(self.network.array(name, "b"))))


def lower(network: Network) -> IR:
    """The IR of a validated network, in software units."""
    return _Lowering(network).run()
