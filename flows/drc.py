"""`python -m compiler drc DIR`: design-rule check of a build's layout, first against the project's rule table
with KLayout's Python module (a fast pre-check), then the antenna ratios (flows/antenna.py), then the
official KLayout decks in batch (flows/signoff.py: the open_pdks deck with FEOL, BEOL and OFFGRID on, and
the shuttle precheck deck).

The table is data (sky130/drc_rules.yaml: PDK rule name, kind, layers, value in um); this module only knows
how to evaluate each kind of rule on KLayout regions. `--deck` picks the checks (table, antenna, open_pdks,
precheck; default all). A deck that cannot run (no klayout program, no deck) is reported as not run, with
why and how to get it; with `--require-signoff`, or when named with `--deck`, that is SignoffUnavailable
instead. Results go to DIR/drc/: `report.lyrdb` (the table's markers), `open_pdks.lyrdb` and
`precheck.lyrdb` (each deck's, with its log), `report.md` and `report.json` (per check and rule: marker
counts and the first locations). Exit status: 0 when every check that ran is clean, 1 on any marker, 2 for
bad input.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from compiler.foundation.data import sky130_file
from compiler.foundation.errors import RuleTableError
from flows import signoff
from flows.antenna import AntennaResult, run_antenna
from flows.antenna import markdown as antenna_markdown
from flows.gds import (
    LOCATIONS_KEPT,
    LayerMap,
    Layers,
    Tally,
    box_um,
    check_layer,
    find_gds,
    load_layer_map,
    load_layout,
    read_yaml,
)

RULES_PATH = sky130_file("drc_rules.yaml")
KINDS = {  # kind -> number of layers it takes
    "width": 1,
    "space": 1,
    "wide_space": 1,
    "isolated": 1,
    "separation": 2,
    "enclosure": 2,
    "enclosure_adjacent": 2,
    "extension": 2,
    "edge_length": 2,
    "exact_size": 1,
    "area": 1,
    "covered": 2,
    "contains": 2,
    "forbidden": 1,
    "grid": None,
    "orthogonal": None,  # any number of layers
}
OFFICIAL = ("open_pdks", "precheck")  # the official KLayout decks (flows/signoff.py)
CHECKS = ("table", "antenna") + OFFICIAL  # antenna: flows/antenna.py
HUGE = 10**12  # an upper bound in database units


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    layers: tuple
    value: float
    description: str
    metrics: str = "euclidian"
    overlap: str = "allowed"  # separation: "forbidden" also flags a AND b
    touching: str = "forbidden"  # separation: "allowed" ignores abutting edges
    except_on: str | None = None  # enclosure: drop inner edges on this layer's boundary; isolated: gaps on it
    wide: float | None = None  # wide_space: the width (um) above which a shape is wide


@dataclass(frozen=True)
class RuleTable:
    rules: tuple
    derived: dict
    source: str


def load_rules(path: Path | str = RULES_PATH, layer_map: LayerMap | None = None) -> RuleTable:
    """The rule table, checked against the layer map: every layer a rule names must be drawable."""
    path = Path(path)
    try:
        data = read_yaml(path)
        derived = dict(data.get("derived", {}))
        rules = tuple(Rule(**{**entry, "layers": tuple(entry["layers"])}) for entry in data["rules"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise RuleTableError(f"cannot read the rule table {path}: {error}") from error
    layer_map = layer_map or load_layer_map()
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise RuleTableError(f"{path}: rule names repeat ({sorted({n for n in names if names.count(n) > 1})}).")
    for rule in rules:
        if rule.kind not in KINDS or KINDS[rule.kind] not in (None, len(rule.layers)):
            raise RuleTableError(
                f"{path}: rule {rule.name} has kind {rule.kind!r} with {len(rule.layers)} layers; "
                f"kinds and their layer counts: {KINDS}."
            )
        if (rule.kind == "wide_space") != (rule.wide is not None):
            raise RuleTableError(f"{path}: rule {rule.name}: `wide` (um) goes with kind wide_space, and only there.")
        for name in rule.layers + ((rule.except_on,) if rule.except_on else ()):
            check_layer(name, derived, layer_map, f"{path}: rule {rule.name}")
    return RuleTable(rules, derived, str(data.get("source", "")))


def check(rule: Rule, layers: Layers, dbu: float) -> list:
    """The markers (KLayout EdgePairs, Edges or Region) of one rule's violations."""
    import klayout.db as kdb

    d = round(rule.value / dbu)
    if rule.kind == "grid":
        return [layers[name].grid_check(d, d) for name in rule.layers]
    if rule.kind == "orthogonal":
        return [layers[name].edges().with_angle(kdb.Edges.OrthoEdges, True) for name in rule.layers]
    metrics = kdb.Region.Projection if rule.metrics == "projection" else kdb.Region.Euclidian
    a = layers[rule.layers[0]]
    b = layers[rule.layers[1]] if len(rule.layers) > 1 else None
    kind = rule.kind
    if kind == "width":
        return [a.width_check(d, metrics=metrics)]
    if kind == "space":
        return [a.space_check(d, metrics=metrics)]
    if kind == "wide_space":
        return [_wide_space(a, d, round(rule.wide / 2 / dbu), metrics)]
    if kind == "isolated":
        pairs = a.isolated_check(d, metrics=metrics)
        return [pairs.polygons() - layers[rule.except_on]] if rule.except_on else [pairs]
    if kind == "separation":
        pairs = a.separation_check(b, d, metrics=metrics)
        if rule.touching == "allowed":
            pairs = pairs.with_distance(1, HUGE, False)
        return [pairs] + ([a & b] if rule.overlap == "forbidden" else [])
    if kind == "enclosure":
        pairs = a.enclosing_check(b, d, metrics=metrics)
        if rule.except_on:
            pairs = _drop_edges_on(pairs, layers[rule.except_on])
        return [pairs, b - a]
    if kind == "enclosure_adjacent":
        short = a.enclosing_check(b, d, metrics=kdb.Region.Projection).second_edges()
        return [b.interacting(short.with_angle(0, False)).interacting(short.with_angle(90, False))]
    if kind == "extension":
        boundary = (a & b).edges() & b.edges()
        return [a.edges().enclosing_check(boundary, d, metrics=kdb.Region.Projection)]
    if kind == "edge_length":
        return [(a.edges() & b.edges()).with_length(0, d, False)]
    if kind == "exact_size":
        rects = a.rectangles()
        return [a.non_rectangles() + rects.with_bbox_width(d, True) + rects.with_bbox_height(d, True)]
    if kind == "area":
        return [a.with_area(0, round(rule.value / dbu**2), False)]
    if kind == "covered":
        return [a - b]
    if kind == "contains":
        return [a.not_covering(b)]
    return [a]  # forbidden


