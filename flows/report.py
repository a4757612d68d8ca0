"""The build report: every learned parameter and the element that realises it, counts, power, area.

Power is an estimate before simulation: every current drawn from VDD passes through exactly one pfet
whose source is on VDD, so the supply current is the sum of those pfets' currents: bias outputs and
reference, the memory cells' own supply current and that of the bias they share (each cell's facts,
cells/facts.py), and the mirrors' pfet diodes, pfet copies and pfet outputs (compiler/backends/spice.py
`mirror_pfet_copies`), each at its signal current's mean over the task's test inputs, from the behavioural
reference. Area is the laid-out area
(layout/top.gds: the top cell's outline, each block's outline) when the build drew a layout, else the gate
area of every device times a layout overhead.
"""

from __future__ import annotations

import numpy as np

from compiler.backends.behavioural import reference
from compiler.backends.spice import mirror_pfet_copies
from compiler.foundation.timing import slot as phase_slot
from compiler.ir import BiasArray, BiasGenerator, Bistable, CurrentInput, Receiver, WeightArray, for_kind
from compiler.passes.assign_biases import node_polarity
from compiler.settling import KEEP_ALIVE, standing_currents
from flows.quantisation import TIE
from models.tasks import get_task

LAYOUT_OVERHEAD = 3.0  # placed-and-routed area per gate area, for the estimate before layout


def area_estimate_um2(netlist: dict) -> float:
    """The area a netlist will take before it is laid out: its gate area times the layout overhead."""
    return netlist.get("gate_area_um2", 0.0) * LAYOUT_OVERHEAD


POWER_SEQUENCES = 64  # test sequences whose mean activity sets the signal currents


def test_activity(build) -> tuple:
    """(inputs, reference traces) of the first POWER_SEQUENCES test sequences, or (None, {}) without task data."""
    try:
        x = get_task(build.network.checkpoint.metadata.get("task")).test.x[:POWER_SEQUENCES]
    except KeyError:
        return None, {}
    return x, reference(build.ir, x)[1]


def mean_signals(ir, x, traces) -> dict:
    """Mean current (A) at each receiver unit over test inputs: {receiver name: array[size]}."""
    if x is None:
        return {}
    i_unit, inputs = ir.meta.i_unit, {s.name for s in ir.of_kind(CurrentInput)}
    out = {}
    for rx in ir.of_kind(Receiver):
        if inputs & set(ir.predecessors(rx.name)):
            signal = np.asarray(x)
        else:
            signal = np.maximum(np.asarray(traces[rx.source]["y"]), 0.0)  # the receiver is the ReLU
        out[rx.name] = np.mean(signal.reshape(-1, rx.size), axis=0) * i_unit
    return out


# The build's power blocks by the name of the SPICE supply that measures each (compiler/backends/spice.py).
SPICE_BLOCKS = {"bias generator": "bias", "bistable cells": "cells", "weight mirrors": "arrays"}


def power_estimate(ir, x, traces) -> dict:
    """The supply power of a built IR with the signal currents of the reference on inputs x (None: without
    signal currents), per block and in total (module docstring)."""
    vdd = ir.meta.vdd
    signals = mean_signals(ir, x, traces)
    blocks = {"bias generator": 0.0, "bistable cells": 0.0, "weight mirrors": 0.0}
    shared = ir.shared_biases()
    for generator in ir.of_kind(BiasGenerator):
        sinks = any(tap.polarity == "n" for tap in generator.taps)
        blocks["bias generator"] += generator.i_ref * (2 if sinks else 1)  # reference and its nfet copy
        for tap in generator.taps:
            current = generator.current(tap.units)
            if tap.stage in shared:  # the memory cells' shared bias: its branches, inside the generator
                blocks["bias generator"] += shared[tap.stage].branches * current
            elif tap.polarity == "p":
                blocks["bias generator"] += current
    enabled = phase_slot(ir.meta.phases) if ir.meta.phases else 1.0  # the share of a frame a cell follows
    for cell in ir.memory_cells():
        candidates = states = None
        if cell.name in traces:
            candidates = np.asarray(traces[cell.name]["h"]).reshape(-1, cell.size) * ir.meta.i_unit
            states = np.asarray(traces[cell.name]["q"]).reshape(-1, cell.size)
        blocks["bistable cells"] += cell.facts.supply_current(cell.supply_bias(), candidates, states, enabled)
    for rx in ir.of_kind(Receiver):
        mean = signals.get(rx.name)
        if mean is None:
            continue
        mean = mean + np.asarray(standing_currents(ir, rx))  # a kept-alive node carries its standing current too
        for j in range(rx.size):
            sourcing, sinking = 0, False  # pfet output units; whether any nfet output reads the signal
            for name in ir.successors(rx.name):
                array = ir.stage(name)
                (dest,) = ir.successors(name)
                accepted = node_polarity(ir, dest)
                for k in range(array.size):
                    pos, neg = array.pos_ratios[k][j], array.neg_ratios[k][j]
                    sourcing += pos if accepted == "n" else neg
                    sinking = sinking or bool(neg if accepted == "n" else pos)
            pfet_copies = mirror_pfet_copies(rx.polarity, sourcing > 0, sinking)
            blocks["weight mirrors"] += float(mean[j]) * (pfet_copies + sourcing / rx.denominator)
    total = sum(blocks.values())
    return {
        "vdd": vdd,
        "blocks_W": {k: v * vdd for k, v in blocks.items()},
        "total_W": total * vdd,
        "signal_activity": "mean over test inputs" if signals else "not available (no task data)",
    }


