"""RateRNN: tau dh/dt = -h + W phi(h) + W_x x + b, Euler and RK4, against numpy."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import cells

F64 = jnp.float64


def _net(key, n=8, d=2, g=1.5):
    cell = cells.RateRNN("tanh", dt=0.05, tau=0.5)
    params = cell.init(key, n, d, recurrent_init=gradspec.init.gaussian(g), dtype=F64)
    return cell, dict(params, b=0.1 * jnp.arange(n, dtype=F64))


def _velocity(p, h, x, tau):
    W, U, b = (np.asarray(p[k]) for k in ("W_hh", "W_xh", "b"))
    return (-h + W @ np.tanh(h) + U @ x + b) / tau


def test_euler_and_rk4_steps_match_numpy(getkey):
    cell, params = _net(getkey())
    h = np.asarray(jr.normal(getkey(), (8,), F64))
    x = np.asarray(jr.normal(getkey(), (2,), F64))
    dt, tau = 0.05, 0.5
    want = h + dt * _velocity(params, h, x, tau)
    # One step of sums of O(10) terms of order one: float64 rounding, 1e-14.
    np.testing.assert_allclose(cell.step(params, h, x), want, rtol=0, atol=1e-14)
    rk = cells.RateRNN("tanh", dt=dt, tau=tau, method="rk4")
    k1 = _velocity(params, h, x, tau)
    k2 = _velocity(params, h + dt / 2 * k1, x, tau)
    k3 = _velocity(params, h + dt / 2 * k2, x, tau)
    k4 = _velocity(params, h + dt * k3, x, tau)
    np.testing.assert_allclose(rk.step(params, h, x), h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4),
                               rtol=0, atol=1e-14)


@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_jacobians_closed_form_equal_autodiff(method, getkey):
    cell, params = _net(getkey())
    cell = cells.RateRNN("tanh", dt=0.05, tau=0.5, method=method)
    h = jr.normal(getkey(), (8,), F64)
    x = jr.normal(getkey(), (2,), F64)
    J = jax.jacrev(cell.step, argnums=1)(params, h, x)
    np.testing.assert_allclose(cell.jacobian(params, h, x), J, rtol=0, atol=1e-14)
    V = jr.normal(getkey(), (8, 3), F64)
    np.testing.assert_allclose(cell.jvp(params, h, x, V), J @ V, rtol=0, atol=1e-13)
    np.testing.assert_allclose(cell.vjp(params, h, x, V[:, 0]), V[:, 0] @ J, rtol=0, atol=1e-13)


def test_chaos_above_g_equal_one():
    """Sompolinsky, Crisanti & Sommers (1988): the autonomous tanh rate network with
    W ~ N(0, g^2/N) is chaotic for g > 1 as N grows. At N = 200 (dt = 0.1, Euler) g = 0.8
    contracts to h = 0 at rate (g' - 1) ~ -0.2 per unit time in the N -> inf limit
    (the spectral edge of -I + W is g - 1), and g = 2 gives a positive exponent."""
    cell = cells.RateRNN("tanh", dt=0.1)
    xs = jnp.zeros((3000, 1), F64)
    rates = {}
    for g in (0.8, 2.0):
        params = cell.init(jr.key(1), 200, 1, recurrent_init=gradspec.init.gaussian(g),
                           dtype=F64)
        lam = gradspec.lyapunov_spectrum(cell, params, xs, jnp.full(200, 0.5, F64), k=1,
                                         warmup=500)
        rates[g] = float(cell.per_unit_time(lam)[0])
    # Edge of -I + W at g = 0.8, N = 200: g - 1 = -0.2 within O(N^-1/2) of the edge.
    assert rates[0.8] == pytest.approx(-0.2, abs=0.05)
    assert 0.05 < rates[2.0] < 0.4


def test_bad_arguments():
    with pytest.raises(ValueError, match="`dt` must be a number > 0"):
        cells.RateRNN("tanh", dt=0)
    with pytest.raises(ValueError, match="`method` must be 'euler' or 'rk4'"):
        cells.RateRNN("tanh", method="heun")
