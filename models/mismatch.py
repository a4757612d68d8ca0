"""Device mismatch as a perturbation of a network's arrays (JAX): what a chip draws, element by element.

`spread` gives each element's relative sigma: "<layer>.W" and "<layer>.b" per element, and per memory
cell "<layer>.set", "<layer>.reset" and "<layer>.level" for its set threshold (beta_lo + delta), reset
threshold (beta_lo) and output level (alpha). The compiler derives them from its cell library
(compiler/realisation.py `spread`, compiler/backends/statistical.py); training draws one chip per step,
the statistical behavioural model thousands.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

CELL_SIGMAS = ("set", "reset", "level")


def perturb(arrays: dict, spread: dict, key, draws: int | None = None) -> dict:
    """The arrays with each element scaled by 1 + sigma N(0, 1); a reset threshold drawn above its set
    threshold is clamped to it (the hysteresis closes). With `draws`, every array gains a leading axis of
    that many independent draws."""
    keys = iter(jax.random.split(key, len(spread) + 1))

    def drawn(value, sigma):
        value = jnp.asarray(value, jnp.float32)
        shape = value.shape if draws is None else (draws, *value.shape)
        return value * (1 + jnp.asarray(sigma, jnp.float32) * jax.random.normal(next(keys), shape))

    out = {
        k: (v if draws is None else jnp.broadcast_to(jnp.asarray(v), (draws, *jnp.shape(v)))) for k, v in arrays.items()
    }
    cells = {name.rsplit(".", 1)[0] for name in spread if name.endswith(".set")}
    thresholds = {f"{cell}.{sigma}" for cell in cells for sigma in CELL_SIGMAS}  # drawn per cell below
    for name, sigma in spread.items():
        if name not in thresholds:  # every mirror output and bias tap, a memory-cell layer's own W and b too
            out[name] = drawn(arrays[name], sigma)
    for cell in cells:
        beta_lo, delta = arrays[f"{cell}.beta_lo"], arrays[f"{cell}.delta"]
        hi = drawn(beta_lo + delta, spread[f"{cell}.set"])
        lo = jnp.minimum(drawn(beta_lo, spread[f"{cell}.reset"]), hi)
        out[f"{cell}.beta_lo"], out[f"{cell}.delta"] = lo, hi - lo
        out[f"{cell}.alpha"] = drawn(arrays[f"{cell}.alpha"], spread[f"{cell}.level"])
    return out
