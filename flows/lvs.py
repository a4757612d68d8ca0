"""`python -m compiler lvs DIR`: layout versus schematic with KLayout (LayoutToNetlist + NetlistComparer),
then with netgen and the sky130A set-up (flows/netgen.py), the official comparison.

The layout's netlist is extracted with the device and connectivity table sky130/lvs.yaml; the schematic
is the built SPICE netlist (netlist/cells.spice + network.spice) read with a delegate that turns the
`X... sky130_fd_pr__*` model calls into devices (W times m), shorts the 0 V current probes and drops
ideal current sources. Both are flattened and their parallel devices combined before the comparison,
so how a mirror is split into fingers or subcircuits does not matter, while every device, its W and L
(or C) and every connection does. netgen compares the same two netlists, written as SPICE; without PDK_ROOT
(its set-up) or the netgen-lvs program it is reported as not run (`--require-signoff`: SignoffUnavailable).
Magic is reported as not run. Results go to DIR/lvs/: `report.lvsdb` (KLayout's LVS database), netgen's
files, `report.md`, `report.json`. Exit status 1 on a mismatch in either comparison, 2 for bad input.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from compiler.foundation.data import sky130_file
from compiler.foundation.errors import RuleTableError, SchematicMissing
from compiler.foundation.pdk import device_table
from flows import signoff
from flows.gds import LAYER_MAP_PATH, LayerMap, Layers, check_layer, find_gds, load_layer_map, load_layout, read_yaml
from flows.netgen import NetgenResult, run_netgen

EXTRACTION_PATH = sky130_file("lvs.yaml")
SCHEMATIC_FILES = ("cells.spice", "network.spice")  # under a build's netlist/
TOLERANCE = {"W": 0.001, "L": 0.001}  # um, absolute
C_RELATIVE_TOLERANCE = 0.001
ISSUES_KEPT = 30
REPORTS = ("report.md", "report.json", "report.lvsdb") + NetgenResult.files


@dataclass
class LvsResult:
    gds: str
    layout_top: str
    schematic_top: str
    match: bool  # KLayout's comparison
    devices: dict  # "layout"/"schematic" -> {device class: count after combining}
    nets: dict  # "layout"/"schematic" -> net count
    issues: list = field(default_factory=list)  # [{"kind", "status", "layout", "schematic"}]
    seconds: float = 0.0
    netgen: NetgenResult | None = None  # the official comparison, when it ran
    skipped: list = field(default_factory=list)  # signoff.Tool that could not run, the reason in .missing

    @property
    def clean(self) -> bool:
        """Every comparison that ran matched."""
        return self.match and (self.netgen is None or self.netgen.match)


def load_extraction(path: Path | str = EXTRACTION_PATH, layer_map: dict | None = None) -> dict:
    path = Path(path)
    try:
        table = read_yaml(path)
        derived = table["derived"]
        used = [n for d in table["devices"].values() for n in d["layers"].values()]
        used += table["conductors"] + [n for pair in table["connections"] for n in pair] + [table["substrate"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise RuleTableError(f"cannot read the extraction table {path}: {error}") from error
    with_bulk = LayerMap(dict(layer_map.drawing, bulk=None), {}, {})
    for name in used:
        check_layer(name, derived, with_bulk, f"{path}")
    for name, device in table["devices"].items():
        if device["extractor"] not in ("mos4", "capacitor"):
            raise RuleTableError(
                f"{path}: device {name} has extractor {device['extractor']!r}; known: mos4, capacitor."
            )
    return table


def extract(layout, cell, layer_map, table: dict, ground: str, combine: bool = True):
    """A LayoutVsSchematic object holding the extracted, flattened netlist of `cell`, its parallel devices
    combined unless `combine` is false (then every drawn unit stays a device, with its position)."""
    import klayout.db as kdb

    bulk = layout.layer()  # a scratch layer with the cell's extent: the substrate
    cell.shapes(bulk).insert(cell.bbox().enlarged(1))
    lvs = kdb.LayoutVsSchematic(kdb.RecursiveShapeIterator(layout, cell, []))

    def base(name):
        index = bulk if name == "bulk" else layout.find_layer(*layer_map[name])
        return lvs.make_layer(index, name) if index is not None else lvs.make_layer(name)

    layers = Layers(base, table["derived"])
    for name in table["derived"]:
        lvs.register(layers[name], name)
    farads = {name: spec.get("farad_per_um2") for name, spec in device_table().items()}
    for name, device in sorted(table["devices"].items()):
        if device["extractor"] == "mos4":
            extractor = kdb.DeviceExtractorMOS4Transistor(name)
        else:
            extractor = kdb.DeviceExtractorCapacitor(name, farads[name])
        lvs.extract_devices(extractor, {t: layers[n] for t, n in device["layers"].items()})
    for name in table["conductors"]:
        lvs.connect(layers[name])
    for a, b in table["connections"]:
        lvs.connect(layers[a], layers[b])
    for metal, (lay, dt) in layer_map.labels.items():
        index = layout.find_layer(lay, dt)
        if index is not None:
            text = lvs.make_text_layer(index, f"{metal}_label")
            lvs.connect(layers[metal], text)
    for metal, (lay, dt) in layer_map.pins.items():
        index = layout.find_layer(lay, dt)
        if index is not None:
            pin = lvs.make_layer(index, f"{metal}_pin")
            lvs.connect(pin)
            lvs.connect(layers[metal], pin)
    lvs.connect_global(layers[table["substrate"]], ground)
    lvs.extract_netlist()
    netlist = lvs.netlist()
    netlist.make_top_level_pins()
    netlist.flatten()
    if combine:
        netlist.combine_devices()
    netlist.purge_nets()
    return lvs


class _SchematicReader:
    """The KLayout SPICE reader delegate for built netlists (a class factory keeps klayout imports lazy)."""

    @staticmethod
    def make(devices: dict):
        import klayout.db as kdb

        class Delegate(kdb.NetlistSpiceReaderDelegate):
            def __init__(self):
                super().__init__()
                self.shorts = []  # (circuit name, net name, net name) of 0 V sources
                self.classes = {}  # model -> its device class (one per model, whatever the case)

            def wants_subcircuit(self, name):
                return name.lower() in devices

            def element(self, circuit, element, name, model, value, nets, params):
                if element == "X" and model.lower() in devices:
                    model = model.lower()
                    if model not in self.classes:
                        self.classes[model] = _device_class(circuit.netlist(), model, devices[model])
                    _add_device(circuit, self.classes[model], devices[model], name, nets, params)
                    return True
                if element == "V" and value == 0 and len(nets) == 2:
                    self.shorts.append((circuit.name, nets[0].name, nets[1].name))
                    return True
                if element == "I":
                    return True  # an ideal bias reference: its nets are pins of the circuit
                return super().element(circuit, element, name, model, value, nets, params)

        return Delegate()


def _device_class(netlist, model: str, spec: dict):
    import klayout.db as kdb

    cls = kdb.DeviceClassMOS4Transistor() if spec["kind"] == "mosfet" else kdb.DeviceClassCapacitor()
    cls.name = model
    netlist.add(cls)
    return cls


def _add_device(circuit, cls, spec: dict, name: str, nets, params) -> None:
    device = circuit.create_device(cls, name)
    m = params.get("M", 1.0)
    if spec["kind"] == "mosfet":
        for terminal, net in zip(("D", "G", "S", "B"), nets):
            device.connect_terminal(terminal, net)
        device.set_parameter("W", params["W"] * m)
        device.set_parameter("L", params["L"])
    else:
        for terminal, net in zip(("A", "B"), nets):
            device.connect_terminal(terminal, net)
        area = params["W"] * params["L"] * m
        device.set_parameter("A", area)
        device.set_parameter("C", area * spec["farad_per_um2"])


def read_schematic(paths, top: str | None, ground: str):
    """The schematic netlist of `paths` (SPICE files), flattened into `top`, combined, ground renamed."""
    import klayout.db as kdb

    for path in paths:
        if not Path(path).is_file():
            raise SchematicMissing(
                f"{path} does not exist; LVS compares the layout with the built netlist "
                "(`python -m compiler build ...` writes netlist/cells.spice and network.spice)."
            )
    devices = device_table()
    text = ".global 0\n" + "".join(f'.include "{Path(p).resolve()}"\n' for p in paths)
    netlist = kdb.Netlist()
    delegate = _SchematicReader.make(devices)
    with tempfile.TemporaryDirectory() as scratch:  # the reader takes a file: one that includes `paths`
        wrapper = Path(scratch) / "schematic.spice"
        wrapper.write_text(text)
        try:
            netlist.read(str(wrapper), kdb.NetlistSpiceReader(delegate))
        except RuntimeError as error:
            raise SchematicMissing(f"KLayout cannot read the netlist {', '.join(map(str, paths))}: {error}") from error
    for circuit_name, a, b in delegate.shorts:
        circuit = netlist.circuit_by_name(circuit_name)
        circuit.join_nets(circuit.net_by_name(a), circuit.net_by_name(b))
    chosen = _schematic_top(netlist, top, paths)
    netlist.flatten()
    for circuit in [c for c in netlist.each_circuit() if c.name != chosen.name]:
        netlist.remove(circuit)
    chosen = netlist.circuit_by_name(chosen.name)
    zero = chosen.net_by_name("0")
    if zero is not None:
        zero.name = ground
        pin = chosen.pin_by_name("0")
        if pin is not None:
            chosen.rename_pin(pin.id(), ground)
    netlist.combine_devices()
    netlist.purge_nets()
    return netlist


def _schematic_top(netlist, top: str | None, paths):
    if top is not None:
        circuit = netlist.circuit_by_name(top.upper()) or netlist.circuit_by_name(top)
        if circuit is None:
            raise SchematicMissing(f"{', '.join(map(str, paths))} has no subcircuit {top!r}.")
        return circuit
    tops = [c for c in netlist.each_circuit() if not any(True for _ in c.each_ref())]
    if len(tops) != 1:
        raise SchematicMissing(
            f"{', '.join(map(str, paths))} has {len(tops)} top subcircuits "
            f"({sorted(c.name for c in tops)}); name the one to compare with --schematic-top."
        )
    return tops[0]


def _tolerances(netlist) -> None:
    import klayout.db as kdb

    for cls in netlist.each_device_class():
        if isinstance(cls, kdb.DeviceClassMOS4Transistor):
            cls.equal_parameters = kdb.EqualDeviceParameters(
                cls.PARAM_W, TOLERANCE["W"], 0.0
            ) + kdb.EqualDeviceParameters(cls.PARAM_L, TOLERANCE["L"], 0.0)
        elif isinstance(cls, kdb.DeviceClassCapacitor):
            cls.equal_parameters = kdb.EqualDeviceParameters(cls.PARAM_C, 0.0, C_RELATIVE_TOLERANCE)


def run_lvs(
    target,
    out_dir=None,
    *,
    schematic=None,
    layout_top: str | None = None,
    schematic_top: str | None = None,
    extraction_path=EXTRACTION_PATH,
    layer_map_path=LAYER_MAP_PATH,
    official: bool = False,
    require_signoff: bool = False,
) -> LvsResult:
    """Compare a build directory's layout with its netlist, or a GDS file with `schematic` (SPICE paths), in
    KLayout and, when `official`, in netgen too (skipped and reported when it cannot run, or with
    `require_signoff` SignoffUnavailable before anything runs)."""
    start = time.perf_counter()
    gds = find_gds(target)
    if schematic is None:
        from compiler.backends.spice import TOP

        schematic = [Path(target) / "netlist" / name for name in SCHEMATIC_FILES]
        schematic_top = schematic_top or TOP
    tools = [signoff.netgen_tool()] if official else []
    signoff.require(tools, require_signoff)
    layout, cell = load_layout(gds, layout_top)
    scratch_dir = signoff.scratch_beside(Path(out_dir)) if out_dir is not None else tempfile.TemporaryDirectory()
    with scratch_dir as scratch:
        result, lvs = compare(layout, cell, schematic, schematic_top, extraction_path, layer_map_path)
        result.gds = str(gds)
        if tools and tools[0].available:
            result.netgen = run_netgen(
                tools[0],
                lvs.netlist(),
                lvs.reference,
                result.layout_top,
                result.schematic_top,
                Path(scratch),
                C_RELATIVE_TOLERANCE,
            )
        result.skipped = [t for t in tools if not t.available] + ([signoff.magic_tool()] if official else [])
        if out_dir is not None:
            lvs.write(str(Path(scratch) / "report.lvsdb"))
            (Path(scratch) / "report.json").write_text(json.dumps(_json(result), indent=1, sort_keys=True) + "\n")
            (Path(scratch) / "report.md").write_text(markdown(result))
            for name in REPORTS:
                if not (Path(scratch) / name).exists():
                    (Path(out_dir) / name).unlink(missing_ok=True)
            signoff.publish(Path(scratch), Path(out_dir))
    result.seconds = time.perf_counter() - start
    return result


def compare(
    layout,
    cell,
    schematic,
    schematic_top: str | None = None,
    extraction_path=EXTRACTION_PATH,
    layer_map_path=LAYER_MAP_PATH,
):
    """LVS of a cell of a layout in memory against SPICE files: (LvsResult, the LayoutVsSchematic object)."""
    import klayout.db as kdb

    layer_map = load_layer_map(layer_map_path)
    lvs = extract(layout, cell, layer_map, load_extraction(extraction_path, layer_map), layer_map.ground)
    reference = read_schematic([Path(p) for p in schematic], schematic_top, layer_map.ground)
    for netlist in (lvs.netlist(), reference):
        netlist.case_sensitive = False
        _tolerances(netlist)
    lvs.reference = reference
    layout_circuit = next(c for c in lvs.netlist().each_circuit() if c.name.lower() == cell.name.lower())
    schematic_circuit = next(reference.each_circuit())
    comparer = kdb.NetlistComparer()
    comparer.same_circuits(layout_circuit, schematic_circuit)
    match = lvs.compare(comparer)
    result = LvsResult(
        "",
        cell.name,
        schematic_circuit.name,
        bool(match),
        {"layout": _device_counts(lvs.netlist()), "schematic": _device_counts(reference)},
        {"layout": _count(layout_circuit.each_net()), "schematic": _count(schematic_circuit.each_net())},
        _issues(lvs.xref()),
    )
    return result, lvs


def _count(items) -> int:
    return sum(1 for _ in items)


def _device_counts(netlist) -> dict:
    counts: dict = {}
    for circuit in netlist.each_circuit():
        for device in circuit.each_device():
            name = device.device_class().name.lower()
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _issues(xref) -> list:
    """What did not match, as {"kind", "status", "layout", "schematic"} (names, W/L), sorted, capped."""
    import klayout.db as kdb

    ok = {kdb.NetlistCrossReference.Match}  # a parameter mismatch is a match "with warning"
    issues = []
    for pair in xref.each_circuit_pair():
        if pair.status() not in ok:
            issues.append(_issue("circuit", pair, lambda c: c.name))
        for kind, each in (("net", xref.each_net_pair), ("device", xref.each_device_pair), ("pin", xref.each_pin_pair)):
            for item in each(pair):
                if item.status() not in ok:
                    issues.append(_issue(kind, item, _describe[kind]))
    issues.sort(key=lambda i: (i["kind"], i["status"], i["layout"] or "", i["schematic"] or ""))
    return issues


def _device_text(device) -> str:
    params = {
        p.name: device.parameter(p.name)
        for p in device.device_class().parameter_definitions()
        if p.name in ("W", "L", "C")
    }
    terminals = ", ".join(
        f"{t.name}={device.net_for_terminal(t.id()).expanded_name()}"
        for t in device.device_class().terminal_definitions()
        if device.net_for_terminal(t.id()) is not None
    )
    values = " ".join(f"{k}={v:.4g}" for k, v in params.items())
    return f"{device.device_class().name.lower()} {values} ({terminals})"


_describe = {"net": lambda n: n.expanded_name(), "device": _device_text, "pin": lambda p: p.expanded_name()}


def _issue(kind: str, pair, describe) -> dict:
    first, second = pair.first(), pair.second()
    status = str(pair.status()).split(".")[-1]
    if kind == "device" and status == "MatchWithWarning":
        status = "ParametersDiffer"
    return {
        "kind": kind,
        "status": status,
        "layout": describe(first) if first is not None else None,
        "schematic": describe(second) if second is not None else None,
    }


def _json(result: LvsResult) -> dict:
    """`match` is the verdict of every comparison that ran; KLayout's details at the top level, netgen's under
    `netgen`, the tools that could not run under `not_run`."""
    data = {
        "gds": result.gds,
        "layout_top": result.layout_top,
        "schematic_top": result.schematic_top,
        "match": result.clean,
        "klayout_match": result.match,
        "devices": result.devices,
        "nets": result.nets,
        "issues": len(result.issues),
        "first_issues": result.issues[:ISSUES_KEPT],
        "not_run": {tool.name: tool.missing for tool in result.skipped},
    }
    if result.netgen is not None:
        n = result.netgen
        data["netgen"] = {
            "match": n.match,
            "result": n.verdict,
            "property_errors": n.property_errors,
            "pins_match": n.pins_match,
            "devices": n.devices,
            "nets": n.nets,
            "first_issues": n.issues,
            "seconds": round(n.seconds, 2),
            "report": "netgen.out",
        }
    return data


def markdown(result: LvsResult) -> str:
    n = result.netgen
    lines = [
        f"# LVS: {result.layout_top} vs {result.schematic_top}",
        "",
        f"Layout `{result.gds}`: "
        + ("**match**" if result.clean else "**mismatch**")
        + (" in every comparison that ran." if result.skipped else "."),
        "",
        "| comparison | result |",
        "|---|---|",
        "| KLayout (sky130/lvs.yaml extraction, parallel devices combined) | "
        + ("match" if result.match else f"**mismatch** ({len(result.issues)} items differ)")
        + " |",
    ]
    if n is not None:
        verdict = "match" if n.match else f"**mismatch**: {n.verdict}"
        verdict += "; property errors" * n.property_errors + "; pin lists differ" * (not n.pins_match)
        lines.append(f"| netgen (sky130A set-up, $PDK_ROOT/sky130A/libs.tech/netgen) | {verdict} ({n.seconds:.1f} s) |")
    lines += [f"| {tool.title} | **not run**: {tool.missing} |" for tool in result.skipped]
    lines += ["", "KLayout:", "", "| | layout | schematic |", "|---|---|---|"]
    lines.append(f"| nets | {result.nets['layout']} | {result.nets['schematic']} |")
    for name in sorted(set(result.devices["layout"]) | set(result.devices["schematic"])):
        lines.append(
            f"| {name} (after combining parallel devices) | {result.devices['layout'].get(name, 0)} "
            f"| {result.devices['schematic'].get(name, 0)} |"
        )
    if result.issues:
        lines += ["", "| kind | status | layout | schematic |", "|---|---|---|---|"]
        lines += [
            f"| {i['kind']} | {i['status']} | {i['layout'] or '-'} | {i['schematic'] or '-'} |"
            for i in result.issues[:ISSUES_KEPT]
        ]
        lines += ["", "Cross-reference in `report.lvsdb` (KLayout: File > Load Netlist Database)."]
    if n is not None and n.issues:
        lines += ["", "netgen (`netgen.out`, `netgen.json`):", "", "| kind | layout | schematic |", "|---|---|---|"]
        lines += [f"| {i['kind']} | {i['layout'] or '-'} | {i['schematic'] or '-'} |" for i in n.issues]
    return "\n".join(lines) + "\n"


def add_arguments(parser) -> None:
    parser.add_argument("target", help="a build directory (layout/top.gds against netlist/) or a GDS file")
    parser.add_argument("-o", "--out", default=None, help="report directory (default: DIR/lvs)")
    parser.add_argument(
        "--schematic",
        nargs="+",
        default=None,
        help="SPICE files to compare a GDS file with (default: the build's netlist)",
    )
    parser.add_argument("--top", default=None, help="layout top cell (default: the file's only top cell)")
    parser.add_argument(
        "--schematic-top",
        default=None,
        help="schematic subcircuit (default: fqrnn_network, or the only top subcircuit of --schematic)",
    )
    parser.add_argument("--no-netgen", action="store_true", help="KLayout's comparison only")
    parser.add_argument(
        "--require-signoff",
        action="store_true",
        help="exit 2 (SignoffUnavailable) when netgen cannot run (no netgen-lvs, no PDK_ROOT), instead of skipping it",
    )


def run(args) -> int:
    target = Path(args.target)
    gds = find_gds(target)
    out = Path(args.out) if args.out else (target / "lvs" if target.is_dir() else gds.with_name(gds.stem + "_lvs"))
    result = run_lvs(
        target,
        out,
        schematic=args.schematic,
        layout_top=args.top,
        schematic_top=args.schematic_top,
        official=not args.no_netgen,
        require_signoff=args.require_signoff,
    )
    print(markdown(result), end="")
    print(f"reports: {out}/report.md, report.json, report.lvsdb and netgen's files ({result.seconds:.2f} s)")
    return 0 if result.clean else 1
