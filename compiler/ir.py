"""The analog IR: a directed graph of circuit stages, each an immutable, validated dataclass.

A *signal* is a vector of non-negative currents. Stages either produce currents into a node
(`CurrentInput`, `WeightArray`, `BiasArray`, `Bistable`) or receive the currents summed at a node
(`Receiver`, `Bistable`, `CurrentOutput`); currents that meet at a node add (Kirchhoff), which is how
weighted sums and residual additions are computed for free. A `Receiver` is a diode-connected device:
it only conducts current flowing into it, so it is also the ReLU.

Values are in SI units once the `scale_currents` pass has run (amperes; memory cells from
`program_cells` on); before that they are in software units. `source` names the model parameter(s) a
stage realises, for the build report and the behavioural model. What crosses between passes is typed:
per-unit records (`Programmed`, `LadderDesign`), bias taps (`Tap`) and the circuit-wide facts (`Meta`).
`IR.to_json` / `IR.from_json` round-trip without loss, each record in ir.json in the shape of a plain
mapping or list.

Stage kinds are found through tables keyed by stage class (`STAGE_TYPES` by kind name for ir.json,
`for_kind` for the tables of the passes and backends); what a stage is for the circuit is a class
attribute (`produces`, `receives`, `memory`, ...), and a memory cell's circuit facts are its cell
module's (`facts`, cells/facts.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from cells import bistable, cmru
from cells.facts import MemoryCell, SharedBias
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
class UnitValues:
    """Base of the per-unit records a stage carries: one tuple per field, one entry per unit of the stage.

    In ir.json a record is a mapping {field: [values]}, and {} while it is not set (None here)."""

    @classmethod
    def load(cls, value):
        """The record of a stage field as given: a record, its JSON mapping, or None / {} (not set)."""
        if value is None or isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise IRError(f"{cls.__name__} must be a mapping of per-unit values, got {type(value).__name__}")
        return cls(**{k: _tuple(v) for k, v in value.items()}) if value else None

    @staticmethod
    def dump(value) -> dict:
        return {} if value is None else {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}

    def __getitem__(self, field: str) -> tuple:
        """A field by name: bias ports name the field whose currents they take (cells/facts.py)."""
        if field not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(field)
        return getattr(self, field)

    def check(self, stage: str, size: int) -> None:
        for f in dataclasses.fields(self):
            values = getattr(self, f.name)
            if len(values) != size:
                raise IRError(f"stage {stage!r}: {f.name} has {len(values)} entries for size {size}")
            _finite(stage, f.name, values, nonneg=True)


@dataclass(frozen=True)
class Programmed(UnitValues):
    """The bias currents (A) that program each unit of a threshold memory cell, chosen by `program_cells`:
    `thresh` is I_thresh, `width` I_width and `gain` I_gain (cells/bistable.py), each on the bias grid.
    The cell's bias ports name these fields (cells/facts.py `Port.field`)."""

    thresh: tuple
    width: tuple
    gain: tuple


PROGRAMMED = tuple(f.name for f in dataclasses.fields(Programmed))  # the bias fields `program_cells` chooses


@dataclass(frozen=True)
class LadderDesign(UnitValues):
    """Per FQ-CMRU unit, its ladder's design (cells/cmru.py `design`, set by `lower_cmru`): the DPI bias
    currents I_tau and I_th (A) and capacitor C (F), the gating level I_x (A) and the pin ratio n_pin."""

    I_tau: tuple
    I_th: tuple
    C: tuple
    I_x: tuple
    n_pin: tuple


class Tap(NamedTuple):
    """One output of the bias generator: `units` / denominator x i_ref for unit `unit` of field `field` of
    stage `stage`, 'p' sourced (pfet) or 'n' sunk (nfet). In ir.json: [stage, field, unit, polarity, units]."""

    stage: str
    field: str
    unit: int
    polarity: str
    units: int


class _Taps:
    """The taps of a bias generator: a tuple of `Tap`, in ir.json a list of 5-entry lists."""

    @staticmethod
    def load(value) -> tuple:
        try:
            return tuple(Tap(*tap) for tap in value)
        except TypeError:
            raise IRError(f"malformed taps {str(value)[:80]}: each is [stage, field, unit, polarity, units]") from None

    @staticmethod
    def dump(value) -> tuple:
        return value


