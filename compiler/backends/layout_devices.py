"""sky130 device geometry for the layout backend: transistors, body taps and the MIM capacitor.

Every device is an `Item`: a cell whose terminals are vertical met1 stubs ending on its top edge, one x
per terminal, so a router can connect each of them straight up to a horizontal track of its net
without any two stubs crossing (compiler/backends/layout_place.py). Transistors are drawn with their
gate poly vertical (channel length along x), diffusion contacts as licon columns under li1 and mcons,
the gate contacted above the diffusion through a poly pad (licon inside npc). Each transistor and tap
cell holds its own implant and, for p-devices and n-taps, its n-well, so the GDS reads correctly cell by
cell; a row only merges its n-wells and fills implant gaps (`decorate_row`).

All coordinates are integer nanometres (database unit 1 nm) on the manufacturing grid. Rule values
come from the DRC rule table sky130/drc_rules.yaml, by SkyWater rule ID, so the generator draws to the
numbers DRC checks; sky130/layers.yaml adds the few it does not check (`rules`) and our drawing choices
(`style`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import gdsfactory as gf
import kfactory as kf
import klayout.db as kdb
import yaml

from compiler.foundation.data import sky130_file
from compiler.foundation.errors import UsageError

LAYERS_FILE = sky130_file("layers.yaml")
DRC_RULES_FILE = sky130_file("drc_rules.yaml")
NFET = "sky130_fd_pr__nfet_01v8"
PFET = "sky130_fd_pr__pfet_01v8"
MIM = "sky130_fd_pr__cap_mim_m3_1"


class LayoutError(UsageError):
    """A netlist asks for something the layout generator cannot draw (device, size or connection)."""


@functools.lru_cache(maxsize=1)
def tech() -> dict:
    """sky130/layers.yaml: layers, pin/label purposes, rules (with the DRC table's) and style (lengths in nm)."""
    data = yaml.safe_load(LAYERS_FILE.read_text())
    checked = {
        r["name"]: r["value"] for r in yaml.safe_load(DRC_RULES_FILE.read_text())["rules"] if r["kind"] != "area"
    }
    data["rules"] = {**checked, **data["rules"]}
    grid = round(data["rules"]["grid"] * 1000)
    data["grid_nm"] = grid
    data["nm"] = {k: _on_grid(v * 1000, grid) for k, v in {**data["rules"], **data["style"]}.items()}
    return data


def _on_grid(value_nm: float, grid: int) -> int:
    """Round a length up to the manufacturing grid (a minimum is never rounded below itself)."""
    return int(math.ceil(round(value_nm, 6) / grid) * grid)


def nm(um: float) -> int:
    """A minimum length in nm, rounded up to the grid."""
    return _on_grid(um * 1000, tech()["grid_nm"])


def nearest(um: float) -> int:
    """A device dimension in nm, rounded to the nearest grid point (the value a netlist asked for)."""
    g = tech()["grid_nm"]
    return int(round(um * 1000 / g)) * g


def snap(value: float) -> int:
    """A coordinate (nm) snapped down to the grid."""
    g = tech()["grid_nm"]
    return int(math.floor(value / g) * g)


class Lib:
    """One layout under construction: its own KLayout library (no global cell cache shared between
    builds, so two builds in one process cannot see each other's cells), layer indices, cached cells."""

    def __init__(self, name: str = "fqrnn"):
        self.kcl = kf.KCLayout(name)
        self.layout: kdb.Layout = self.kcl.layout
        t = tech()
        self.index = {n: self.layout.layer(*ld) for n, ld in t["layers"].items()}
        self.pin_index = {
            n: (self.layout.layer(*p["pin"]), self.layout.layer(*p["label"])) for n, p in t["pins"].items()
        }
        self.items: dict = {}
        r = t["nm"]
        self.r = r
        self.stub = r["via.1a"] + 2 * r["via.4a"]  # met1 stub width: a via fits without a pad
        self.stub_pitch = self.stub + r["m1.2"]

    def component(self, name: str) -> gf.Component:
        if self.layout.has_cell(name):
            raise LayoutError(f"two different layouts want the cell name {name!r}; subcircuit names must be unique.")
        return gf.Component(name=name, kcl=self.kcl)

    def box(self, cell, layer: str, x0: int, y0: int, x1: int, y1: int) -> None:
        cell.kdb_cell.shapes(self.index[layer]).insert(kdb.Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))

    def square(self, cell, layer: str, x: int, y: int, size: int) -> None:
        h = size // 2
        self.box(cell, layer, x - h, y - h, x - h + size, y - h + size)

    def via1(self, cell, x: int, y: int) -> None:
        self.square(cell, "via", x, y, self.r["via.1a"])

    def via2(self, cell, x: int, y: int) -> None:
        self.square(cell, "via2", x, y, self.r["via2.1a"])

    def pin(self, cell, metal: str, name: str, x0: int, y0: int, x1: int, y1: int) -> None:
        """A pin shape and a text label of net `name` on `metal` (purposes from layers.yaml `pins`)."""
        pin, label = self.pin_index[metal]
        cell.kdb_cell.shapes(pin).insert(kdb.Box(x0, y0, x1, y1))
        cell.kdb_cell.shapes(label).insert(kdb.Text(name, kdb.Trans((x0 + x1) // 2, (y0 + y1) // 2)))


@dataclass
class Item:
    """A placeable cell. x runs from 0 to `width`; y = 0 is the bottom of the diffusion (devices) or of the
    cell; `bottom` <= 0 and `top` bound everything it draws. `terminals` are (x, role) of met1 stubs that
    end on the top edge. `implant` ('n'/'p'/None), `well` and `diff_top` let a row draw implants and wells."""

    cell: gf.Component
    width: int
    bottom: int
    top: int
    terminals: list
    implant: str | None = None
    well: bool = False
    diff_top: int = 0
    info: dict = field(default_factory=dict)


def gate_contact_y(lib: Lib, w: int) -> int:
    """Bottom of the gate licon above a diffusion of height w: licon.14 from the diffusion and licon.9
    from the implant drawn `implant_margin` beyond it."""
    r = lib.r
    return w + max(r["licon.14"], r["implant_margin"] + r["licon.9"])


def device_top(lib: Lib, w: int) -> int:
    """The top edge of a device or tap of diffusion height w: above the gate contact."""
    return gate_contact_y(lib, w) + lib.r["ct.1"] + 2 * lib.stub


def _contact_column(lib: Lib, cell, xc: int, y0: int, y1: int, enc_y: int, top: int) -> None:
    """licons in [y0, y1] (enclosure enc_y), li1 over them, mcons, and a met1 stub up to `top`."""
    r = lib.r
    size, pitch = r["licon.1"], r["licon.1"] + r["licon.2"]
    span = y1 - y0 - 2 * enc_y
    if span < size:
        raise LayoutError(
            f"a contact needs {(size + 2 * enc_y) / 1000:g} um of diffusion; got {(y1 - y0) / 1000:g} um."
        )
    n = (span - size) // pitch + 1
    first = y0 + enc_y + snap((span - (n - 1) * pitch - size) / 2)
    for k in range(n):
        lib.box(cell, "licon", xc - size // 2, first + k * pitch, xc - size // 2 + size, first + k * pitch + size)
    li0, li1 = first - r["li.5"], first + (n - 1) * pitch + size + r["li.5"]
    half_li = max(r["li.1"], size) // 2
    lib.box(cell, "li1", xc - half_li, li0, xc - half_li + 2 * half_li, li1)
    msize, mpitch = r["ct.1"], r["ct.1"] + r["ct.2"]
    nm_ = (li1 - li0 - msize) // mpitch + 1
    mfirst = li0 + snap((li1 - li0 - (nm_ - 1) * mpitch - msize) / 2)
    for k in range(nm_):
        lib.box(
            cell, "mcon", xc - msize // 2, mfirst + k * mpitch, xc - msize // 2 + msize, mfirst + k * mpitch + msize
        )
    lib.box(cell, "met1", xc - lib.stub // 2, mfirst - r["m1.5"], xc + lib.stub // 2, top)


def _contact_offset(lib: Lib, l: int) -> int:
    """Distance from a gate edge to the centre of the next diffusion contact: licon.11 clearance, and
    wide enough that the source, gate and drain stubs keep met1 spacing."""
    r = lib.r
    return _on_grid(max(r["licon.11"] + r["licon.1"] / 2, lib.stub_pitch - l / 2), tech()["grid_nm"])


def fet(lib: Lib, kind: str, w_um: float, l_um: float, nf: int = 1) -> Item:
    """One sky130 1.8 V transistor ('n' or 'p'), total width w split over nf fingers of length l.

    Terminals: a stub per diffusion contact (alternately 's' and 'd', source first) and a stub per gate
    ('g'). KLayout extracts one device per finger; parallel fingers combine into width w."""
    key = ("fet", kind, w_um, l_um, nf)
    if key in lib.items:
        return lib.items[key]
    if kind not in ("n", "p") or nf < 1:
        raise LayoutError(f"transistor kind {kind!r}, nf {nf}: kind is 'n' or 'p', nf >= 1.")
    r = lib.r
    wf, l = nearest(w_um / nf), nearest(l_um)
    w_min = nm(0.36 if kind == "n" else 0.42)
    if wf < max(w_min, r["licon.1"] + 2 * r["licon.5c"]) or l < r["poly.1a"]:
        raise LayoutError(
            f"{kind}fet W={w_um:g} L={l_um:g} nf={nf}: each finger needs W >= {w_min / 1000:g} um "
            f"and L >= {r['poly.1a'] / 1000:g} um."
        )
    c = _contact_offset(lib, l)
    edge = max(r["licon.1"] // 2 + r["licon.5c"], r["poly.7"] - c)  # diffusion beyond the outer contact centres
    pitch = l + 2 * c  # contact centre to contact centre
    width = 2 * edge + nf * pitch
    top = device_top(lib, wf)
    name = f"{kind}fet_01v8_w{_tok(w_um)}_l{_tok(l_um)}" + (f"_nf{nf}" if nf > 1 else "")
    cell = lib.component(name)
    lib.box(cell, "diff", 0, 0, width, wf)
    terminals = []
    ly = gate_contact_y(lib, wf)
    pad_w = max(l, r["licon.1"] + 2 * r["licon.8"])
    for k in range(nf + 1):
        xc = edge + k * pitch
        _contact_column(lib, cell, xc, 0, wf, r["licon.5a"], top)
        terminals.append((xc, "s" if k % 2 == 0 else "d"))
    for k in range(nf):
        g0 = edge + k * pitch + c
        gx = g0 + l // 2
        lib.box(cell, "poly", g0, -r["poly.8"], g0 + l, ly + r["licon.1"] + r["licon.8a"])
        lib.box(
            cell,
            "poly",
            gx - pad_w // 2,
            ly - r["licon.8a"],
            gx - pad_w // 2 + pad_w,
            ly + r["licon.1"] + r["licon.8a"],
        )
        h = r["licon.1"] // 2
        lib.box(cell, "licon", gx - h, ly, gx - h + r["licon.1"], ly + r["licon.1"])
        lib.box(
            cell,
            "npc",
            gx - h - r["licon.15"],
            ly - r["licon.15"],
            gx - h + r["licon.1"] + r["licon.15"],
            ly + r["licon.1"] + r["licon.15"],
        )
        lib.box(cell, "li1", gx - h, ly - r["li.5"], gx - h + r["licon.1"], ly + r["licon.1"] + r["li.5"])
        lib.box(cell, "mcon", gx - h, ly, gx - h + r["ct.1"], ly + r["ct.1"])
        lib.box(cell, "met1", gx - lib.stub // 2, ly - r["m1.5"], gx + lib.stub // 2, top)
        terminals.append((gx, "g"))
    terminals.sort()
    own_implant_and_well(lib, cell, kind, width, wf, well=(kind == "p"))
    item = Item(
        cell,
        width,
        -r["poly.8"],
        top,
        terminals,
        implant=kind,
        well=(kind == "p"),
        diff_top=wf,
        info={"kind": kind, "w": w_um, "l": l_um, "nf": nf, "gate_area_nm2": wf * l * nf},
    )
    lib.items[key] = item
    return item


def tap(lib: Lib, kind: str, height: int) -> Item:
    """A body tap beside `kind` transistors: p+ tap in the substrate for nfets, n+ tap in the n-well
    for pfets. One terminal 'b'."""
    key = ("tap", kind, height)
    if key in lib.items:
        return lib.items[key]
    r = lib.r
    width = r["licon.1"] + 2 * r["licon.7"]
    height = max(height, width)
    top = device_top(lib, height)
    cell = lib.component(f"{'p' if kind == 'n' else 'n'}tap_h{height}")
    lib.box(cell, "tap", 0, 0, width, height)
    _contact_column(lib, cell, width // 2, 0, height, r["licon.5c"], top)
    own_implant_and_well(lib, cell, "p" if kind == "n" else "n", width, height, well=(kind == "p"))
    item = Item(
        cell,
        width,
        0,
        top,
        [(width // 2, "b")],
        implant="p" if kind == "n" else "n",
        well=(kind == "p"),
        diff_top=height,
    )
    lib.items[key] = item
    return item


def tie_down(lib: Lib, kind: str) -> Item:
    """An antenna tie-down beside `kind` transistors: a small n+ diffusion in the substrate ('n') or p+ in
    the n-well ('p'), a reverse-biased diode, on a net that reaches only gates in its cell, so no metal of
    that net charges a gate alone while the chip is made (sky130/antenna.yaml). One terminal 'd'.
    KLayout's LVS reads it as part of the net; the simulated netlist leaves it out."""
    key = ("tie_down", kind)
    if key in lib.items:
        return lib.items[key]
    r = lib.r
    width = r["licon.1"] + 2 * r["licon.5c"]
    height = r["licon.1"] + 2 * r["licon.5a"]
    top = device_top(lib, height)
    cell = lib.component(f"antenna_tie_down_{kind}")
    lib.box(cell, "diff", 0, 0, width, height)
    _contact_column(lib, cell, width // 2, 0, height, r["licon.5a"], top)
    own_implant_and_well(lib, cell, kind, width, height, well=(kind == "p"))
    item = Item(
        cell,
        width,
        0,
        top,
        [(width // 2, "d")],
        implant=kind,
        well=(kind == "p"),
        diff_top=height,
        info={"kind": "tie_down"},
    )
    lib.items[key] = item
    return item


def mim_cap(lib: Lib, w_um: float, l_um: float) -> Item:
    """sky130_fd_pr__cap_mim_m3_1 of capm w x l over a met3 bottom plate. Terminals: 'c0' the top plate
    (capm, via3 to met4, down to met1 beside the plate) and 'c1' the bottom plate (met3 tab, via2, via).
    The item's width keeps capm.2b (bottom plate to any other met3) from the next item in a row."""
    key = ("mim", w_um, l_um)
    if key in lib.items:
        return lib.items[key]
    r = lib.r
    w, l = nearest(w_um), nearest(l_um)
    if w < nm(3.0) or l < nm(3.0):
        raise LayoutError(f"MIM capacitor {w_um:g} x {l_um:g} um: the generator draws plates of at least 3 x 3 um.")
    cell = lib.component(f"cap_mim_m3_1_w{_tok(w_um)}_l{_tok(l_um)}")
    enc = r["capm.3"]
    v2, v3, v1 = r["via2.1a"], r["via3.1"], r["via.1a"]
    pad2 = v2 // 2 + r["m2.5"]  # met2 pad half-size around via2 / via
    half = nm(0.2)  # half-width of the top plate's met3 island and met4 strap
    # c1: via2 inside the bottom plate beside the capm (the plate stays one rectangle: a tab would be a
    # narrow met3 touching wide met3), met2 pad, via, met1 stub
    x1 = enc + w + nm(0.3) + v2 // 2
    plate_right = x1 + v2 // 2 + r["via2.5"]
    lib.box(cell, "capm", enc, 0, enc + w, l)
    lib.box(cell, "met3", 0, -enc, plate_right, l + enc)
    x2 = plate_right + r["capm.2b"] + half  # top-plate (c0) stack
    y2 = nm(0.3)
    lib.via2(cell, x1, y2)
    y1 = y2 + nm(0.5)
    lib.box(cell, "met2", x1 - pad2, y2 - pad2, x1 + pad2, y1 + pad2)
    lib.via1(cell, x1, y1)
    top = l + enc + nm(1.0)
    lib.box(cell, "met1", x1 - lib.stub // 2, y1 - v1 // 2 - r["via.5a"], x1 + lib.stub // 2, top)
    # c0: via3 on capm, met4 strap to a met3 island beside the plate, via2, met2, via, met1 stub
    yt = l - r["capm.4"] - v3 // 2 - nm(0.06)
    xv = enc + w - r["capm.4"] - v3 // 2 - nm(0.06)
    lib.square(cell, "via3", xv, yt, v3)
    lib.box(cell, "met4", xv - half, yt - half, x2 + half, yt + half)
    lib.square(cell, "via3", x2, yt, v3)
    yb = yt - nm(0.6)
    lib.box(cell, "met3", x2 - half, yb - half, x2 + half, yt + half)
    lib.via2(cell, x2, yb)
    yv = yb - nm(0.5)
    lib.box(cell, "met2", x2 - pad2, yv - pad2, x2 + pad2, yb + pad2)
    lib.via1(cell, x2, yv)
    lib.box(cell, "met1", x2 - lib.stub // 2, yv - v1 // 2 - r["via.5a"], x2 + lib.stub // 2, top)
    width = x2 + half + max(r["capm.2b"] - r["unit_gap"], 0)  # the next plate is a row gap further
    item = Item(cell, width, -enc, top, [(x1, "c1"), (x2, "c0")], info={"kind": "mim", "w": w_um, "l": l_um})
    lib.items[key] = item
    return item


def own_implant_and_well(lib: Lib, cell, implant: str, width: int, diff_top: int, well: bool) -> None:
    """A device cell's own implant (and n-well for a p-device or n-tap), so the cell reads as the device
    it names on its own, as a cell-by-cell GDS reader sees it."""
    m = lib.r["implant_margin"]
    lib.box(cell, "nsdm" if implant == "n" else "psdm", -m, -m, width + m, diff_top + m)
    if well:
        wm = lib.r["well_margin"]
        lib.box(cell, "nwell", -wm, -wm, width + wm, diff_top + wm)


def decorate_row(lib: Lib, cell, placed: list, gap: int) -> None:
    """What a row adds to its items' own layers: implant between neighbours of one polarity wider apart
    than their implants reach, and one n-well over the row's pfets and n-taps (their wells merged).
    `placed` = [(item, x, y)] of one row, left to right."""
    r = lib.r
    m = r["implant_margin"]
    for (a, xa, ya), (b, xb, yb) in zip(placed, placed[1:]):
        if a.implant is not None and a.implant == b.implant and xb - m > xa + a.width + m:
            y0, y1 = max(ya, yb) - m, min(ya + a.diff_top, yb + b.diff_top) + m
            lib.box(cell, "nsdm" if a.implant == "n" else "psdm", xa + a.width + m, y0, xb - m, y1)
    wells = [(x, y, item) for item, x, y in placed if item.well]
    if wells:
        wm = r["well_margin"]
        x0 = min(x for x, _, _ in wells) - wm
        x1 = max(x + i.width for x, _, i in wells) + wm
        y0 = min(y for _, y, _ in wells) - wm
        y1 = max(y + i.diff_top for _, y, i in wells) + wm
        lib.box(cell, "nwell", x0, y0, x1, y1)


def _tok(value: float) -> str:
    return f"{value:g}".replace(".", "p").replace("-", "m")
