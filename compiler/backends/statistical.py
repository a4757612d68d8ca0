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
from models.network import apply


def sigmas(ir: IR) -> dict:
    """Per model array, the relative sigmas of the elements realising it: {"<layer>.W": (sigma of the
    sourcing output, sigma of the sinking output), "<layer>.b": sigma, "<cell>": (set, reset, level)}."""
    out = {}
    for stage in ir.of_kind(WeightArray):
        if stage.source == stage.name:

            def of(polarity, ratios, stage=stage):
                return np.array(
                    [
                        [
                            output_sigma(polarity, r, stage.denominator, stage.unit_w, stage.unit_l) if r else 0.0
                            for r in row
                        ]
                        for row in ratios
                    ]
                )

            out[stage.source] = (of("p", stage.pos_ratios), of("n", stage.neg_ratios))
    generators, model_arrays = ir.of_kind(BiasGenerator), arrays_from_ir(ir)
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
        out[cell.name] = (m.set, m.reset, m.level) if m else (0.0, 0.0, 0.0)
    return out


def nominal_parts(ir: IR) -> dict:
    """The realised arrays, with each layer weight split into its sourcing and sinking parts (software units)."""
    arrays = dict(arrays_from_ir(ir))
    for stage in ir.of_kind(WeightArray):
        if stage.source == stage.name:
            arrays[stage.source + ":p"] = np.asarray(stage.pos_ratios, np.float32) / stage.denominator
            arrays[stage.source + ":n"] = np.asarray(stage.neg_ratios, np.float32) / stage.denominator
    return arrays


def draw(ir: IR, key, draws: int) -> dict:
    """`draws` mismatch draws of the realised model arrays ([draws, ...] each), for models.network.apply."""
    nominal, spread = nominal_parts(ir), sigmas(ir)
    keys = iter(jax.random.split(key, 4 * len(spread) + 1))

    def scaled(value, sigma):
        value = jnp.asarray(value, jnp.float32)
        noise = jax.random.normal(next(keys), (draws, *value.shape))
        return value * (1 + jnp.asarray(sigma, jnp.float32) * noise)

    out = {k: jnp.broadcast_to(jnp.asarray(v), (draws, *np.shape(v))) for k, v in nominal.items() if ":" not in k}
    for name, sigma in spread.items():
        if name.endswith(".W"):
            out[name] = scaled(nominal[name + ":p"], sigma[0]) - scaled(nominal[name + ":n"], sigma[1])
        elif name.endswith(".b"):
            out[name] = scaled(nominal[name], sigma)
        else:
            beta_lo, delta = nominal[f"{name}.beta_lo"], nominal[f"{name}.delta"]
            hi = scaled(beta_lo + delta, sigma[0])
            lo = jnp.minimum(scaled(beta_lo, sigma[1]), hi)
            out[f"{name}.beta_lo"], out[f"{name}.delta"] = lo, hi - lo
            out[f"{name}.alpha"] = scaled(nominal[f"{name}.alpha"], sigma[2])
    return out


@functools.lru_cache(maxsize=8)
def _vmapped(graph_json: str, output: str, cells: tuple):
    graph = json.loads(graph_json)

    def one(arrays, x):
        _, traces = apply(graph, arrays, x, mode="sequential")
        return traces[output]["y"], {cell: traces[cell]["q"] for cell in cells}

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def monte_carlo(ir: IR, x, output: str, draws: int, seed: int = 0, chunk: int = 500):
    """The layer `output`'s values and the memory-cell states under `draws` mismatch draws on inputs x
    [S, T, F]: (outputs [draws, S, ...], {cell: states [draws, S, T, d]}), `chunk` draws at a time."""
    cells = tuple(cell.name for cell in ir.memory_cells())
    run = _vmapped(json.dumps(ir.meta.graph, sort_keys=True), output, cells)
    x = jnp.asarray(x, jnp.float32)
    outputs, states = [], {cell: [] for cell in cells}
    key = jax.random.PRNGKey(seed)
    for start in range(0, draws, chunk):
        key, sub = jax.random.split(key)
        n = min(chunk, draws - start)
        out, q = run(draw(ir, sub, chunk), x)  # a fixed chunk size: one compilation
        outputs.append(np.asarray(out[:n]))
        for cell in cells:
            states[cell].append(np.asarray(q[cell][:n]))
    return np.concatenate(outputs), {cell: np.concatenate(v) for cell, v in states.items()}
