"""SPICE backend: the IR becomes a hierarchical sky130 netlist built from the cell library's subcircuits.

Signals are currents at nodes. Each receiver unit is a pair of mirror arrays (cells/mirror.py): the
primary one's diode sits on the summing node (nfet for nodes that take sourced currents, pfet for
nodes that take sunk ones) and a 1:1 copy feeds the other polarity's diode. Every weight read from
that signal is one output of the array of the side its sign needs: a sourcing (pfet) output adds
current to a node that takes sourced currents, a sinking (nfet) output subtracts it. A memory cell
unit is an instance of its cell's subcircuit (cells/bistable.py; an FQ-CMRU unit a ladder of
cells/cmru.py designed for it), each port wired by the role its cell's facts give it (cells/facts.py);
every DC current is an output of the bias generator (cells/bias.py) on the reference pin `iref`, from
which the reference current is drawn. Each stage kind is written by its emitter (`EMITTERS`).

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
from typing import Callable

import cells
from cells.mirror import MAX_UNITS  # unit devices in one mirror output
from compiler.foundation.ngspice import SPICEINIT, deck
from compiler.foundation.pdk import devices_in, find_models
from compiler.foundation.simulation import Op, Simulation
from compiler.ir import (
    IR,
    BiasArray,
    BiasGenerator,
    Bistable,
    CurrentInput,
    CurrentOutput,
    Ladder,
    Receiver,
    WeightArray,
    for_kind,
)
from compiler.passes.lower_cmru import params as ladder_params

TOP = "fqrnn_network"
V_OUT = 0.9  # output pins are held here by the harness (both mirror sides in saturation)


def net(stage: str, k: int) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', stage)}_{k}"


def phase_count(ir: IR) -> int:
    return max((c.phase for c in ir.memory_cells()), default=0)


def phases_used(ir: IR) -> list[int]:
    """The phases whose cells the IR holds: all of 1..phase_count in a whole network, one in a simulation
    partition (flows/partition.py), whose other phase pins drive nothing."""
    return sorted({c.phase for c in ir.memory_cells() if c.phase})


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
    """The 0 V source in series with a memory cell's input: its current is the cell's candidate h."""
    return f"H_{net(cell, k)}"


@dataclass
class Netlist:
    """The network subcircuit being written: its instance lines and the subcircuits they use. `vdd(block)`
    is the supply net of a block."""

    ir: IR
    vdd: Callable[[str], str]
    subckts: dict = field(default_factory=dict)  # name -> Subckt
    lines: list = field(default_factory=list)

    def __post_init__(self):
        self.first_pin = input_offsets(self.ir)

    def use(self, subckt):
        self.subckts.setdefault(subckt.name, subckt)
        return subckt

    def instance(self, subckt, nets, label: str) -> None:
        self.lines.append(self.use(subckt).instance(label, nets))

    def node(self, stage_name: str, k: int) -> str:
        """The net of unit k of the node a stage owns (where the currents into it meet)."""
        stage = self.ir.stage(stage_name)
        return for_kind(NODE_NETS, stage, default=_own_net)(self, stage, k)


def _own_net(nl: Netlist, stage, k: int) -> str:
    return net(stage.name, k)


def _receiver_net(nl: Netlist, rx: Receiver, k: int) -> str:
    """An input pin when the receiver takes the currents of input pins, else its own net."""
    fed_by = [p for p in nl.ir.predecessors(rx.name) if p in nl.first_pin]
    return f"in_{nl.first_pin[fed_by[0]] + k}" if fed_by else net(rx.name, k)


NODE_NETS = {  # stage kind -> the net of its node (default: its own net)
    CurrentOutput: lambda nl, stage, k: f"out_{k}",
    Receiver: _receiver_net,
    Bistable: lambda nl, cell, k: f"{net(cell.name, k)}_h",  # the probed side of a memory cell's input
}


def _chunks(units: int) -> list[int]:
    """A current of `units` unit devices as the fewest outputs of at most MAX_UNITS each, as equal as they
    can be (65 units: 33 and 32, never 64 and a 1-unit output below the bias generator's floor)."""
    if units <= 0:
        return []
    count = -(-units // MAX_UNITS)
    size, larger = divmod(units, count)
    return [size + 1] * larger + [size] * (count - larger)


def _mirror_pair(
    nl: Netlist, label: str, node: str, primary: str, n_in: int, outputs: dict, w: float, l: float, vdd: str = "vdd"
):
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


def mirror_pfet_copies(primary: str, sourcing, sinking):
    """How many pfet branches of a signal's mirror pair (`_mirror_pair`) carry the whole signal from VDD:
    a pfet primary diode, and its pfet copy into the nfet diode when nfet outputs read it; an nfet primary
    diode's pfet copy when pfet outputs read it. Each pfet output adds its own ratio on top. `sourcing`,
    `sinking`: whether pfet / nfet outputs read it (bools, or boolean arrays for one count per input)."""
    return 1 + 1 * sinking if primary == "p" else 1 * sourcing


def emit_signal(nl: Netlist, rx: Receiver) -> None:
    """A receiver and the weights read from it: per unit, a mirror pair whose outputs feed each array's node."""
    arrays = nl.ir.readers(rx.name)
    if not arrays:
        return
    for j in range(rx.size):
        outputs = {"p": [], "n": []}
        for array in arrays:
            (dest,) = nl.ir.successors(array.name)
            accepted = nl.ir.stage(dest).accepts
            for k in range(array.size):
                for units, adds in ((array.pos_ratios[k][j], True), (array.neg_ratios[k][j], False)):
                    if units:
                        side = "p" if adds == (accepted == "n") else "n"
                        outputs[side].append((nl.node(dest, k), units))
        _mirror_pair(
            nl,
            net(rx.name, j),
            nl.node(rx.name, j),
            rx.polarity,
            rx.denominator,
            outputs,
            arrays[0].unit_w,
            arrays[0].unit_l,
            nl.vdd("arrays"),
        )


def emit_phase_drivers(nl: Netlist) -> None:
    """The phase driver of each layer of memory cells (cells/bistable.py): en_p, enb_p from pin ph_p."""
    bistable = cells.get("bistable")
    for p in phases_used(nl.ir):
        nl.instance(bistable.phase_driver(), [nl.vdd("cells"), phase_pin(p), f"en_{p}", f"enb_{p}"], f"phase_{p}")


def emit_memory_cell(nl: Netlist, cell, unit_subckt=None) -> None:
    """One instance per unit, its ports wired by their roles (the cell's facts), behind a 0 V probe that
    measures its candidate current. `unit_subckt(k)` is unit k's subcircuit (default: the cell's one)."""
    if unit_subckt is None and cell.facts.subckt is None:
        raise NoEmitter(
            f"stage kind {cell.kind!r}: each unit's subcircuit depends on its design, so the kind "
            "needs an emitter of its own in compiler.backends.spice.EMITTERS"
        )
    unit_subckt = unit_subckt or (lambda k: cell.facts.subckt())  # every unit shares the cell's
    (dest,) = nl.ir.successors(cell.name)
    enable = (f"en_{cell.phase}", f"enb_{cell.phase}") if cell.phase else cells.get("bistable").FREE_RUNNING
    for k in range(cell.size):
        base = net(cell.name, k)
        nl.lines.append(f"V{probe(cell.name, k)} {base}_h {base}_in 0")  # measures the candidate current
        by_role = {
            "supply": nl.vdd("cells"),
            "input": f"{base}_in",
            "output": nl.node(dest, k),
            "enable": enable[0],
            "enable_b": enable[1],
        }
        nl.instance(unit_subckt(k), {port.name: _port_net(port, base, by_role) for port in cell.facts.ports}, base)


def _port_net(port, base: str, by_role: dict) -> str:
    """A unit's net for one port: its own net for a bias port (a bias generator output, `_tap_net`), the
    chip-wide net of a shared bias (the bias generator's shared outputs), else its role's."""
    if port.role == "bias":
        return f"{base}_{port.name}"
    if port.role == "shared":
        return port.name
    return by_role[port.role]


def emit_ladder(nl: Netlist, cell: Ladder) -> None:
    """FQ-CMRU units: each a ladder of cells/cmru.py designed for it (`lower_cmru`)."""
    cmru = cells.get("cmru")
    emit_memory_cell(nl, cell, lambda k: cmru.subckt(ladder_params(cell, k, nl.ir.meta.i_unit)))


def emit_bias_generator(nl: Netlist, generator: BiasGenerator) -> None:
    """The bias generator (cells/bias.py): every tap one output on the shared reference diodes, the
    memory cells' shared bias on its dedicated outputs."""
    outputs, shared, starve, starve_nets = {"p": [], "n": []}, nl.ir.shared_biases(), 0, []
    for tap in generator.taps:
        if tap.stage in shared:
            starve, starve_nets = tap.units, list(shared[tap.stage].ports)
            continue
        outputs[tap.polarity].extend((_tap_net(nl, tap), u) for u in _chunks(tap.units))
    bias = cells.get("bias")
    split = generator.duplicate_reference and nl.vdd("bias") != "vdd"  # a probed netlist: count it once
    params = bias.Params(
        sources=tuple(u for _, u in outputs["p"]),
        sinks=tuple(u for _, u in outputs["n"]),
        den=generator.denominator,
        starve=starve,
        i_ref=generator.i_ref,
        reference_port=split,
    )
    supplies = [nl.vdd("bias"), "vdd"] if split else [nl.vdd("bias")]
    nets = [*supplies, "iref", *(t for t, _ in outputs["p"]), *(t for t, _ in outputs["n"])]
    nl.instance(bias.subckt(params), nets + (starve_nets if starve else []), "bias")


def _tap_net(nl: Netlist, tap) -> str:
    """Where a tap's current goes: a memory cell unit's bias port, or the node a bias array feeds."""
    stage = nl.ir.stage(tap.stage)
    if stage.memory:
        return f"{net(tap.stage, tap.unit)}_{stage.facts.bias_port(tap.field).name}"
    (dest,) = nl.ir.successors(tap.stage)
    return nl.node(dest, tap.unit)


@dataclass(frozen=True)
class Emitter:
    """How a stage kind becomes netlist lines: `emit(netlist, stage)`, in its `section` of SECTIONS."""

    section: str
    emit: Callable


# The network subcircuit in order: signals (receivers and their mirrors), the memory cells after their
# layers' phase drivers, then the bias generator.
SECTIONS = ("signals", "memory", "bias")
# Stage kind -> its emitter (found for a kind or the nearest kind it extends); None: realised by another
# stage's emitter (input and output pins, a receiver's mirror outputs, bias taps). A memory cell whose
# bias currents alone program it (its facts' `subckt`) is emitted by the Bistable entry.
EMITTERS = {
    Receiver: Emitter("signals", emit_signal),
    Bistable: Emitter("memory", emit_memory_cell),
    Ladder: Emitter("memory", emit_ladder),
    BiasGenerator: Emitter("bias", emit_bias_generator),
    CurrentInput: None,
    WeightArray: None,
    BiasArray: None,
    CurrentOutput: None,
}


class NoEmitter(LookupError):
    """A stage kind without an entry in EMITTERS (a compiler extension that registered none)."""


def emitter_of(stage) -> Emitter | None:
    try:
        return for_kind(EMITTERS, stage)
    except KeyError:
        raise NoEmitter(
            f"no netlist emitter for stage kind {stage.kind!r}; register one in compiler.backends.spice.EMITTERS"
        ) from None


def network_netlist(ir: IR, supply_probes: bool = False) -> tuple[str, dict]:
    """The network subcircuit text and the subcircuits it uses. With `supply_probes` (verification only,
    not the laid-out netlist) each block takes VDD through its own 0 V source, to measure its power."""
    nl = Netlist(ir, supply if supply_probes else (lambda block: "vdd"))
    emitters = [(stage, emitter_of(stage)) for stage in ir.stages]
    for section in SECTIONS:
        if section == "memory":
            emit_phase_drivers(nl)
        for stage, emitter in emitters:
            if emitter is not None and emitter.section == section:
                emitter.emit(nl, stage)
    pins_in = sum(s.size for s in ir.of_kind(CurrentInput))
    pins_out = ir.of_kind(CurrentOutput)[0].size
    ports = pins(ir)
    if supply_probes:
        used = sorted({b for b in BLOCKS if any(supply(b) in line.split() for line in nl.lines)})
        nl.lines += [f"V{power_probe(b)} vdd {supply(b)} 0" for b in used]  # each block's supply current
    text = (
        "\n".join(
            [
                f"* compiled network: {pins_in} inputs, {pins_out} outputs, {phase_count(ir)} phase inputs",
                f".subckt {TOP} {' '.join(ports)}",
                *nl.lines,
                f".ends {TOP}",
            ]
        )
        + "\n"
    )
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
    harness = "\n".join(
        [
            ".include models.spice",
            ".include cells.spice",
            ".include network.spice",
            f"VDD vdd 0 {config.get('vdd'):g}",
            f"IREF iref 0 {config.get('i_unit'):g}",
            *[f"IIN{j} 0 in_{j} 0" for j in range(n_in)],
            *[f"VOUT{k} out_{k} 0 {V_OUT:g}" for k in range(n_out)],
            *[f"V{pin.upper()} {pin} 0 0" for pin in phase_pins(ir)],
            f"XNET {' '.join(pins(ir))} {TOP}",
        ]
    )
    top = deck(
        Simulation(
            harness,
            title=f"operating-point harness of the compiled network (inputs at 0, outputs held at {V_OUT:g} V)",
            temp=config.get("temp"),
            models="none",
            analyses=(Op(),),
        )
    )
    files = {
        "cells.spice": cell_text,
        "network.spice": network,
        "models.spice": models,
        "top.spice": top,
        ".spiceinit": SPICEINIT,
    }
    for name, text in files.items():
        (directory / name).write_text(text)
    return {"files": sorted(f for f in files if not f.startswith(".")), **device_summary(subckts, network)}


_DEVICE = re.compile(r"^X\S+\s+(?:\S+\s+)+?(sky130_fd_pr__\w+)\s+(.*)$", re.IGNORECASE)
_PARAM = re.compile(r"(\w+)=([\d.eE+-]+)")


def device_summary(subckts: dict, network: str) -> dict:
    """Transistor count (instances and unit devices, counting m) and gate area of the network."""
    per_cell = {name: _devices(s.text, {}) for name, s in subckts.items()}
    total = _devices(network, per_cell)
    return {
        "transistor_instances": total["instances"],
        "unit_devices": total["units"],
        "gate_area_um2": round(total["area"], 1),
        "by_cell": _by_cell(network, per_cell),
    }


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
