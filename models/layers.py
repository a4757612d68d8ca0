"""Layer registry: for each layer type, its hyperparameters, arrays, initialisation and forward pass.

A graph node is a plain dict ``{"name", "type", ...hyperparameters}``; its arrays are named
``"<name>.<param>"``. The registry is the single source of truth used by graph validation, the
checkpoint loader (expected arrays and shapes), initialisation and ``models.network.apply``.
Forward passes are pure and jittable; each returns ``(output, trace)`` where the trace holds the
intermediate signals the compiler's behavioural backend compares against (always including ``"y"``).
Sequences are ``[..., T, F]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from models import cells


@dataclass(frozen=True)
class Context:
    """Run-time options: ``eps`` overrides the deployed eps of annealable cells (training only)."""

    eps: object = None
    mode: str = "associative"


@dataclass(frozen=True)
class LayerType:
    name: str
    hyper: dict  # hyperparameter -> kind: "int", "prob" (float in [0,1]), "radius" (float in (0,1))
    shapes: Callable[[dict], dict]  # hyperparameters -> {param: shape}
    init: Callable[[np.random.Generator, dict], dict]
    forward: Callable  # (params, hp, inputs, ctx) -> (out, trace)
    n_inputs: tuple = (1, 1)  # (min, max) number of incoming edges
    hardware: bool = False  # realisable by the circuit library
    anneal: bool = False  # eps-annealed during training (deployed as a bistable cell)
    in_key: str | None = "in"  # hyperparameter that must equal the incoming feature count
    out_features: Callable = field(default=lambda hp, fin: fin)
    pools_time: bool = False


def _normal(rng, shape, fan_in, scale=1.0):
    return (rng.standard_normal(shape) * scale / np.sqrt(max(fan_in, 1))).astype(np.float32)


def _f32(x):
    return np.asarray(x, np.float32)


# ---------------------------------------------------------------------------- stateless layers


def _input_forward(params, hp, inputs, ctx):
    return inputs[0], {"y": inputs[0]}


def _linear_forward(params, hp, inputs, ctx):
    y = inputs[0] @ params["W"].T + params["b"]
    return y, {"y": y}


def _linear_init(rng, hp):
    return {"W": _normal(rng, (hp["out"], hp["in"]), hp["in"]), "b": _f32(np.zeros(hp["out"]))}


def _relu_forward(params, hp, inputs, ctx):
    y = jax.nn.relu(inputs[0])
    return y, {"y": y}


def _add_forward(params, hp, inputs, ctx):
    y = inputs[0]
    for other in inputs[1:]:
        y = y + other
    return y, {"y": y}


def _mean_time_forward(params, hp, inputs, ctx):
    y = jnp.mean(inputs[0], axis=-2)
    return y, {"y": y}


# ---------------------------------------------------------------------------- FQ (hardware) cells


def _fq_shapes(hp):
    d, n = hp["d"], hp["in"]
    return {"W": (d, n), "b": (d,), "beta_lo": (d,), "delta": (d,), "alpha": (d,)}


def _fq_init(rng, hp):
    """Candidates start inside the hold band: h ~ b = 1, beta_lo < 1 < beta_hi, so early frames
    hold and switches are caused by input deviations rather than by the bias."""
    d, n = hp["d"], hp["in"]
    below = rng.uniform(0.2, 0.6, d)
    above = rng.uniform(0.2, 0.6, d)
    return {
        "W": _normal(rng, (d, n), n),
        "b": _f32(np.ones(d)),
        "beta_lo": _f32(1.0 - below),
        "delta": _f32(below + above),
        "alpha": _f32(np.ones(d)),
    }


def fq_candidate(params, x):
    """h = ReLU(W x + b): the non-negative candidate current of an FQ cell."""
    return jax.nn.relu(x @ params["W"].T + params["b"])


def _fq_bmru_forward(params, hp, inputs, ctx):
    h = fq_candidate(params, inputs[0])
    eps = 0.0 if ctx.eps is None else ctx.eps
    q = cells.fq_bmru_run(params, h, jnp.zeros(h.shape[:-2] + h.shape[-1:], h.dtype), eps, ctx.mode)
    y = params["alpha"] * q
    return y, {"h": h, "q": q, "y": y}


def _fq_cmru_forward(params, hp, inputs, ctx):
    h = fq_candidate(params, inputs[0])
    q0 = jnp.zeros(h.shape[:-2] + h.shape[-1:], h.dtype)
    q = cells.fq_cmru_run(params, h, q0, hp["K"], ctx.mode)
    y = params["alpha"] * q
    return y, {"h": h, "q": q, "y": y}


# ---------------------------------------------------------------------------- symmetric cells


def _sym_shapes(hp, extra=()):
    d, n = hp["d"], hp["in"]
    shapes = {"Wc": (d, n), "bc": (d,), "Wb": (d, n), "bb": (d,)}
    for name in extra:
        shapes[name] = {"alpha": (d,), "Wa": (d, n), "ba": (d,)}[name]
    return shapes


def _sym_init(rng, hp, with_alpha=True, with_step=False):
    """Threshold bias near +1 so units start in 'hold'."""
    d, n = hp["d"], hp["in"]
    out = {
        "Wc": _normal(rng, (d, n), n),
        "bc": _f32(np.zeros(d)),
        "Wb": _normal(rng, (d, n), n, scale=0.1),
        "bb": _f32(np.ones(d)),
    }
    if with_alpha:
        out["alpha"] = _f32(np.ones(d))
    if with_step:
        out["Wa"] = _normal(rng, (d, n), n)
        out["ba"] = _f32(np.zeros(d))
    return out


def _zeros_state(x, d, dtype=jnp.float32):
    return jnp.zeros(x.shape[:-2] + (d,), dtype)


def _bmru_forward(params, hp, inputs, ctx):
    x = inputs[0]
    eps = hp["eps"] if ctx.eps is None else ctx.eps
    c, beta, _ = cells.symmetric_gate(params, x)
    s = cells.bmru_run(params, x, _zeros_state(x, hp["d"]), eps, ctx.mode)
    y = params["alpha"] * s
    return y, {"c": c, "beta": beta, "s": s, "y": y}


def _cmru_forward(params, hp, inputs, ctx):
    # The CMRU trains at its deployed eps: no annealing override.
    return _bmru_forward(params, hp, inputs, Context(None, ctx.mode))


def _acmru_forward(params, hp, inputs, ctx):
    x = inputs[0]
    c, beta, _ = cells.symmetric_gate(params, x)
    s = cells.acmru_run(params, x, _zeros_state(x, hp["d"]), hp["eps"], ctx.mode)
    return s, {"c": c, "beta": beta, "s": s, "y": s}


# ---------------------------------------------------------------------------- baselines


def _lru_shapes(hp):
    d, n = hp["d"], hp["in"]
    return {
        "nu_log": (d,),
        "theta_log": (d,),
        "gamma_log": (d,),
        "B_re": (d, n),
        "B_im": (d, n),
        "C_re": (d, d),
        "C_im": (d, d),
        "D": (d, n),
    }


def _lru_init(rng, hp):
    """Eigenvalues uniform on the ring r in [r_min, r_max], normalised input gain."""
    d, n = hp["d"], hp["in"]
    r_min, r_max = hp["r_min"], hp["r_max"]
    u = rng.uniform(size=d)
    nu = -0.5 * np.log(u * (r_max**2 - r_min**2) + r_min**2)
    theta = rng.uniform(size=d) * 2 * np.pi
    gamma = np.sqrt(1.0 - np.exp(-nu) ** 2)
    return {
        "nu_log": _f32(np.log(nu)),
        "theta_log": _f32(np.log(np.maximum(theta, 1e-3))),
        "gamma_log": _f32(np.log(gamma)),
        "B_re": _normal(rng, (d, n), 2 * n),
        "B_im": _normal(rng, (d, n), 2 * n),
        "C_re": _normal(rng, (d, d), d),
        "C_im": _normal(rng, (d, d), d),
        "D": _normal(rng, (d, n), n),
    }


def _lru_forward(params, hp, inputs, ctx):
    x = inputs[0]
    s = cells.lru_run(params, x, _zeros_state(x, hp["d"], jnp.complex64), ctx.mode)
    y = cells.lru_readout(params, s, x)
    return y, {"s_re": jnp.real(s), "s_im": jnp.imag(s), "y": y}


def _mingru_shapes(hp):
    d, n = hp["d"], hp["in"]
    return {"Wz": (d, n), "bz": (d,), "Wh": (d, n), "bh": (d,)}


def _mingru_init(rng, hp):
    d, n = hp["d"], hp["in"]
    return {
        "Wz": _normal(rng, (d, n), n),
        "bz": _f32(np.zeros(d)),
        "Wh": _normal(rng, (d, n), n),
        "bh": _f32(np.zeros(d)),
    }


def _mingru_forward(params, hp, inputs, ctx):
    x = inputs[0]
    s = cells.mingru_run(params, x, _zeros_state(x, hp["d"]), ctx.mode)
    return s, {"s": s, "y": s}


# ---------------------------------------------------------------------------- registry

_NONE = (lambda hp: {}, lambda rng, hp: {})
_CELL_OUT = lambda hp, fin: hp["d"]  # noqa: E731

LAYER_TYPES: dict[str, LayerType] = {
    t.name: t
    for t in [
        LayerType(
            "input",
            {"features": "int"},
            *_NONE,
            _input_forward,
            n_inputs=(0, 0),
            hardware=True,
            in_key=None,
            out_features=lambda hp, fin: hp["features"],
        ),
        LayerType(
            "linear",
            {"in": "int", "out": "int"},
            lambda hp: {"W": (hp["out"], hp["in"]), "b": (hp["out"],)},
            _linear_init,
            _linear_forward,
            hardware=True,
            out_features=lambda hp, fin: hp["out"],
        ),
        LayerType("relu", {}, *_NONE, _relu_forward, hardware=True, in_key=None),
        LayerType("add", {}, *_NONE, _add_forward, n_inputs=(2, 64), hardware=True, in_key=None),
        LayerType("mean_time", {}, *_NONE, _mean_time_forward, hardware=True, in_key=None, pools_time=True),
        LayerType(
            "fq_bmru",
            {"in": "int", "d": "int"},
            _fq_shapes,
            _fq_init,
            _fq_bmru_forward,
            hardware=True,
            anneal=True,
            out_features=_CELL_OUT,
        ),
        LayerType(
            "fq_cmru",
            {"in": "int", "d": "int", "K": "int"},
            _fq_shapes,
            _fq_init,
            _fq_cmru_forward,
            hardware=True,
            out_features=_CELL_OUT,
        ),
        LayerType(
            "bmru",
            {"in": "int", "d": "int", "eps": "prob"},
            lambda hp: _sym_shapes(hp, ("alpha",)),
            _sym_init,
            _bmru_forward,
            anneal=True,
            out_features=_CELL_OUT,
        ),
        LayerType(
            "cmru",
            {"in": "int", "d": "int", "eps": "prob"},
            lambda hp: _sym_shapes(hp, ("alpha",)),
            _sym_init,
            _cmru_forward,
            out_features=_CELL_OUT,
        ),
        LayerType(
            "acmru",
            {"in": "int", "d": "int", "eps": "prob"},
            lambda hp: _sym_shapes(hp, ("Wa", "ba")),
            lambda rng, hp: _sym_init(rng, hp, with_alpha=False, with_step=True),
            _acmru_forward,
            out_features=_CELL_OUT,
        ),
        LayerType(
            "lru",
            {"in": "int", "d": "int", "r_min": "radius", "r_max": "radius"},
            _lru_shapes,
            _lru_init,
            _lru_forward,
            out_features=_CELL_OUT,
        ),
        LayerType(
            "mingru", {"in": "int", "d": "int"}, _mingru_shapes, _mingru_init, _mingru_forward, out_features=_CELL_OUT
        ),
    ]
}

RECURRENT_TYPES = ("fq_bmru", "fq_cmru", "bmru", "cmru", "acmru", "lru", "mingru")

# Parameters that are bias currents in the circuit and must be non-negative.
NON_NEGATIVE = {"fq_bmru": ("beta_lo", "delta", "alpha"), "fq_cmru": ("beta_lo", "delta", "alpha")}
