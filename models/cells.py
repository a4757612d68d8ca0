"""The recurrent cells (BMRU, CMRU, alpha-CMRU, their FQ forms; LRU and minGRU baselines): per-step
coefficients, single steps and scan forms.

This is the only place the cell equations live. The network layers, the training loop and the
compiler's behavioural backend all call these functions, so software and circuit reference can never
drift apart. Each cell exposes

* ``<cell>_step(params, inp, s_prev, ...)``: one time step (the circuit reference per frame),
* ``<cell>_run(params, inp, s0, ..., mode)``: the whole sequence, ``mode`` = "associative" (parallel,
  used for training) or "sequential" (lax.scan reference). Both return the same states.

Conventions: ``inp`` is ``[..., T, d]`` for runs and ``[..., d]`` for steps. FQ cells take the
candidate current h >= 0 (the layer computes h = ReLU(W x + b)) and keep the state as a level index
q (0/1 for FQ-BMRU, 0..K for FQ-CMRU); the output current is alpha * q. ``eps`` relaxes a bistable
cell into a counter for training (eps-annealing); the deployed value is the layer's own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models.scan import affine_recurrence, clamped_counter
from models.surrogate import heaviside, sign

# ----------------------------------------------------------------------------------------------
# FQ-BMRU: first-quadrant Schmitt trigger on a current.


def fq_thresholds(params):
    """(beta_lo, beta_hi) with beta_hi = beta_lo + delta."""
    return params["beta_lo"], params["beta_lo"] + params["delta"]


def fq_events(params, h):
    """Set (h >= beta_hi) and reset (h < beta_lo) indicators; exclusive because delta >= 0."""
    beta_lo, beta_hi = fq_thresholds(params)
    up = heaviside(h - beta_hi)
    down = 1.0 - heaviside(h - beta_lo)
    return up, down


def open_comparisons(q, top):
    """Which threshold comparisons can change a unit's level at each frame, from its levels q [..., T, d]:
    the set threshold's while the level before the frame is below `top` (1 for an FQ-BMRU, K for an
    FQ-CMRU), the reset threshold's while it is above 0 (every level starts at 0). Returns (set, reset)."""
    before = jnp.concatenate([jnp.zeros_like(q[..., :1, :]), q[..., :-1, :]], axis=-2)
    return before < top, before > 0


def fq_bmru_coeffs(params, h, eps=0.0):
    """Affine coefficients of the FQ-BMRU level q (our eps-relaxation, exact at eps = 0).

    set:   q_t = 1 + eps * q_{t-1}
    reset: q_t = eps * (q_{t-1} - 1)
    hold:  q_t = q_{t-1}
    At eps = 0 this is the bistable cell (q in {0, 1}); at eps = 1 an unbounded counter whose time
    Jacobian is 1, which lets gradients pass switches during the early phase of training.
    """
    up, down = fq_events(params, h)
    a = 1.0 - (up + down) * (1.0 - eps)
    b = up - eps * down
    return a, b


def fq_bmru_step(params, h, q_prev, eps=0.0):
    """One frame of the FQ-BMRU: new level q_t (output current alpha * q_t)."""
    a, b = fq_bmru_coeffs(params, h, eps)
    return a * q_prev + b


def fq_bmru_run(params, h, q0, eps=0.0, mode="associative"):
    a, b = fq_bmru_coeffs(params, h, eps)
    return affine_recurrence(a, b, q0, mode)


# ----------------------------------------------------------------------------------------------
# FQ-CMRU with K levels: saturating up/down counter (our definition).


def fq_cmru_increments(params, h):
    """+1 on a set event, -1 on a reset event, 0 in the hold band."""
    up, down = fq_events(params, h)
    return up - down


def fq_cmru_step(params, h, q_prev, K):
    """One frame of the FQ-CMRU: q_t = clip(q_{t-1} + k_t, 0, K)."""
    return jnp.clip(q_prev + fq_cmru_increments(params, h), 0.0, float(K))