def _wide_space(region, d: int, half: int, metrics):
    """Edge pairs closer than d with at least one edge on a part of `region` wider than 2 * half (the part
    a square of that side fits in), as the shuttle precheck deck computes its wide-metal spacing."""
    wide = region.sized(-half).sized(half) & region
    narrow_edges = region.edges() - wide
    wide_edges = wide.edges().outside_part(region.merged())
    return wide_edges.separation_check(narrow_edges, d, metrics=metrics) + wide_edges.space_check(d, metrics=metrics)


def _drop_edges_on(pairs, region):
    """Edge pairs whose inner edge does not lie on `region`'s boundary (a butting edge is exempt)."""
    import klayout.db as kdb

    if pairs.is_empty() or region.is_empty():
        return pairs
    pairs, region = pairs.dup().flatten(), region.dup().flatten()
    on = {_key(e) for e in (pairs.second_edges() & region.edges()).each()}
    return kdb.EdgePairs([p for p in pairs.each() if _key(p.second) not in on])


def _key(edge) -> tuple:
    return tuple(sorted(((edge.p1.x, edge.p1.y), (edge.p2.x, edge.p2.y))))


@dataclass
class DrcResult(Tally):
    gds: str
    top: str
    violations: dict  # rule name -> count
    locations: dict  # rule name -> [[x1, y1, x2, y2] in um, ...] (sorted, at most LOCATIONS_KEPT)
    rules: tuple
    seconds: float


@dataclass
class Checked:
    """What one `drc` run checked: the table's result (None when not asked for), the official decks that ran
    and those that could not run."""

    gds: str
    top: str
    table: DrcResult | None
    antenna: AntennaResult | None = None
    runs: list = field(default_factory=list)  # signoff.DeckRun
    skipped: list = field(default_factory=list)  # signoff.Tool, with the reason in .missing

    @property
    def total(self) -> int:
        own = sum(result.total for result in (self.table, self.antenna) if result is not None)
        return own + sum(run.total for run in self.runs)

    @property
    def clean(self) -> bool:
        return self.total == 0


