"""Frontend: a zoo checkpoint becomes a networkx graph of layers, checked against the network design rules.

The checkpoint is read with the zoo's loader (a fixed binary format, no code execution). Every rule
that a circuit imposes on a network is checked here, before lowering, so the user learns what to
change in the model (each rule is a named error naming the layer and what to do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

from cells import cmru, mirror
from compiler.foundation.errors import UsageError
from models.checkpoint import Checkpoint, load_checkpoint
from models.errors import CheckpointError

SUPPORTED = ("input", "linear", "relu", "add", "mean_time", "fq_bmru", "fq_cmru")
FQ_CELLS = ("fq_bmru", "fq_cmru")
MAX_LEVELS = cmru.K_MAX  # stages of one CMRU ladder
MAX_STATE = 64  # units per layer the compiler places
MAX_WEIGHT = float(mirror.MAX_UNITS)  # largest |weight| the mirror grid realises (denominator 1)
MAX_CURRENT = MAX_WEIGHT  # largest bias, threshold or gain (units of i_unit): the same bound as a weight
MAX_WEIGHTS = 1 << 16  # mirror outputs of one network: bounds the netlist, layout and simulation sizes
SYMMETRIC = {"bmru": "fq_bmru", "cmru": "fq_cmru", "acmru": "fq_cmru"}


class BadCheckpoint(UsageError):
    """The checkpoint file cannot be read or validated by the zoo loader."""


class DesignRuleError(UsageError):
    """The network breaks a rule the circuit imposes (named layer, what to change)."""


class UnsupportedLayer(DesignRuleError):
    """A layer type the cell library has no circuit for."""


class NotFirstQuadrant(DesignRuleError):
    """A signal that would have to be a negative current."""


class StateTooLarge(DesignRuleError):
    """More units in a layer than the compiler places."""


class WeightNotRealisable(DesignRuleError):
    """A weight outside the mirror ratio grid."""


class CurrentNotRealisable(DesignRuleError):
    """A bias or cell parameter larger than the bias generator's taps realise."""


class NetworkTooLarge(DesignRuleError):
    """More weights than the compiler places in one circuit."""


class NameClash(DesignRuleError):
    """Layer names that differ only in case: SPICE reads them as one name."""


@dataclass(frozen=True)
class Network:
    """A validated model: the checkpoint and its dataflow graph (nodes carry the layer dicts)."""

    checkpoint: Checkpoint
    graph: nx.DiGraph
    path: str

    @property
    def order(self) -> list[str]:
        return [layer["name"] for layer in self.checkpoint.graph["layers"]]

    def layer(self, name: str) -> dict:
        return self.graph.nodes[name]["layer"]

    def array(self, layer: str, param: str) -> np.ndarray:
        return np.asarray(self.checkpoint.arrays[f"{layer}.{param}"], dtype=np.float64)


def load_network(path) -> Network:
    """Load a checkpoint and check the network design rules."""
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as error:
        raise BadCheckpoint(f"{path}: {type(error).__name__}: {error}") from error
    network = network_of(ckpt, str(Path(path)))
    check_design_rules(network)
    return network


def network_of(ckpt: Checkpoint, path: str) -> Network:
    """A checkpoint's network (not yet checked against the design rules)."""
    graph = nx.DiGraph()
    for layer in ckpt.graph["layers"]:
        graph.add_node(layer["name"], layer=layer)
    graph.add_edges_from(tuple(edge) for edge in ckpt.graph["edges"])
    return Network(ckpt, graph, path)


def check_design_rules(network: Network) -> None:
    outputs = set(network.checkpoint.graph["outputs"])
    _check_names(network.order)
    weights = sum(
        network.array(n, "W").size for n in network.order if network.layer(n)["type"] in ("linear", *FQ_CELLS)
    )
    if weights > MAX_WEIGHTS:
        raise NetworkTooLarge(
            f"the network has {weights} weights; one circuit places at most {MAX_WEIGHTS}. Use narrower layers."
        )
    for name in network.order:
        layer = network.layer(name)
        kind = layer["type"]
        if kind in SYMMETRIC:
            raise NotFirstQuadrant(
                f"layer {name!r} is a symmetric {kind}: its states and candidates are signed, which "
                f"currents cannot be. Train the first-quadrant cell instead (--cell {SYMMETRIC[kind]})."
            )
        if kind == "fq_cmru" and not 2 <= layer["K"] <= MAX_LEVELS:
            raise DesignRuleError(
                f"layer {name!r} is an FQ-CMRU with K = {layer['K']} levels; the ladder realises 2 to {MAX_LEVELS}. "
                "Train with K in that range (K = 1 is an FQ-BMRU: --cell fq_bmru)."
            )
        if kind not in SUPPORTED:
            raise UnsupportedLayer(
                f"layer {name!r} has type {kind!r}, which has no circuit (supported: {', '.join(SUPPORTED)}). "
                "Use a hardware-mappable backbone (FQ cells, linear, relu, add, mean_time)."
            )
        if kind in FQ_CELLS and layer["d"] > MAX_STATE:
            raise StateTooLarge(f"layer {name!r} has d = {layer['d']} units; at most {MAX_STATE} are placed.")
        if kind in ("linear", *FQ_CELLS):
            weights = network.array(name, "W")
            worst = float(np.max(np.abs(weights))) if weights.size else 0.0
            if worst > MAX_WEIGHT:
                raise WeightNotRealisable(
                    f"layer {name!r} has a weight of magnitude {worst:.3g}; the mirror grid realises at most "
                    f"{MAX_WEIGHT:g} units. Add weight decay or clip the weights when training."
                )
        if kind in ("linear", *FQ_CELLS):
            _check_currents(network, name, kind)
        if kind == "linear" and name not in outputs:
            consumers = [network.layer(n)["type"] for n in network.graph.successors(name)]
            feeds_output = all(c == "mean_time" for c in consumers) and consumers
            if not feeds_output and not all(c == "relu" for c in consumers):
                raise NotFirstQuadrant(
                    f"linear layer {name!r} feeds {consumers} without a ReLU: its signed output cannot be "
                    "a current. Put a relu after it, or make it the network's readout."
                )
        if kind in FQ_CELLS:
            for param in ("beta_lo", "delta", "alpha"):
                if np.any(network.array(name, param) < 0):
                    raise NotFirstQuadrant(
                        f"layer {name!r} has negative {param}; an FQ cell needs beta_lo, delta, alpha >= 0 "
                        "(they become bias currents). Retrain with the zoo's constrained cell."
                    )


def _check_names(names: list[str]) -> None:
    """SPICE folds case: two layer names that differ only in case would become one node and instance."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise NameClash(
                f"layers {other!r} and {name!r} differ only in case, which SPICE ignores; rename one "
                "of them in the model."
            )


def _check_currents(network: Network, name: str, kind: str) -> None:
    """Biases and cell parameters become bias currents; each must fit the bias generator's taps."""
    currents = {"b": network.array(name, "b")}
    if kind in FQ_CELLS:
        currents["threshold beta_lo + delta"] = network.array(name, "beta_lo") + network.array(name, "delta")
        currents["alpha"] = network.array(name, "alpha")
    for what, values in currents.items():
        worst = float(np.max(np.abs(values))) if values.size else 0.0
        if worst > MAX_CURRENT:
            raise CurrentNotRealisable(
                f"layer {name!r} has {what} of magnitude {worst:.3g} units; a bias current realises at most "
                f"{MAX_CURRENT:g} units of i_unit. Regularise or clip it when training."
            )
