"""make_critical and the regime about the horizon, against exact and independent values."""

import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import cells


def _numpy_top_exponent(W, steps=3000, warmup=500, seed=0):
    """Benettin in float64 numpy for an autonomous tanh RNN from a random state."""
    rng = np.random.default_rng(seed)
    h, q, logs = 0.5 * rng.standard_normal(len(W)), rng.standard_normal(len(W)), []
    for t in range(steps):
        a = W @ h
        h, q = np.tanh(a), (1 - np.tanh(a) ** 2) * (W @ q)
        n = np.linalg.norm(q)
        q /= n
        if t >= warmup:
            logs.append(np.log(n))
    return float(np.mean(logs))


@pytest.mark.parametrize("a, regime", [(0.99, "critical"), (0.97, "vanishing"),
                                       (1.02, "critical"), (1.03, "exploding")])
def test_regime_is_about_the_horizon(a, regime, getkey):
    # Linear RNN W = a Q (Q orthogonal): lambda = log a exactly; over T = 100 the band is
    # |lambda| <= ln 10 / 100 = 0.023 (0.99: 0.010, 0.97: 0.030, 1.02: 0.020, 1.03: 0.030).
    cell = cells.RNN("linear")
    params = cell.init(getkey(), 16, 1, recurrent_init=gradspec.init.orthogonal(a),
                       dtype=jnp.float64)
    p = gradspec.predict(cell, params, T=100)
    assert p.lyapunov == pytest.approx(math.log(a), abs=1e-10)
    assert p.regime == regime
    assert p.threshold == pytest.approx(math.log(10) / 100 + 2 * p.uncertainty)
    assert gradspec.predict(cell, params, T=100, factor=1.5).regime == (
        "critical" if abs(math.log(a)) * 100 <= math.log(1.5) else
        ("vanishing" if a < 1 else "exploding"))


@pytest.mark.parametrize("gain", [0.5, 0.8])
def test_make_critical_vanilla(gain):
    cell = cells.RNN("tanh")
    params = cell.init(jr.key(1), 64, 1, recurrent_init=gradspec.init.gaussian(gain),
                       dtype=jnp.float64)
    fixed = gradspec.make_critical(cell, params, T=200)
    assert fixed.before.regime == "vanishing" and fixed.after.regime == "critical"
    assert fixed.knob == "recurrent scale" and fixed.value > 1
    np.testing.assert_allclose(fixed.params["W_hh"], fixed.value * params["W_hh"], rtol=1e-12)
    # The network's own exponent, measured independently (one long numpy run): within
    # the critical band ln 10 / 200 = 0.0115 plus a single run's finite-time spread.
    assert abs(_numpy_top_exponent(np.asarray(fixed.params["W_hh"]))) < 0.0115 + 0.01


@pytest.mark.slow
def test_make_critical_lstm_moves_the_forget_bias(getkey):
    cell = cells.LSTM()
    params = cell.init(getkey(), 16, 2, dtype=jnp.float64)
    xs = jr.normal(getkey(), (4, 300, 2), jnp.float64)
    fixed = gradspec.make_critical(cell, params, T=100, inputs=xs)
    assert fixed.before.regime == "vanishing" and fixed.after.regime == "critical"
    shift = np.asarray(fixed.params["bias_hh"] - params["bias_hh"])
    assert fixed.knob == "forget bias" and (shift[16:32] == fixed.value).all()
    assert (np.delete(shift, np.arange(16, 32)) == 0).all()
    with pytest.raises(TypeError, match="`cell`"):
        gradspec.make_critical(cells.StepCell(lambda p, h, x: h, size=2), {}, T=10)