def mapping_rows(ir) -> list[dict]:
    """One row per learned parameter: where it went and the value the circuit realises."""
    i_unit = ir.meta.i_unit if ir.meta.i_unit is not None else 1.0
    return [row for stage in ir.stages for row in for_kind(MAPPING, stage, default=_no_rows)(stage, i_unit)]


def _no_rows(stage, i_unit: float) -> list[dict]:
    """A stage kind that realises no model parameter (pins, receivers, the bias generator)."""
    return []


def _weight_rows(stage: WeightArray, i_unit: float) -> list[dict]:
    """A layer's W (not the copies lowering adds): each weight's unit devices."""
    if stage.source != stage.name:
        return []
    rows = []
    for k in range(stage.size):
        for j in range(stage.n_in):
            w, p, n = stage.weights[k][j], stage.pos_ratios[k][j], stage.neg_ratios[k][j]
            units = p or n
            element = (
                (
                    f"{'+' if p else '-'}{units} unit{'s' if units > 1 else ''} "
                    f"({stage.unit_w:g}x{stage.unit_l:g} um) / {stage.denominator}"
                )
                if units
                else "no device"
            )
            rows.append(
                {
                    "parameter": f"{stage.name}[{k},{j}]",
                    "value": w,
                    "element": element,
                    "realised": (p - n) / stage.denominator,
                }
            )
    return rows


def _bias_rows(stage: BiasArray, i_unit: float) -> list[dict]:
    """A layer's b (keep-alive currents are no parameter): each bias tap."""
    if stage.source == KEEP_ALIVE:
        return []
    return [
        {
            "parameter": f"{stage.source}[{k}]",
            "value": None,
            "element": f"bias tap {abs(value) * 1e9:.4g} nA {'sourced' if value >= 0 else 'sunk'}",
            "realised": value / i_unit,
        }
        for k, value in enumerate(stage.values)
    ]


def _cell_rows(stage: Bistable, i_unit: float) -> list[dict]:
    """A memory cell's beta_lo, delta and alpha: each unit's programmed bias currents."""
    rows = []
    for k in range(stage.size):
        prog = stage.programmed
        element = (
            f"bistable {stage.name}[{k}]: I_thresh {prog.thresh[k] * 1e9:.4g} nA, "
            f"I_width {prog.width[k] * 1e9:.4g} nA, I_gain {prog.gain[k] * 1e9:.4g} nA"
        )
        lo = (stage.thresh[k] - stage.width[k]) / i_unit
        for name, realised in (("beta_lo", lo), ("delta", stage.width[k] / i_unit), ("alpha", stage.gain[k] / i_unit)):
            rows.append(
                {"parameter": f"{stage.name}.{name}[{k}]", "value": None, "element": element, "realised": realised}
            )
    return rows


# Stage kind -> the rows of the model parameters it realises (a kind it extends when it has no entry).
MAPPING = {WeightArray: _weight_rows, BiasArray: _bias_rows, Bistable: _cell_rows}


