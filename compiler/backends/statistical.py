"""Statistical behavioural model: the realised network under device mismatch, sampled in JAX.

Each element the circuit realises a model value with gets a relative sigma from the cell library, and
each draw multiplies the element's value by 1 + sigma * N(0, 1):

    weights       each mirror output of r unit devices against its receiver's D-unit diode, by Pelgrom
                  from the unit device the build chose (cells/mirror.py `output_sigma`): a signed
                  weight is its sourcing (pfet) output minus its sinking (nfet) output
    biases        each bias tap of k unit devices on the bias generator's diode (cells/bias.py `tap_sigma`)
    memory cells  set threshold, reset threshold and output level, from the cell's Monte Carlo
                  characterisation (its facts' `mismatch`); a reset threshold drawn above the set one is
                  clamped to it (the hysteresis closes)

Not modelled: the 1:1 copies and the output mirrors (no model parameter holds them), the correlation of
a receiver's outputs through its shared diode, and the taps that bias the memory cells (their sigma is
in the cell's). The draws run vmapped through the zoo's own network code (models.network.apply).
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np

from cells.bias import tap_sigma
from cells.mirror import output_sigma
from compiler.backends.behavioural import arrays_from_ir
from compiler.ir import IR, BiasArray, BiasGenerator, WeightArray
from models.mismatch import CELL_SIGMAS, perturb
from models.network import apply


def sigmas(ir: IR) -> dict:
    """The relative sigma of every element realising the built network, in models.mismatch's form."""
    out, model_arrays = {}, arrays_from_ir(ir)
    for stage in ir.of_kind(WeightArray):
        if stage.source == stage.name:
            size = (stage.denominator, stage.unit_w, stage.unit_l)
            out[stage.source] = np.array(
                [
                    [
                        output_sigma("p", p, *size) if p else (output_sigma("n", n, *size) if n else 0.0)
                        for p, n in zip(prow, nrow)
                    ]
                    for prow, nrow in zip(stage.pos_ratios, stage.neg_ratios)
                ]
            )
    generators = ir.of_kind(BiasGenerator)
    taps = {(t.stage, t.unit): t for g in generators for t in g.taps if t.field == "values"}
    for stage in ir.of_kind(BiasArray):
        if stage.source in model_arrays:  # not the keep-alive currents, which cancel
            denominator = generators[0].denominator if generators else 1
            out[stage.source] = np.array(
                [
                    tap_sigma(taps[(stage.name, k)].polarity, taps[(stage.name, k)].units, denominator)
                    if (stage.name, k) in taps
                    else 0.0
                    for k in range(stage.size)
                ]
            )
    for cell in ir.memory_cells():
        m = cell.facts.mismatch
        for name, sigma in zip(CELL_SIGMAS, (m.set, m.reset, m.level) if m else (0.0, 0.0, 0.0)):
            out[f"{cell.name}.{name}"] = np.full(cell.size, sigma)
    return out


def draw(ir: IR, key, draws: int) -> dict:
    """`draws` mismatch draws of the realised model arrays ([draws, ...] each), for models.network.apply."""
    return perturb(arrays_from_ir(ir), sigmas(ir), key, draws)


@functools.lru_cache(maxsize=8)
def _vmapped(graph_json: str, output: str, cells: tuple):
    graph = json.loads(graph_json)

    def one(arrays, x):
        _, traces = apply(graph, arrays, x, mode="sequential")
        return traces[output]["y"], {cell: traces[cell]["q"] for cell in cells}

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


CHUNK_VALUES = 50_000_000  # floats a chunk of draws may hold across its layers' signals (about 200 MB)


def chunk_size(ir: IR, x, limit: int = 500) -> int:
    """Draws per vmapped chunk: at most `limit`, and few enough that every layer's signals over the
    sequences fit CHUNK_VALUES."""
    per_draw = int(np.prod(np.shape(x)[:-1])) * sum(stage.size for stage in ir.stages)
    return max(1, min(limit, CHUNK_VALUES // max(per_draw, 1)))


def monte_carlo(ir: IR, x, output: str, draws: int, seed: int = 0):
    """The layer `output`'s values and the memory-cell states under `draws` mismatch draws on inputs x
    [S, T, F], a chunk at a time (`chunk_size`): yields (outputs [n, S, ...], {cell: states [n, S, T, d]})."""
    cells = tuple(cell.name for cell in ir.memory_cells())
    run = _vmapped(json.dumps(ir.meta.graph, sort_keys=True), output, cells)
    chunk = min(chunk_size(ir, x), draws)
    x = jnp.asarray(x, jnp.float32)
    key = jax.random.PRNGKey(seed)
    for start in range(0, draws, chunk):
        key, sub = jax.random.split(key)
        n = min(chunk, draws - start)
        out, q = run(draw(ir, sub, chunk), x)  # a fixed chunk size: one compilation
        yield np.asarray(out[:n]), {cell: np.asarray(q[cell][:n]) for cell in cells}
