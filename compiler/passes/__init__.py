"""IR -> IR passes, one per file, each a pure function `run(ir, config) -> IR`, applied in PIPELINE order.

legalise         clamp cell parameters into what the cells realise, recording every change
split_signs      W = positive - negative: sourcing pfet and sinking nfet mirrors
scale_currents   software units -> amperes (1 unit = i_unit)
quantise_ratios  mirror ratios as integer counts of identical unit devices
calibrate        bistable bias currents from the cells' SPICE calibration tables, on the bias grid
size_devices     unit device W/L from the mismatch budget
schedule_phases  each layer of bistable cells gets its slot of the frame, in dataflow order
keep_alive       a standing, cancelled current in slow receivers of non-negative signals
assign_biases    every DC current drawn from one reference through the bias generator's taps
lower_cmru       every FQ-CMRU unit becomes a ladder of K gated bistable stages (DPIs, gating, bias taps)
check_settling   estimate each signal node's turn-on time against its slot (warnings in the report)
"""

from __future__ import annotations

import importlib
import time

PIPELINE = ("legalise", "split_signs", "scale_currents", "quantise_ratios", "calibrate", "size_devices",
            "schedule_phases", "keep_alive", "assign_biases", "lower_cmru", "check_settling")


def run_pipeline(ir, config, upto: str | None = None):
    """Apply the passes in order (through `upto`); returns (ir, seconds per pass)."""
    timings = {}
    for name in PIPELINE:
        start = time.perf_counter()
        ir = importlib.import_module(f"compiler.passes.{name}").run(ir, config)
        timings[name] = time.perf_counter() - start
        if name == upto:
            break
    return ir, timings
