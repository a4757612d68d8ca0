"""Place items in rows and route every net on its own track: one router for cells and for the top level.

A block is a stack of rows. Above each row runs a routing channel with one horizontal met2 track per
net that has a terminal in that row; each terminal (a met1 stub ending on its item's top edge) rises
straight up to its net's track and drops a via there. Stubs are at distinct x and tracks at distinct
y, so two nets can only cross on different layers: the wiring is correct by construction. A net with
tracks in several channels is joined by its own vertical met3 strap (a spine) right of the rows, and
every port leaves the block through a met1 stub right of the spines, ending on the block's top edge
with a pin and a text label. A block is itself an `Item` whose terminals are its ports, so the top
level places cell blocks with the same code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import klayout.db as kdb

from compiler.backends.layout_devices import Item, Lib, decorate_row


@dataclass(frozen=True)
class Track:
    net: str
    y: int
    width: int


def assemble(lib: Lib, name: str, rows: list, ports: list, *, gap: int, wide: frozenset = frozenset()) -> Item:
    """Build block `name` from `rows` = [[(item, {role: net})]] (bottom row first); `ports` in order.
    Nets in `wide` (supplies) get power-width tracks and straps."""
    r = lib.r
    cell = lib.component(name)
    margin = r["channel_margin"]
    v1, v2 = r["via.1a"], r["via2.1a"]
    stub_end = v1 // 2 + r["via.5a"]  # met1 beyond a via centre (via.5a on the far side)
    track_end = v2 // 2 + r["via2.5"] + 20  # met2 beyond the outermost via centre

    def track_width(net):
        return r["power_width"] if net in wide else r["track_width"]

    # vertical placement: rows and their channels; a port joins the last channel only when no row uses it
    row_nets = [_channel_nets(row) for row in rows] or [[]]
    used_anywhere = {n for names in row_nets for n in names}
    row_nets[-1] = sorted(set(row_nets[-1]) | {p for p in ports if p not in used_anywhere}, key=_natural)
    placed_rows, channels, y = [], [], 0
    for index, row in enumerate(rows):
        below = max(
            [-item.bottom for item, _ in row]
            + [
                r["well_margin"] if any(i.well for i, _ in row) else 0,
                r["implant_margin"] if any(i.implant for i, _ in row) else 0,
            ]
        )
        baseline = y + below
        x, placed = 0, []
        for item, nets in row:
            placed.append((item, x, baseline, nets))
            x += item.width + gap
        row_top = baseline + max((item.top for item, _ in row), default=0)
        tracks, y = _channel(row_nets[index], row_top + margin, track_width, r["track_space"])
        y += margin
        placed_rows.append(placed)
        channels.append(tracks)
    if not rows:  # a block of ports only
        tracks, y = _channel(row_nets[0], margin, track_width, r["track_space"])
        channels.append(tracks)
        y += margin
    block_top = y

    # horizontal plan: rows, then spines, then port stubs
    right = max((x + item.width for placed in placed_rows for item, x, _, _ in placed), default=0)
    right += max(gap // 2, r["well_margin"]) + margin
    used = {}
    for tracks in channels:
        for net in tracks:
            used[net] = used.get(net, 0) + 1
    spine_nets = sorted((n for n, count in used.items() if count > 1), key=_natural)
    spines, sx = {}, right
    for net in spine_nets:
        w = r["power_width"] if net in wide else r["spine_width"]
        spines[net] = sx + w // 2
        sx += w + r["spine_space"]
    port_x, px = {}, sx + margin
    for net in ports:
        port_x[net] = px + lib.stub // 2
        px += lib.stub_pitch
    width = px + margin

    # draw: items, row decorations, stubs and vias
    reach: dict = {}  # (channel, net) -> [xmin, xmax]
    ci = cell.kdb_cell
    for index, placed in enumerate(placed_rows):
        tracks = channels[index]
        for item, x, base, nets in placed:
            ci.insert(_instance(item, x, base))
            for tx, role in item.terminals:
                net = nets.get(role)
                if net is None:
                    continue
                track = tracks[net]
                xs = x + tx
                lib.box(
                    cell,
                    "met1",
                    xs - lib.stub // 2,
                    base + item.top - 2 * lib.stub,
                    xs + lib.stub // 2,
                    track.y + stub_end,
                )
                lib.via1(cell, xs, track.y)
                _extend(reach, (index, net), xs)
        decorate_row(lib, cell, [(item, x, base) for item, x, base, _ in placed], gap)
    # spines
    for net, xs in spines.items():
        ys = [channels[i][net].y for i in range(len(channels)) if net in channels[i]]
        w = r["power_width"] if net in wide else r["spine_width"]
        lib.box(
            cell,
            "met3",
            xs - w // 2,
            min(ys) - v2 // 2 - r["m3.4"] - 35,
            xs + w // 2,
            max(ys) + v2 // 2 + r["m3.4"] + 35,
        )
        for i, tracks in enumerate(channels):
            if net in tracks:
                lib.via2(cell, xs, tracks[net].y)
                _extend(reach, (i, net), xs)
    # ports: from the net's highest track straight up (right of every row and spine, so nothing is in the way)
    for net, xs in port_x.items():
        last = max(i for i, tracks in enumerate(channels) if net in tracks)
        track = channels[last][net]
        lib.box(cell, "met1", xs - lib.stub // 2, track.y - stub_end, xs + lib.stub // 2, block_top)
        lib.via1(cell, xs, track.y)
        _extend(reach, (last, net), xs)
        lib.pin(cell, "met1", net, xs - lib.stub // 2, block_top - 2 * lib.stub, xs + lib.stub // 2, block_top)
    # tracks
    for (i, net), (x0, x1) in sorted(reach.items(), key=lambda kv: (kv[0][0], channels[kv[0][0]][kv[0][1]].y)):
        track = channels[i][net]
        lib.box(
            cell,
            "met2",
            x0 - track_end,
            track.y - track.width // 2,
            x1 + track_end,
            track.y - track.width // 2 + track.width,
        )
    lib.box(cell, "prboundary", 0, 0, width, block_top)
    return Item(
        cell,
        width,
        0,
        block_top,
        [(x, net) for net, x in port_x.items()],
        info={"area_nm2": width * block_top, "ports": list(ports)},
    )


def _instance(item: Item, x: int, y: int):
    return kdb.CellInstArray(item.cell.kdb_cell.cell_index(), kdb.Trans(x, y))


def _channel_nets(row) -> list:
    names = {net for item, nets in row for _, role in item.terminals if (net := nets.get(role)) is not None}
    return sorted(names, key=_natural)


def _channel(names: list, bottom: int, width_of, space: int) -> tuple[dict, int]:
    """Tracks stacked upwards from `bottom`; returns them and the top of the last one."""
    tracks, y = {}, bottom
    for net in names:
        w = width_of(net)
        tracks[net] = Track(net, y + w // 2, w)
        y += w + space
    return tracks, (y - space if names else y)


def _extend(reach: dict, key, x: int) -> None:
    span = reach.get(key)
    if span is None:
        reach[key] = [x, x]
    else:
        span[0], span[1] = min(span[0], x), max(span[1], x)


def _natural(name: str):
    """Sort key: out_2 before out_10."""
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", name)]
