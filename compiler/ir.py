"""The analog IR: a directed graph of circuit stages, each an immutable, validated dataclass.

A *signal* is a vector of non-negative currents. Stages either produce currents into a node
(`CurrentInput`, `WeightArray`, `BiasArray`, `Bistable`) or receive the currents summed at a node
(`Receiver`, `Bistable`, `CurrentOutput`); currents that meet at a node add (Kirchhoff), which is how
weighted sums and residual additions are computed for free. A `Receiver` is a diode-connected device:
it only conducts current flowing into it, so it is also the ReLU.

Values are in SI units once the `scale_currents` pass has run (amperes); before that they are in
software units. `source` names the model parameter(s) a stage realises, for the build report and the
behavioural model. `IR.to_json` / `IR.from_json` round-trip without loss.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import ClassVar

from compiler.foundation.errors import UsageError


class IRError(UsageError):
    """An IR stage or edge is malformed (a compiler bug or a hand-edited ir.json)."""


def _finite(stage: str, name: str, values, nonneg: bool = False) -> None:
    for v in values:
        if not isinstance(v, (int, float)) or not math.isfinite(v) or (nonneg and v < 0):
            kind = "finite, non-negative" if nonneg else "finite"
            raise IRError(f"stage {stage!r}: {name} must hold {kind} numbers, got {v!r}")


def _tuple(values) -> tuple:
    return tuple(_tuple(v) if isinstance(v, (list, tuple)) else v for v in values)


@dataclass(frozen=True)
class Stage:
    name: str
    size: int
    source: str = ""
    kind: ClassVar[str] = "stage"
    produces: ClassVar[bool] = False  # drives currents into the node of its successors
    receives: ClassVar[bool] = False  # sinks the currents summed at its own input node

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, _tuple(value))
            elif isinstance(value, dict):
                object.__setattr__(self, f.name, {k: _tuple(v) if isinstance(v, list) else v
                                                  for k, v in value.items()})
        if not isinstance(self.size, int) or self.size < 1:
            raise IRError(f"stage {self.name!r}: size must be a positive integer, got {self.size!r}")
        self.check()

    def check(self) -> None:
        """Stage-specific invariants (override)."""

    def _vector(self, name: str, nonneg: bool = False) -> None:
        value = getattr(self, name)
        if len(value) != self.size:
            raise IRError(f"stage {self.name!r}: {name} has {len(value)} entries for size {self.size}")
        _finite(self.name, name, value, nonneg)

    def replace(self, **changes) -> "Stage":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class CurrentInput(Stage):
    """Input pins: the test bench or the previous chip block sources x_j * I_unit into pin j."""

    kind: ClassVar[str] = "current_input"
    produces: ClassVar[bool] = True


@dataclass(frozen=True)
class Receiver(Stage):
    """Diode-connected receivers at a summing node: the signal's gate voltages, and the ReLU.

    `polarity` 'n': nfet diodes, the node takes currents sourced into it; 'p': pfet diodes, the node
    takes currents sunk out of it (the bistable cells' outputs sink). `denominator` (set by
    `quantise_ratios`) is the number of unit devices of each diode: every mirror copying it shares it.
    """

    polarity: str = "n"
    denominator: int = 0
    kind: ClassVar[str] = "receiver"
    produces: ClassVar[bool] = False
    receives: ClassVar[bool] = True

    def check(self) -> None:
        if self.polarity not in ("n", "p"):
            raise IRError(f"stage {self.name!r}: polarity must be 'n' or 'p', not {self.polarity!r}")


@dataclass(frozen=True)
class WeightArray(Stage):
    """Mirror outputs realising W (size = outputs) from a Receiver's signal (n_in = its size).

    `weights` is the row-major matrix [size][n_in] in software units. `split_signs` sets `positive`
    and `negative` (W = positive - negative, both >= 0: sourcing pfet and sinking nfet mirrors);
    `quantise_ratios` sets `denominator` (unit devices of each input diode) and the integer unit counts
    `pos_ratios`, `neg_ratios`; `size_devices` picks the unit device `unit_w` x `unit_l` (um).
    """

    n_in: int = 1
    weights: tuple = ()
    positive: tuple = ()
    negative: tuple = ()
    denominator: int = 0
    pos_ratios: tuple = ()
    neg_ratios: tuple = ()
    unit_w: float = 0.0
    unit_l: float = 0.0
    kind: ClassVar[str] = "weight_array"
    produces: ClassVar[bool] = True

    def check(self) -> None:
        for name in ("weights", "positive", "negative", "pos_ratios", "neg_ratios"):
            matrix = getattr(self, name)
            if name != "weights" and not matrix:
                continue
            if len(matrix) != self.size or any(len(row) != self.n_in for row in matrix):
                raise IRError(f"stage {self.name!r}: {name} must be {self.size} rows of {self.n_in}")
            for row in matrix:
                _finite(self.name, name, row, nonneg=name != "weights")
        if self.pos_ratios and not (isinstance(self.denominator, int) and self.denominator >= 1):
            raise IRError(f"stage {self.name!r}: quantised arrays need a denominator >= 1")

    def realised(self) -> tuple:
        """The weights the circuit realises: (pos - neg) / denominator once quantised."""
        if not self.pos_ratios:
            return self.weights
        return tuple(tuple((p - n) / self.denominator for p, n in zip(prow, nrow))
                     for prow, nrow in zip(self.pos_ratios, self.neg_ratios))


@dataclass(frozen=True)
class BiasArray(Stage):
    """DC currents into a summing node (positive: sourced, negative: sunk)."""

    values: tuple = ()
    kind: ClassVar[str] = "bias_array"
    produces: ClassVar[bool] = True

    def check(self) -> None:
        self._vector("values")


@dataclass(frozen=True)
class Bistable(Stage):
    """Bistable memory cells (FQ-BMRU): per unit a Schmitt trigger on its input current.

    Set when the input exceeds `thresh` (= beta_hi), reset below `thresh - width` (= beta_lo), output
    `gain` (= alpha) when set, 0 when reset.
    """

    thresh: tuple = ()
    width: tuple = ()
    gain: tuple = ()
    programmed: dict = field(default_factory=dict)  # set by `calibrate`: bias currents that realise them
    phase: int = 0      # set by `schedule_phases`: its slot in the frame (1, 2, ...); 0 runs free
    kind: ClassVar[str] = "bistable"
    produces: ClassVar[bool] = True
    receives: ClassVar[bool] = True

    def check(self) -> None:
        for name in ("thresh", "width", "gain"):
            self._vector(name, nonneg=True)
        for k, (t, w) in enumerate(zip(self.thresh, self.width)):
            if w > t:
                raise IRError(f"stage {self.name!r}: unit {k} has width {w} above its threshold {t}; "
                              "the reset level thresh - width would be negative")
        if not isinstance(self.phase, int) or self.phase < 0:
            raise IRError(f"stage {self.name!r}: phase must be a non-negative integer, got {self.phase!r}")


@dataclass(frozen=True)
class Ladder(Bistable):
    """FQ-CMRU units (cells/cmru.py): per unit a ladder of `levels` bistable stages gated through DPIs.

    The level steps up by one per frame whose input exceeds `thresh`, down by one below `thresh - width`,
    and holds otherwise; the output sinks level * `gain`. The stage thresholds are a bistable cell's, so
    every Bistable pass applies; `ladder` (set by `lower_cmru`) holds per unit the DPI and gating currents.
    """

    levels: int = 2
    ladder: dict = field(default_factory=dict)
    kind: ClassVar[str] = "cmru"

    def check(self) -> None:
        super().check()
        if not isinstance(self.levels, int) or self.levels < 2:
            raise IRError(f"stage {self.name!r}: levels must be an integer >= 2, got {self.levels!r}")


@dataclass(frozen=True)
class CurrentOutput(Stage):
    """Output pins held at a fixed voltage; the current into each is the output (may be signed).

    `pooling` is 'none' (per-frame outputs) or 'mean_time' (a classifier: mean over frames).
    """

    pooling: str = "none"
    kind: ClassVar[str] = "current_output"
    receives: ClassVar[bool] = True

    def check(self) -> None:
        if self.pooling not in ("none", "mean_time"):
            raise IRError(f"stage {self.name!r}: pooling must be 'none' or 'mean_time'")


@dataclass(frozen=True)
class BiasGenerator(Stage):
    """One reference current `i_ref` fanned out to every DC current of the circuit (its taps).

    Tap k delivers units/denominator * i_ref: `taps[k]` = (stage, field, unit, polarity, units), polarity
    'p' sourcing (pfet) or 'n' sinking (nfet). `size` is the number of taps. It has no edges: the
    netlist backend wires each tap to the port or node of its stage.
    """

    i_ref: float = 0.0
    denominator: int = 1
    taps: tuple = ()
    kind: ClassVar[str] = "bias_generator"

    def check(self) -> None:
        if len(self.taps) != self.size:
            raise IRError(f"stage {self.name!r}: {len(self.taps)} taps for size {self.size}")
        for tap in self.taps:
            if len(tap) != 5 or tap[3] not in ("p", "n") or not isinstance(tap[4], int) or tap[4] < 1:
                raise IRError(f"stage {self.name!r}: malformed tap {tap!r}")

    def current(self, units: int) -> float:
        return units / self.denominator * self.i_ref


STAGE_TYPES = {cls.kind: cls for cls in
               (CurrentInput, Receiver, WeightArray, BiasArray, Bistable, Ladder, CurrentOutput, BiasGenerator)}


@dataclass(frozen=True)
class IR:
    """Stages in dataflow order, edges (src, dst) and circuit-wide settings (`meta`)."""

    stages: tuple
    edges: tuple
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "edges", tuple(tuple(e) for e in self.edges))
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise IRError("stage names must be unique")
        position = {n: i for i, n in enumerate(names)}
        for src, dst in self.edges:
            if src not in position or dst not in position:
                raise IRError(f"edge {src!r} -> {dst!r} names an unknown stage")
            if position[src] >= position[dst]:
                raise IRError(f"edge {src!r} -> {dst!r} points backwards: stages must be in dataflow order")
            a, b = self.stage(src), self.stage(dst)
            drives = a.produces and b.receives  # currents into the node b owns
            mirrors = isinstance(a, Receiver) and isinstance(b, WeightArray)  # b copies a's signal
            if not (drives or mirrors):
                raise IRError(f"edge {src!r} -> {dst!r}: a {a.kind} cannot drive a {b.kind}")

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def predecessors(self, name: str) -> list[str]:
        return [src for src, dst in self.edges if dst == name]

    def successors(self, name: str) -> list[str]:
        return [dst for src, dst in self.edges if src == name]

    def of_kind(self, cls) -> list:
        return [s for s in self.stages if isinstance(s, cls)]

    def replace_stages(self, new: dict) -> "IR":
        """A copy with some stages (by name) replaced."""
        return IR(tuple(new.get(s.name, s) for s in self.stages), self.edges, dict(self.meta))

    def with_meta(self, **values) -> "IR":
        return IR(self.stages, self.edges, {**self.meta, **values})

    def to_dict(self) -> dict:
        return {
            "stages": [{"kind": s.kind, **_plain(dataclasses.asdict(s))} for s in self.stages],
            "edges": [list(e) for e in self.edges],
            "meta": _plain(self.meta),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "IR":
        try:
            stages = []
            for entry in data["stages"]:
                entry = dict(entry)
                kind = entry.pop("kind")
                if kind not in STAGE_TYPES:
                    raise IRError(f"unknown stage kind {kind!r}")
                stages.append(STAGE_TYPES[kind](**entry))
            return cls(tuple(stages), tuple(tuple(e) for e in data["edges"]), dict(data.get("meta", {})))
        except (KeyError, TypeError) as exc:
            raise IRError(f"malformed IR: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> "IR":
        return cls.from_dict(json.loads(text))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