def run_drc(
    target, out_dir=None, *, rules_path=RULES_PATH, layer_map_path=None, top: str | None = None, only=None
) -> DrcResult:
    """Check a build directory (its layout/top.gds) or one GDS file against the rule table; write reports
    when `out_dir` is given. `only` names the rules to run (default: all of the table)."""
    start = time.perf_counter()
    result, drawn = _check_table(find_gds(target), rules_path, layer_map_path, top, only)
    if out_dir is not None:
        write_reports(Checked(result.gds, result.top, result), Path(out_dir), drawn)
    result.seconds = time.perf_counter() - start
    return result


def _check_table(gds: Path, rules_path, layer_map_path, top: str | None, only):
    """(DrcResult, (markers by rule, layout, top cell, the shape store the markers live in)) of the rule
    table on `gds`."""
    import klayout.db as kdb

    start = time.perf_counter()
    layer_map = load_layer_map(layer_map_path) if layer_map_path else load_layer_map()
    table = load_rules(rules_path, layer_map)
    if only:
        unknown = sorted(set(only) - {rule.name for rule in table.rules})
        if unknown:
            raise RuleTableError(f"no rule named {', '.join(unknown)} in {rules_path}.")
        table = RuleTable(tuple(r for r in table.rules if r.name in set(only)), table.derived, table.source)
    layout, cell = load_layout(gds, top)
    # hierarchical regions when there is a hierarchy (a cell placed a thousand times is checked once),
    # flat ones for a single cell, where the hierarchical machinery only costs time
    store = kdb.DeepShapeStore() if cell.child_cells() else None
    dbu = layout.dbu
    layers = Layers(lambda name: _region(layout, cell, layer_map[name], store), table.derived, dbu)
    markers, violations, locations = {}, {}, {}
    for rule in table.rules:
        found = [marker.flatten() for marker in check(rule, layers, dbu)]
        markers[rule.name] = found
        boxes = sorted(box_um(shape.bbox(), dbu) for m in found for shape in _each(m))
        violations[rule.name] = len(boxes)
        locations[rule.name] = boxes[:LOCATIONS_KEPT]
    result = DrcResult(str(gds), cell.name, violations, locations, table.rules, time.perf_counter() - start)
    return result, (markers, layout, cell, store)


def run_checks(
    target, out_dir, *, decks=CHECKS, require_signoff=False, rules_path=RULES_PATH, top=None, only=None
) -> Checked:
    """The rule table (a fast pre-check), then the official KLayout decks among `decks`, on a build directory
    or GDS file; reports in `out_dir`. An official deck that cannot run is skipped and reported, or with
    `require_signoff` raises SignoffUnavailable before anything runs."""
    gds = find_gds(target)
    official = [tool for name, tool in signoff.drc_decks().items() if name in decks]
    signoff.require(official, require_signoff)
    table, extra = None, None
    if "table" in decks:
        table, extra = _check_table(gds, rules_path, None, top, only)
        top_name = table.top
    else:
        _layout, cell = load_layout(gds, top)  # the layout owns the cell: kept while its name is read
        top_name = cell.name
    checked = Checked(str(gds), top_name, table, skipped=[t for t in official if not t.available])
    if "antenna" in decks:
        checked.antenna = run_antenna(gds, top=top)
    out_dir = Path(out_dir)
    with signoff.scratch_beside(out_dir) as scratch:
        for tool in official:
            if tool.available:
                print(f"running the {tool.title} ({tool.source}) ...", flush=True)
                checked.runs.append(signoff.run_deck(tool, gds, top_name, Path(scratch)))
        write_reports(checked, out_dir, extra, Path(scratch))
    return checked


def _region(layout, cell, gds_layer, store):
    import klayout.db as kdb

    index = layout.find_layer(*gds_layer)
    if index is None:
        return kdb.Region()
    shapes = cell.begin_shapes_rec(index)
    return kdb.Region(shapes, store) if store is not None else kdb.Region(shapes)


def _each(marker):
    import klayout.db as kdb

    return marker.each_merged() if isinstance(marker, kdb.Region) else marker.each()


REPORTS = ("report.md", "report.json", "report.lyrdb") + tuple(
    f"{name}.{ext}" for name in OFFICIAL for ext in ("lyrdb", "log")
)