@dataclass(frozen=True)
class Stage:
    name: str
    size: int
    source: str = ""
    kind: ClassVar[str] = "stage"
    produces: ClassVar[bool] = False  # drives currents into the node of its successors
    receives: ClassVar[bool] = False  # sinks the currents summed at its own input node
    signal: ClassVar[bool] = False  # its diodes' gate voltages are a signal that mirrors copy
    copies: ClassVar[bool] = False  # copies the signal of the stage before it (a mirror array)
    memory: ClassVar[bool] = False  # a memory cell: holds state, its outputs sink, it has a phase slot
    CURRENTS: ClassVar[tuple] = ()  # fields holding currents (software units, amperes once scaled)
    RECORDS: ClassVar[dict] = {}  # fields holding typed records -> their loader (load / dump)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self.RECORDS:
                object.__setattr__(self, f.name, self.RECORDS[f.name].load(value))
            elif isinstance(value, list):
                object.__setattr__(self, f.name, _tuple(value))
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

    @property
    def accepts(self) -> str:
        """The direction of current its node takes: 'n' sourced into it, 'p' sunk out of it."""
        return "n"

    def to_dict(self) -> dict:
        """The stage as ir.json holds it: its kind and every field, records in their JSON shape."""
        out = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = _plain(self.RECORDS[f.name].dump(value) if f.name in self.RECORDS else value)
        return out


@dataclass(frozen=True)
class CurrentInput(Stage):
    """Input pins: the test bench or the previous chip block sources x_j * I_unit into pin j."""

    kind: ClassVar[str] = "current_input"
    produces: ClassVar[bool] = True


@dataclass(frozen=True)
class Receiver(Stage):
    """Diode-connected receivers at a summing node: the signal's gate voltages, and the ReLU.

    `polarity` 'n': nfet diodes, the node takes currents sourced into it; 'p': pfet diodes, the node
    takes currents sunk out of it (the memory cells' outputs sink). `denominator` (set by
    `quantise_ratios`) is the number of unit devices of each diode: every mirror copying it shares it.
    """

    polarity: str = "n"
    denominator: int = 0
    kind: ClassVar[str] = "receiver"
    receives: ClassVar[bool] = True
    signal: ClassVar[bool] = True

    def check(self) -> None:
        if self.polarity not in ("n", "p"):
            raise IRError(f"stage {self.name!r}: polarity must be 'n' or 'p', not {self.polarity!r}")

    @property
    def accepts(self) -> str:
        return self.polarity


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
    copies: ClassVar[bool] = True

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
        return tuple(
            tuple((p - n) / self.denominator for p, n in zip(prow, nrow))
            for prow, nrow in zip(self.pos_ratios, self.neg_ratios)
        )


@dataclass(frozen=True)
class BiasArray(Stage):
    """DC currents into a summing node (positive: sourced, negative: sunk)."""

    values: tuple = ()
    kind: ClassVar[str] = "bias_array"
    produces: ClassVar[bool] = True
    CURRENTS: ClassVar[tuple] = ("values",)

    def check(self) -> None:
        self._vector("values")


@dataclass(frozen=True)
class Bistable(Stage):
    """Bistable memory cells (FQ-BMRU): per unit a Schmitt trigger on its input current.

    The threshold has one name per meaning: `thresh` is the input current at which a unit sets
    (the model's beta_hi = beta_lo + delta; after `program_cells`, what the programmed cell realises), and it
    resets below `thresh - width`; its output is `gain` (= alpha) when set, 0 when reset. The bias
    currents that realise them are `programmed` (set by `program_cells`): I_thresh is `programmed.thresh`.
    The cell's circuit facts (ports, shared bias, limits, power) are `facts` (cells/bistable.py).
    """

    thresh: tuple = ()
    width: tuple = ()
    gain: tuple = ()
    programmed: Programmed | None = None
    phase: int = 0  # set by `schedule_phases`: its slot in the frame (1, 2, ...); 0 runs free
    kind: ClassVar[str] = "bistable"
    produces: ClassVar[bool] = True
    receives: ClassVar[bool] = True
    memory: ClassVar[bool] = True
    facts: ClassVar[MemoryCell] = bistable.FACTS
    CURRENTS: ClassVar[tuple] = ("thresh", "width", "gain")
    RECORDS: ClassVar[dict] = {"programmed": Programmed}

    def check(self) -> None:
        for name in ("thresh", "width", "gain"):
            self._vector(name, nonneg=True)
        for k, (t, w) in enumerate(zip(self.thresh, self.width)):
            if w > t:
                raise IRError(
                    f"stage {self.name!r}: unit {k} has width {w} above its threshold {t}; "
                    "the reset level thresh - width would be negative"
                )
        if not isinstance(self.phase, int) or self.phase < 0:
            raise IRError(f"stage {self.name!r}: phase must be a non-negative integer, got {self.phase!r}")
        if self.programmed is not None:
            self.programmed.check(self.name, self.size)

    @property
    def top_level(self) -> int:
        """The highest level a unit holds (a bistable unit: 1, set)."""
        return 1

    def supply_bias(self) -> dict:
        """The per-unit currents its facts' `supply_current` takes: the programmed bias currents."""
        return {field: self.programmed[field] for field in PROGRAMMED}


