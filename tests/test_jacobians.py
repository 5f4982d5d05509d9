"""Trajectories, step Jacobians and gradient profiles against independent references."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import cells

from .helpers import assert_within, log_product_atol
from .test_cells import ALL_CELLS, D, _cell_and_params


def _explicit_profile(J, readout):
    """log ||r^T J_T ... J_{T-k+1}|| by explicit float64 matrix products."""
    g = np.asarray(readout, np.float64)
    out = [np.log(np.linalg.norm(g))]
    for Jt in np.asarray(J)[::-1]:
        g = g @ Jt
        out.append(np.log(np.linalg.norm(g)))
    return np.array(out)


def test_trajectory_matches_python_loop(getkey):
    cell, params = _cell_and_params("tanh", getkey())
    xs = jr.normal(getkey(), (12, D), jnp.float64)
    h, ref, scale = gradspec.start_state(cell, params, D), [], []
    for x in xs:  # the reference may loop; the library may not
        # |a_i| summed term by term: the rounding of a = W_hh h + W_xh x + b scales with
        # it, not with |a_i|, which may cancel to almost nothing (0.0071 once, with
        # terms of order 1: XLA's summation order differs between AVX2 and AVX-512).
        scale.append(np.abs(params["W_hh"]) @ np.abs(h) + np.abs(params["W_xh"]) @ np.abs(x)
                     + np.abs(params["b"]))
        h = cell.step(params, h, x)
        ref.append(h)
    got, ref = np.asarray(gradspec.trajectory(cell, params, xs)), np.stack(ref)
    # tanh' <= 1: the error of h_t is that of a_t plus what |W_hh| carries from h_{t-1};
    # 64 eps of each step's term sum covers a dozen steps of D + N = 8 terms.
    np.testing.assert_array_less(np.abs(got - ref), 64 * np.finfo(np.float64).eps
                                 * np.cumsum(np.stack(scale), axis=0) + 1e-300)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_step_jacobians_closed_form_equals_jacrev(name, getkey):
    cell, params = _cell_and_params(name, getkey())
    xs = jr.normal(getkey(), (7, D), jnp.float64)
    size = cell.state_size(cell.hidden_size(params))
    h0 = 0.3 * jr.normal(getkey(), (size,), jnp.float64)
    auto = gradspec.step_jacobians(cell, params, xs, h0)
    jac = gradspec.step_jacobians(cell, params, xs, h0, method="autodiff")
    assert auto.shape == (7, size, size)
    # Absolute: each entry is a sum of a few products of O(1) weights and slopes <= 1
    # (|J| <= 1.2 here); 1e-13 is ~450 eps of those terms (seen <= 2.4 eps).
    np.testing.assert_allclose(auto, jac, atol=1e-13)
    # The t-th Jacobian is the derivative of the t-th state w.r.t. the previous one.
    hs = gradspec.trajectory(cell, params, xs, h0)
    J3 = jax.jacfwd(lambda h: cell.step(params, h, xs[3]))(hs[2])
    np.testing.assert_allclose(auto[3], J3, atol=1e-13)  # as above


@pytest.mark.parametrize("name", ALL_CELLS)
def test_gradient_profile_equals_explicit_product(name, getkey):
    cell, params = _cell_and_params(name, getkey())
    T = 15
    xs = jr.normal(getkey(), (T, D), jnp.float64)
    size = cell.state_size(cell.hidden_size(params))
    readout = jr.normal(getkey(), (size,), jnp.float64)
    prof = gradspec.gradient_profile(cell, params, xs, readout=readout)
    J = gradspec.step_jacobians(cell, params, xs)
    assert prof.shape == (T + 1,)
    # Same products in a different order of rounding: bounded by each step's term sizes
    # (a cancelling step loosens it), not by the log-norm itself.
    tol = log_product_atol(readout, np.asarray(J)[::-1])
    assert_within(prof, _explicit_profile(J, readout), tol)


def test_gradient_profile_equals_jax_grad_per_lag(getkey):
    cell, params = _cell_and_params("gru", getkey())
    T = 20
    xs = jr.normal(getkey(), (T, D), jnp.float64)
    hs = gradspec.trajectory(cell, params, xs)
    readout = gradspec.default_readout(cell, hs.shape[1], jnp.float64)
    prof = gradspec.gradient_profile(cell, params, xs)
    # jax.grad sums the same products in its own order: the bound scales with them.
    J = np.asarray(gradspec.step_jacobians(cell, params, xs))
    tol = log_product_atol(readout, J[::-1])
    h_all = jnp.concatenate([gradspec.start_state(cell, params, D)[None], hs])

    for k in (0, 1, 7, 20):
        # L as a function of h_{T-k}: rerun the last k steps from it.
        def loss(h, k=k):
            return readout @ gradspec.trajectory(cell, params, xs[T - k :], h)[-1] if k else readout @ h

        g = jax.grad(loss)(h_all[T - k])
        assert_within(prof[k], np.log(np.linalg.norm(g)), tol[k])


def test_gradient_profile_hand_checkable_linear():
    # Linear RNN, W = diag(0.5, 0.25), readout e_1 + e_2: ||r J^k|| = sqrt(0.25^k + 0.0625^k).
    cell = cells.RNN("linear")
    params = {
        "W_hh": jnp.diag(jnp.array([0.5, 0.25])),
        "W_xh": jnp.zeros((2, 1)),
        "b": jnp.zeros(2),
    }
    prof = gradspec.gradient_profile(cell, params, jnp.zeros((6, 1)), readout=jnp.ones(2))
    k = np.arange(7)
    # Powers of two multiply exactly; only the norms' and logs' rounding remains (seen
    # <= 4 eps), and |log-norm| >= 0.35 at every lag: no ratio near 1, rtol holds.
    np.testing.assert_allclose(prof, 0.5 * np.log(0.25**k + 0.0625**k), rtol=1e-14)


def test_default_readout_sees_only_lstm_output(getkey):
    u = gradspec.default_readout(cells.LSTM(), 6, jnp.float64)
    np.testing.assert_allclose(u, np.r_[np.ones(3) / np.sqrt(3), np.zeros(3)])


def test_dead_relu_profile_is_minus_inf_not_nan():
    cell = cells.RNN("relu")
    params = {"W_hh": jnp.eye(2), "W_xh": jnp.zeros((2, 1)), "b": -jnp.ones(2)}
    prof = gradspec.gradient_profile(cell, params, jnp.zeros((4, 1)))
    assert prof[0] == pytest.approx(0.0, abs=1e-7)  # log of a unit readout's norm
    assert np.all(np.isneginf(np.asarray(prof[1:])))


@pytest.mark.parametrize("gain", [0.5, 2.0])
def test_float32_at_T_10000_is_finite_and_agrees_with_float64(gain, getkey):
    T, n = 10_000, 32
    key = getkey()
    cell = cells.RNN("tanh")
    p64 = cell.init(key, n, 1, recurrent_init=gradspec.init.gaussian(gain), dtype=jnp.float64)
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), p64)
    xs = 0.5 * jr.normal(getkey(), (T, 1), jnp.float64)
    prof32 = gradspec.gradient_profile(cell, p32, xs.astype(jnp.float32))
    prof64 = gradspec.gradient_profile(cell, p64, xs)
    assert prof32.dtype == jnp.float32 and prof64.dtype == jnp.float64
    assert np.all(np.isfinite(np.asarray(prof32)))
    # The per-step rate log||dL/dh_0|| / T: for gain 0.5 the trajectory contracts and float32
    # follows float64 to accumulated rounding (~T eps = 1e-3 relative, well inside 1e-2).
    # For gain 2.0 the dynamics are chaotic, float32 leaves the float64 orbit after
    # ~50 steps, and only the rate (a Lyapunov exponent, finite-time fluctuation
    # ~ 1/sqrt(T) = 1e-2) is comparable.
    rate32, rate64 = float(prof32[-1]) / T, float(prof64[-1]) / T
    assert abs(rate32 - rate64) < 1e-2 * max(1.0, abs(rate64))
    if gain < 1:
        np.testing.assert_allclose(prof32[:200], prof64[:200], rtol=1e-4, atol=1e-4)


def test_vmap_over_batch_equals_loop_and_jit(getkey):
    cell, params = _cell_and_params("lstm", getkey())
    xs = jr.normal(getkey(), (4, 9, D), jnp.float64)
    batched = jax.vmap(lambda x: gradspec.gradient_profile(cell, params, x))(xs)
    looped = np.stack([gradspec.gradient_profile(cell, params, x) for x in xs])
    jitted = jax.jit(lambda x: gradspec.gradient_profile(cell, params, x))(xs[0])
    # vmap and jit may reorder each step's sums: bounded by the terms' sizes per lag.
    u = gradspec.default_readout(cell, 10, jnp.float64)
    tol = np.stack([log_product_atol(u, np.asarray(gradspec.step_jacobians(cell, params, x))
                                     [::-1]) for x in xs])
    assert_within(batched, looped, tol)
    assert_within(jitted, looped[0], tol[0])
    # vmap over params too (e.g. an ensemble of inits).
    ps = jax.vmap(lambda k: cell.init(k, 5, D, dtype=jnp.float64))(jr.split(getkey(), 3))
    traj = jax.vmap(lambda p: gradspec.trajectory(cell, p, xs[0]))(ps)
    assert traj.shape == (3, 9, 10)


def test_errors(getkey):
    cell = cells.RNN("tanh")
    params = cell.init(getkey(), 4, 2)
    xs = jnp.zeros((5, 2), jnp.float32)
    with pytest.raises(ValueError, match="W_hh.*square.*\\(4, 3\\)"):
        gradspec.trajectory(cell, dict(params, W_hh=jnp.zeros((4, 3))), xs)
    with pytest.raises(ValueError, match="W_xh"):
        gradspec.trajectory(cell, dict(params, W_xh=jnp.zeros((3, 2))), xs)
    with pytest.raises(ValueError, match="missing 'b'"):
        gradspec.trajectory(cell, {k: v for k, v in params.items() if k != "b"}, xs)
    with pytest.raises(ValueError, match="xs.*\\(T, 2\\).*\\(5, 3\\)"):
        gradspec.trajectory(cell, params, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="xs.*\\(T, D\\)"):
        gradspec.trajectory(cell, params, jnp.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="T >= 1"):
        gradspec.gradient_profile(cell, params, jnp.zeros((0, 2)))
    with pytest.raises(ValueError, match="h0.*\\(4,\\)"):
        gradspec.trajectory(cell, params, xs, h0=jnp.zeros(5))
    with pytest.raises(ValueError, match="params\\['W_hh'\\].*finite"):
        gradspec.trajectory(cell, dict(params, W_hh=params["W_hh"].at[0, 0].set(jnp.nan)), xs)
    with pytest.raises(TypeError, match="xs.*floating"):
        gradspec.trajectory(cell, params, jnp.zeros((5, 2), jnp.int32))
    with pytest.raises(ValueError, match="readout.*\\(4,\\)"):
        gradspec.gradient_profile(cell, params, xs, readout=jnp.ones(3))
    with pytest.raises(ValueError, match="method"):
        gradspec.step_jacobians(cell, params, xs, method="fd")


def test_profile_rate_is_the_least_squares_slope_over_given_lags():
    lags = jnp.array([0, 1, 5, 10, 20])
    y = 0.3 - 0.25 * lags.astype(jnp.float64)
    # Absolute on the slopes below: cov = sum (k - k_mean)(y - y_mean) of terms <= 40 over
    # var >= 8, ~eps each (seen <= 0.25 eps); 1e-12 is ~4500 eps.
    assert float(gradspec.profile_rate(y, lags)) == pytest.approx(-0.25, abs=1e-12)
    # -inf (an exactly vanished gradient) is dropped, not propagated.
    y_dead = y.at[4].set(-jnp.inf)
    assert float(gradspec.profile_rate(y_dead, lags)) == pytest.approx(-0.25, abs=1e-12)
    assert np.isnan(gradspec.profile_rate(jnp.array([0.0, jnp.nan]), jnp.array([0, 1])))
    # Points off a line, by hand: k_mean = 2, y_mean = 4/3, cov = 6, var = 8.
    got = gradspec.profile_rate(jnp.array([0.0, 1.0, 3.0]), jnp.array([0, 2, 4]))
    assert float(got) == pytest.approx(0.75, abs=1e-12)
    # The default lags are 0, 1, ..., K - 1; and it batches over leading axes.
    line = 0.3 - 0.25 * jnp.arange(3.0)
    batch = jnp.stack([line, 2 * line])
    np.testing.assert_allclose(gradspec.profile_rate(batch), [-0.25, -0.5], atol=1e-12)


def test_default_start_state_is_a_relaxed_random_state():
    """start_state = 100 undriven steps from 0.5 N(0, 1) drawn with key(START_SEED) in
    float32: checked by a numpy loop; the same point in float32 and float64; an exploding
    linear network stops at the cap instead of overflowing; every measurement uses it."""
    from gradspec.measure import _inputs

    cell = cells.RNN("tanh")
    params = cell.init(jr.key(3), 6, D, recurrent_init=gradspec.init.gaussian(1.5),
                       dtype=jnp.float64)
    W, b = np.asarray(params["W_hh"]), np.asarray(params["b"])
    z = np.asarray(0.5 * jr.normal(jr.key(_inputs.START_SEED), (6,), jnp.float32), np.float64)
    got = gradspec.start_state(cell, params, D)
    # Gain 1.5 is chaotic: rounding grows along the orbit, so compare with the same
    # arithmetic (a zero-input trajectory from z) rather than with a numpy loop.
    np.testing.assert_allclose(got, gradspec.trajectory(
        cell, params, np.zeros((_inputs.RELAX_STEPS, D)), z)[-1], rtol=0, atol=1e-12)
    small = dict(params, W_hh=params["W_hh"] / 3)  # contracting: rounding decays
    h = z
    for _ in range(_inputs.RELAX_STEPS):
        h = np.tanh(W / 3 @ h + b)
    np.testing.assert_allclose(gradspec.start_state(cell, small, D), h, rtol=0, atol=1e-15)
    f32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), small)
    np.testing.assert_allclose(gradspec.start_state(cell, f32, D), h, rtol=0, atol=1e-6)
    # Every measurement starts there unless h0 is given.
    xs = jr.normal(jr.key(4), (5, D), jnp.float64)
    np.testing.assert_array_equal(gradspec.trajectory(cell, params, xs),
                                  gradspec.trajectory(cell, params, xs, got))
    np.testing.assert_array_equal(gradspec.gradient_profile(cell, params, xs),
                                  gradspec.gradient_profile(cell, params, xs, got))
    # Linear, gain 3: 3^100 would overflow float32; the relaxation stops at the cap.
    lin = cells.RNN("linear")
    p = lin.init(jr.key(5), 8, D, recurrent_init=gradspec.init.orthogonal(3.0))
    h = gradspec.start_state(lin, p, D)
    assert np.all(np.isfinite(h)) and 1e4 / 3 <= np.abs(h).max() <= 1e4
