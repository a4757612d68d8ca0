"""SPICE backend: the IR becomes a hierarchical sky130 netlist built from the cell library's subcircuits.

Signals are currents at nodes. Each receiver unit is a pair of mirror arrays (cells/mirror.py): the
primary one's diode sits on the summing node (nfet for nodes that take sourced currents, pfet for
nodes that take sunk ones) and a 1:1 copy feeds the other polarity's diode. Every weight read from
that signal is one output of the array of the side its sign needs: a sourcing (pfet) output adds
current to a node that takes sourced currents, a sinking (nfet) output subtracts it. Bistable cells
are instances of cells/bistable.py, FQ-CMRU units ladders of cells/cmru.py; every DC current is an
output of the bias generator (cells/bias.py) on the reference pin `iref`, from which the reference
current is drawn.

Files written (deterministic for a given IR and config):
  cells.spice    every subcircuit used, sorted by name
  network.spice  `.subckt <top> vdd iref in_0.. out_0.. ph_1..`: the compiled network; ph_p enables the
                 cells of phase p (compiler/passes/schedule_phases.py)
  models.spice   the sky130 model files of the devices used, for the configured corner
  top.spice      a runnable operating-point harness: supply, reference, inputs at 0, outputs at 0.9 V,
                 phases low (every cell holds)
  .spiceinit     the ngspice mode the runner uses (fast sky130 subcircuit expansion)
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cells
from compiler.ir import IR, BiasArray, BiasGenerator, Bistable, CurrentInput, CurrentOutput, Ladder, Receiver, WeightArray
from compiler.foundation.ngspice import SPICEINIT
from compiler.passes.assign_biases import node_polarity
from compiler.passes.lower_cmru import LADDER_PORTS, params as ladder_params
from compiler.foundation.pdk import devices_in, find_models

TOP = "fqrnn_network"
V_OUT = 0.9          # output pins are held here by the harness (both mirror sides in saturation)
MAX_UNITS = 64       # unit devices in one mirror output (cells/mirror.py)
BISTABLE_PORTS = {"thresh": "ith", "width": "iw", "gain": "ig"}  # cells/bistable.py bias ports


def net(stage: str, k: int) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', stage)}_{k}"


def phase_count(ir: IR) -> int:
    return max((c.phase for c in ir.of_kind(Bistable)), default=0)


def phase_pin(p: int) -> str:
    """The input pin of phase p: high while the cells of that layer may switch."""
    return f"ph_{p}"


def phase_pins(ir: IR) -> list[str]:
    return [phase_pin(p) for p in range(1, phase_count(ir) + 1)]


def pins(ir: IR) -> list[str]:
    """The network subcircuit's ports in order."""
    n_in = sum(s.size for s in ir.of_kind(CurrentInput))
    n_out = ir.of_kind(CurrentOutput)[0].size
    return ["vdd", "iref", *(f"in_{j}" for j in range(n_in)), *(f"out_{k}" for k in range(n_out)), *phase_pins(ir)]


BLOCKS = ("arrays", "cells", "bias")  # supply domains: mirror arrays, memory cells, bias generator


def supply(block: str) -> str:
    """The supply net of a block in a probed netlist: VDD through a 0 V source that measures it."""
    return f"vdd_{block}"


def power_probe(block: str) -> str:
    return f"PWR_{block}"


def input_offsets(ir: IR) -> dict[str, int]:
    """The first input pin of each CurrentInput stage: pins are numbered across them in order."""
    offsets, n = {}, 0
    for stage in ir.of_kind(CurrentInput):
        offsets[stage.name], n = n, n + stage.size
    return offsets


def probe(cell: str, k: int) -> str:
    """The 0 V source in series with a bistable cell's input: its current is the cell's candidate h."""
    return f"H_{net(cell, k)}"


@dataclass
class _Netlist:
    subckts: dict = field(default_factory=dict)     # name -> Subckt
    lines: list = field(default_factory=list)

    def use(self, subckt):
        self.subckts.setdefault(subckt.name, subckt)
        return subckt

    def instance(self, subckt, nets, label: str) -> None:
        self.lines.append(self.use(subckt).instance(label, nets))