def _original_values(build, rows) -> None:
    arrays = build.network.checkpoint.arrays
    for row in rows:
        if row["value"] is None:
            name, index = row["parameter"].rstrip("]").split("[")
            row["value"] = float(np.asarray(arrays[name]).reshape(-1)[int(index.split(",")[0])])


def build_report(build) -> tuple[str, dict]:
    ir, facts = build.ir, build.facts
    netlist = facts.get("netlist", {})
    rows = mapping_rows(ir)
    _original_values(build, rows)
    power = power_estimate(build.ir, *test_activity(build))
    area_um2 = area_estimate_um2(netlist)
    quant = facts.get("quantisation", {})
    data = {
        "model": build.network.path,
        "task": quant,
        "stages": len(ir.stages),
        "transistors": {"instances": netlist.get("transistor_instances"), "unit_devices": netlist.get("unit_devices")},
        "cells": netlist.get("by_cell", {}),
        "power_estimate": power,
        "frame_period_s": ir.meta.frame_period,
        "leakage_warning": facts.get("leakage"),
        "area_estimate_um2": round(area_um2, 1),
        "gate_area_um2": netlist.get("gate_area_um2"),
        "layout": facts.get("layout"),
        "adjustments": ir.meta.adjustments or [],
        "sizing_shortfalls": ir.meta.sizing or [],
        "calibrated": ir.meta.calibrated,
        "pass_seconds": facts.get("pass_seconds"),
        "mapping": rows,
    }
    lines = [
        f"# Build report: {build.network.path}",
        "",
        f"- stages: {len(ir.stages)}; cells: {data['cells']}",
        f"- transistors: {data['transistors']['instances']} instances, "
        f"{data['transistors']['unit_devices']} unit devices (counting m)",
        _area_line(data),
        f"- power estimate {power['total_W'] * 1e9:.1f} nW at {power['vdd']:g} V: "
        + ", ".join(f"{k} {v * 1e9:.1f} nW" for k, v in power["blocks_W"].items())
        + f" (signal currents: {power['signal_activity']})",
        f"- cell calibration applied: {data['calibrated']}",
        _frame_line(build),
        *([f"- **leakage**: {data['leakage_warning']}"] if data["leakage_warning"] else []),
        *_training_lines(build),
        "",
        "## Cost of realising the model",
        "",
    ]
    if "float" in quant:
        lines += [
            "| task | metric | trained (float) model | realised model | prediction agreement, trained vs realised "
            "| test sequences |",
            "|---|---|---|---|---|---|",
            f"| {quant['task']} | {quant['metric']} | {quant['float']} | {quant['realised']} | "
            f"{quant.get('prediction_agreement', 'n/a')} | {quant['test_sequences']} |",
        ]
    else:
        lines.append(quant.get("note", "not measured"))
    lines += _ties_section(quant.get("ties"))
    lines += _layout_section(data["layout"])
    lines += _settling_section(ir.meta.settling)
    lines += ["", f"## Adjustments to the cells' windows ({len(data['adjustments'])})", ""]
    lines += [f"- {a['stage']}[{a['unit']}]: {a['reason']}" for a in data["adjustments"]] or ["none"]
    lines += ["", "## Parameter mapping", "", "| parameter | trained | element | realised |", "|---|---|---|---|"]
    lines += [f"| {r['parameter']} | {r['value']:.4g} | {r['element']} | {r['realised']:.4g} |" for r in rows]
    return "\n".join(lines) + "\n", data


def _frame_line(build) -> str:
    """The frame period and who chose it (compiler/passes/choose_frame.py)."""
    frame = build.ir.meta.frame_period
    if frame is None:
        return "- frame period: not chosen"
    how = "configured" if build.config.get("frame_period") is not None else "chosen by compiler/passes/choose_frame.py"
    return f"- frame period {frame * 1e3:g} ms ({how}; i_unit {build.ir.meta.i_unit * 1e9:g} nA)"


def _training_lines(build) -> list:
    """Whether the model was trained as this circuit realises it (hardware-aware, for these settings)."""
    record = build.network.checkpoint.metadata.get("hardware_aware")
    if not isinstance(record, dict):
        return ["- trained without the circuit (not hardware-aware): the realised model differs from it"]
    other = build.facts.get("trained_for_other_settings")
    if other:
        return [f"- **trained hardware-aware for other build settings**: {other}"]
    return [f"- trained hardware-aware for these build settings (decision margin {record.get('margin')})"]


