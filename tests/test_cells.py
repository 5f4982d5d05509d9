"""Cells and initializers: closed-form vs autodiff vs finite-difference Jacobians."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import cells

N, D = 5, 3


def _softplus_cell():
    # A user cell: leaky integrator with a softplus drive, not in the library.
    def step(p, h, x):
        return 0.7 * h + jnp.tanh(p["A"] @ jax.nn.softplus(h) + p["B"] @ x)

    return cells.StepCell(step, size=N)


def _cell_and_params(name, key):
    k1, k2 = jr.split(key)
    if name == "custom":
        params = {
            "A": jr.normal(k1, (N, N), jnp.float64) / np.sqrt(N),
            "B": jr.normal(k2, (N, D), jnp.float64),
        }
        return _softplus_cell(), params
    cell = {
        "tanh": cells.RNN("tanh"),
        "sigmoid": cells.RNN("sigmoid"),
        "relu": cells.RNN("relu"),
        "linear": cells.RNN("linear"),
        "softsign": cells.RNN(jax.nn.soft_sign),
        "lstm": cells.LSTM(),
        "gru": cells.GRU(),
    }[name]
    params = cell.init(k1, N, D, dtype=jnp.float64)
    if isinstance(cell, cells.RNN):
        params = dict(params, b=0.3 * jr.normal(k2, (N,), jnp.float64))
    return cell, params


ALL_CELLS = ["tanh", "sigmoid", "relu", "linear", "softsign", "lstm", "gru", "custom"]


def _central_difference_jacobian(f, h, eps=1e-6):
    """Column j = (f(h + eps e_j) - f(h - eps e_j)) / 2 eps, in float64 numpy."""
    h = np.asarray(h, np.float64)
    cols = []
    for j in range(h.size):
        e = np.zeros_like(h)
        e[j] = eps
        cols.append((np.asarray(f(h + e)) - np.asarray(f(h - e))) / (2 * eps))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("name", ALL_CELLS)
def test_jacobian_closed_form_autodiff_and_finite_differences_agree(name, getkey):
    cell, params = _cell_and_params(name, getkey())
    size = cell.state_size(cell.hidden_size(params))
    h = 0.5 * jr.normal(getkey(), (size,), jnp.float64)
    x = jr.normal(getkey(), (D,), jnp.float64)
    own = cell.jacobian(params, h, x)
    auto = cells.Cell.jacobian(cell, params, h, x)
    fd = _central_difference_jacobian(lambda v: cell.step(params, v, x), h)
    # Closed form and jacrev compute the same expression: agree to rounding (1e-13).
    np.testing.assert_allclose(own, auto, rtol=0, atol=1e-13)
    # Central differences have O(eps^2) = 1e-12 truncation, O(1e-16/eps) = 1e-10 rounding.
    np.testing.assert_allclose(own, fd, rtol=0, atol=1e-8)
    # jvp / vjp are the same matrix applied from the right and from the left.
    v = jr.normal(getkey(), (size, 2), jnp.float64)
    np.testing.assert_allclose(cell.jvp(params, h, x, v), own @ v, atol=1e-13)
    np.testing.assert_allclose(cell.vjp(params, h, x, v[:, 0]), v[:, 0] @ own, atol=1e-13)


def test_rnn_jacobian_is_diag_slope_times_W():
    # Hand-checkable: diagonal W, h = 0, x = 0, b = 0 -> a = 0, tanh'(0) = 1, J = W.
    cell = cells.RNN("tanh")
    W = jnp.diag(jnp.array([0.5, 2.0]))
    params = {"W_hh": W, "W_xh": jnp.zeros((2, 1)), "b": jnp.array([0.0, 1.0])}
    J = cell.jacobian(params, jnp.zeros(2), jnp.zeros(1))
    # a = (0, 1): slopes 1 and 1 - tanh(1)^2.
    expected = np.diag([0.5, 2.0 * (1 - np.tanh(1.0) ** 2)])
    # 1 - tanh(1)^2 cancels (0.42 from 1 - 0.58): gradspec's sech^2 and numpy's
    # difference may each be a few ulps of the terms (1 + tanh^2) apart.
    np.testing.assert_allclose(J, expected, rtol=0, atol=8 * np.finfo(np.float64).eps * 4)


def test_lstm_and_gru_match_pytorch_equations(getkey):
    # Independent re-implementation of torch's formulas in numpy.
    lstm, gru = cells.LSTM(), cells.GRU()
    sig = lambda z: 1 / (1 + np.exp(-z))
    p = {k: np.asarray(v) for k, v in lstm.init(getkey(), N, D, dtype=jnp.float64).items()}
    rng = np.random.default_rng(0)
    h, c = rng.normal(size=(2, N))
    x = rng.normal(size=D)
    z = p["weight_ih"] @ x + p["bias_ih"] + p["weight_hh"] @ h + p["bias_hh"]
    i, f, g, o = np.split(z, 4)
    c2 = sig(f) * c + sig(i) * np.tanh(g)
    h2 = sig(o) * np.tanh(c2)
    out = lstm.step({k: jnp.asarray(v) for k, v in p.items()}, jnp.concatenate([h, c]), x)
    # z sums D + N + 2 terms that may cancel: the error is eps times the terms' size.
    scale = np.abs(p["weight_ih"]) @ np.abs(x) + np.abs(p["weight_hh"]) @ np.abs(h) + 2
    tol = 64 * np.finfo(np.float64).eps * (np.abs(c).max() + scale.max())
    np.testing.assert_allclose(out, np.concatenate([h2, c2]), rtol=0, atol=tol)

    p = {k: np.asarray(v) for k, v in gru.init(getkey(), N, D, dtype=jnp.float64).items()}
    xr, xz, xn = np.split(p["weight_ih"] @ x + p["bias_ih"], 3)
    hr, hz, hn = np.split(p["weight_hh"] @ h + p["bias_hh"], 3)
    r, zz = sig(xr + hr), sig(xz + hz)
    n = np.tanh(xn + r * hn)
    out = gru.step({k: jnp.asarray(v) for k, v in p.items()}, jnp.asarray(h), x)
    scale = np.abs(p["weight_ih"]) @ np.abs(x) + np.abs(p["weight_hh"]) @ np.abs(h) + 2
    tol = 64 * np.finfo(np.float64).eps * (np.abs(h).max() + scale.max())
    np.testing.assert_allclose(out, (1 - zz) * n + zz * h, rtol=0, atol=tol)


def test_initializers(getkey):
    n = 400
    W = gradspec.init.gaussian(1.5)(getkey(), (n, n), jnp.float64)
    # Sample variance of n^2 = 160k entries: relative standard error sqrt(2/n^2) = 0.35%.
    assert abs(float(jnp.var(W)) * n / 1.5**2 - 1) < 0.02
    Q = gradspec.init.orthogonal(0.7)(getkey(), (50, 50), jnp.float64)
    np.testing.assert_allclose(Q.T @ Q, 0.49 * np.eye(50), atol=1e-12)
    np.testing.assert_array_equal(gradspec.init.identity(2.0)(getkey(), (3, 3)), 2 * np.eye(3))
    G = gradspec.init.glorot(1.0)(getkey(), (n, n), jnp.float64)
    assert abs(float(jnp.var(G)) * n - 1) < 0.02  # var 1/N for a square matrix
    assert W.dtype == jnp.float64
    assert gradspec.init.gaussian()(getkey(), (3, 3), jnp.float32).dtype == jnp.float32


def test_gated_init_uses_recurrent_init_per_gate(getkey):
    params = cells.LSTM().init(getkey(), 4, 2, recurrent_init=gradspec.init.identity(1.0))
    np.testing.assert_array_equal(params["weight_hh"], np.tile(np.eye(4), (4, 1)))
    assert params["weight_ih"].shape == (16, 2) and params["bias_hh"].shape == (16,)


def test_cell_errors():
    with pytest.raises(ValueError, match="nonlinearity"):
        cells.RNN("swish")
    with pytest.raises(TypeError, match="nonlinearity"):
        cells.RNN(3)
    with pytest.raises(ValueError, match="gain"):
        gradspec.init.gaussian(-1.0)
    with pytest.raises(ValueError, match="`scale` must be a finite number >= 0"):
        gradspec.init.uniform(-1.0)
    with pytest.raises(ValueError, match="square"):
        gradspec.init.orthogonal()(jr.key(0), (3, 4))
    with pytest.raises(ValueError, match="size"):
        cells.StepCell(lambda p, h, x: h, size=0)
    with pytest.raises(TypeError, match="StepCell"):
        gradspec.trajectory(lambda p, h, x: h, {}, jnp.zeros((3, 1)))
    with pytest.raises(TypeError, match="cell"):
        gradspec.trajectory("lstm", {}, jnp.zeros((3, 1)))


@pytest.mark.parametrize("name, ref", [("tanh", lambda a: 1 / np.cosh(a) ** 2),
                                       ("sigmoid", lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2)])
def test_slopes_keep_relative_precision_in_float32(name, ref):
    # 1 - tanh(a)^2 is exactly 0 in float32 at a = 10; sech^2(10) = 8.2e-9 is not.
    a = np.array([-30.0, -10.0, -3.0, 0.0, 0.5, 4.0, 10.0, 30.0])
    got = cells.RNN(name).slope(jnp.asarray(a, jnp.float32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref(a), rtol=1e-5)  # float32 eps times a few ops


def test_errors_name_what_to_fix():
    cell = cells.RNN("tanh")
    params = cell.init(jr.key(0), 4, 1)
    with pytest.raises(TypeError, match="`xs` must be a floating array"):
        gradspec.gradient_profile(cell, params, "abc")

    class Incomplete(cells.Cell):
        pass

    with pytest.raises(NotImplementedError, match="Incomplete must implement `hidden_size"):
        gradspec.gradient_profile(Incomplete(), params, jnp.zeros((3, 1)))
    doubling = cells.StepCell(lambda p, h, x: jnp.concatenate([h, h]), size=3)
    with pytest.raises(ValueError, match=r"shape \(3,\).*returned shape \(6,\)"):
        gradspec.gradient_profile(doubling, {}, jnp.zeros((3, 1)))


def test_stack_jacobian_autodiff_and_finite_differences_agree(getkey):
    # Stack's Jacobian is autodiff through every layer of one step; the feed-forward of
    # layer 0's new h into layer 1 makes it block triangular, not block diagonal.
    stack = cells.Stack((cells.LSTM(), cells.RNN("tanh"), cells.GRU()))
    params = stack.init(getkey(), N, D, dtype=jnp.float64)
    size = stack.state_size(stack.hidden_size(params))
    h = 0.5 * jr.normal(getkey(), (size,), jnp.float64)
    x = jr.normal(getkey(), (D,), jnp.float64)
    J = np.asarray(stack.jacobian(params, h, x))
    fd = _central_difference_jacobian(lambda v: stack.step(params, jnp.asarray(v), x), h)
    np.testing.assert_allclose(J, fd, rtol=0, atol=1e-8)
    # Top layer first: nothing flows down a stack, so the lower-left blocks vanish.
    np.testing.assert_array_equal(J[N:, :N], 0.0)  # layers 1, 0 do not read layer 2
    assert np.abs(J[:N, N:]).max() > 1e-3  # layer 2 reads layers 1 and 0 of this step
    v = jr.normal(getkey(), (size, 2), jnp.float64)
    np.testing.assert_allclose(stack.jvp(params, h, x, v), J @ v, atol=1e-13)
    np.testing.assert_allclose(stack.vjp(params, h, x, v[:, 0]), v[:, 0] @ J, atol=1e-13)


def test_torch_tensors_and_float64_without_x64_are_named():
    torch = pytest.importorskip("torch")
    cell = cells.RNN("tanh")
    params = {"W_hh": torch.zeros(3, 3), "W_xh": torch.zeros(3, 1), "b": torch.zeros(3)}
    with pytest.raises(TypeError, match=r"`params\['W_hh'\]` is a torch.Tensor.*from_torch"):
        gradspec.gradient_profile(cell, params, np.zeros((4, 1)))
    # float64 params with x64 off (this suite turns x64 on: a fresh interpreter).
    code = ("import warnings, numpy as np, gradspec\n"
            "warnings.simplefilter('error')\n"
            "p = {'W_hh': np.zeros((3, 3)), 'W_xh': np.zeros((3, 1)), 'b': np.zeros(3)}\n"
            "gradspec.gradient_profile(gradspec.cells.RNN('tanh'), p, np.zeros((4, 1)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0 and "jax_enable_x64 is off" in out.stderr
