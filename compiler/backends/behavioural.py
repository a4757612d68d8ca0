"""Behavioural backend: what the circuit should compute, frame by frame, as a JAX function of the IR.

No cell equation is written here: the IR's realised values (quantised weights, legalised and
bias-quantised thresholds, gains) are put back into the model's own arrays and the model zoo's
`models.network.apply` runs them. This is the reference that verification compares SPICE with.
"""

from __future__ import annotations

import functools
import json

import jax
import numpy as np

from compiler.ir import IR, BiasArray, Bistable, WeightArray, for_kind
from compiler.settling import KEEP_ALIVE
from models.network import apply


def _weights(stage: WeightArray, scale: float) -> dict:
    """A layer's W (not the 1:1 copies lowering adds): the quantised ratios."""
    return {stage.source: np.asarray(stage.realised(), np.float32)} if stage.source == stage.name else {}


def _biases(stage: BiasArray, scale: float) -> dict:
    """A layer's b (keep-alive currents cancel, so they are no model parameter)."""
    return {stage.source: np.asarray(stage.values, np.float64) / scale} if stage.source != KEEP_ALIVE else {}


def _threshold_cell(stage: Bistable, scale: float) -> dict:
    """A memory cell's beta_lo, delta and alpha from the threshold, width and gain it realises."""
    thresh, width = np.asarray(stage.thresh) / scale, np.asarray(stage.width) / scale
    return {
        f"{stage.name}.beta_lo": thresh - width,
        f"{stage.name}.delta": width,
        f"{stage.name}.alpha": np.asarray(stage.gain) / scale,
    }


# Stage kind -> the model arrays it realises (a kind it extends when it has no entry of its own).
MODEL_ARRAYS = {WeightArray: _weights, BiasArray: _biases, Bistable: _threshold_cell}


def arrays_from_ir(ir: IR) -> dict:
    """The model arrays the circuit realises (software units), keyed like the checkpoint's."""
    scale = ir.meta.i_unit if ir.meta.units == "A" else 1.0
    arrays = {}
    for stage in ir.stages:
        arrays.update(for_kind(MODEL_ARRAYS, stage, default=lambda stage, scale: {})(stage, scale))
    return {k: np.asarray(v, np.float32) for k, v in arrays.items()}


def reference(ir: IR, x):
    """Run the realised network on inputs x [..., T, F] (software units); returns (output, traces)."""
    return compiled(json.dumps(ir.meta.graph, sort_keys=True))(arrays_from_ir(ir), x)


@functools.lru_cache(maxsize=32)
def compiled(graph_json: str):
    """The jitted network of one layer graph, made once per graph (JAX then compiles once per input shape),
    so repeated references (verify's conditions, partitions, benchmarks) skip the 1-4 s compile."""
    graph = json.loads(graph_json)
    return jax.jit(lambda arrays, x: apply(graph, arrays, x, mode="sequential"))