@dataclass(frozen=True)
class Ladder(Bistable):
    """FQ-CMRU units (cells/cmru.py): per unit a ladder of `levels` bistable stages gated through DPIs.

    The level steps up by one per frame whose input exceeds `thresh`, down by one below `thresh - width`,
    and holds otherwise; the output sinks level * `gain`. The stage thresholds are a bistable cell's, so
    every Bistable pass applies; `ladder` (set by `lower_cmru`) holds per unit the DPI and gating design.
    """

    levels: int = 2
    ladder: LadderDesign | None = None
    kind: ClassVar[str] = "cmru"
    facts: ClassVar[MemoryCell] = cmru.FACTS
    RECORDS: ClassVar[dict] = {"programmed": Programmed, "ladder": LadderDesign}

    def check(self) -> None:
        super().check()
        if not isinstance(self.levels, int) or self.levels < 2:
            raise IRError(f"stage {self.name!r}: levels must be an integer >= 2, got {self.levels!r}")
        if self.ladder is not None:
            self.ladder.check(self.name, self.size)

    @property
    def top_level(self) -> int:
        return self.levels

    def supply_bias(self) -> dict:
        """The programmed currents and, once designed, each ladder's levels, I_x and pin current."""
        bias = super().supply_bias()
        if self.ladder is not None:
            pin = tuple(n * x for n, x in zip(self.ladder.n_pin, self.ladder.I_x))
            bias.update(levels=self.levels, x=self.ladder.I_x, pin=pin)
        return bias


@dataclass(frozen=True)
class CurrentOutput(Stage):
    """Output pins held at a fixed voltage; the current into each is the output (may be signed).

    `pooling` is 'none' (per-frame outputs) or 'mean_time' (a classifier: mean over frames).
    `polarity` is the direction the pins take, as a Receiver's: 'n' sourced currents (the readout),
    'p' sunk ones (a simulation partition's stand-in for a pfet receiver, flows/partition.py).
    `diode` (a partition's stand-in only): (unit devices, W, L in um) of the receiver diode each pin
    flows into instead of the fixed voltage, so the currents into it see the receiver's own voltage.
    """

    pooling: str = "none"
    polarity: str = "n"
    diode: tuple = ()
    kind: ClassVar[str] = "current_output"
    receives: ClassVar[bool] = True

    def check(self) -> None:
        if self.pooling not in ("none", "mean_time"):
            raise IRError(f"stage {self.name!r}: pooling must be 'none' or 'mean_time'")
        if self.polarity not in ("n", "p"):
            raise IRError(f"stage {self.name!r}: polarity must be 'n' or 'p', not {self.polarity!r}")
        if self.diode and len(self.diode) != 3:
            raise IRError(f"stage {self.name!r}: diode must be (unit devices, W, L), not {self.diode!r}")

    @property
    def accepts(self) -> str:
        return self.polarity


@dataclass(frozen=True)
class BiasGenerator(Stage):
    """One reference current `i_ref` fanned out to every DC current of the circuit (its `taps`).

    Tap k delivers units/denominator * i_ref (a `Tap`: stage, field, unit, polarity, units), polarity
    'p' sourcing (pfet) or 'n' sinking (nfet). `size` is the number of taps. It has no edges: the
    netlist backend wires each tap to the port or node of its stage. `duplicate_reference` marks a
    simulation partition's copy of a reference another partition carries (flows/partition.py): a
    probed netlist leaves its fixed branches out of the bias block's supply.
    """

    i_ref: float = 0.0
    denominator: int = 1
    taps: tuple = ()
    duplicate_reference: bool = False
    kind: ClassVar[str] = "bias_generator"
    RECORDS: ClassVar[dict] = {"taps": _Taps}

    def check(self) -> None:
        if len(self.taps) != self.size:
            raise IRError(f"stage {self.name!r}: {len(self.taps)} taps for size {self.size}")
        for tap in self.taps:
            if tap.polarity not in ("p", "n") or not isinstance(tap.units, int) or tap.units < 1:
                raise IRError(f"stage {self.name!r}: malformed tap {tap!r}")

    def current(self, units: int) -> float:
        return units / self.denominator * self.i_ref


