"""Heaviside and sign with surrogate gradients.

The forward pass is the exact step function (H(0) = 1, sign(0) = +1) so the trained model is the
deployed model; the backward pass uses dH/dx ~ a / (1 + (pi * a * x)^2) with a = 1, which keeps
gradients alive near the switching thresholds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SURROGATE_SCALE = 1.0


def surrogate_derivative(x):
    """The pseudo-derivative used for H in the backward pass."""
    a = SURROGATE_SCALE
    return a / (1.0 + (jnp.pi * a * x) ** 2)


@jax.custom_jvp
def heaviside(x):
    """H(x) = 1 for x >= 0 else 0, with a surrogate gradient."""
    return (x >= 0).astype(x.dtype)


@heaviside.defjvp
def _heaviside_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return heaviside(x), surrogate_derivative(x) * dx


def sign(x):
    """sign(x) = 2 H(x) - 1 (so sign(0) = +1), with twice the surrogate gradient of H."""
    return 2.0 * heaviside(x) - 1.0
