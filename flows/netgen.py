"""netgen LVS of the netlists `lvs` reads with KLayout: the second, official comparison.

Both sides come from flows/lvs.py, flat, their parallel devices combined by KLayout: the layout's extraction
and the schematic as KLayout's reader delegate cleans it (0 V current probes shorted, ideal current sources
dropped, W times m). (Debian's netgen 1.5.133 adds unequal widths wrongly when it merges parallel devices
itself: 256 and 28 um in parallel compare as 512.) They are written as SPICE the sky130A netgen set-up knows,
`X... D G S B sky130_fd_pr__nfet_01v8 W= L=` in um and MIM capacitors as `X... top bottom
sky130_fd_pr__cap_mim_m3_1 area=` in um^2, with lower-case names, and netgen compares them with
`$PDK_ROOT/sky130A/libs.tech/netgen/sky130A_setup.tcl` (W and L to 1 %). The set-up compares a capacitor's
area exactly; `netgen_setup.tcl`, which sources it, allows the area the tolerance KLayout's comparison allows
the capacitance (the layout draws each plate side on the 5 nm grid, so a drawn area differs slightly from the
netlist's W x L). The verdict is netgen's own: circuits that match uniquely, no property error, equivalent
pin lists.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from compiler.foundation.errors import SignoffToolFailed
from flows.signoff import Tool, run_program

LAYOUT_SPICE, SCHEMATIC_SPICE, OUT = "layout_netgen.spice", "schematic_netgen.spice", "netgen.out"
SETUP = "netgen_setup.tcl"
MIM = "sky130_fd_pr__cap_mim_m3_1"
UNIQUE = "Circuits match uniquely."
PROPERTY_ERRORS = "Property errors were found."
PIN_FAILURE = "failed pin matching"
ISSUES_KEPT = 30


@dataclass
class NetgenResult:
    match: bool
    verdict: str  # netgen's `Result:` line
    property_errors: bool
    pins_match: bool
    devices: dict = field(default_factory=dict)  # "layout"/"schematic" -> {class: count after netgen's merging}
    nets: dict = field(default_factory=dict)  # "layout"/"schematic" -> count
    issues: list = field(default_factory=list)  # [{"kind", "layout", "schematic"}] from netgen's JSON
    seconds: float = 0.0
    files: tuple = (LAYOUT_SPICE, SCHEMATIC_SPICE, SETUP, OUT, "netgen.json", "netgen.log")


def run_netgen(
    tool: Tool, layout_netlist, schematic_netlist, layout_top: str, schematic_top: str, scratch: Path, area_tolerance
):
    """netgen on two flat KLayout netlists (left unchanged: copies are written); its files land in `scratch`.
    `area_tolerance`: the relative difference in a MIM capacitor's area that still matches."""
    start = time.perf_counter()
    write_spice(layout_netlist, scratch / LAYOUT_SPICE)
    write_spice(schematic_netlist, scratch / SCHEMATIC_SPICE)
    (scratch / SETUP).write_text(
        f"# the sky130A set-up, and the area tolerance of {MIM} (flows/netgen.py)\n"
        f"source {{{tool.path}}}\n"
        "foreach {circuit cells} [list -circuit1 $cells1 -circuit2 $cells2] {\n"
        f"    if {{[lsearch $cells {MIM}] >= 0}} {{\n"
        f'        property "$circuit {MIM}" tolerance {{area {area_tolerance:g}}}\n'
        "    }\n}\n"
    )
    command = [
        tool.program,
        "-batch",
        "lvs",
        f"{LAYOUT_SPICE} {layout_top.lower()}",
        f"{SCHEMATIC_SPICE} {schematic_top.lower()}",
        SETUP,
        OUT,
        "-json",
    ]
    log = run_program(command, tool, scratch)
    result = parse(log, scratch / "netgen.json")
    result.seconds = time.perf_counter() - start
    return result


def write_spice(netlist, path: Path) -> None:
    """A copy of a flat KLayout netlist as SPICE for netgen: names in lower case, every net named."""
    import klayout.db as kdb

    copy = netlist.dup()
    for circuit in copy.each_circuit():
        circuit.name = circuit.name.lower()
        taken = {net.name.lower() for net in circuit.each_net() if net.name}
        unnamed = 0
        for net in circuit.each_net():
            if net.name:
                net.name = net.name.lower()
                continue
            while f"unnamed{unnamed}" in taken:
                unnamed += 1
            net.name = f"unnamed{unnamed}"
            taken.add(net.name)
    writer = kdb.NetlistSpiceWriter(_Writer.make())
    writer.use_net_names, writer.with_comments = True, False
    copy.write(str(path), writer)


class _Writer:
    """The KLayout SPICE writer delegate for netgen (a class factory keeps klayout imports lazy)."""

    @staticmethod
    def make():
        import klayout.db as kdb

        class Delegate(kdb.NetlistSpiceWriterDelegate):
            def write_device(self, device):
                cls = device.device_class()
                mos = isinstance(cls, kdb.DeviceClassMOS4Transistor)
                terminals = ("D", "G", "S", "B") if mos else ("A", "B")
                nets = " ".join(self.net_to_string(device.net_for_terminal(cls.terminal_id(t))) for t in terminals)
                if mos:
                    values = f"W={device.parameter('W'):.9g} L={device.parameter('L'):.9g}"
                else:
                    values = f"area={device.parameter('A'):.9g}"
                self.emit_line(f"X{'M' if mos else 'C'}{device.id()} {nets} {cls.name.lower()} {values}")

        return Delegate()


def parse(log: str, json_path: Path) -> NetgenResult:
    """netgen's verdict from its output, with the device, net and issue details of its JSON report."""
    results = [line.split(":", 1)[1].strip() for line in log.splitlines() if line.startswith("Result:")]
    if not results:
        raise SignoffToolFailed(f"netgen printed no `Result:` line; its log ends: {log.strip()[-600:]}")
    verdict = results[-1]
    property_errors, pins_match = PROPERTY_ERRORS in log, PIN_FAILURE not in log
    result = NetgenResult(
        verdict == UNIQUE and not property_errors and pins_match, verdict, property_errors, pins_match
    )
    try:
        cells = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return result
    top = cells[-1] if isinstance(cells, list) and cells else {}
    sides = ("layout", "schematic")
    if len(top.get("devices", ())) == 2:
        result.devices = {s: {name: n for name, n in top["devices"][i]} for i, s in enumerate(sides)}
    if len(top.get("nets", ())) == 2:
        result.nets = dict(zip(sides, top["nets"]))
    for kind in ("badnets", "badelements", "properties"):
        for entry in top.get(kind, ()):
            pair = list(entry) + [None, None]
            result.issues.append({"kind": kind, "layout": _text(pair[0]), "schematic": _text(pair[1])})
    result.issues = result.issues[:ISSUES_KEPT]
    return result


def _text(value) -> str | None:
    """A short text of one side of a netgen JSON issue (nested lists of names and values)."""
    if value is None:
        return None
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 300 else text[:299] + "\u2026"
