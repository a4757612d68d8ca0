"""The cost of realising a model as a circuit: task metric of the float model against the realised one.

The realised model is the network with the values the circuit is built to have (quantised mirror
ratios, legalised and bias-quantised cell currents), run by the zoo's own code. Both are scored on the
model's task test split, with the share of test sequences on which their predictions agree.
"""

from __future__ import annotations

import numpy as np

from compiler.backends.behavioural import arrays_from_ir
from compiler.frontend import Network
from compiler.ir import IR
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
    report = {"task": task.name, "metric": task.metric, "float": round(float(task.metrics(a, y)[task.metric]), 6),
              "realised": round(float(task.metrics(b, y)[task.metric]), 6), "test_sequences": int(len(x)),
              "output_rms_difference": round(float(np.sqrt(np.mean((a - b) ** 2))), 6)}
    if task.pool:  # a classifier: does the realised network predict the same class?
        report["prediction_agreement"] = round(float(np.mean(np.argmax(a, -1) == np.argmax(b, -1))), 6)
    return report