def fq_cmru_run(params, h, q0, K, mode="associative"):
    return clamped_counter(fq_cmru_increments(params, h), q0, float(K), mode)


# ----------------------------------------------------------------------------------------------
# Symmetric BMRU / CMRU (eps in [0, 1]) and the alpha-CMRU.


def symmetric_gate(params, x):
    """Candidate c_t, threshold beta_t and switch gate z_t = H(|c_t| - |beta_t|)."""
    c = x @ params["Wc"].T + params["bc"]
    beta = x @ params["Wb"].T + params["bb"]
    z = heaviside(jnp.abs(c) - jnp.abs(beta))
    return c, beta, z


def bmru_coeffs(params, x, eps):
    """s_t = z (sign(c) + eps s_{t-1}) + (1 - z) s_{t-1}  ->  a = 1 - z (1 - eps), b = z sign(c)."""
    c, _, z = symmetric_gate(params, x)
    return 1.0 - z * (1.0 - eps), z * sign(c)


def bmru_step(params, x, s_prev, eps):
    a, b = bmru_coeffs(params, x, eps)
    return a * s_prev + b


def bmru_run(params, x, s0, eps, mode="associative"):
    a, b = bmru_coeffs(params, x, eps)
    return affine_recurrence(a, b, s0, mode)


def acmru_step_size(params, x):
    """alpha_t = softplus(W_a x_t + b_a) >= 0, the input-dependent step of the alpha-CMRU."""
    return jax.nn.softplus(x @ params["Wa"].T + params["ba"])


def acmru_coeffs(params, x, eps):
    """s_t = z (alpha_t sign(c) + eps s_{t-1}) + (1 - z) s_{t-1}."""
    c, _, z = symmetric_gate(params, x)
    return 1.0 - z * (1.0 - eps), z * acmru_step_size(params, x) * sign(c)


def acmru_step(params, x, s_prev, eps):
    a, b = acmru_coeffs(params, x, eps)
    return a * s_prev + b


def acmru_run(params, x, s0, eps, mode="associative"):
    a, b = acmru_coeffs(params, x, eps)
    return affine_recurrence(a, b, s0, mode)


# ----------------------------------------------------------------------------------------------
# Baselines: LRU (diagonal complex linear recurrence) and minGRU.


def lru_eigenvalues(params):
    """lambda = exp(-exp(nu_log) + i exp(theta_log)), |lambda| in (0, 1)."""
    return jnp.exp(-jnp.exp(params["nu_log"]) + 1j * jnp.exp(params["theta_log"]))


def lru_coeffs(params, x):
    """a = lambda (constant in time), b = gamma * (B x) with B complex."""
    lam = lru_eigenvalues(params)
    B = params["B_re"] + 1j * params["B_im"]
    b = jnp.exp(params["gamma_log"]) * (x.astype(jnp.complex64) @ B.T)
    return jnp.broadcast_to(lam, b.shape), b


def lru_readout(params, s, x):
    """y = Re(C s) + D x."""
    C = params["C_re"] + 1j * params["C_im"]
    return jnp.real(s @ C.T) + x @ params["D"].T


def lru_step(params, x, s_prev):
    a, b = lru_coeffs(params, x)
    return a * s_prev + b


def lru_run(params, x, s0, mode="associative"):
    a, b = lru_coeffs(params, x)
    return affine_recurrence(a, b, s0, mode)


def mingru_coeffs(params, x):
    """s_t = (1 - z_t) s_{t-1} + z_t h~_t with z = sigmoid(W_z x + b_z), h~ = W_h x + b_h."""
    z = jax.nn.sigmoid(x @ params["Wz"].T + params["bz"])
    cand = x @ params["Wh"].T + params["bh"]
    return 1.0 - z, z * cand


def mingru_step(params, x, s_prev):
    a, b = mingru_coeffs(params, x)
    return a * s_prev + b


def mingru_run(params, x, s0, mode="associative"):
    a, b = mingru_coeffs(params, x)
    return affine_recurrence(a, b, s0, mode)