def _chunks(units: int) -> list[int]:
    """A current of `units` unit devices as outputs of at most MAX_UNITS each."""
    return [MAX_UNITS] * (units // MAX_UNITS) + ([units % MAX_UNITS] if units % MAX_UNITS else [])


def _mirror_pair(nl: _Netlist, label: str, node: str, primary: str, n_in: int, outputs: dict, w: float, l: float,
                 vdd: str = "vdd"):
    """The arrays of one signal: `outputs[pol]` = [(node, units)]; the primary diode sits on `node`."""
    mirror = cells.get("mirror")
    other = "p" if primary == "n" else "n"
    copy_node = f"{label}_{other}"
    primary_outs = [(n, u) for n, units in outputs[primary] for u in _chunks(units)]
    secondary_outs = [(n, u) for n, units in outputs[other] for u in _chunks(units)]
    if secondary_outs:
        primary_outs.append((copy_node, n_in))
    for polarity, diode, outs in ((primary, node, primary_outs), (other, copy_node, secondary_outs)):
        if not outs and polarity == other:
            continue  # the primary diode stays even when nothing reads the signal: the node must sink
        params = mirror.Params(polarity, tuple(u for _, u in outs), n_in=n_in, w=w, l=l)
        ports = ([vdd] if polarity == "p" else []) + [diode] + [n for n, _ in outs]
        nl.instance(mirror.subckt(params), ports, f"{label}_{polarity}")


def network_netlist(ir: IR, supply_probes: bool = False) -> tuple[str, dict]:
    """The network subcircuit text and the subcircuits it uses. With `supply_probes` (verification only,
    not the laid-out netlist) each block takes VDD through its own 0 V source, to measure its power."""
    vdd = supply if supply_probes else (lambda block: "vdd")
    nl = _Netlist()
    inputs = ir.of_kind(CurrentInput)
    output = ir.of_kind(CurrentOutput)[0]
    pins_in = [f"in_{j}" for s in inputs for j in range(s.size)]
    pins_out = [f"out_{k}" for k in range(output.size)]

    first_pin = input_offsets(ir)

    def node(stage_name: str, k: int) -> str:
        stage = ir.stage(stage_name)
        if isinstance(stage, CurrentOutput):
            return f"out_{k}"
        fed_by = [p for p in ir.predecessors(stage_name) if p in first_pin]
        if isinstance(stage, Receiver) and fed_by:
            return f"in_{first_pin[fed_by[0]] + k}"
        return net(stage_name, k) + ("_h" if isinstance(stage, Bistable) else "")

    # receivers and the weights read from them
    for rx in ir.of_kind(Receiver):
        arrays = [ir.stage(n) for n in ir.successors(rx.name)]
        if not arrays:
            continue
        for j in range(rx.size):
            outputs = {"p": [], "n": []}
            for array in arrays:
                (dest,) = ir.successors(array.name)
                accepted = node_polarity(ir, dest)
                for k in range(array.size):
                    for units, adds in ((array.pos_ratios[k][j], True), (array.neg_ratios[k][j], False)):
                        if units:
                            side = "p" if adds == (accepted == "n") else "n"
                            outputs[side].append((node(dest, k), units))
            _mirror_pair(nl, net(rx.name, j), node(rx.name, j), rx.polarity, rx.denominator, outputs,
                         arrays[0].unit_w, arrays[0].unit_l, vdd("arrays"))
    # bistable cells, and the phase driver of each layer
    bistable = cells.get("bistable")
    for p in range(1, phase_count(ir) + 1):
        nl.instance(bistable.phase_driver(), [vdd("cells"), phase_pin(p), f"en_{p}", f"enb_{p}"], f"phase_{p}")
    for cell in ir.of_kind(Bistable):
        (dest,) = ir.successors(cell.name)
        enable = (f"en_{cell.phase}", f"enb_{cell.phase}") if cell.phase else bistable.FREE_RUNNING
        for k in range(cell.size):
            base = net(cell.name, k)
            nl.lines.append(f"V{probe(cell.name, k)} {base}_h {base}_in 0")  # measures the candidate current
            ports = {"vdd": vdd("cells"), "in": f"{base}_in", "out": node(dest, k), "vsp": "vsp", "vsn": "vsn",
                     "en": enable[0], "enb": enable[1]}
            ports.update({port: f"{base}_{port}" for port in BISTABLE_PORTS.values()})
            if isinstance(cell, Ladder):  # an FQ-CMRU unit: the ladder of cells/cmru.py
                ports.update({port: f"{base}_{port}" for port in LADDER_PORTS.values()})
                nl.instance(cells.get("cmru").subckt(ladder_params(cell, k)), ports, base)
                continue
            nl.instance(bistable.subckt(), ports, base)
    # bias generator (cells/bias.py): every tap is one output on the shared reference diodes
    for generator in ir.of_kind(BiasGenerator):
        outputs, starve = {"p": [], "n": []}, 0
        for stage_name, field_name, k, polarity, units in generator.taps:
            if stage_name == "bistable_starve":
                starve = units
                continue
            if field_name == "values":
                (dest,) = ir.successors(stage_name)
                target = node(dest, k)
            else:
                target = f"{net(stage_name, k)}_{({**BISTABLE_PORTS, **LADDER_PORTS})[field_name]}"
            outputs[polarity].extend((target, u) for u in _chunks(units))
        bias = cells.get("bias")
        params = bias.Params(sources=tuple(u for _, u in outputs["p"]), sinks=tuple(u for _, u in outputs["n"]),
                             den=generator.denominator, starve=starve, i_ref=generator.i_ref)
        nets = [vdd("bias"), "iref", *(t for t, _ in outputs["p"]), *(t for t, _ in outputs["n"])]
        nl.instance(bias.subckt(params), nets + (["vsp", "vsn"] if starve else []), "bias")
    ports = pins(ir)
    if supply_probes:
        used = sorted({b for b in BLOCKS if any(supply(b) in line.split() for line in nl.lines)})
        nl.lines += [f"V{power_probe(b)} vdd {supply(b)} 0" for b in used]  # each block's supply current
    text = "\n".join([f"* compiled network: {len(pins_in)} inputs, {len(pins_out)} outputs, "
                      f"{phase_count(ir)} phase inputs",
                      f".subckt {TOP} {' '.join(ports)}", *nl.lines, f".ends {TOP}"]) + "\n"
    return text, nl.subckts


def write_netlist(ir: IR, directory: Path, config, supply_probes: bool = False) -> dict:
    """Write the netlist files; returns figures for the build report."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    network, subckts = network_netlist(ir, supply_probes)
    cell_text = "".join(subckts[name].text for name in sorted(subckts))
    models = find_models().model_block(devices_in(cell_text + network), config.get("corner"))
    n_in = sum(s.size for s in ir.of_kind(CurrentInput))
    n_out = ir.of_kind(CurrentOutput)[0].size
    top = "\n".join([
        "* operating-point harness of the compiled network (inputs at 0, outputs held at 0.9 V)",
        ".option gmin=1e-15 abstol=1e-15 reltol=1e-4 method=gear",
        f".temp {config.get('temp'):g}",
        ".include models.spice", ".include cells.spice", ".include network.spice",
        f"VDD vdd 0 {config.get('vdd'):g}",
        f"IREF iref 0 {config.get('i_unit'):g}",
        *[f"IIN{j} 0 in_{j} 0" for j in range(n_in)],
        *[f"VOUT{k} out_{k} 0 {V_OUT:g}" for k in range(n_out)],
        *[f"V{pin.upper()} {pin} 0 0" for pin in phase_pins(ir)],
        f"XNET {' '.join(pins(ir))} {TOP}",
        ".op", ".end",
    ]) + "\n"
    files = {"cells.spice": cell_text, "network.spice": network, "models.spice": models, "top.spice": top,
             ".spiceinit": SPICEINIT}
    for name, text in files.items():
        (directory / name).write_text(text)
    return {"files": sorted(f for f in files if not f.startswith(".")), **device_summary(subckts, network)}


_DEVICE = re.compile(r"^X\S+\s+(?:\S+\s+)+?(sky130_fd_pr__\w+)\s+(.*)$", re.IGNORECASE)
_PARAM = re.compile(r"(\w+)=([\d.eE+-]+)")


def device_summary(subckts: dict, network: str) -> dict:
    """Transistor count (instances and unit devices, counting m) and gate area of the network."""
    per_cell = {name: _devices(s.text, {}) for name, s in subckts.items()}
    total = _devices(network, per_cell)
    return {"transistor_instances": total["instances"], "unit_devices": total["units"],
            "gate_area_um2": round(total["area"], 1), "by_cell": _by_cell(network, per_cell)}


def _devices(text: str, known: dict) -> dict:
    count = defaultdict(float)
    for line in text.splitlines():
        words = line.split()
        if not words or not words[0].upper().startswith("X"):
            continue
        if words[-1] in known:
            for key, value in known[words[-1]].items():
                count[key] += value
            continue
        match = _DEVICE.match(line)
        if match and "fet" in match.group(1):
            params = {k.lower(): float(v) for k, v in _PARAM.findall(match.group(2))}
            m = params.get("m", 1.0)
            count["instances"] += 1
            count["units"] += m
            count["area"] += params.get("w", 0.0) * params.get("l", 0.0) * m
    return {"instances": int(count["instances"]), "units": int(count["units"]), "area": count["area"]}


def _by_cell(network: str, per_cell: dict) -> dict:
    usage = defaultdict(int)
    for line in network.splitlines():
        words = line.split()
        if words and words[0].upper().startswith("X") and words[-1] in per_cell:
            usage[words[-1].split("_")[0]] += 1
    return dict(sorted(usage.items()))
