"""Layout backend: the built SPICE netlist (and the IR's stage order) becomes a sky130 GDS.

Every subcircuit of `cells.spice` is laid out from its own text, so the layout cannot disagree with the
netlist: a transistor card with `m=N` becomes N unit devices wired in parallel, nfets sit in rows over
the substrate with p+ taps, pfets in n-well rows with n+ taps (grouped by body net), MIM capacitors in
their own row; 0 V sources are wires. The unit devices of one row are interleaved in proportion to
their multiplicities (each device's units spread evenly along the row, so the devices of a mirror
share one centroid). Rows and wiring come from compiler/backends/layout_place.py, devices from
compiler/backends/layout_devices.py. The network subcircuit is then placed the same way with its cell
instances as items: one row group per IR stage, in IR order, so the floorplan follows the data flow,
and wrapped as a macro with boundary pins (compiler/backends/layout_macro.py). A port that reaches only
gates inside its cell gets an antenna tie-down in each row where it has gates.

SPICE node 0 is drawn as the net `gnd` (sky130/layers.yaml `nets.ground`). Output: `top.gds` (fixed
timestamps: the same netlist and pins give the same bytes), `top.lef`, `top.v`, `cell_names.json`,
`top.png`, `sky130.lyp`, and figures (area per cell, per IR stage and in total, unit devices drawn) for
the build report.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import klayout.db as kdb

from compiler.backends.layout_devices import MIM, NFET, PFET, Item, LayoutError, Lib, fet, mim_cap, tap, tech, tie_down
from compiler.backends.layout_macro import Macro, build_macro, lef, prefix_of, rename_cells, verilog
from compiler.backends.layout_place import assemble
from compiler.foundation.data import write_atomically, write_text_atomically

SUPPLIES = frozenset({"vdd", "gnd"})


@dataclass
class Card:
    name: str
    nets: list
    model: str
    params: dict


@dataclass
class Subckt:
    name: str
    ports: list
    cards: list = field(default_factory=list)
    shorts: list = field(default_factory=list)  # node pairs joined by 0 V sources


def parse_spice(text: str) -> dict:
    """Subcircuits of a netlist: X cards (devices and instances) and 0 V sources; anything else is an error."""
    lines, subckts, current = [], {}, None
    for raw in text.splitlines():
        line = raw.split("$")[0].rstrip()
        if not line.strip() or line.lstrip().startswith("*"):
            continue
        if line.startswith("+") and lines:
            lines[-1] += " " + line[1:]
        else:
            lines.append(line)
    for line in lines:
        words = line.split()
        head = words[0].lower()
        if head == ".subckt":
            current = Subckt(words[1], [w for w in words[2:] if "=" not in w])
            subckts[current.name] = current
        elif head == ".ends":
            current = None
        elif current is None or head.startswith("."):
            continue
        elif head.startswith("x"):
            positional = [w for w in words[1:] if "=" not in w]
            params = dict(w.split("=", 1) for w in words[1:] if "=" in w)
            current.cards.append(
                Card(words[0], positional[:-1], positional[-1], {k.lower(): _number(v) for k, v in params.items()})
            )
        elif head.startswith("v") and _is_zero(words[3:]):
            current.shorts.append((words[1], words[2]))
        else:
            raise LayoutError(
                f"{current.name}: cannot lay out the element {line.strip()!r} "
                "(the layout draws transistors, MIM capacitors, instances and 0 V sources)."
            )
    return subckts


def _number(text: str) -> float | str:
    match = re.fullmatch(r"([-+\d.eE]+)([a-zA-Z]*)", text)
    scale = {"": 1, "u": 1, "um": 1}  # sky130 sizes are in um (.option scale=1u)
    if match and match.group(2).lower() in scale:
        return float(match.group(1))
    return text


def _is_zero(words: list) -> bool:
    values = [w for w in words if w.lower() != "dc"]
    try:
        return len(values) == 1 and float(values[0]) == 0.0
    except ValueError:
        return False


class _Nets:
    """Union of nodes joined by 0 V sources; a port's name wins, node 0 is `gnd`."""

    def __init__(self, ports, shorts):
        self.parent = {}
        self.ports = list(ports)
        for a, b in shorts:
            self.parent[self.find(a)] = self.find(b)
        self.rename = {}
        for node in list(self.parent) + self.ports:
            self.rename.setdefault(self.find(node), self._name(node))
        for port in self.ports:
            self.rename[self.find(port)] = self._name(port)

    def find(self, node):
        node = self._name(node)
        while self.parent.get(node, node) != node:
            node = self.parent[node]
        return node

    @staticmethod
    def _name(node):
        return tech()["nets"]["ground"] if node == tech()["nets"]["spice_ground"] else node

    def __call__(self, node):
        root = self.find(node)
        return self.rename.get(root, root)