def write_reports(checked: Checked, out_dir: Path, table_markers=None, scratch: Path | None = None) -> None:
    """report.md, report.json and the .lyrdb of every check into `out_dir`, each renamed into place; the
    reports of checks not run this time are removed, so none is left from an earlier run."""
    if scratch is None:
        with signoff.scratch_beside(out_dir) as scratch:
            return write_reports(checked, out_dir, table_markers, Path(scratch))
    if checked.table is not None:
        _write_lyrdb(checked.table, table_markers, scratch / "report.lyrdb")
    (scratch / "report.json").write_text(json.dumps(_json(checked), indent=1, sort_keys=True) + "\n")
    (scratch / "report.md").write_text(markdown(checked))
    for name in REPORTS:
        if not (scratch / name).exists():
            (out_dir / name).unlink(missing_ok=True)
    signoff.publish(scratch, out_dir)


def _write_lyrdb(result: DrcResult, drawn: tuple, path: Path) -> None:
    import klayout.db as kdb
    import klayout.rdb as krdb

    markers, layout, cell, _store = drawn  # the store holds hierarchical markers' shapes: kept alive here
    database = krdb.ReportDatabase("DRC")
    database.description = f"sky130 DRC of {cell.name}"
    database.original_file = result.gds
    database.top_cell_name = cell.name
    rdb_cell = database.create_cell(cell.name)
    to_um = kdb.CplxTrans(layout.dbu)
    for rule in result.rules:
        category = database.create_category(rule.name)
        category.description = f"{rule.description} ({rule.kind} {rule.value:g} um)"
        for marker in markers[rule.name]:
            if isinstance(marker, kdb.Region):
                marker = marker.merged()
            if not marker.is_empty():
                database.create_items(rdb_cell.rdb_id(), category.rdb_id(), to_um, marker)
    database.save(str(path))


def _json(checked: Checked) -> dict:
    """The whole run; the table's rules at the top level as before, every check under `checks`."""
    data = {"gds": checked.gds, "top": checked.top, "clean": checked.clean, "markers": checked.total, "checks": {}}
    result = checked.table
    if result is not None:
        data.update(violations=result.total, rules_checked=len(result.rules))
        data["rules"] = {
            r.name: {
                "kind": r.kind,
                "layers": list(r.layers),
                "value_um": r.value,
                "description": r.description,
                "violations": result.violations[r.name],
                "locations_um": result.locations[r.name],
            }
            for r in result.rules
        }
        data["checks"]["table"] = {
            "ran": True,
            "source": "sky130/drc_rules.yaml",
            "markers": result.total,
            "rules_checked": len(result.rules),
            "seconds": round(result.seconds, 2),
            "report": "report.lyrdb",
        }
    if checked.antenna is not None:
        a = checked.antenna
        data["checks"]["antenna"] = {
            "ran": True,
            "source": "sky130/antenna.yaml",
            "markers": a.total,
            "seconds": round(a.seconds, 2),
            "layers": {
                layer: {"markers": n, "locations_um": a.locations[layer]} for layer, n in a.violations.items() if n
            },
        }
    for run in checked.runs:
        data["checks"][run.tool.name] = {
            "ran": True,
            "source": run.tool.source,
            "markers": run.total,
            "rules_checked": run.rules_checked,
            "seconds": round(run.seconds, 2),
            "report": run.report,
            "rules": {
                name: {"markers": n, "description": run.descriptions.get(name, ""), "locations": run.locations[name]}
                for name, n in sorted(run.markers.items())
                if n
            },
        }
    for tool in checked.skipped:
        data["checks"][tool.name] = {"ran": False, "skipped_because": tool.missing}
    return data


