"""The two evaluation orders of a first-order recurrence: parallel (associative scan) and sequential.

Every cell reduces to one of two monoids, so its scan form and its step-by-step reference share the
same per-step coefficients and can be checked against each other:

* affine:  s_t = a_t * s_{t-1} + b_t             (BMRU, CMRU, aCMRU, FQ-BMRU, LRU, minGRU)
* clamped: s_t = clip(s_{t-1} + k_t, 0, K)        (FQ-CMRU, the saturating counter)

Arrays are laid out ``[..., T, d]`` (time is axis -2); the initial state is ``[..., d]``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

MODES = ("associative", "sequential")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown scan mode {mode!r}; use one of {MODES}")


def _affine_combine(first, second):
    """(a1, b1) o (a2, b2) = (a1*a2, a2*b1 + b2): apply step 1, then step 2."""
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2


def _sequential(step, s0, xs):
    """Run ``step(s, x_t) -> s`` over time axis -2 with lax.scan and return all states."""
    moved = tuple(jnp.moveaxis(x, -2, 0) for x in xs)

    def body(s, x_t):
        s = step(s, *x_t)
        return s, s

    _, states = lax.scan(body, s0, moved)
    return jnp.moveaxis(states, 0, -2)


def affine_recurrence(a, b, s0, mode: str = "associative"):
    """All states of s_t = a_t * s_{t-1} + b_t (real or complex), seeded with s0."""
    _check_mode(mode)
    if mode == "sequential":
        return _sequential(lambda s, a_t, b_t: a_t * s + b_t, s0, (a, b))
    acc_a, acc_b = lax.associative_scan(_affine_combine, (a, b), axis=a.ndim - 2)
    return acc_a * s0[..., None, :] + acc_b


def _clamp_combine(first, second):
    """Compose clip(s + k1, lo1, hi1) then clip(. + k2, lo2, hi2): the family is closed."""
    k1, lo1, hi1 = first
    k2, lo2, hi2 = second
    return k1 + k2, jnp.clip(lo1 + k2, lo2, hi2), jnp.clip(hi1 + k2, lo2, hi2)


def clamped_counter(k, s0, upper, mode: str = "associative"):
    """All states of s_t = clip(s_{t-1} + k_t, 0, upper), seeded with s0."""
    _check_mode(mode)
    upper = jnp.asarray(upper, k.dtype)
    if mode == "sequential":
        return _sequential(lambda s, k_t: jnp.clip(s + k_t, 0.0, upper), s0, (k,))
    lo = jnp.zeros_like(k)
    hi = jnp.broadcast_to(upper, k.shape)
    acc_k, acc_lo, acc_hi = lax.associative_scan(_clamp_combine, (k, lo, hi), axis=k.ndim - 2)
    return jnp.clip(s0[..., None, :] + acc_k, acc_lo, acc_hi)
