"""A small KLayout extraction of our layouts (devices, connectivity, labels) to check them against SPICE.

Test helper only: the project's LVS flow lives elsewhere; this checks that the generator draws what the
netlist says, cell by cell, with the layer map of sky130/layers.yaml.
"""

from __future__ import annotations

import klayout.db as kdb

from compiler.backends.layout_devices import tech


def extract(layout: kdb.Layout, cell: kdb.Cell) -> kdb.LayoutToNetlist:
    """The extraction (keep it alive while using its netlist: `.netlist()`)."""
    t = tech()
    l2n = kdb.LayoutToNetlist(kdb.RecursiveShapeIterator(layout, cell, []))
    l2n.threads = 1

    def layer(name, purpose=None):
        if purpose:
            return l2n.make_layer(layout.layer(*t["pins"][name][purpose]), f"{name}_{purpose}")
        return l2n.make_layer(layout.layer(*t["layers"][name]), name)

    nwell, diff, tap, poly, licon = layer("nwell"), layer("diff"), layer("tap"), layer("poly"), layer("licon")
    nsdm, psdm, li1, mcon, met1 = layer("nsdm"), layer("psdm"), layer("li1"), layer("mcon"), layer("met1")
    via, met2, via2, met3, via3, met4, capm = (layer(n) for n in ("via", "met2", "via2", "met3", "via3", "met4", "capm"))
    labels = {m: layer(m, "label") for m in ("met1", "met2")}
    gate = poly & diff
    sd = diff - poly
    nsd, psd = sd & nsdm - nwell, sd & psdm & nwell
    ntap, ptap = tap & nsdm & nwell, tap & psdm - nwell
    sub = l2n.make_layer("substrate")   # bulk of nfets: the p-taps' net
    mos_n = kdb.DeviceExtractorMOS4Transistor("sky130_fd_pr__nfet_01v8")
    mos_p = kdb.DeviceExtractorMOS4Transistor("sky130_fd_pr__pfet_01v8")
    l2n.extract_devices(mos_n, {"SD": nsd, "G": gate & nsdm - nwell, "P": poly, "W": ptap})
    l2n.extract_devices(mos_p, {"SD": psd, "G": gate & psdm & nwell, "P": poly, "W": nwell})
    cap = kdb.DeviceExtractorCapacitor("sky130_fd_pr__cap_mim_m3_1", 2.0e-15 * 1e0)
    l2n.extract_devices(cap, {"P1": capm, "P2": met3})
    via3_capm, via3_met3 = via3.interacting(capm), via3.not_interacting(capm)   # a via3 on capm is not on met3
    l2n.register(via3_capm, "via3_capm")
    l2n.register(via3_met3, "via3_met3")
    for a in (nwell, ntap, ptap, nsd, psd, poly, licon, li1, mcon, met1, via, met2, via2, met3, via3_capm,
              via3_met3, met4, capm):
        l2n.connect(a)
    for a, b in ((nwell, ntap), (ntap, licon), (ptap, licon), (nsd, licon), (psd, licon), (poly, licon),
                 (licon, li1), (li1, mcon), (mcon, met1), (met1, via), (via, met2), (met2, via2),
                 (via2, met3), (met3, via3_met3), (via3_met3, met4), (capm, via3_capm), (via3_capm, met4)):
        l2n.connect(a, b)
    l2n.connect(met1, labels["met1"])
    l2n.connect(met2, labels["met2"])
    l2n.connect_global(ptap, "gnd")
    l2n.extract_netlist()
    netlist = l2n.netlist()
    netlist.combine_devices()
    netlist.make_top_level_pins()
    netlist.purge()
    return l2n


class _Sky130Reader(kdb.NetlistSpiceReaderDelegate):
    """X cards of sky130_fd_pr devices become devices (m folded into W: parallel units combine)."""

    def wants_subcircuit(self, name):
        return name.lower().startswith("sky130_fd_pr__")

    def element(self, circuit, element, name, model, value, nets, params):
        if element != "X" or not model.lower().startswith("sky130_fd_pr__"):
            return super().element(circuit, element, name, model, value, nets, params)
        netlist = circuit.netlist()
        model = model.lower()
        cls = next((c for c in netlist.each_device_class() if c.name.lower() == model), None)
        if cls is None:
            cls = kdb.DeviceClassCapacitor() if "cap_mim" in model else kdb.DeviceClassMOS4Transistor()
            cls.name = model
            netlist.add(cls)
        device = circuit.create_device(cls, name)
        m = float(params.get("M", 1.0))
        if "cap_mim" in model:
            device.set_parameter("C", 2.0e-15 * float(params["W"]) * float(params["L"]) * m)
            for terminal, net in zip(("A", "B"), nets):
                device.connect_terminal(terminal, net)
        else:
            device.set_parameter("W", float(params["W"]) * m)
            device.set_parameter("L", float(params["L"]))
            for terminal, net in zip(("D", "G", "S", "B"), nets):
                device.connect_terminal(terminal, net)
        return True


def read_spice(path) -> kdb.Netlist:
    netlist = kdb.Netlist()
    netlist.read(str(path), kdb.NetlistSpiceReader(_Sky130Reader()))
    return netlist


def schematic_of(subckt_text: str, ground: str = "gnd") -> str:
    """A subcircuit with SPICE node 0 renamed to the layout's ground net and made a port, as our layouts
    draw it. Cells only: a subcircuit with sources is refused (the project's LVS flow handles networks)."""
    lines = []
    for line in subckt_text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0].lower() == ".subckt":
            line = line + f" {ground}"
        elif words[0][0].upper() in "VI":
            raise ValueError(f"schematic_of handles device-only cells; got {line!r}")
        else:
            line = " ".join(ground if w == "0" else w for w in words)
        lines.append(line)
    return "\n".join(lines) + "\n"


def lvs_cell(layout: kdb.Layout, cell: kdb.Cell, subckt_text: str, tmp_path) -> tuple[bool, str]:
    """Extract `cell` flat and compare it with the subcircuit; returns (match, extracted netlist text)."""
    l2n = extract(layout, cell)
    extracted = l2n.netlist()
    extracted.flatten()
    extracted.combine_devices()
    path = tmp_path / f"{cell.name}.spice"
    path.write_text(schematic_of(subckt_text))
    schematic = read_spice(path)
    schematic.combine_devices()
    schematic.make_top_level_pins()
    for netlist in (extracted, schematic):
        for cls in netlist.each_device_class():
            if "cap_mim" in cls.name.lower():   # plate sides are drawn on the 5 nm grid
                cls.equal_parameters = kdb.EqualDeviceParameters(kdb.DeviceClassCapacitor.PARAM_C, 0.0, 0.001)
    ok = kdb.NetlistComparer().compare(extracted, schematic)
    return ok, extracted.to_s()
