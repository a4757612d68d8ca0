"""The power model on a network's own arrays and activity: what training penalises and exploration ranks.

The build report (flows/report.py) estimates a built circuit's supply current from its IR. This is the
same model, read once from the lowered IR's structure and evaluated on model arrays and traces with
numpy or jax.numpy (so a loss can differentiate it), in units of i_unit:

    bias generator  its reference and the reference's nfet copy, each shared bias's branches, and every
                    sourcing tap: the part of each bias its node takes sourced, each cell's I_width and
                    I_gain (the cells' bias ports, cells/facts.py)
    memory cells    each cell kind's own supply current (its facts' `supply_current`) at its thresholds,
                    candidates and states, enabled for its phase slot of the frame
    weight mirrors  each receiver's mean signal times its pfet devices over its diode: its pfet diode and
                    pfet copies (compiler/backends/spice.py `mirror_pfet_copies`) and every pfet output
                    reading it, the positive weights into nodes that take sourced current and the negative
                    ones into nodes that take sunk current

It reads model values where the report reads programmed ones (within the calibration's few percent and
the bias grid's step; tests/compiler/test_power.py compares the two on the zoo).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.backends.spice import mirror_pfet_copies
from compiler.foundation.timing import slot as phase_slot
from compiler.ir import IR, BiasArray, CurrentInput, Receiver
from compiler.passes import schedule_phases

BLOCKS = ("bias generator", "bistable cells", "weight mirrors")


@dataclass(frozen=True)
class Reader:
    """A mirror array reading a receiver: its model array (None for a 1:1 copy, whose ratios are fixed),
    the sign of the weights its pfets realise, and a copy's fixed pfet units and nfet use per input."""

    array: str | None
    sign: float
    sourcing: tuple = ()
    sinking: tuple = ()


@dataclass(frozen=True)
class PowerModel:
    constant: float  # reference branches and shared biases (units)
    enabled: float  # the share of a frame each memory cell follows its input (its phase slot)
    biases: tuple  # (model array "<layer>.b", +1 if its node takes sourced current else -1)
    cells: tuple  # (layer, facts): each memory-cell layer
    receivers: tuple  # (signal: "input" or the layer it carries, readers)

    @classmethod
    def of(cls, ir: IR, config) -> PowerModel:
        """The model of a lowered IR (software units, before any pass) built with `config`."""
        phases = schedule_phases.run(ir, config).meta.phases
        cells = tuple((cell.name, cell.facts) for cell in ir.memory_cells())
        shared = sum(s.units * s.branches for s in ir.shared_biases().values())
        constant = (2.0 if cells else 1.0) + shared
        biases = tuple(
            (s.source, 1.0 if ir.stage(ir.successors(s.name)[0]).accepts == "n" else -1.0)
            for s in ir.of_kind(BiasArray)
        )
        inputs = {s.name for s in ir.of_kind(CurrentInput)}
        receivers = []
        for rx in ir.of_kind(Receiver):
            readers = []
            for array in ir.readers(rx.name):
                sign = 1.0 if ir.stage(ir.successors(array.name)[0]).accepts == "n" else -1.0
                if array.source == array.name:
                    readers.append(Reader(array.source, sign))
                else:
                    weights = sign * np.asarray(array.weights, np.float64)
                    sourcing = tuple(float(v) for v in np.maximum(weights, 0.0).sum(axis=0))
                    readers.append(Reader(None, sign, sourcing, tuple(bool(v) for v in (weights < 0).any(axis=0))))
            signal = "input" if inputs & set(ir.predecessors(rx.name)) else rx.source
            receivers.append((signal, rx.polarity, tuple(readers)))
        return cls(constant, phase_slot(phases) if phases else 1.0, biases, cells, tuple(receivers))

    def supply(self, arrays: dict, traces: dict, x, xp=np) -> dict:
        """Supply current (units of i_unit) per block of a network with these arrays, whose traces on
        inputs x [..., T, F] are `traces` (models.network.apply)."""
        generator, cells, mirrors = self.constant, 0.0, 0.0
        for name, sign in self.biases:
            generator = generator + xp.maximum(sign * xp.asarray(arrays[name]), 0.0).sum()
        for layer, facts in self.cells:
            fields = _cell_currents(arrays, layer)
            for port in facts.bias_ports:
                if port.polarity == "p" and port.field in fields:
                    generator = generator + fields[port.field].sum()
            h, q = (xp.asarray(traces[layer][key]) for key in ("h", "q"))
            rows = (-1, h.shape[-1])
            cells = cells + facts.supply_current(fields, h.reshape(rows), q.reshape(rows), self.enabled, xp=xp)
        for signal, primary, readers in self.receivers:
            values = xp.asarray(x) if signal == "input" else xp.maximum(xp.asarray(traces[signal]["y"]), 0.0)
            mean = values.reshape(-1, values.shape[-1]).mean(axis=0)
            sourcing, sinking = 0.0, False
            for reader in readers:
                if reader.array is None:
                    sourcing = sourcing + xp.asarray(reader.sourcing)
                    sinking = sinking | xp.asarray(reader.sinking)
                else:
                    weights = reader.sign * xp.asarray(arrays[reader.array])
                    sourcing = sourcing + xp.maximum(weights, 0.0).sum(axis=0)
                    sinking = sinking | (weights < 0).any(axis=0)
            copies = mirror_pfet_copies(primary, xp.asarray(sourcing) > 0, xp.asarray(sinking))
            mirrors = mirrors + (mean * (copies + sourcing)).sum()
        return dict(zip(BLOCKS, (generator, cells, mirrors)))


def _cell_currents(arrays: dict, layer: str) -> dict:
    """A memory-cell layer's bias currents by field (units): threshold, width and gain."""
    beta_lo, delta, alpha = (arrays[f"{layer}.{p}"] for p in ("beta_lo", "delta", "alpha"))
    return {"thresh": beta_lo + delta, "width": delta, "gain": alpha}
