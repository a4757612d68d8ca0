"""Antenna check of a build's layout with KLayout: the sky130 gate-to-metal ratios, layer by layer.

The rules are data (sky130/antenna.yaml: the open_pdks Magic technology's partial model). For each step
the connectivity grows by one layer, bottom up, and KLayout's `antenna_check` compares that layer's
effective area on each net (area, or perimeter times thickness) with the gate area the net reaches; a net
that reaches a source/drain or tap diffusion by then is tied down and exempt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import yaml

from compiler.foundation.data import sky130_file
from compiler.foundation.errors import RuleTableError
from flows import gds
from flows.gds import LOCATIONS_KEPT, Layers, Tally, box_um

RULES_PATH = sky130_file("antenna.yaml")


@dataclass(frozen=True)
class Step:
    layer: str
    below: tuple
    style: str  # "sidewall" or "surface"
    ratio: float
    thickness: float = 0.0  # um, sidewall only


@dataclass
class AntennaResult(Tally):
    gds: str
    top: str
    steps: tuple
    violations: dict  # layer -> metal polygons over the ratio
    locations: dict  # layer -> [[x1, y1, x2, y2] um]
    seconds: float = 0.0


def load_steps(path=RULES_PATH, layer_map=None) -> tuple[tuple, dict]:
    """The steps and derived layers of the antenna table, each layer checked against the layer map."""
    try:
        data = gds.read_yaml(path)
        derived = dict(data["derived"])
        steps = tuple(Step(**{**entry, "below": tuple(entry["below"])}) for entry in data["steps"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise RuleTableError(f"cannot read the antenna table {path}: {error}") from error
    layer_map = layer_map or gds.load_layer_map()
    for step in steps:
        if step.style not in ("sidewall", "surface") or (step.style == "sidewall") != (step.thickness > 0):
            raise RuleTableError(f"{path}: step {step.layer}: style sidewall takes a thickness, surface none.")
        for name in (step.layer, *step.below):
            gds.check_layer(name, derived, layer_map, f"{path}: step {step.layer}")
    return steps, derived


def run_antenna(target, *, top: str | None = None, path=RULES_PATH) -> AntennaResult:
    """Check a build directory's layout/top.gds (or a GDS file) against every step of the table."""
    import klayout.db as kdb

    start = time.perf_counter()
    path_gds = gds.find_gds(target)
    layer_map = gds.load_layer_map()
    steps, derived = load_steps(path, layer_map)
    layout, cell = gds.load_layout(path_gds, top)
    violations, locations = {}, {}
    for k, step in enumerate(steps):
        l2n = kdb.LayoutToNetlist(kdb.RecursiveShapeIterator(layout, cell, []))

        def base(name, l2n=l2n):
            index = layout.find_layer(*layer_map[name])
            return l2n.make_layer(index, name) if index is not None else l2n.make_layer(name)

        layers = Layers(base, derived, layout.dbu)
        for name in derived:
            l2n.register(layers[name], name)
        for earlier in steps[: k + 1]:
            l2n.connect(layers[earlier.layer])
            for below in earlier.below:
                l2n.connect(layers[below])
                l2n.connect(layers[below], layers[earlier.layer])
        l2n.extract_netlist()
        area, perimeter = (0.0, step.thickness) if step.style == "sidewall" else (1.0, 0.0)  # um
        found = l2n.antenna_check(
            layers["gate"], 1.0, 0.0, layers[step.layer], area, perimeter, step.ratio, [layers["tiedown"]]
        )
        boxes = sorted(box_um(polygon.bbox(), layout.dbu) for polygon in found.each_merged())
        violations[step.layer] = len(boxes)
        locations[step.layer] = boxes[:LOCATIONS_KEPT]
    return AntennaResult(str(path_gds), cell.name, steps, violations, locations, time.perf_counter() - start)


def markdown(result: AntennaResult) -> str:
    lines = [
        f"## Antenna ({len(result.steps)} steps, sky130/antenna.yaml)",
        "",
        "**clean**." if result.clean else f"**{result.total} violating shapes**.",
        "",
    ]
    failing = [s for s in result.steps if result.violations[s.layer]]
    if failing:
        lines += ["| layer | style | ratio | shapes | first locations (um) |", "|---|---|---|---|---|"]
        for s in failing:
            where = "; ".join(", ".join(f"{v:g}" for v in box) for box in result.locations[s.layer][:3])
            lines.append(f"| {s.layer} | {s.style} | {s.ratio:g} | {result.violations[s.layer]} | {where} |")
    return "\n".join(lines) + "\n"