# Every stage kind by the name ir.json gives it: a new kind registers its class here.
STAGE_TYPES = {
    cls.kind: cls
    for cls in (CurrentInput, Receiver, WeightArray, BiasArray, Bistable, Ladder, CurrentOutput, BiasGenerator)
}


_NO_DEFAULT = object()


def for_kind(table: dict, stage: Stage, default=_NO_DEFAULT):
    """The entry of `table` (keyed by stage class) for a stage: its own kind's, else that of the nearest
    kind it extends (a Ladder is a Bistable unless the table says otherwise), else `default`."""
    for cls in type(stage).__mro__:
        if cls in table:
            return table[cls]
    if default is _NO_DEFAULT:
        raise KeyError(f"no entry for stage kind {stage.kind!r}")
    return default


@dataclass(frozen=True)
class Meta(Mapping):
    """The circuit-wide facts of an IR, each set once by the step that knows it (None: not yet).

    Read them as attributes. It is also a read-only mapping of the facts set so far, which is the
    "meta" of ir.json: the lowering's three are always there once lowered (`task` may be None)."""

    model: str | None = None  # lower: the checkpoint compiled
    graph: dict | None = None  # lower: its layer graph (the behavioural reference runs it)
    task: str | None = None  # lower: its task (None: the checkpoint names none)
    adjustments: list | None = None  # program_cells: every unit it clamped (stage, unit, reason, from, to)
    units: str | None = None  # scale_currents: "A" once currents are amperes
    i_unit: float | None = None  # scale_currents: amperes per software unit
    vdd: float | None = None  # scale_currents: the supply voltage
    calibrated: bool | None = None  # program_cells: whether the cells' calibration tables chose the currents
    sizing: list | None = None  # size_devices: receivers whose mirrors miss the mismatch budget
    phases: int | None = None  # schedule_phases: layers of memory cells, each with its slot
    frame_period: float | None = None  # choose_frame: seconds per input frame
    settling: dict | None = None  # check_settling: the settling estimate of the signal nodes
    LOWERED: ClassVar[tuple] = ("model", "graph", "task")

    def _present(self) -> list[str]:
        lowered = self.graph is not None
        return [
            f.name
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None or (lowered and f.name in self.LOWERED)
        ]

    def __getitem__(self, key: str):
        if key not in self._present():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self._present())

    def __len__(self) -> int:
        return len(self._present())

    def replace(self, **values) -> "Meta":
        return dataclasses.replace(self, **values)

    @classmethod
    def load(cls, value) -> "Meta":
        if isinstance(value, cls):
            return value
        unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise IRError(f"unknown meta entries {sorted(unknown)[:5]}")
        return cls(**value)


@dataclass(frozen=True)
class IR:
    """Stages in dataflow order, edges (src, dst) and circuit-wide facts (`meta`)."""

    stages: tuple
    edges: tuple
    meta: Meta = dataclasses.field(default_factory=Meta)

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "edges", tuple(tuple(e) for e in self.edges))
        object.__setattr__(self, "meta", Meta.load(self.meta))
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
            mirrors = a.signal and b.copies  # b copies a's signal
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

    def memory_cells(self) -> list:
        """The memory-cell stages, in dataflow order."""
        return [s for s in self.stages if s.memory]

    def readers(self, receiver: str) -> list:
        """The weight arrays that copy a receiver's signal (its only successors)."""
        return [self.stage(n) for n in self.successors(receiver)]

    def shared_biases(self) -> dict[str, SharedBias]:
        """The chip-wide biases the memory cells share (their cells' facts), by tap name, in order of use."""
        return {cell.facts.shared.tap: cell.facts.shared for cell in self.memory_cells() if cell.facts.shared}

    def replace_stages(self, new: dict) -> "IR":
        """A copy with some stages (by name) replaced."""
        return IR(tuple(new.get(s.name, s) for s in self.stages), self.edges, self.meta)

    def with_meta(self, **values) -> "IR":
        return IR(self.stages, self.edges, self.meta.replace(**values))

    def to_dict(self) -> dict:
        return {
            "stages": [s.to_dict() for s in self.stages],
            "edges": [list(e) for e in self.edges],
            "meta": _plain(dict(self.meta)),
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
