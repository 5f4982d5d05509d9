"""Covariant Lyapunov vectors (Ginelli's method) against independent answers: the
eigenvectors of a non-normal linear map, the Hénon map's unstable and stable directions
by plain forward and inverse iteration, and the Lorenz flow's neutral direction f(x)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradspec

from .helpers import EPS32, EPS64
from .test_dynamics import _chaotic_rnn, _henon_cell, _linear, _lorenz_cell


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _clv(cell, params, xs, h0=None, **kw):
    return gradspec.covariant_lyapunov_vectors(cell, params, xs, h0, **kw)


def _alignment(v, u):
    """1 - |cos| between matching columns of v (..., S, k) and unit vectors u (..., S, k)."""
    return np.abs(1 - np.abs(np.sum(np.asarray(v, np.float64) * u, axis=-2)))


def _jacobians_along(cell, params, xs, h0):
    """h_0..h_T and the step Jacobians J at each h_t (J[t] maps the tangent space at h_t
    to h_{t+1}), by jax.jacfwd of the step: independent of the sweep's jvp."""
    hs = jnp.concatenate([h0[None], gradspec.trajectory(cell, params, xs, h0)])
    jac = jax.vmap(jax.jacfwd(lambda h, x: cell.step(params, h, x)))(hs[:-1], xs)
    return np.asarray(hs), np.asarray(jac)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_linear_map_clvs_are_its_eigenvectors(dtype, rng):
    # A = P diag(d) P^-1, P random (cond ~10): eigenvectors at angles down to ~25 degrees,
    # a negative eigenvalue. Converged to (|d_{i+1}| / |d_i|)^100 <= (2/3)^100 = 2e-18
    # after each warm-up; left: rounding, ~eps cond(P) (measured 2e-16 and 7e-8).
    d = np.array([1.5, -1.0, 0.6, 0.2])
    P = rng.normal(size=(4, 4))
    cell, params = _linear(jnp.asarray(P @ np.diag(d) @ np.linalg.inv(P), dtype))
    xs, h0 = jnp.zeros((300, 1), dtype), jnp.zeros(4, dtype)
    r = _clv(cell, params, xs, h0, warmup=100, backward_warmup=100)
    eps = {jnp.float32: EPS32, jnp.float64: EPS64}[dtype]
    assert r.vectors.dtype == dtype and r.vectors.shape == (101, 4, 4)
    np.testing.assert_array_equal(r.t, np.arange(100, 201))
    eig = P / np.linalg.norm(P, axis=0)
    assert np.abs(eig.T @ eig - np.eye(4)).max() > 0.5  # far from orthogonal...
    assert _alignment(r.vectors, eig).max() < 1e3 * eps
    # Each CLV grows by exactly |d_i| every step.
    np.testing.assert_allclose(r.local, np.broadcast_to(np.log(np.abs(d)), (100, 4)),
                               atol=1e3 * eps)
    np.testing.assert_allclose(r.exponents, np.log(np.abs(d)), atol=1e3 * eps)
    # (The backward Gram–Schmidt vectors are orthonormal, so they could not pass.)