def _ties_section(ties: dict | None) -> list:
    """Memory-cell decisions the circuit cannot be expected to take as the model does (flows/quantisation.py)."""
    if not ties:
        return []
    lines = [
        "",
        f"Decisions at a tie (test split: candidate within {TIE:.1%} of a threshold, decided by the circuit's "
        "calibration error and mismatch, not by the model):",
        "",
    ]
    lines += [
        f"- {cell}: {t['share']:.2%} of decisions"
        + (" (units " + ", ".join(f"{u}: {v:.2%}" for u, v in t["units"].items()) + ")" if t["units"] else "")
        for cell, t in ties.items()
    ]
    return lines


def _settling_section(settling: dict | None) -> list:
    """The slowest signal nodes (compiler/passes/check_settling.py): estimated settling against the slot."""
    if not settling:
        return []
    lines = [
        "",
        f"## Settling estimate ({settling['slow_nodes']} of {settling['nodes']} signal nodes slower than "
        f"a {settling['slot_s'] * 1e3:.3g} ms phase slot, {settling.get('kept_alive', 0)} kept alive)",
        "",
        "| node | gate capacitance | smallest current | keep-alive current | settling estimate |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {n['node']} | {n['gate_pF']} pF | {n['i_min_A'] * 1e9:.3g} nA | "
        f"{n.get('keep_alive_A', 0.0) * 1e9:.3g} nA | {n['t_on_s'] * 1e3:.3g} ms"
        f"{' (slower than the slot)' if n['slow'] else ''} |"
        for n in settling["slowest"]
    ]
    lines += [
        "",
        "A kept-alive node carries a standing current that its destinations cancel (compiler/passes/"
        "keep_alive.py): it settles in a few C n U_T / I time constants instead of turning on from zero.",
    ]
    if settling["slow_nodes"]:
        lines += [
            "",
            "Slow nodes decide late: lengthen frame_period, raise i_unit, or lower the weight "
            "denominator of the arrays they drive (fewer, smaller gates).",
        ]
    return lines


def _area_line(data: dict) -> str:
    layout = data.get("layout")
    if not layout:
        return (
            f"- gate area {data['gate_area_um2']} um^2; area estimate {data['area_estimate_um2']} um^2 "
            f"(x{LAYOUT_OVERHEAD:g} layout overhead; built with --no-layout)"
        )
    return (
        f"- layout area {layout['area_um2'] / 1e6:.3f} mm^2 ({layout['width_um']:g} x {layout['height_um']:g} um; "
        f"cells {layout['cells_area_um2'] / 1e6:.3f} mm^2, "
        f"top-level routing {layout['routing_area_um2'] / 1e6:.3f} mm^2); "
        f"{layout['unit_transistors']} unit transistors drawn; gate area {data['gate_area_um2']} um^2"
    )


def _layout_section(layout: dict | None) -> list:
    """Area per block: per IR stage (rows of the floorplan) and per cell kind."""
    if not layout:
        return []
    lines = [
        "",
        "## Layout area per block",
        "",
        "| IR stage | instances | unit transistors | area (um^2) | share |",
        "|---|---|---|---|---|",
    ]
    total = layout["area_um2"] or 1.0
    for stage, row in layout["by_stage"].items():
        lines.append(
            f"| {stage} | {row['instances']} | {row['unit_transistors']} | {row['area_um2']:.0f} | "
            f"{row['area_um2'] / total:.1%} |"
        )
    lines.append(
        f"| top-level routing | | | {layout['routing_area_um2']:.0f} | {layout['routing_area_um2'] / total:.1%} |"
    )
    lines += [
        "",
        "| cell kind | instances | unit transistors | area (um^2) | um^2 per unit transistor |",
        "|---|---|---|---|---|",
    ]
    for kind, row in layout["by_cell_kind"].items():
        per_unit = row["area_um2"] / row["units"] if row["units"] else 0.0
        lines.append(f"| {kind} | {row['instances']} | {row['units']} | {row['area_um2']:.0f} | {per_unit:.1f} |")
    return lines