@dataclass(frozen=True)
class _Unit:
    device: int  # card index in the subcircuit
    k: int  # which of the device's m units
    item: Item
    nets: dict  # role -> net
    spread: bool  # a mirror reference (diode-connected): spread over every row of its group


def _interleaved(units: list) -> list:
    """Units ordered so each device's units spread evenly along the row (interdigitated in proportion
    to their counts: the devices of a mirror share one centroid)."""
    counts, rank, keyed = defaultdict(int), defaultdict(int), []
    for u in units:
        counts[u.device] += 1
    for u in units:
        keyed.append(((rank[u.device] + 0.5) / counts[u.device], u.device, u.k, u))
        rank[u.device] += 1
    return [entry[-1] for entry in sorted(keyed, key=lambda e: e[:3])]


def cell_block(lib: Lib, sub: Subckt, width: float | None = None) -> tuple[Item, dict]:
    """Lay out one subcircuit of devices; returns the block and its figures. Each row group is as
    square as it can be, or about `width` (nm) wide when given."""
    nets = _Nets(sub.ports, sub.shorts)
    ground = tech()["nets"]["ground"]
    groups: dict = defaultdict(list)
    gate_area = 0
    for index, card in enumerate(sub.cards):
        model = card.model.lower()
        m = int(card.params.get("m", 1))
        if model in (NFET, PFET):
            kind = "n" if model == NFET else "p"
            if len(card.nets) != 4:
                raise LayoutError(f"{sub.name}: {card.name} needs 4 nodes d g s b.")
            d, g, s, b = (nets(n) for n in card.nets)
            if kind == "n" and b != ground:
                raise LayoutError(
                    f"{sub.name}: nfet {card.name} has body {b}; the substrate is {ground} (no isolated p-wells)."
                )
            item = fet(lib, kind, float(card.params["w"]), float(card.params["l"]), int(card.params.get("nf", 1)))
            gate_area += item.info["gate_area_nm2"] * m
            for k in range(m):
                groups[(kind, b)].append(_Unit(index, k, item, {"d": d, "g": g, "s": s}, spread=(d == g)))
        elif model == MIM:
            item = mim_cap(lib, float(card.params["w"]), float(card.params["l"]))
            for k in range(m):
                groups[("c", "")].append(
                    _Unit(index, k, item, {"c0": nets(card.nets[0]), "c1": nets(card.nets[1])}, spread=False)
                )
        else:
            raise LayoutError(
                f"{sub.name}: {card.name} uses {card.model}, which the layout cannot draw "
                f"(it draws {NFET}, {PFET} and {MIM})."
            )
    gate_only = _gate_only_ports(sub, nets)
    rows = []
    gap = lib.r["unit_gap"]
    for key in sorted(groups, key=lambda k: ("ncp".index(k[0]), k[1])):
        rows += _rows(lib, key, groups[key], gap, width, gate_only)
    ports = [nets(p) for p in sub.ports]
    used = {n for row in rows for _, nn in row for n in nn.values()}
    if ground in used and ground not in ports:
        ports.append(ground)
    block = assemble(lib, sub.name, rows, list(dict.fromkeys(ports)), gap=gap)  # nA currents: no wide rails
    units = sum(len(g) for k, g in groups.items() if k[0] != "c")
    return block, {
        "units": units,
        "tie_downs": sum(1 for row in rows for item, _ in row if item.info.get("kind") == "tie_down"),
        "instances": sum(1 for c in sub.cards if c.model.lower() in (NFET, PFET)),
        "gate_area_um2": gate_area / 1e6,
    }


def _gate_only_ports(sub: Subckt, nets) -> list:
    """Ports of `sub` that reach transistor gates and nothing else inside it: each gets an antenna tie-down."""
    gates, others = set(), set()
    for card in sub.cards:
        names = [nets(n) for n in card.nets]
        if card.model.lower() in (NFET, PFET):
            gates.add(names[1])
            others.update(names[:1] + names[2:])
        else:
            others.update(names)
    return [p for p in dict.fromkeys(nets(p) for p in sub.ports) if p in gates and p not in others]


