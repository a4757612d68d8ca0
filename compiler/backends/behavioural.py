"""Behavioural backend: what the circuit should compute, frame by frame, as a JAX function of the IR.

No cell equation is written here: the IR's realised values (quantised weights, legalised and
bias-quantised thresholds, gains) are put back into the model's own arrays and the model zoo's
`models.network.apply` runs them. This is the reference that verification compares SPICE with.
"""

from __future__ import annotations

import jax
import numpy as np

from compiler.ir import IR, BiasArray, Bistable, WeightArray
from compiler.settling import KEEP_ALIVE
from models.network import apply


def arrays_from_ir(ir: IR) -> dict:
    """The model arrays the circuit realises (software units), keyed like the checkpoint's."""
    scale = ir.meta.get("i_unit", 1.0) if ir.meta.get("units") == "A" else 1.0
    arrays = {}
    for stage in ir.stages:
        if isinstance(stage, WeightArray) and stage.source == f"{stage.name}":
            arrays[stage.source] = np.asarray(stage.realised(), np.float32)
        elif isinstance(stage, BiasArray) and stage.source != KEEP_ALIVE:  # keep-alive currents cancel
            arrays[stage.source] = np.asarray(stage.values, np.float64) / scale
        elif isinstance(stage, Bistable):
            thresh, width = np.asarray(stage.thresh) / scale, np.asarray(stage.width) / scale
            arrays[f"{stage.name}.beta_lo"] = thresh - width
            arrays[f"{stage.name}.delta"] = width
            arrays[f"{stage.name}.alpha"] = np.asarray(stage.gain) / scale
    return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


def reference(ir: IR, x):
    """Run the realised network on inputs x [..., T, F] (software units); returns (output, traces)."""
    graph = ir.meta["graph"]
    return jax.jit(lambda arrays, x: apply(graph, arrays, x, mode="sequential"))(arrays_from_ir(ir), x)