def test_henon_clvs_are_the_unstable_and_stable_directions():
    # The Hénon map is invertible (det J = -b), so its two CLVs have independent
    # definitions: the unstable one at h_t is where any vector pushed forward from
    # h_{t-m} ends, the stable one where any vector pulled back by J^-1 from h_{t+m}
    # ends; both converge as e^{-(lambda_1 - lambda_2) m} = e^{-2.04 m}, 1e-35 at m = 40.
    cell, params = _henon_cell()
    xs, h0 = jnp.zeros((2000, 1)), jnp.array([0.1, 0.0])
    r = _clv(cell, params, xs, h0, warmup=200, backward_warmup=200)
    hs, jac = _jacobians_along(cell, params, xs, h0)
    t, v = np.asarray(r.t), np.asarray(r.vectors)
    u, s = np.ones((len(t), 2)), np.ones((len(t), 2))
    for j in range(40):  # over lags, vectorised over the steps
        u = np.einsum("tij,tj->ti", jac[t - 40 + j], u)
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        s = np.linalg.solve(jac[t + 39 - j], s[..., None])[..., 0]
        s /= np.linalg.norm(s, axis=1, keepdims=True)
    # Rounding only: measured 7e-16 (a tangency makes the two nearly parallel, so a
    # loose bound here would not distinguish them).
    assert _alignment(v[:, :, :1], u[..., None]).max() < 1e-12
    assert _alignment(v[:, :, 1:], s[..., None]).max() < 1e-12
    # Covariance with the independent Jacobians: J_t v_{t-1} = e^{gamma_t} v_t.
    pushed = np.einsum("tij,tjk->tik", jac[t[:-1]], v[:-1])
    np.testing.assert_allclose(pushed, v[1:] * np.exp(np.asarray(r.local))[:, None, :],
                               rtol=0, atol=1e-12)
    # Angles between the two: spread over (0, pi/2), close to 0 near the tangencies
    # (measured: min 6e-4, median 0.96, 5%/95% at 0.15 / 1.50 rad), never exactly 0.
    angle = np.arccos(np.clip(np.abs(np.sum(v[:, :, 0] * v[:, :, 1], axis=1)), 0, 1))
    assert 0 < angle.min() < 0.05 and angle.max() > 1.5 and 0.6 < np.median(angle) < 1.3
    # Areas: |det J| = b every step, so the covariant growths telescope,
    # sum_t (gamma_1 + gamma_2) = n log b + log(sin angle_first / sin angle_last).
    total = float(np.sum(r.local))
    expected = len(r.local) * math.log(0.3) + math.log(np.sin(angle[0]) / np.sin(angle[-1]))
    assert total == pytest.approx(expected, abs=1e-10)
    # 1600 steps of the map: within 0.02 of lambda_1 = 0.419, lambda_2 = -1.623 (the
    # finite-time spread of this length is ~0.01-0.02).
    np.testing.assert_allclose(r.exponents, [0.41922, math.log(0.3) - 0.41922], atol=0.03)


def test_lorenz_neutral_clv_is_the_flow_direction():
    # The flow maps f(x) to f(phi(x)): the neutral CLV (exponent 0) at h_t is
    # f(h_t)/|f(h_t)| exactly for the flow, to RK4's O(dt^4) for its step (measured
    # 1 - |cos| <= 8e-12 at dt = 0.01). Backward warm-up: 40 time units, e^-36 of the
    # slowest gap lambda_1 - lambda_2 = 0.9.
    cell, params = _lorenz_cell()
    xs, h0 = jnp.zeros((10_000, 1)), jnp.array([1.0, 1.0, 25.0])
    r = _clv(cell, params, xs, h0, warmup=2000, backward_warmup=4000)
    hs = np.concatenate([np.asarray(h0)[None],
                         np.asarray(gradspec.trajectory(cell, params, xs, h0))])[np.asarray(r.t)]
    x, y, z = hs[:, 0], hs[:, 1], hs[:, 2]
    f = np.stack([10 * (y - x), x * (28 - z) - y, x * y - 8 / 3 * z], axis=1)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    cos = np.abs(np.einsum("tsk,ts->tk", np.asarray(r.vectors), f))
    assert np.max(1 - cos[:, 1]) < 1e-9
    assert np.median(cos[:, 0]) < 0.95 and np.median(cos[:, 2]) < 0.95  # the others are not
    lam = np.asarray(r.exponents) / 0.01  # per unit time, over 40 time units
    assert abs(lam[1]) < 0.05 and lam[0] == pytest.approx(0.9056, abs=0.15)
    # Volumes: the flow contracts them at div f = -(sigma + 1 + beta) everywhere, so the
    # covariant growths telescope, sum_t sum_i gamma_i = n dt div f + log(|det V_first| /
    # |det V_last|) up to RK4's O(dt^4) (measured 1e-4). The boundary term over 40 time
    # units moves the finite-window sum by ~0.03 with the trajectory (which rounding
    # changes: chaos), so the identity is asserted with it, the sum alone loosely.
    v, local = np.asarray(r.vectors), np.asarray(r.local)
    boundary = math.log(abs(np.linalg.det(v[0])) / abs(np.linalg.det(v[-1])))
    div = (local.sum() - boundary) / (len(local) * 0.01)
    assert div == pytest.approx(-(10 + 1 + 8 / 3), abs=1e-3)
    assert lam.sum() == pytest.approx(-(10 + 1 + 8 / 3), abs=0.1)


