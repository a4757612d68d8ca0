"""The layout as a macro that drops into a chip: boundary pins, one outline, unique cell names, LEF and Verilog.

The routed network (the core) leaves its ports as met1 stubs on its top edge. The macro adds a fan-out
above it: each port rises on met1 to its own met2 track, runs along it to its pin's x, and rises on met3
to a pin on the boundary (on met4 through a via3 when asked), pins spread evenly along the side. The
whole is then turned so the pins face the chosen side and moved so the outline starts at (0, 0); the
outline (`prBoundary`) is the extent of every shape. Every cell name gets the build's prefix and is
kept to 32 characters (GDSII's limit), so two builds merge into one GDS without a clash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import klayout.db as kdb

from compiler.backends.layout_devices import Item, LayoutError, Lib, snap

PIN_LAYERS = ("met3", "met4")
PIN_SIDES = {"top": 0, "left": 1, "bottom": 2, "right": 3}  # quarter turns that bring the top edge there
POWER = {"vdd": "POWER", "gnd": "GROUND"}
MAX_NAME = 32  # GDSII cell names


@dataclass
class Pin:
    net: str
    use: str  # SIGNAL, POWER or GROUND
    rects: list = field(default_factory=list)  # [(layer, kdb.Box)] in the macro's frame, nm


@dataclass
class Macro:
    name: str
    width: int  # nm
    height: int
    pins: list
    obstructions: list  # [(layer, kdb.Box)]
    names: dict  # GDS cell name -> the name it had (its netlist subcircuit or device)
    cell: object = None  # the top cell (a gdsfactory Component)


def build_macro(lib: Lib, core: Item, name: str, *, pin_layer: str = "met3", side: str = "top") -> Macro:
    """Wrap `core` in the top cell `name` with boundary pins on `pin_layer`, facing `side`."""
    if pin_layer not in PIN_LAYERS or side not in PIN_SIDES:
        raise LayoutError(f"pins on {pin_layer!r} facing {side!r}: layers {PIN_LAYERS}, sides {tuple(PIN_SIDES)}.")
    r = lib.r
    v1, v2, v3 = r["via.1a"], r["via2.1a"], r["via3.1"]
    core_box = core.cell.kdb_cell.bbox()
    ports = list(core.terminals)
    track_pitch = r["track_width"] + r["track_space"]
    first_track = max(core.top, core_box.top) + r["channel_margin"] + r["track_width"] // 2
    pins_bottom = first_track + len(ports) * track_pitch + r["channel_margin"]
    top = pins_bottom + r["pin_length"]
    left = core_box.left
    right = max(core_box.right, left + len(ports) * r["pin_pitch"])
    step = (right - left) / max(len(ports), 1)
    wires, pins, faces = [], [], []  # in the core's frame; turned and moved below
    for k, (x_stub, net) in enumerate(ports):
        y = first_track + k * track_pitch
        x_pin = snap(left + (k + 0.5) * step)
        half = r["power_pin_width" if net in POWER else "pin_width"] // 2
        end = v2 // 2 + r["via2.5"] + 20
        wires += [
            (
                "met1",
                kdb.Box(
                    x_stub - lib.stub // 2, core.top - 2 * lib.stub, x_stub + lib.stub // 2, y + v1 // 2 + r["via.5a"]
                ),
            ),
            ("via", _square(x_stub, y, v1)),
            (
                "met2",
                kdb.Box(
                    min(x_stub, x_pin) - end,
                    y - r["track_width"] // 2,
                    max(x_stub, x_pin) + end,
                    y + r["track_width"] // 2,
                ),
            ),
            ("via2", _square(x_pin, y, v2)),
        ]
        pin = Pin(net, POWER.get(net, "SIGNAL"))
        if pin_layer == "met4":
            pin.rects.append(
                ("met3", kdb.Box(x_pin - half, y - v2 // 2 - r["m3.4"] - 35, x_pin + half, pins_bottom + v3))
            )
            wires.append(("via3", _square(x_pin, pins_bottom, v3)))
            pin.rects.append(("met4", kdb.Box(x_pin - half, pins_bottom - v3 // 2 - r["m4.3"], x_pin + half, top)))
        else:
            pin.rects.append(("met3", kdb.Box(x_pin - half, y - v2 // 2 - r["m3.4"] - 35, x_pin + half, top)))
        pins.append(pin)
        faces.append((net, kdb.Box(x_pin - half, top - r["pin_length"], x_pin + half, top)))
    outline = kdb.Box(left, min(core_box.bottom, 0), right, top)
    for _, box in wires + [rect for pin in pins for rect in pin.rects]:
        outline += box  # a port stub at the core's edge: its track's end is still inside
    turn = kdb.Trans(PIN_SIDES[side], False, 0, 0)
    turned = outline.transformed(turn)
    place = kdb.Trans(-turned.left, -turned.bottom) * turn
    cell = lib.component(name)
    cell.kdb_cell.insert(kdb.CellInstArray(core.cell.kdb_cell.cell_index(), place))
    for pin in pins:
        pin.rects = [(layer, box.transformed(place)) for layer, box in pin.rects]
    for layer, box in [(layer, box.transformed(place)) for layer, box in wires] + [r_ for p in pins for r_ in p.rects]:
        lib.box(cell, layer, *_corners(box))
    for net, box in faces:
        lib.pin(cell, pin_layer, net, *_corners(box.transformed(place)))
    boundary = outline.transformed(place)
    lib.box(cell, "prboundary", *_corners(boundary))
    core_area = core_box.transformed(place)
    obstructions = [(layer, boundary) for layer in ("li1", "met1", "met2")]
    obstructions += [(layer, core_area) for layer in ("met3", "met4") if _has(lib, core.cell.kdb_cell, layer)]
    return Macro(name, boundary.width(), boundary.height(), pins, obstructions, {}, cell)


def _square(x: int, y: int, size: int) -> kdb.Box:
    return kdb.Box(x - size // 2, y - size // 2, x - size // 2 + size, y - size // 2 + size)


def _corners(box: kdb.Box) -> tuple:
    return box.left, box.bottom, box.right, box.top


def _has(lib: Lib, kcell, layer: str) -> bool:
    return not kdb.RecursiveShapeIterator(lib.layout, kcell, lib.index[layer]).at_end()


def prefix_of(*texts: str) -> str:
    """The default cell-name prefix of a build: `fq` and six hex digits of the hash of its netlist and pin
    choices (the same build, the same names; two different builds, different names)."""
    return "fq" + hashlib.sha256("\0".join(texts).encode()).hexdigest()[:6]


def rename_cells(lib: Lib, top, prefix: str) -> dict:
    """Prefix the name of `top` (a gdsfactory Component) and every cell under it, keeping each to MAX_NAME
    characters (a long name keeps its start and gets six hex digits of its hash); {new name: old name}."""
    names = {}
    index = top.kdb_cell.cell_index()
    for kcell in [top.kdb_cell] + [lib.layout.cell(i) for i in sorted(top.kdb_cell.called_cells()) if i != index]:
        old = kcell.name
        new = f"{prefix}_{old}"
        if len(new) > MAX_NAME:
            digest = hashlib.sha256(old.encode()).hexdigest()[:6]
            new = f"{new[: MAX_NAME - 7]}_{digest}"
        if new in names:
            raise LayoutError(f"two cells shorten to the name {new!r}; choose a shorter cell prefix than {prefix!r}.")
        names[new] = old
        kcell.name = new
    return names


def lef(macro: Macro, dbu: float = 0.001) -> str:
    """A LEF abstract: the outline, each pin's metal, and the metal it covers as obstruction."""

    def rect(box):
        return f"RECT {box.left * dbu:.3f} {box.bottom * dbu:.3f} {box.right * dbu:.3f} {box.top * dbu:.3f} ;"

    lines = [
        "VERSION 5.7 ;",
        'BUSBITCHARS "[]" ;',
        'DIVIDERCHAR "/" ;',
        f"MACRO {macro.name}",
        "  CLASS BLOCK ;",
        f"  FOREIGN {macro.name} ;",
        "  ORIGIN 0 0 ;",
        f"  SIZE {macro.width * dbu:.3f} BY {macro.height * dbu:.3f} ;",
    ]
    for pin in macro.pins:
        lines += [f"  PIN {pin.net}", "    DIRECTION INOUT ;", f"    USE {pin.use} ;", "    PORT"]
        for layer, box in pin.rects:
            lines += [f"      LAYER {layer} ;", f"        {rect(box)}"]
        lines += ["    END", f"  END {pin.net}"]
    lines.append("  OBS")
    for layer, box in macro.obstructions:
        lines += [f"    LAYER {layer} ;", f"      {rect(box)}"]
    lines += ["  END", f"END {macro.name}", "", "END LIBRARY"]
    return "\n".join(lines) + "\n"


def verilog(macro: Macro) -> str:
    """A blackbox module with the macro's pins (power pins under USE_POWER_PINS, as shuttle harnesses expect)."""
    power = [p.net for p in macro.pins if p.use != "SIGNAL"]
    signals = [p.net for p in macro.pins if p.use == "SIGNAL"]
    last = (signals or power)[-1]
    ports = ["`ifdef USE_POWER_PINS"] + [f"    inout {n}{'' if n == last else ','}" for n in power] + ["`endif"]
    ports += [f"    inout {n}{'' if n == last else ','}" for n in signals]
    return (
        f"// {macro.name}: analog macro (current-mode recurrent network), blackbox for integration.\n"
        f"(* blackbox *)\nmodule {macro.name} (\n" + "\n".join(ports) + "\n);\nendmodule\n"
    )