def markdown(checked: Checked) -> str:
    total = checked.total
    lines = [
        f"# DRC: {checked.top}",
        "",
        f"Layout `{checked.gds}`: "
        + ("**clean**" if checked.clean else f"**{total} marker{'s' if total != 1 else ''}**")
        + (" in every check that ran." if checked.skipped else "."),
        "",
        "| check | from | result | seconds | markers in |",
        "|---|---|---|---|---|",
    ]
    if checked.table is not None:
        t = checked.table
        lines.append(
            f"| project rule table ({len(t.rules)} rules) | sky130/drc_rules.yaml | {_verdict(t.total)} "
            f"| {t.seconds:.1f} | report.lyrdb |"
        )
    if checked.antenna is not None:
        a = checked.antenna
        lines.append(
            f"| antenna ratios ({len(a.steps)} layers) | sky130/antenna.yaml | {_verdict(a.total)} "
            f"| {a.seconds:.1f} | report.md |"
        )
    for run in checked.runs:
        lines.append(
            f"| {run.tool.title} ({run.rules_checked} rules) | {run.tool.source} | {_verdict(run.total)} "
            f"| {run.seconds:.1f} | {run.report} |"
        )
    for tool in checked.skipped:
        lines.append(f"| {tool.title} | - | **not run**: {tool.missing} | - | - |")
    if checked.table is not None and not checked.table.clean:
        lines += ["", "## Project rule table", ""] + _table_failures(checked.table)
    if checked.antenna is not None and not checked.antenna.clean:
        lines += ["", antenna_markdown(checked.antenna).rstrip("\n")]
    for run in checked.runs:
        if run.total:
            lines += ["", f"## {run.tool.title}", ""] + _deck_failures(run)
    if not checked.clean:
        lines += ["", "Every marker is in the .lyrdb files (KLayout: Tools > Marker Browser)."]
    return "\n".join(lines) + "\n"


def _verdict(markers: int) -> str:
    return "clean" if markers == 0 else f"**{markers} marker{'s' if markers != 1 else ''}**"


def _table_failures(result: DrcResult) -> list:
    lines = [
        "| rule | kind | layers | value (um) | violations | first locations (um: x1, y1, x2, y2) |",
        "|---|---|---|---|---|---|",
    ]
    for r in (r for r in result.rules if result.violations[r.name]):
        where = "; ".join(", ".join(f"{v:g}" for v in box) for box in result.locations[r.name][:3])
        lines.append(
            f"| {r.name} | {r.kind} | {', '.join(r.layers)} | {r.value:g} | {result.violations[r.name]} | {where} |"
        )
    return lines


def _deck_failures(run) -> list:
    lines = [
        "| rule | markers | the deck's description | first locations (cell: um x1, y1, x2, y2) |",
        "|---|---|---|---|",
    ]
    for name, n in sorted(run.markers.items()):
        if n:
            where = "; ".join(
                f"{at['cell']}: " + ", ".join(f"{v:g}" for v in at["box_um"]) for at in run.locations[name][:3]
            )
            lines.append(f"| {name} | {n} | {run.descriptions.get(name, '')} | {where} |")
    return lines


def add_arguments(parser) -> None:
    parser.add_argument("target", help="a build directory (checks layout/top.gds) or a GDS file")
    parser.add_argument("-o", "--out", default=None, help="report directory (default: DIR/drc, or next to the GDS)")
    parser.add_argument("--top", default=None, help="top cell to check (default: the file's only top cell)")
    parser.add_argument("--rules", default=str(RULES_PATH), help="rule table (default: sky130/drc_rules.yaml)")
    parser.add_argument(
        "--rule",
        action="append",
        default=None,
        metavar="NAME",
        help="run only this rule of the table (repeatable), e.g. --rule m1.2; without --deck, only the table runs",
    )
    parser.add_argument(
        "--deck",
        action="append",
        choices=("all",) + CHECKS,
        default=None,
        help="which checks to run (repeatable): the project's rule table, the antenna ratios, the official "
        "open_pdks or precheck KLayout deck, or all (default). A deck named here must run: exit 2 if it cannot",
    )
    parser.add_argument(
        "--require-signoff",
        action="store_true",
        help="exit 2 (SignoffUnavailable) when an official deck cannot run, instead of skipping it",
    )


def run(args) -> int:
    target = Path(args.target)
    gds = find_gds(target)
    out = (
        Path(args.out)
        if args.out
        else (target / "drc" if target.is_dir() else gds.with_suffix("").with_name(gds.stem + "_drc"))
    )
    named = args.deck or (["table"] if args.rule else ["all"])
    decks = CHECKS if "all" in named else tuple(named)
    required = args.require_signoff or "all" not in named
    start = time.perf_counter()
    checked = run_checks(
        target, out, decks=decks, require_signoff=required, rules_path=args.rules, top=args.top, only=args.rule
    )
    print(markdown(checked), end="")
    print(f"reports: {out}/report.md, report.json and the .lyrdb files ({time.perf_counter() - start:.2f} s)")
    return 0 if checked.clean else 1
