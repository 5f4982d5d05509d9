"""gradspec.measurement: the arrays behind diagnose and predict, under jit, vmap and grad."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import cells

F64 = jnp.float64


def _lstm(key, n=8, d=2):
    return cells.LSTM(), cells.LSTM().init(key, n, d, dtype=F64)


def test_fields_are_the_component_measurements(getkey):
    cell, params = _lstm(getkey())
    xs = jr.normal(getkey(), (3, 60, 2), F64)
    R = jr.normal(getkey(), (4, 8), F64)
    m = gradspec.measurement(cell, params, xs, readout=R, warmup=6)
    h0 = gradspec.start_state(cell, params, 2)
    for b, x in enumerate(xs):
        # Same arithmetic (the same sweeps from the same frame): equal to rounding of
        # a mean of 54 log-growth terms of order 1.
        lam = gradspec.lyapunov_spectrum(cell, params, x, h0, k=1, warmup=6)[0]
        assert float(m.lyapunov[b]) == pytest.approx(float(lam), abs=1e-12)
        np.testing.assert_allclose(m.profile[b], gradspec.gradient_profile(cell, params, x),
                                   rtol=0, atol=1e-12)
        loss = gradspec.gradient_profile(cell, params, x, readout=R)
        np.testing.assert_allclose(m.loss_profile[b], loss, rtol=0, atol=1e-12)
        assert float(m.loss_rate[b]) == pytest.approx(float(gradspec.profile_rate(loss)),
                                                      abs=1e-12)
    assert m.steps.tolist() == [54] * 3 and bool(m.finite.all())
    one = gradspec.measurement(cell, params, xs[0], readout=R, warmup=6)
    assert one.lyapunov.shape == () and one.profile.shape == (61,)
    assert float(one.lyapunov) == pytest.approx(float(m.lyapunov[0]), abs=1e-14)


def test_jit_vmap_over_seeds_and_grad(getkey):
    cell = cells.RNN("tanh")
    xs = jr.normal(getkey(), (2, 80, 1), F64)
    keys = jr.split(getkey(), 4)
    init = jax.vmap(lambda k: cell.init(k, 16, 1, recurrent_init=gradspec.init.gaussian(1.2),
                                        dtype=F64))
    batch = init(keys)

    def measure(p):
        return gradspec.measurement(cell, p, xs, readout=jnp.ones(16))

    vmapped = jax.jit(jax.vmap(measure))(batch)
    for i in range(4):
        eager = measure(jax.tree_util.tree_map(lambda a: a[i], batch))
        for got, want in zip(jax.tree_util.tree_leaves(vmapped), jax.tree_util.tree_leaves(eager)):
            np.testing.assert_allclose(got[i], want, rtol=0, atol=1e-12)

    # d(mean lambda_1)/d(gain) against central differences in float64: the exponent is
    # smooth in the gain along a fixed trajectory set; h = 1e-5 gives a truncation error
    # O(h^2 f''') ~ 1e-10 and rounding ~ 1e-16 / 1e-5 = 1e-11.
    params = jax.tree_util.tree_map(lambda a: a[0], batch)

    def lam(g):
        return measure(dict(params, W_hh=g * params["W_hh"])).lyapunov.mean()

    grad = float(jax.grad(lam)(1.0))
    h = 1e-5
    fd = (float(lam(1.0 + h)) - float(lam(1.0 - h))) / (2 * h)
    assert np.isfinite(grad) and grad == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_per_sequence_starts_and_frames(getkey):
    cell, params = _lstm(getkey())
    xs = jr.normal(getkey(), (3, 40, 2), F64)
    h0 = jr.normal(getkey(), (3, 16), F64)
    m = gradspec.measurement(cell, params, xs, h0, key=getkey())
    for b in range(3):
        np.testing.assert_allclose(
            m.profile[b], gradspec.gradient_profile(cell, params, xs[b], h0[b]), atol=1e-12)
    with pytest.raises(ValueError, match=r"`h0` must have shape \(16,\) or \(3, 16\)"):
        gradspec.measurement(cell, params, xs, h0[:2])


def test_a_collapse_in_the_warmup_is_transient_one_after_it_is_minus_inf():
    """IRNN (W_hh = I, relu, W_xh = 1) from h = 0: zero inputs hold every unit at
    a = 0, where relu' = 0 (J = 0 exactly); ones keep every unit on (J = I, growth 0).
    Zeros only inside the warm-up: the rate over the window is exactly 0 (a start at
    h = 0 through a blank prefix, as pixel-by-pixel digits begin, is a transient).
    Zeros after the warm-up from h = 0 again: the product over the window is 0, -inf."""
    n = 6
    cell = cells.RNN("relu")
    params = {"W_hh": jnp.eye(n), "W_xh": jnp.ones((n, 1)), "b": jnp.zeros(n)}
    blank_start = jnp.concatenate([jnp.zeros((3, 1)), jnp.ones((37, 1))])
    m = gradspec.measurement(cell, params, blank_start, jnp.zeros(n), warmup=10)
    assert abs(float(m.lyapunov)) < 1e-12 and int(m.steps) == 30
    # The state returns to exactly 0 only if the recurrence lets it: W_hh = 0 does.
    params0 = dict(params, W_hh=jnp.zeros((n, n)))
    blank_late = blank_start.at[25:28].set(0.0)
    m = gradspec.measurement(cell, params0, blank_late, jnp.zeros(n), warmup=10)
    assert float(m.lyapunov) == -np.inf
