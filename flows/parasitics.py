"""`python -m compiler extract DIR`: the wiring capacitance of every net of a build's layout, as an
extracted netlist (DIR/netlist_extracted/) that `verify --post-layout` simulates.

The layout is hierarchical and every instance of a subcircuit has the same drawing, so each subcircuit's
GDS cell (layout/cell_names.json) is extracted once with the LVS extraction (flows/lvs.py) and compared
with its `.subckt`; the cross-reference names each layout net. A net's capacitance to the substrate is,
per conducting layer of sky130/parasitics.yaml, area x area capacitance + perimeter x fringe capacitance
of its shapes drawn in that cell (shapes inside the instances of other subcircuits belong to those), less
what the device models already hold (the gates, the MIM plates). It goes into the subcircuit as
`Cpar_<net> <net> 0 C`, so every instance carries it. Coupling between nets (one wire crossing another)
is measured and reported, not added: see `coupling` in DIR/reports/parasitics.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from compiler.backends.spice import TOP
from compiler.foundation.data import sky130_file, write_text_atomically
from compiler.foundation.errors import LayoutMissing, RuleTableError, SchematicMissing, UsageError
from flows import lvs
from flows.gds import find_gds, load_layer_map, load_layout, read_yaml

PARASITICS_PATH = sky130_file("parasitics.yaml")
EXTRACTED = "netlist_extracted"  # DIR/netlist_extracted/: the netlist with the wiring capacitors
REPORT = Path("reports") / "parasitics"  # .md and .json
COUPLING_LISTED = 10
_SUBCKT = re.compile(r"(?ms)^\.subckt\s+(\S+).*?^\.ends\b[^\n]*\n?")


class ParasiticsTableError(RuleTableError):
    """sky130/parasitics.yaml cannot be read or names a layer the layer map lacks."""


class LayoutDoesNotMatch(UsageError):
    """A subcircuit's layout does not match its netlist: its nets cannot be named."""


@dataclass
class Extraction:
    """Per-net wiring capacitance: rows {"cell", "net", "fF", "by_layer": {layer: fF}}, the largest
    couplings {"cell", "nets", "layers", "fF"}, and the seconds it took."""

    nets: list = field(default_factory=list)
    coupling: list = field(default_factory=list)
    threshold_fF: float = 0.0
    seconds: float = 0.0

    def of(self, cell: str) -> dict:
        """net -> fF of one subcircuit, at or above the threshold."""
        return {r["net"]: r["fF"] for r in self.nets if r["cell"] == cell and r["fF"] >= self.threshold_fF}

    @property
    def total_fF(self) -> float:
        return sum(r["fF"] for r in self.nets)


