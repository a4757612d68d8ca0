"""The cost of realising a model as a circuit: task metric of the float model against the realised one.

The realised model is the network with the values the circuit is built to have (quantised mirror
ratios, legalised and bias-quantised cell currents), run by the zoo's own code. Both are scored on the
model's task test split, with the share of test sequences on which their predictions agree.

Decision margins: a memory cell whose candidate sits within TIE of a threshold is decided by the
circuit's calibration error and mismatch, not by the model, so verification cannot expect it to agree.
Only comparisons whose outcome changes the state count: near the set threshold while the cell can still
step up, near the reset threshold while it can still step down.
Quantisation makes such ties common when the candidates fall on a lattice as fine as a threshold can be
placed (the d=4 digits model: 1/112 of a unit, 0.4-0.9 % of its thresholds; docs/measurements.md, "Ties").
"""

from __future__ import annotations

import numpy as np

from compiler.backends.behavioural import arrays_from_ir, reference
from compiler.frontend import Network
from compiler.ir import IR
from models.cells import open_comparisons
from models.evaluate import predict, predictor
from models.tasks import get_task


def quantisation_report(network: Network, ir: IR) -> dict:
    ckpt = network.checkpoint
    task_name = ckpt.metadata.get("task")
    try:
        task = get_task(task_name)
    except KeyError:
        return {"task": task_name, "note": "task unknown to this package: metrics not measured"}
    fn = predictor(ckpt.graph)  # one compiled forward pass for both parameter sets
    x, y = task.test.x, task.test.y
    a = predict(fn, {k: np.asarray(v) for k, v in ckpt.arrays.items()}, x)
    b = predict(fn, arrays_from_ir(ir), x)
    report = {
        "task": task.name,
        "metric": task.metric,
        "float": round(float(task.metrics(a, y)[task.metric]), 6),
        "realised": round(float(task.metrics(b, y)[task.metric]), 6),
        "test_sequences": int(len(x)),
        "output_rms_difference": round(float(np.sqrt(np.mean((a - b) ** 2))), 6),
    }
    if task.pool:  # a classifier: does the realised network predict the same class?
        report["prediction_agreement"] = round(float(np.mean(np.argmax(a, -1) == np.argmax(b, -1))), 6)
    report["ties"] = decision_ties(ir, x)
    return report


TIE = 0.004  # relative distance of a candidate to a threshold: above the bistable calibration's held-out
# error (0.144 %) and the distances at which the d=4 digits model lost decisions
# (docs/measurements.md, "Ties")


def decision_ties(ir: IR, x) -> dict:
    """Per memory-cell stage, on inputs x: the share of (sequence, frame, unit) decisions at a tie (a
    candidate within TIE of beta_hi, relative to it, while the unit can step up, or of beta_lo while it can
    step down), and the units with the most."""
    scale = ir.meta.i_unit if ir.meta.units == "A" else 1.0
    _, traces = reference(ir, x)
    ties = {}
    for stage in ir.memory_cells():
        h = np.asarray(traces[stage.name]["h"])
        can_set, can_reset = (np.asarray(m) for m in open_comparisons(traces[stage.name]["q"], stage.top_level))
        hi = np.asarray(stage.thresh) / scale
        lo = hi - np.asarray(stage.width) / scale
        near = ((np.abs(h - hi) < TIE * hi) & can_set) | ((np.abs(h - lo) < TIE * hi) & can_reset)
        per_unit = near.reshape(-1, near.shape[-1]).mean(0)
        ties[stage.name] = {
            "share": round(float(near.mean()), 6),
            "units": {int(k): round(float(per_unit[k]), 6) for k in np.argsort(-per_unit)[:3] if per_unit[k] > 0},
        }
    return ties