def _rows(lib: Lib, key, units: list, gap: int, width: float | None = None, gate_only=frozenset()) -> list:
    """One group's units in rows: the references spread evenly over all rows, every other device's
    units kept together (in card order), each row interleaved; as many rows as make the group squarest,
    counting the routing channel each row needs. Body taps added, and an antenna tie-down in each row for
    each `gate_only` net with a gate there (its track in that row's channel then reaches a diffusion)."""
    kind, body = key
    if not units:
        return []
    refs = [u for u in units if u.spread]
    others = [u for u in units if not u.spread]
    total = sum(u.item.width + gap for u in units)
    pitch = lib.r["track_width"] + lib.r["track_space"]
    device_h = max(u.item.top - u.item.bottom for u in units) + 2 * lib.r["channel_margin"]
    ref_nets = {n for u in refs for n in u.nets.values()}
    other_nets = {n for u in others for n in u.nets.values()} - ref_nets

    def extent(n):
        return max(total / n, n * (device_h + pitch * (len(ref_nets) + len(other_nets) / n + 1)))

    if width:
        n_rows = max(1, min(len(units), round(total / width)))
    else:
        n_rows = min(range(1, min(len(units), 400) + 1), key=extent)
    rows = [[] for _ in range(n_rows)]
    for i, u in enumerate(_interleaved(refs)):
        rows[i * n_rows // len(refs)].append(u)
    fill = [sum(u.item.width + gap for u in r) for r in rows]
    row = 0
    for u in others:
        w = u.item.width + gap
        while row < n_rows - 1 and fill[row] + w / 2 > total / n_rows:
            row += 1
        rows[row].append(u)
        fill[row] += w
    rows = [_interleaved(r) for r in rows if r]
    placed = [[(u.item, u.nets) for u in r] for r in rows]
    if kind == "c":
        return placed
    for row in placed:
        gated = {nets["g"] for _, nets in row if "g" in nets}
        row += [(tie_down(lib, kind), {"d": net}) for net in sorted(gated & set(gate_only))]
    return [_with_taps(lib, kind, body, r, gap) for r in placed]


def _with_taps(lib: Lib, kind: str, body: str, row: list, gap: int) -> list:
    """A tap at each end and between units, so no diffusion is farther than lu.tap from a tap."""
    body_tap = tap(lib, kind, max(item.diff_top for item, _ in row))
    nets = {"b": body}
    out, run = [(body_tap, nets)], 0
    for item, unit_nets in row:
        if run and run + item.width > 2 * lib.r["lu.tap"]:
            out.append((body_tap, nets))
            run = 0
        out.append((item, unit_nets))
        run += item.width + gap
    out.append((body_tap, nets))
    return out


def transistor(kind: str, w: float, l: float, nf: int = 1, m: int = 1, lib: Lib | None = None) -> tuple[Lib, Item]:
    """A stand-alone sky130 nfet_01v8 ('n') or pfet_01v8 ('p'): m units of width w (split over nf fingers)
    and length l in um, wired in parallel, with body taps and pins d, g, s and the body (gnd for an nfet,
    b in its n-well for a pfet). The same code lays out every cell's devices."""
    model = NFET if kind == "n" else PFET if kind == "p" else None
    if model is None:
        raise LayoutError(f"transistor kind {kind!r}: use 'n' or 'p'.")
    body = "0" if kind == "n" else "b"
    name = f"{model.split('__')[1]}_w{w:g}_l{l:g}_nf{nf}_m{m}".replace(".", "p")
    sub = Subckt(
        name,
        ["d", "g", "s"] + ([body] if kind == "p" else []),
        [Card("XM1", ["d", "g", "s", body], model, {"w": w, "l": l, "nf": nf, "m": m})],
    )
    lib = lib or Lib(name)
    block, _ = cell_block(lib, sub)
    return lib, block


@dataclass
class LayoutResult:
    lib: Lib
    top: Item  # the macro's top cell
    macro: Macro
    figures: dict


def layout_netlist(
    cells_text: str,
    network_text: str,
    stage_names: list | None = None,
    *,
    pin_layer: str = "met3",
    pin_side: str = "top",
    prefix: str | None = None,
) -> LayoutResult:
    """Lay out every subcircuit of `cells_text` and the network subcircuit of `network_text` (its only
    .subckt) as a macro with boundary pins on `pin_layer` facing `pin_side`; every cell name starts with
    `prefix` (default: from the netlist's hash). `stage_names` (IR order) groups the instances into rows."""
    cells_sub = parse_spice(cells_text)
    network = parse_spice(network_text)
    if len(network) != 1:
        raise LayoutError(f"network.spice must hold exactly one .subckt; found {len(network)}.")
    (top_sub,) = network.values()
    lib = Lib(top_sub.name)
    blocks, per_cell = {}, {}
    widths = _wide_blocks(lib, top_sub, cells_sub)
    for card in top_sub.cards:
        if card.model in blocks:
            continue
        if card.model not in cells_sub:
            raise LayoutError(
                f"{top_sub.name}: {card.name} instantiates {card.model}, which cells.spice does "
                "not define (the layout expects the network to instantiate cells only)."
            )
        blocks[card.model], per_cell[card.model] = cell_block(lib, cells_sub[card.model], widths.get(card.model))
    nets = _Nets(top_sub.ports, top_sub.shorts)
    groups = _stage_groups(top_sub.cards, stage_names or [])
    sequence = []  # (block, {port: net}) in IR order, tallest first per stage
    for _, cards in groups:
        entries = []
        for card in cards:
            ports = cells_sub[card.model].ports
            if len(card.nets) != len(ports):
                raise LayoutError(f"{card.name}: {len(card.nets)} nodes for the {len(ports)} ports of {card.model}.")
            mapping = {p: nets(n) for p, n in zip(ports, card.nets)}
            mapping.setdefault(tech()["nets"]["ground"], tech()["nets"]["ground"])
            entries.append((blocks[card.model], mapping))
        sequence += sorted(entries, key=lambda e: -e[0].top)
    rows = _floorplan(lib, sequence)
    ports = [nets(p) for p in top_sub.ports]
    if any(tech()["nets"]["ground"] in {t[1] for t in b.terminals} for b in blocks.values()):
        ports.append(tech()["nets"]["ground"])
    core = assemble(
        lib, f"{top_sub.name}_core", rows, list(dict.fromkeys(ports)), gap=lib.r["block_gap"], wide=SUPPLIES
    )
    macro = build_macro(lib, core, top_sub.name, pin_layer=pin_layer, side=pin_side)
    macro.names = rename_cells(lib, macro.cell, prefix or prefix_of(cells_text, network_text, pin_layer, pin_side))
    macro.name = macro.cell.kdb_cell.name
    top = Item(macro.cell, macro.width, 0, macro.height, [])
    figures = _figures(macro, top_sub, blocks, per_cell, groups)
    return LayoutResult(lib, top, macro, figures)


def _wide_blocks(lib: Lib, top_sub: Subckt, cells_sub: dict) -> dict:
    """{cell: width} for cells holding more than a tenth of the device area of a network of ten or more
    instances: laid out as wide as the square floorplan instead of square, so one such block does not
    leave most of its row empty."""

    def device_area(sub):
        area = 0.0
        for card in sub.cards:
            model = card.model.lower()
            if model in (NFET, PFET):
                item = fet(
                    lib,
                    "n" if model == NFET else "p",
                    float(card.params["w"]),
                    float(card.params["l"]),
                    int(card.params.get("nf", 1)),
                )
                area += (item.width + lib.r["unit_gap"]) * (item.top - item.bottom) * int(card.params.get("m", 1))
        return area

    per_model = {}
    for card in top_sub.cards:
        if card.model in cells_sub and card.model not in per_model:
            per_model[card.model] = device_area(cells_sub[card.model])
    total = sum(per_model[c.model] for c in top_sub.cards if c.model in per_model)
    if len(top_sub.cards) < 10:
        return {}
    side = math.sqrt(2 * total)  # blocks take about half of the floorplan
    return {m: side for m, a in per_model.items() if a > 0.1 * total and a > 0}


def _fill(sequence: list, limit: float, gap: int) -> list:
    rows, row, width = [], [], 0
    for block, mapping in sequence:
        if row and width + block.width > limit:
            rows.append(row)
            row, width = [], 0
        row.append((block, mapping))
        width += block.width + gap
    return rows + ([row] if row else [])


def _floorplan(lib: Lib, sequence: list) -> list:
    """Rows of blocks filled in IR order; the row width is the one (of a range around the square) whose
    estimated outline, channels and straps included, is smallest, penalised beyond a 2:1 aspect."""
    r, gap = lib.r, lib.r["block_gap"]
    pitch = r["track_width"] + r["track_space"]
    power = r["power_width"] + r["track_space"]
    total = sum(b.width * b.top for b, _ in sequence)
    widest = max((b.width for b, _ in sequence), default=0)

    def area(rows):
        height, width, seen = 0, 0, {}
        for i, row in enumerate(rows):
            names = {m[role] for b, m in row for _, role in b.terminals if role in m}
            for n in names:
                seen.setdefault(n, set()).add(i)
            tracks = sum(power if n in SUPPLIES else pitch for n in names)
            height += max(b.top for b, _ in row) + 2 * r["channel_margin"] + tracks
            width = max(width, sum(b.width + gap for b, _ in row))
        spines = sum(1 for rows_of in seen.values() if len(rows_of) > 1)
        width += spines * (r["spine_width"] + r["spine_space"])
        return width * height * max(1.0, width / height / 2, height / width / 2)  # no more than 2:1

    candidates = [max(widest, math.sqrt(total) * f / 10) for f in range(5, 31)]
    return min((_fill(sequence, limit, gap) for limit in candidates), key=area)


def _stage_groups(cards: list, stage_names: list) -> list:
    """[(group, [cards])]: instances grouped by the IR stage their name starts with (longest match),
    in IR order; instances no stage claims are grouped by their name's leading word, after them."""
    keys = sorted({re.sub(r"[^A-Za-z0-9_]", "_", s) for s in stage_names}, key=len, reverse=True)
    order = [re.sub(r"[^A-Za-z0-9_]", "_", s) for s in stage_names]
    grouped: dict = defaultdict(list)
    for card in cards:
        label = card.name[1:]
        key = next((k for k in keys if label == k or label.startswith(k + "_")), None)
        grouped[key or re.split(r"[_\d]", label)[0] or label].append(card)
    ranked = sorted(grouped, key=lambda g: (order.index(g) if g in order else len(order), g))
    return [(g, grouped[g]) for g in ranked]


def _figures(macro: Macro, top_sub: Subckt, blocks: dict, per_cell: dict, groups: list) -> dict:
    um2 = 1e-6
    stage_area, stage_units = {}, {}
    for group, cards in groups:
        stage_area[group] = round(sum(blocks[c.model].width * blocks[c.model].top for c in cards) * um2, 1)
        stage_units[group] = sum(per_cell[c.model]["units"] for c in cards)
    kinds = defaultdict(lambda: {"instances": 0, "area_um2": 0.0, "units": 0})
    for card in top_sub.cards:
        kind = kinds[card.model.split("_")[0]]
        kind["instances"] += 1
        kind["area_um2"] += blocks[card.model].width * blocks[card.model].top * um2
        kind["units"] += per_cell[card.model]["units"]
    cells_area = sum(v["area_um2"] for v in kinds.values())
    total = macro.width * macro.height * um2
    return {
        "top_cell": macro.name,
        "pins": len(macro.pins),
        "width_um": macro.width / 1000,
        "height_um": macro.height / 1000,
        "area_um2": round(total, 1),
        "cells_area_um2": round(cells_area, 1),
        "routing_area_um2": round(total - cells_area, 1),
        "unit_transistors": sum(v["units"] for v in kinds.values()),
        "transistor_instances": sum(per_cell[c.model]["instances"] for c in top_sub.cards),
        "by_cell_kind": {k: {**v, "area_um2": round(v["area_um2"], 1)} for k, v in sorted(kinds.items())},
        "by_stage": {
            g: {"area_um2": stage_area[g], "unit_transistors": stage_units[g], "instances": len(cards)}
            for g, cards in groups
        },
        "cells": {
            name: {
                "width_um": b.width / 1000,
                "height_um": b.top / 1000,
                "area_um2": round(b.width * b.top * um2, 1),
                **per_cell[name],
            }
            for name, b in sorted(blocks.items())
        },
    }


def write_gds(lib: Lib, top: Item, path: Path) -> None:
    """GDS of `top` and its hierarchy with fixed timestamps and no tool metadata: same layout, same bytes."""
    options = kdb.SaveLayoutOptions()
    options.format = "GDS2"
    options.gds2_write_timestamps = False
    options.write_context_info = False
    options.gds2_libname = top.cell.kdb_cell.name
    options.select_all_layers()
    options.clear_cells()
    options.add_cell(top.cell.kdb_cell.cell_index())
    write_atomically(path, lambda tmp: lib.layout.write(str(tmp), options))


def write_lyp(path: Path) -> None:
    """KLayout layer properties for the layers we draw (colours of the usual sky130 palette)."""
    colours = {
        "nwell": "#268c6b",
        "diff": "#00cc66",
        "tap": "#33ff33",
        "poly": "#ff0000",
        "licon": "#ffff00",
        "npc": "#aa00ff",
        "li1": "#ffccff",
        "mcon": "#000000",
        "met1": "#0000ff",
        "via": "#9999ff",
        "met2": "#ff00ff",
        "via2": "#ffb3ff",
        "met3": "#00ccff",
        "via3": "#99e6ff",
        "met4": "#ff9900",
        "capm": "#cc6600",
        "nsdm": "#9900e6",
        "psdm": "#e61a00",
        "prboundary": "#808080",
    }
    stipple = {"nwell": "I5", "nsdm": "I1", "psdm": "I1", "prboundary": "I1", "capm": "I5"}
    t = tech()
    entries = []
    for name, (layer, datatype) in t["layers"].items():
        entries.append(_lyp_entry(name, layer, datatype, colours.get(name, "#808080"), stipple.get(name, "I9")))
    for metal, p in t["pins"].items():
        entries.append(_lyp_entry(f"{metal}.pin", *p["pin"], colours.get(metal, "#808080"), "I1"))
        entries.append(_lyp_entry(f"{metal}.label", *p["label"], colours.get(metal, "#808080"), "I1"))
    text = '<?xml version="1.0" encoding="utf-8"?>\n<layer-properties>\n' + "".join(entries) + "</layer-properties>\n"
    write_text_atomically(path, text)


def _lyp_entry(name, layer, datatype, colour, pattern) -> str:
    return (
        f" <properties>\n  <frame-color>{colour}</frame-color>\n  <fill-color>{colour}</fill-color>\n"
        f"  <dither-pattern>{pattern}</dither-pattern>\n  <visible>true</visible>\n"
        f"  <name>{name} {layer}/{datatype}</name>\n  <source>{layer}/{datatype}@1</source>\n </properties>\n"
    )


def write_png(gds: Path, lyp: Path, path: Path, size: int = 1600) -> None:
    """A render of the whole layout through KLayout's layout view."""
    import klayout.lay as lay

    view = lay.LayoutView()
    view.set_config("background-color", "#ffffff")
    view.set_config("grid-visible", "false")
    view.load_layout(str(gds), True)
    view.load_layer_props(str(lyp))
    view.max_hier()
    view.zoom_fit()
    write_atomically(path, lambda tmp: view.save_image(str(tmp), size, size))


def write_layout(netlist_dir: Path, out_dir: Path, stage_names: list | None = None, png: bool = True, **macro) -> dict:
    """netlist/{cells,network}.spice -> layout/{top.gds, top.lef, top.v, cell_names.json, top.png, sky130.lyp};
    `macro` takes layout_netlist's pin_layer, pin_side and prefix. Returns the figures."""
    netlist_dir, out_dir = Path(netlist_dir), Path(out_dir)
    result = layout_netlist(
        (netlist_dir / "cells.spice").read_text(), (netlist_dir / "network.spice").read_text(), stage_names, **macro
    )
    write_gds(result.lib, result.top, out_dir / "top.gds")
    write_text_atomically(out_dir / "top.lef", lef(result.macro))
    write_text_atomically(out_dir / "top.v", verilog(result.macro))
    write_text_atomically(out_dir / "cell_names.json", json.dumps(result.macro.names, indent=1, sort_keys=True) + "\n")
    write_lyp(out_dir / "sky130.lyp")
    if png:
        write_png(out_dir / "top.gds", out_dir / "sky130.lyp", out_dir / "top.png")
    return {"files": sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".")), **result.figures}
