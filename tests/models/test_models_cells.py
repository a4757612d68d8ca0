"""Cell equations: scan forms agree, states take only their cell's values, gradients behave as designed."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import cells
from models.layers import LAYER_TYPES
from models.schedule import EpsSchedule
from models.surrogate import heaviside, sign

B, T, N, D = 3, 40, 5, 6


def _params(cell_type, seed=0, **hp):
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(v) for k, v in LAYER_TYPES[cell_type].init(rng, {"in": N, "d": D, **hp}).items()}


def _x(seed=1, t=T):
    return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, (B, t, N)), jnp.float32)


def _h(seed=2, t=T):
    # Candidate currents spread across both thresholds so every branch is exercised.
    return jnp.asarray(np.random.default_rng(seed).uniform(0, 2, (B, t, D)), jnp.float32)


RUNS = {  # jitted below
    "fq_bmru": lambda p, mode, eps: cells.fq_bmru_run(p, _h(), jnp.zeros((B, D)), eps, mode),
    "fq_cmru": lambda p, mode, eps: cells.fq_cmru_run(p, _h(), jnp.zeros((B, D)), 3, mode),
    "bmru": lambda p, mode, eps: cells.bmru_run(p, _x(), jnp.zeros((B, D)), eps, mode),
    "acmru": lambda p, mode, eps: cells.acmru_run(p, _x(), jnp.zeros((B, D)), eps, mode),
    "lru": lambda p, mode, eps: cells.lru_run(p, _x(), jnp.zeros((B, D), jnp.complex64), mode),
    "mingru": lambda p, mode, eps: cells.mingru_run(p, _x(), jnp.zeros((B, D)), mode),
}
HP = {"fq_cmru": {"K": 3}, "bmru": {"eps": 0.0}, "acmru": {"eps": 1.0}, "lru": {"r_min": 0.9, "r_max": 0.999}}


CASES = [(c, e) for c in ("fq_bmru", "bmru", "acmru") for e in (0.0, 0.5, 1.0)] + [
    (c, 0.0) for c in ("fq_cmru", "lru", "mingru")
]


@functools.cache
def _compiled_run(cell, mode):
    """One compilation per cell and scan form; eps is traced, so every eps case reuses it."""
    return jax.jit(lambda p, eps: RUNS[cell](p, mode, eps))


@pytest.mark.parametrize("cell,eps", CASES)
def test_associative_scan_matches_sequential(cell, eps):
    p = _params(cell, **HP.get(cell, {}))
    par = np.asarray(_compiled_run(cell, "associative")(p, jnp.float32(eps)))
    seq = np.asarray(_compiled_run(cell, "sequential")(p, jnp.float32(eps)))
    assert par.shape == (B, T, D)
    np.testing.assert_allclose(par, seq, rtol=1e-4, atol=1e-4)


def test_step_functions_match_runs():
    p = _params("fq_bmru")
    h = _h()
    q = jnp.zeros((B, D))
    qc = jnp.zeros((B, D))
    run_b, run_c = jax.jit(lambda p, h: (cells.fq_bmru_run(p, h, q), cells.fq_cmru_run(p, h, qc, 3)))(p, h)
    step_b = jax.jit(cells.fq_bmru_step)
    step_c = jax.jit(cells.fq_cmru_step, static_argnums=3)
    for t in range(T):
        q = step_b(p, h[:, t], q)
        qc = step_c(p, h[:, t], qc, 3)
        np.testing.assert_array_equal(q, run_b[:, t])
        np.testing.assert_array_equal(qc, run_c[:, t])


def test_fq_bmru_is_a_schmitt_trigger():
    p = {"beta_lo": jnp.array([0.5]), "delta": jnp.array([0.5]), "alpha": jnp.array([2.0])}
    h = jnp.array([[0.7], [1.2], [0.7], [0.3], [0.9], [1.0]])  # hold, set, hold, reset, hold, set
    q = cells.fq_bmru_run(p, h, jnp.zeros(1), mode="sequential")
    assert q[:, 0].tolist() == [0, 1, 1, 0, 0, 1]


def test_fq_cmru_counts_and_saturates():
    p = {"beta_lo": jnp.array([0.5]), "delta": jnp.array([0.5]), "alpha": jnp.array([1.0])}
    h = jnp.array([[1.5], [0.7], [1.5], [1.5], [1.5], [0.2], [0.7], [0.2], [0.2], [0.2]])
    q = cells.fq_cmru_run(p, h, jnp.zeros(1), K=3, mode="sequential")
    assert q[:, 0].tolist() == [1, 1, 2, 3, 3, 2, 2, 1, 0, 0]


def _states(cell, p, eps):
    return np.asarray(jax.jit(lambda p: RUNS[cell](p, "sequential", eps))(p))


def test_state_sets():
    p = _params("fq_bmru")
    assert set(np.unique(_states("fq_bmru", p, 0.0))) == {0.0, 1.0}
    assert set(np.unique(_states("fq_cmru", p, 0.0))) == {0.0, 1.0, 2.0, 3.0}
    pb = _params("bmru", eps=0.0)
    assert set(np.unique(_states("bmru", pb, 0.0))) <= {-1.0, 0.0, 1.0}
    counts = _states("bmru", pb, 1.0)  # eps = 1: integer counter
    np.testing.assert_array_equal(counts, np.round(counts))
    assert np.abs(counts).max() > 1


def test_surrogate_gradients():
    assert float(heaviside(jnp.float32(0.0))) == 1.0 and float(sign(jnp.float32(0.0))) == 1.0
    g = jax.grad(lambda x: heaviside(x))(jnp.float32(0.0))
    assert float(g) == pytest.approx(1.0)
    g_far = jax.grad(lambda x: heaviside(x))(jnp.float32(1.0))
    assert float(g_far) == pytest.approx(1 / (1 + np.pi**2), rel=1e-5)


def _final_state_jacobians(cell, eps, t=1000):
    """(Sequential scan: its gradient equals the associative form's and it compiles faster.)
    Jacobians of the final state s_T over a 1000-step sequence with respect to the initial
    state s_0 (diagonal, per unit) and to a perturbation of the first frame's input (per unit),
    plus which units switched at least once."""
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.uniform(0, 1, (t, N)), jnp.float32)
    if cell == "bmru":
        p = _params("bmru", eps=0.0)

        def final(s0, dx):
            return cells.bmru_run(p, x.at[0].add(dx), s0, eps, "sequential")[-1]

        switched = cells.symmetric_gate(p, x)[2]
    else:
        p = _params("fq_bmru")
        cand = lambda xx: jax.nn.relu(xx @ p["W"].T + p["b"])  # noqa: E731

        def final(s0, dx):
            return cells.fq_bmru_run(p, cand(x.at[0].add(dx)), s0, eps, "sequential")[-1]

        up, down = cells.fq_events(p, cand(x))
        switched = up + down
    j_s0, j_x1 = jax.jit(jax.jacobian(final, argnums=(0, 1)))(jnp.zeros(D), jnp.zeros(N))
    return np.diag(np.asarray(j_s0)), np.abs(np.asarray(j_x1)).sum(1), np.asarray(switched).any(0)


@pytest.mark.parametrize("cell", ["bmru", "fq_bmru"])
def test_eps_one_gradient_reaches_first_step_of_1000(cell):
    g_s0, g_x1, _ = _final_state_jacobians(cell, eps=1.0)
    np.testing.assert_allclose(g_s0, 1.0)  # time Jacobian is exactly 1 at every step
    assert np.all(g_x1 > 1e-4)  # every unit's final state depends on the first frame


@pytest.mark.parametrize("cell", ["bmru", "fq_bmru"])
def test_eps_zero_gradient_is_cut_at_switches(cell):
    g_s0, g_x1, switched = _final_state_jacobians(cell, eps=0.0)
    assert switched.sum() >= 2  # the check must cover switching units
    # A unit that switched forgets s_0 and the first frame exactly; one that never switched
    # passes s_0 on untouched.
    np.testing.assert_array_equal(g_s0, np.where(switched, 0.0, 1.0))
    np.testing.assert_array_equal(g_x1[switched], 0.0)


def test_eps_schedule():
    s = EpsSchedule(hold=1000, decay=5000)
    assert [float(s(k)) for k in (0, 1000, 3500, 6000, 9000)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert s.settled_at == 6000


def test_lru_eigenvalues_on_ring():
    p = _params("lru", r_min=0.9, r_max=0.999)
    r = np.abs(np.asarray(cells.lru_eigenvalues(p)))
    assert np.all(r >= 0.9 - 1e-6) and np.all(r <= 0.999 + 1e-6)