def test_leading_vectors_do_not_depend_on_k_and_match_the_sweep():
    # The first k CLVs use only the leading k x k block of the R's; the first covariant
    # exponent is log|R_11| step by step (C's first column stays e_1).
    cell, params, xs = _chaotic_rnn(400)
    full = _clv(cell, params, xs, warmup=150, backward_warmup=150)
    top = _clv(cell, params, xs, k=3, warmup=150, backward_warmup=150)
    assert top.vectors.shape == (101, 12, 3)
    np.testing.assert_allclose(np.abs(np.sum(top.vectors * full.vectors[..., :3], axis=1)),
                               1, atol=1e-12)
    np.testing.assert_allclose(top.exponents, full.exponents[:3], atol=1e-12)
    local = gradspec.local_exponents(cell, params, xs)
    np.testing.assert_allclose(full.local[:, 0], local[150:250, 0], atol=1e-12)


def test_vmap_equals_loop_and_default_warmups():
    cell, params, xs = _chaotic_rnn(80)
    r = _clv(cell, params, xs, k=4)  # warm-ups T // 4 = 20 each
    np.testing.assert_array_equal(r.t, np.arange(20, 61))
    b = jax.vmap(lambda x: _clv(cell, params, x, k=4).vectors)(jnp.stack([xs, -xs]))
    # vmap reorders the jvp's sums (eps per step); the backward pass solves with R_t,
    # whose condition number (~e^(lambda_1 - lambda_k) per step) multiplies that
    # rounding until the pass forgets it: measured 1.1e-10 for k = 4 at XLA's default
    # optimisation (4e-8 for k = 12, where R_t's condition is ~1e3), and 2.1e-8 for the
    # second input at level 0 (the suite's, tests/conftest.py), whose instruction order
    # differs more between the two programs. A wrong vector is off by O(1).
    np.testing.assert_allclose(b[0], r.vectors, rtol=0, atol=1e-7)
    np.testing.assert_allclose(b[1], _clv(cell, params, -xs, k=4).vectors, rtol=0, atol=1e-7)


def test_dead_direction_leaves_the_leading_vectors_intact():
    # The third unit is dead from step 1 on (input 0.7 h_3 - 5 < 0): J_t has a zero row,
    # (R_t)_33 = 0 exactly, and the third CLV does not exist. The first two are those of
    # k = 2, which never sees it.
    cell = gradspec.cells.RNN("relu")
    W = jnp.array([[1.2, 0.3, 0.1], [0.2, 0.5, 0.0], [0.0, 0.0, 0.7]])
    params = {"W_hh": W, "W_xh": jnp.zeros((3, 1)), "b": jnp.array([1.0, 1.0, -5.0])}
    xs, h0 = jnp.zeros((40, 1)), jnp.ones(3)
    full = _clv(cell, params, xs, h0)
    top = _clv(cell, params, xs, h0, k=2)
    assert np.isnan(full.vectors[..., 2]).all() and np.isnan(full.exponents[2])
    np.testing.assert_allclose(full.vectors[..., :2], top.vectors, rtol=0, atol=1e-12)
    np.testing.assert_allclose(full.exponents[:2], top.exponents, rtol=0, atol=1e-12)


def test_errors():
    cell, params, xs = _chaotic_rnn(20)
    with pytest.raises(ValueError, match="warmup \\+ backward_warmup"):
        _clv(cell, params, xs, warmup=10, backward_warmup=10)
    with pytest.raises(ValueError, match="`backward_warmup` must be in"):
        _clv(cell, params, xs, backward_warmup=-1)
    with pytest.raises(ValueError, match="`k` must be in"):
        _clv(cell, params, xs, k=13)
    with pytest.raises(ValueError, match="`method`"):
        _clv(cell, params, xs, method="fd")
