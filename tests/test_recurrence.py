"""The training step's hand-written recurrence (gradspec.training.recurrence) against
autodiff, in float64: the whole reverse pass (full and truncated BPTT) against autodiff
of a plain scan of ``cell.step``, for every state's cotangent and the params. (Seeds
under ``jax.vmap`` against separate runs: tests/test_train.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gradspec.cells import LSTM, RNN
from gradspec.training import recurrence


# Both sides sum the same float64 terms in another order: they differ by rounding, a few
# 1e-16 relative per operation over ~10 steps. 1e-10 leaves a wide margin while a wrong
# derivative (a missing term, a cut in the wrong place) is off by O(1).
RTOL = 1e-10


def _plain(cell, params, xs, eps, keep):
    """States (L, B, S) by a plain scan of ``cell.step`` per example, cutting the
    gradient into s_t where keep[t] is False: what the fast path must equal."""
    def cut(t, s):
        return jnp.where(keep[t], s, lax.stop_gradient(s))

    def one(x, e):
        def body(s, inputs):
            t, x_t, e_t = inputs
            s = cell.step(params, s, x_t) + e_t
            return cut(t, s), s

        L = x.shape[0]
        return lax.scan(body, cut(0, e[0]), (jnp.arange(1, L + 1), x, e[1:]))[1]

    return jax.vmap(one, in_axes=(1, 1), out_axes=1)(xs, eps)


class _OwnActivate(LSTM):
    """An LSTM subclass that redefines the whole split (``step``, ``drive``,
    ``recurrent_matrix``, ``activate``): it keeps the fast path, its own methods used."""

    def step(self, params, state, x):
        return super().step(params, state, x)

    def drive(self, params, xs):
        return super().drive(params, xs)

    def recurrent_matrix(self, params):
        return super().recurrent_matrix(params)

    def activate(self, z, state):
        return super().activate(z, state)


@pytest.mark.parametrize("cell", [RNN("tanh"), LSTM(), _OwnActivate()],
                         ids=["rnn", "lstm", "lstm-own-activate"])
@pytest.mark.parametrize("cut", [False, True], ids=["bptt", "tbptt"])
def test_reverse_pass_equals_autodiff_of_the_plain_scan(cell, cut):
    n, d, L, B = 4, 3, 9, 5
    params = cell.init(jax.random.key(2), n, d, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(3), (L, B, d), jnp.float64)
    S = cell.state_size(n)
    eps = 0.3 * jax.random.normal(jax.random.key(4), (L + 1, B, S), jnp.float64)
    keep = jnp.asarray(np.arange(L + 1) % 4 != 1 if cut else np.ones(L + 1, bool))
    w = jax.random.normal(jax.random.key(5), (L, B, S), jnp.float64)

    def loss(states):  # every state enters the loss, nonlinearly
        return lambda p, e: jnp.sum(w * jnp.sin(states(cell, p, xs, e, keep)))

    assert recurrence.has_fast_path(cell)
    fast = jax.grad(loss(recurrence.hidden_states), argnums=(0, 1))(params, eps)
    slow = jax.grad(loss(_plain), argnums=(0, 1))(params, eps)
    np.testing.assert_allclose(recurrence.hidden_states(cell, params, xs, eps, keep),
                               _plain(cell, params, xs, eps, keep), rtol=RTOL)
    for x, y in zip(jax.tree_util.tree_leaves(fast), jax.tree_util.tree_leaves(slow)):
        np.testing.assert_allclose(x, y, rtol=RTOL, atol=1e-13)
