"""Hand-drawn sky130 test layouts (KLayout boxes, sizes in um) that DRC and LVS are checked against.

`mirror_layout` is a DRC-clean nfet current mirror with body taps, a pfet in its n-well and a MIM
capacitor, wired on met1 columns and met2 tracks with labelled nets. Its SPICE twin is `MIRROR_SPICE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import klayout.db as kdb

from flows.gds import load_layer_map

LAYERS = load_layer_map()
SD = 0.29  # source/drain length: licon 0.17 between 0.06 (licon.5c) on both sides
TRACK_PITCH = 0.6  # met2 tracks: 0.26 high, 0.34 apart


@dataclass
class Drawing:
    """A one-cell layout under construction."""

    name: str = "TOP"
    layout: kdb.Layout = field(default_factory=kdb.Layout)

    def __post_init__(self):
        self.layout.dbu = 0.001
        self.cell = self.layout.create_cell(self.name)
        self.columns: dict = {}  # net -> [(x, y)] terminal pads to route on met1/met2

    def box(self, layer: str, x1: float, y1: float, x2: float, y2: float) -> None:
        index = self.layout.layer(*LAYERS[layer])
        self.cell.shapes(index).insert(kdb.DBox(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))

    def centred(self, layer: str, cx: float, cy: float, half_w: float, half_h: float) -> None:
        self.box(layer, cx - half_w, cy - half_h, cx + half_w, cy + half_h)

    def label(self, metal: str, text: str, x: float, y: float) -> None:
        index = self.layout.layer(*LAYERS.labels[metal])
        self.cell.shapes(index).insert(kdb.DText(text, kdb.DTrans(kdb.DVector(x, y))))

    def contact(self, cx: float, cy: float, on: str) -> None:
        """licon on diff/tap/poly, li1 pad, mcon, met1 pad, all centred on (cx, cy)."""
        self.centred("licon", cx, cy, 0.085, 0.085)
        if on == "poly":
            self.centred("npc", cx, cy, 0.185, 0.185)
        self.centred("li1", cx, cy, 0.085, 0.2)
        self.centred("mcon", cx, cy, 0.085, 0.085)
        self.centred("met1", cx, cy, 0.13, 0.2)

    def save(self, path) -> str:
        self.layout.write(str(path))
        return str(path)


def mosfet(d: Drawing, x: float, y: float, polarity: str, w: float, l: float, nets: dict) -> None:
    """One transistor with its own body tap on the left; terminals join the met1 columns of `nets`."""
    implant, tap_implant = ("nsdm", "psdm") if polarity == "n" else ("psdm", "nsdm")
    right = x + SD + l + SD
    d.box("diff", x, y, right, y + w)
    d.box(implant, x - 0.125, y - 0.125, right + 0.125, y + w + 0.125)
    gate_x = x + SD + l / 2
    d.box("poly", x + SD, y - 0.13, x + SD + l, y + w + 0.5)
    d.contact(gate_x, y + w + 0.335, "poly")
    tap_x, mid = x - 0.605, y + w / 2
    d.centred("tap", tap_x, mid, 0.205, 0.205)
    d.centred(tap_implant, tap_x, mid, 0.33, 0.33)
    if polarity == "p":
        d.box("nwell", tap_x - 0.205 - 0.18, y - 0.18, right + 0.18, y + w + 0.18)
    for name, (px, py) in {
        "s": (x + SD / 2, mid),
        "g": (gate_x, y + w + 0.335),
        "d": (right - SD / 2, mid),
        "b": (tap_x, mid),
    }.items():
        if name != "g":
            d.contact(px, py, "tap" if name == "b" else "diff")
        d.columns.setdefault(nets[name], []).append((px, py))


def route(d: Drawing, track_y: float) -> None:
    """Each net: met1 columns from its pads up to its own met2 track, a via on each, a label on the track."""
    for k, net in enumerate(sorted(d.columns)):
        ty = track_y + k * TRACK_PITCH
        xs = [x for x, _ in d.columns[net]]
        for x, y in d.columns[net]:
            d.box("met1", x - 0.13, y, x + 0.13, ty + 0.2)
            d.centred("via", x, ty, 0.075, 0.075)
        d.box("met2", min(xs) - 0.2, ty - 0.13, max(xs) + 0.2, ty + 0.13)
        d.label("met2", net, min(xs), ty)


def mim_cap(d: Drawing, x: float, y: float, size: float, top: str, bottom: str) -> None:
    """capm `size` x `size` on a met3 plate: top plate on a labelled met4, bottom routed as net `bottom`."""
    d.box("met3", x, y, x + size + 1.0, y + size + 1.0)
    d.box("capm", x + 0.5, y + 0.5, x + 0.5 + size, y + 0.5 + size)
    cx = cy = 0.5 + size / 2
    d.centred("via3", x + cx, y + cy, 0.1, 0.1)
    d.centred("met4", x + cx, y + cy, 0.3, 0.3)
    d.label("met4", top, x + cx, y + cy)
    d.centred("via2", x + 0.2, y + 0.2, 0.1, 0.1)
    d.centred("met2", x + 0.2, y + 0.2, 0.16, 0.16)
    d.centred("via", x + 0.2, y + 0.2, 0.075, 0.075)
    d.centred("met1", x + 0.2, y + 0.2, 0.13, 0.2)
    d.columns.setdefault(bottom, []).append((x + 0.2, y + 0.2))


MIRROR = {  # device -> (x, y, polarity, w, l, nets)
    "M1": (0.0, 0.0, "n", 1.0, 0.6, {"d": "in", "g": "in", "s": "gnd", "b": "gnd"}),
    "M2": (3.0, 0.0, "n", 1.0, 0.6, {"d": "out", "g": "in", "s": "gnd", "b": "gnd"}),
    "M3": (7.0, 0.0, "p", 2.0, 0.6, {"d": "in", "g": "bias", "s": "vdd", "b": "vdd"}),
}
CAP = (12.0, 0.0, 2.0)  # x, y, capm size: 4 um^2 between `top` (met4) and `gnd` (met3)

MIRROR_SPICE = """* the hand-drawn mirror of tests/physical/drawn.py
.subckt mirror in out bias vdd top
XM1 in in 0 0 sky130_fd_pr__nfet_01v8 W=1 L=0.6
XM2 out in 0 0 sky130_fd_pr__nfet_01v8 W=1 L=0.6
XM3 in bias vdd vdd sky130_fd_pr__pfet_01v8 W=2 L=0.6
XC1 top 0 sky130_fd_pr__cap_mim_m3_1 W=2 L=2
.ends mirror
"""


def mirror_layout(devices: dict = MIRROR, cap=CAP, name: str = "mirror") -> Drawing:
    d = Drawing(name)
    for x, y, polarity, w, l, nets in devices.values():
        mosfet(d, x, y, polarity, w, l, nets)
    if cap:
        mim_cap(d, *cap, top="top", bottom="gnd")
    route(d, 3.5)
    return d