def load_parasitics(path: Path | str = PARASITICS_PATH, layer_map=None) -> dict:
    path = Path(path)
    layer_map = layer_map or load_layer_map()
    try:
        table = read_yaml(path)
        layers = list(table["substrate"]) + [n for v in table["exclude"].values() for n in v]
        layers += [n for upper, lower in table["overlap"].items() for n in [upper, *lower]]
        for spec in table["substrate"].values():
            float(spec["area"]), float(spec["perimeter"])
        float(table["threshold_fF"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ParasiticsTableError(
            f"cannot read the parasitics table {path} ({type(error).__name__}: {error}); it needs `substrate:` "
            "layer: {area, perimeter}, `overlap:`, `exclude:` and `threshold_fF:`."
        ) from None
    unknown = sorted({n for n in layers if n not in layer_map.drawing})
    if unknown:
        raise ParasiticsTableError(f"{path} names layers {unknown} that sky130/layers.yaml does not define.")
    return table


def subckts(text: str) -> dict:
    """name -> the `.subckt ... .ends` block of a SPICE text."""
    return {m.group(1).lower(): m.group(0) for m in _SUBCKT.finditer(text)}


def _used(name: str, blocks: dict) -> list:
    """The block of `name` and of every subcircuit it instantiates (X lines), deepest first."""
    seen, order = set(), []

    def visit(n):
        if n in seen or n not in blocks:
            return
        seen.add(n)
        for line in blocks[n].splitlines():
            if line[:1].lower() == "x":
                visit(next((t for t in reversed(line.split()) if "=" not in t), "").lower())
        order.append(blocks[n])

    visit(name)
    return order


def extract_parasitics(directory, table_path=PARASITICS_PATH) -> Extraction:
    """The wiring capacitance of every net of every subcircuit of a build (see the module docstring)."""
    start = time.perf_counter()
    directory = Path(directory)
    layer_map = load_layer_map()
    table = load_parasitics(table_path, layer_map)
    netlist = [directory / "netlist" / name for name in lvs.SCHEMATIC_FILES]
    for path in netlist:
        if not path.is_file():
            raise SchematicMissing(
                f"{path} does not exist; build first (`python -m compiler build MODEL.ckpt -o DIR`)."
            )
    layout, top = load_layout(find_gds(directory))
    names = directory / "layout" / "cell_names.json"
    if not names.is_file():
        raise LayoutMissing(f"{names} does not exist; rebuild with `python -m compiler build` (it writes it).")
    cells = {gds: sub.lower() for gds, sub in json.loads(names.read_text()).items()}
    blocks = subckts(netlist[0].read_text())
    laid_out = {g: s for g, s in cells.items() if s in blocks or s == TOP}  # not the device cells inside them
    result = Extraction(threshold_fF=float(table["threshold_fF"]))
    with tempfile.TemporaryDirectory() as scratch:
        for name in sorted(blocks):
            gds = [g for g, s in cells.items() if s == name and layout.cell(g) is not None]
            if not gds:
                raise LayoutMissing(f"{find_gds(directory)} has no cell for the subcircuit {name}; rebuild the layout.")
            text = Path(scratch) / f"{name}.spice"
            text.write_text("".join(_used(name, blocks)))
            _cell(layout, layout.cell(gds[0]), [text], name, laid_out, table, layer_map, result)
        _cell(layout, top, netlist, TOP, laid_out, table, layer_map, result)
    result.coupling = sorted(result.coupling, key=lambda c: -c["fF"])[:COUPLING_LISTED]
    result.seconds = time.perf_counter() - start
    return result


def extract_cell(layout, cell, schematic, name: str, table_path=PARASITICS_PATH) -> Extraction:
    """The wiring capacitance of one cell of a layout in memory, its nets named by the subcircuit `name` of
    the SPICE files `schematic` (a cell with no subcircuit instances inside: a hand-drawn one)."""
    layer_map = load_layer_map()
    table = load_parasitics(table_path, layer_map)
    result = Extraction(threshold_fF=float(table["threshold_fF"]))
    _cell(layout, cell, schematic, name, {}, table, layer_map, result)
    return result


def _cell(layout, cell, schematic, name: str, cells: dict, table: dict, layer_map, result: Extraction) -> None:
    """Extract one subcircuit's cell, name its nets by the LVS cross-reference, add its rows to `result`
    (`cells`: GDS cell -> the subcircuit it draws)."""
    import klayout.db as kdb

    compared, extraction = lvs.compare(layout, cell, schematic, name)
    if not compared.match:
        raise LayoutDoesNotMatch(
            f"the layout cell {cell.name} does not match the subcircuit {name} ({len(compared.issues)} items "
            "differ), so its nets cannot be named; run `python -m compiler lvs DIR` to see where."
        )
    dbu = layout.dbu
    others = [layout.cell(g).cell_index() for g, s in cells.items() if s != name and layout.cell(g) is not None]

    def drawn(layer: str, only=None):
        """The cell's shapes on `layer` (with `only`: those inside its instances of these cells)."""
        index = layout.find_layer(*layer_map[layer])
        if index is None:
            return kdb.Region()
        if only is None:
            return kdb.Region(kdb.RecursiveShapeIterator(layout, cell, index)).merged()
        instances, inside = kdb.RecursiveInstanceIterator(layout, cell), kdb.Region()
        instances.targets = only
        while not instances.at_end():
            child = layout.cell(instances.inst_cell().cell_index())
            shapes = kdb.Region(kdb.RecursiveShapeIterator(layout, child, index))
            inside += shapes.transformed(instances.trans() * instances.inst_trans())
            instances.next()
        return inside.merged()

    # what is not this cell's wire: other subcircuits' drawings, and the device areas of `exclude`
    skip = {
        layer: drawn(layer, others) + sum((drawn(x) for x in table["exclude"].get(layer, [])), kdb.Region())
        for layer in table["substrate"]
    }
    xref = extraction.xref()
    wires = {}  # layer -> [(net, region)]
    for pair in xref.each_circuit_pair():
        for net_pair in xref.each_net_pair(pair):
            ours, theirs = net_pair.first(), net_pair.second()
            if ours is None or theirs is None or "." in theirs.name or theirs.name.lower() == layer_map.ground:
                continue  # a net of a flattened instance is its own subcircuit's; ground carries no capacitor
            net, by_layer = theirs.name.lower().split(",")[0], {}  # nets joined by a 0 V probe: either name
            for layer, spec in table["substrate"].items():
                region = (extraction.shapes_of_net(ours, extraction.layer_by_name(layer), True) - skip[layer]).merged()
                if region.is_empty():
                    continue
                wires.setdefault(layer, []).append((net, region))
                aF = region.area() * dbu**2 * spec["area"] + region.perimeter() * dbu * spec["perimeter"]
                by_layer[layer] = round(aF * 1e-3, 5)
            if by_layer:
                result.nets.append(
                    {"cell": name, "net": net, "fF": round(sum(by_layer.values()), 5), "by_layer": by_layer}
                )
    result.coupling += _coupling(wires, table["overlap"], dbu, name)


def _coupling(wires: dict, overlap: dict, dbu: float, name: str) -> list:
    """Where one net's wire crosses another's on a lower layer: {"cell", "nets", "layers", "fF"}, summed per
    pair of nets."""
    import klayout.db as kdb

    pairs: dict = {}
    for upper, lowers in overlap.items():
        for lower, aF_per_um2 in lowers.items():
            below = wires.get(lower, [])
            everything = sum((r for _, r in below), kdb.Region()) if below else None
            for a, region in wires.get(upper, []):
                crossing = region & everything if everything is not None else None
                if crossing is None or crossing.is_empty():
                    continue
                box = crossing.bbox()
                for b, under in below:
                    if a == b or not under.bbox().overlaps(box):
                        continue
                    area = (crossing & under).area() * dbu**2
                    if area:
                        key = (*sorted((a, b)),)
                        fF, layers = pairs.get(key, (0.0, set()))
                        pairs[key] = (fF + area * aF_per_um2 * 1e-3, layers | {f"{upper}/{lower}"})
    return [{"cell": name, "nets": list(k), "layers": sorted(v[1]), "fF": round(v[0], 4)} for k, v in pairs.items()]


def annotate(netlist_dir: Path, extraction: Extraction) -> None:
    """Add each subcircuit's wiring capacitors (`Cpar_<net> <net> 0 <C>`) to cells.spice and network.spice
    of `netlist_dir`, in place, before the subcircuit's `.ends`."""
    for name in lvs.SCHEMATIC_FILES:
        path = Path(netlist_dir) / name
        text = path.read_text()

        def with_caps(match):
            caps = extraction.of(match.group(1).lower())
            lines = [f"Cpar_{net} {net} 0 {fF:.5g}f" for net, fF in sorted(caps.items())]
            block = match.group(0)
            at = block.rfind(".ends")
            header = "* wiring capacitance extracted from the layout (flows/parasitics.py)\n" if lines else ""
            return block[:at] + header + "".join(line + "\n" for line in lines) + block[at:]

        write_text_atomically(path, _SUBCKT.sub(with_caps, text))


def write_extracted(directory) -> Extraction:
    """DIR/netlist_extracted/ (the build's netlist with the wiring capacitors) and DIR/reports/parasitics.md
    and .json; the folder is replaced whole, so it is never half written."""
    directory = Path(directory)
    extraction = extract_parasitics(directory)
    out = directory / EXTRACTED
    scratch = Path(tempfile.mkdtemp(dir=directory, prefix=f".{EXTRACTED}.tmp-"))
    try:
        shutil.copytree(directory / "netlist", scratch, dirs_exist_ok=True)
        annotate(scratch, extraction)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(scratch, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (directory / REPORT).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(
        (directory / REPORT).with_suffix(".json"), json.dumps(_json(extraction), indent=1, sort_keys=True) + "\n"
    )
    write_text_atomically((directory / REPORT).with_suffix(".md"), markdown(extraction))
    return extraction


def _json(extraction: Extraction) -> dict:
    return {
        "source": "sky130/parasitics.yaml (the open_pdks sky130A Magic technology file, extract section)",
        "total_fF": round(extraction.total_fF, 4),
        "threshold_fF": extraction.threshold_fF,
        "nets": sorted(extraction.nets, key=lambda r: (r["cell"], r["net"])),
        "largest_coupling": extraction.coupling,
        "seconds": round(extraction.seconds, 2),
    }


def markdown(extraction: Extraction) -> str:
    rows = sorted(extraction.nets, key=lambda r: -r["fF"])
    layers = sorted({layer for r in rows for layer in r["by_layer"]})
    lines = [
        "# Wiring capacitance extracted from the layout",
        "",
        f"{len(rows)} nets, {extraction.total_fF:.2f} fF in all (once per subcircuit: every instance carries its "
        f"subcircuit's); nets under {extraction.threshold_fF:g} fF get no capacitor. Capacitance to the substrate "
        "per layer (area and fringe), from sky130/parasitics.yaml.",
        "",
        "| cell | net | fF | " + " | ".join(layers) + " |",
        "|---|---|---|" + "---|" * len(layers),
    ]
    lines += [
        f"| {r['cell']} | {r['net']} | {r['fF']:.3f} | "
        + " | ".join(f"{r['by_layer'][x]:.3f}" if x in r["by_layer"] else "" for x in layers)
        + " |"
        for r in rows
    ]
    lines += [
        "",
        "## Largest coupling between two nets (wire over wire; not in the extracted netlist)",
        "",
        "| cell | nets | layers | fF |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c['cell']} | {' / '.join(c['nets'])} | {', '.join(c['layers'])} | {c['fF']:.4f} |"
        for c in extraction.coupling
    ]
    return "\n".join(lines) + "\n"


def add_arguments(parser) -> None:
    parser.add_argument("directory", help="a build directory with its layout (`python -m compiler build ...`)")


def run(args) -> int:
    extraction = write_extracted(args.directory)
    print(markdown(extraction), end="")
    print(
        f"extracted netlist: {Path(args.directory) / EXTRACTED}; reports: {Path(args.directory) / REPORT}.md, .json "
        f"({extraction.seconds:.2f} s)"
    )
    return 0
