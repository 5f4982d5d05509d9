"""gradspec.cells.Stack: stacked layers as one cell, checked against torch's own stacked
modules (trajectory, joint step Jacobian, gradient) and a numpy Benettin reference."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import cells, interop

T, D, N = 12, 3, 5
F64 = jnp.dtype("float64")

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


# -- the cell itself -------------------------------------------------------------------
def test_stack_layout_sizes_and_init(getkey):
    stack = cells.Stack((cells.LSTM(), cells.RNN("tanh"), cells.GRU()))
    params = stack.init(getkey(), hidden=N, inputs=D, dtype=F64)
    assert sorted(params) == ["layer0", "layer1", "layer2"] == list(stack.names)
    assert params["layer0"]["weight_ih"].shape == (4 * N, D)
    assert params["layer1"]["W_xh"].shape == (N, N)  # reads layer 0's h, not (h, c)
    assert stack.param_shapes(N, D)["layer2"]["weight_ih"] == (3 * N, N)
    assert stack.hidden_size(params) == N and stack.input_size(params) == D
    size = stack.state_size(stack.hidden_size(params))
    assert size == 2 * N + N + N and stack.output_size(size) == N
    cells.check_params(stack, params)
    # Top layer first: split/join convert from and to layer order.
    state = jnp.arange(size, dtype=F64)
    s0, s1, s2 = stack.split_state(state)
    np.testing.assert_array_equal(s2, state[:N])  # the last layer's h leads
    np.testing.assert_array_equal(s0, state[2 * N:])
    np.testing.assert_array_equal(stack.join_states((s0, s1, s2)), state)
    # Hashable and equal by value: a static argument under jit.
    assert stack == cells.Stack([cells.LSTM(), cells.RNN("tanh"), cells.GRU()])
    assert hash(stack) == hash(cells.Stack((cells.LSTM(), cells.RNN("tanh"), cells.GRU())))


def test_stack_step_is_the_layers_steps_of_the_same_time_step(getkey):
    stack = cells.Stack((cells.RNN("tanh"), cells.LSTM()))
    params = stack.init(getkey(), N, D, dtype=F64)
    state = jr.normal(getkey(), (stack.state_size(N),), F64)
    x = jr.normal(getkey(), (D,), F64)
    s0, s1 = stack.split_state(state)
    new0 = cells.RNN("tanh").step(params["layer0"], s0, x)
    new1 = cells.LSTM().step(params["layer1"], s1, new0)  # layer 1 reads h0 of step t
    got = stack.step(params, state, x)
    np.testing.assert_array_equal(got, jnp.concatenate([new1, new0]))


def test_stack_readout_defaults_to_the_last_layers_h(getkey):
    stack = cells.Stack((cells.LSTM(), cells.LSTM()))
    size = stack.state_size(N)
    u = gradspec.default_readout(stack, size, F64)
    np.testing.assert_allclose(u[:N], 1 / np.sqrt(N))
    np.testing.assert_array_equal(u[N:], 0.0)


def test_stack_errors_name_the_layer(getkey):
    stack = cells.Stack((cells.RNN("tanh"), cells.GRU()))
    params = stack.init(getkey(), N, D, dtype=F64)
    xs = jnp.zeros((T, D), F64)
    bad = dict(params, layer1=dict(params["layer1"], bias_ih=jnp.zeros(2, F64)))
    with pytest.raises(ValueError, match=r"`params\['layer1'\]\['bias_ih'\]` must have"):
        gradspec.trajectory(stack, params=bad, xs=xs)
    with pytest.raises(ValueError, match=r"params\['layer1'\].*reads 4 inputs.*outputs 5"):
        wide = cells.GRU().init(getkey(), N, 4, dtype=F64)
        gradspec.trajectory(stack, dict(params, layer1=wide), xs)
    with pytest.raises(ValueError, match="share one width"):
        other = cells.GRU().init(getkey(), N + 1, N, dtype=F64)
        gradspec.trajectory(stack, dict(params, layer1=other), xs)
    with pytest.raises(ValueError, match=r"keys \['layer0', 'layer1'\]"):
        gradspec.trajectory(stack, {"layer0": params["layer0"]}, xs)
    with pytest.raises(TypeError, match="must be a dict"):
        gradspec.trajectory(stack, [params["layer0"], params["layer1"]], xs)
    bad = dict(params, layer0=dict(params["layer0"], W_hh=jnp.zeros((N, 2), F64)))
    with pytest.raises(ValueError, match=r"`params\['layer0'\]`: `W_hh` must be square"):
        gradspec.trajectory(stack, bad, xs)
    with pytest.raises(TypeError, match="`layers`"):
        cells.Stack(())
    with pytest.raises(TypeError, match="Cell"):
        cells.Stack((cells.GRU(), "lstm"))
    with pytest.raises(ValueError, match="one state per layer"):
        stack.join_states((jnp.zeros(N),))


# -- two layers forgetting at different rates: exponents vs numpy Benettin ---------------
def _numpy_benettin(Js, q=None):
    """Benettin's QR over the (T, S, S) Jacobians in numpy, from frame q (identity)."""
    q = np.eye(Js.shape[1]) if q is None else q
    total = np.zeros(Js.shape[1])
    for J in Js:
        q, r = np.linalg.qr(J @ q)
        total += np.log(np.abs(np.diag(r)))
    return np.sort(total / len(Js))[::-1]


def _rnn_jacobians(W, Wx, b, hs_prev, inputs):
    """Closed-form tanh RNN Jacobians diag(1 - h_t^2) W along a trajectory, in numpy."""
    hs = np.tanh(hs_prev @ W.T + inputs @ Wx.T + b)
    return hs, (1 - hs**2)[:, :, None] * W[None]


def test_stack_exponents_are_the_layers_exponents(getkey):
    n, steps = 8, 3000
    stack = cells.Stack((cells.RNN("tanh"), cells.RNN("tanh")))
    params = {
        name: cells.RNN("tanh").init(getkey(), n, d, dtype=F64,
                                     recurrent_init=gradspec.init.orthogonal(gain))
        for name, d, gain in (("layer0", 1, 0.5), ("layer1", n, 0.9))
    }
    xs = jr.normal(getkey(), (steps, 1), F64)
    states = np.asarray(gradspec.trajectory(stack, params, xs))
    prev = np.concatenate([np.asarray(gradspec.start_state(stack, params, 1))[None], states[:-1]])
    p = jax.tree_util.tree_map(np.asarray, params)
    h1, h0 = states[:, :n], states[:, n:]
    _, J00 = _rnn_jacobians(p["layer0"]["W_hh"], p["layer0"]["W_xh"], p["layer0"]["b"],
                            prev[:, n:], np.asarray(xs))
    _, J11 = _rnn_jacobians(p["layer1"]["W_hh"], p["layer1"]["W_xh"], p["layer1"]["b"],
                            prev[:, :n], h0)
    # Layer 1's new h reads layer 0's new h: d h1_t / d h0_{t-1} = D1 W_xh1 J00.
    J10 = (1 - h1**2)[:, :, None] * (p["layer1"]["W_xh"][None] @ J00)
    Js = np.block([[J11, J10], [np.zeros_like(J00), J00]])
    np.testing.assert_allclose(gradspec.step_jacobians(stack, params, xs), Js, atol=1e-13)

    # From gradspec's default start frame (one fixed random draw), both sides.
    draw = jr.normal(jr.key(0), (2 * n, 2 * n), jnp.float32)  # drawn in float32, always
    frame = np.linalg.qr(np.asarray(draw, np.float64))[0]
    want = _numpy_benettin(Js, frame)
    got = np.asarray(gradspec.lyapunov_spectrum(stack, params, xs))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    # Block triangular (top layer first: upper), so from the identity frame Q stays
    # block diagonal and the joint exponents are exactly the layers' own. The top one is
    # the slow layer's (gain 0.9), ~log(0.9/0.5) above the fast layer's (gain 0.5).
    lam0, lam1 = _numpy_benettin(J00), _numpy_benettin(J11)
    assert lam1[0] > lam0[0] + 0.3
    joint = _numpy_benettin(Js)
    np.testing.assert_allclose(joint, np.sort(np.concatenate([lam0, lam1]))[::-1],
                               rtol=0, atol=1e-10)
    # From a random frame the same exponents up to the frame's transient: O(1/T), with
    # T = 3000 steps and no warm-up.
    np.testing.assert_allclose(got, joint, rtol=0, atol=5e-3)


# -- against torch's stacked modules ----------------------------------------------------
TORCH_KINDS = {
    "lstm": lambda: torch.nn.LSTM(D, N, num_layers=2),
    "gru": lambda: torch.nn.GRU(D, N, num_layers=2),
    "rnn_relu": lambda: torch.nn.RNN(D, N, num_layers=2, nonlinearity="relu"),
}


def _torch_module(name):
    torch.manual_seed(0)
    return TORCH_KINDS[name]().double()


def _to_torch_state(stack, state, lstm):
    """A gradspec Stack state as torch's h (L, 1, N) (and c), layer 0 first."""
    parts = stack.split_state(state)
    h = torch.stack([s[:N] for s in parts])[:, None]
    return (h, torch.stack([s[N:] for s in parts])[:, None]) if lstm else h


def _from_torch_state(stack, hidden, lstm):
    """torch's final h_n (and c_n), (L, 1, N) each, as a gradspec Stack state."""
    if lstm:
        h, c = hidden
        return stack.join_states([np.concatenate([h[l, 0], c[l, 0]]) for l in range(2)])
    return stack.join_states([hidden[l, 0] for l in range(2)])


@needs_torch
@pytest.mark.parametrize("name", list(TORCH_KINDS))
def test_stack_from_torch_matches_torch(name):
    module = _torch_module(name)
    lstm = name == "lstm"
    stack, params = interop.from_torch(module)
    assert isinstance(stack, cells.Stack) and len(stack.layers) == 2
    size = stack.state_size(stack.hidden_size(params))
    assert size == (4 if lstm else 2) * N and stack.output_size(size) == N
    rng = np.random.default_rng(1)
    xs, h0 = rng.normal(size=(T, D)), rng.normal(size=size)

    # Trajectory: the leading N entries are torch's output (the last layer's h).
    states = np.asarray(gradspec.trajectory(stack, params, xs, h0))
    with torch.no_grad():
        ys, hidden = module(torch.from_numpy(xs)[:, None],
                            _to_torch_state(stack, torch.from_numpy(h0), lstm))
    np.testing.assert_allclose(states[:, :N], ys[:, 0].numpy(), rtol=0, atol=1e-12)
    final = _from_torch_state(stack, jax.tree_util.tree_map(lambda t: t.numpy(), hidden),
                              lstm)
    np.testing.assert_allclose(states[-1], final, rtol=0, atol=1e-12)

    # The joint step Jacobian equals torch.autograd's Jacobian of one step of the module.
    prev = np.concatenate([h0[None], states[:-1]])
    jacs = np.asarray(gradspec.step_jacobians(stack, params, xs, h0))
    for t in (0, T // 2, T - 1):
        def step(state, t=t):
            x = torch.from_numpy(xs[t])[None, None]
            _, hidden = module(x, _to_torch_state(stack, state, lstm))
            parts = ([torch.cat([hidden[0][l, 0], hidden[1][l, 0]]) for l in range(2)]
                     if lstm else [hidden[l, 0] for l in range(2)])
            return torch.cat(parts[::-1])  # top layer first

        want = torch.autograd.functional.jacobian(step, torch.from_numpy(prev[t]))
        np.testing.assert_allclose(jacs[t], want.numpy(), rtol=0, atol=1e-12)

    # The gradient profile at lag T is torch's gradient of u . y_T w.r.t. the start state.
    profile = np.asarray(gradspec.gradient_profile(stack, params, xs, h0))
    h0_t = torch.from_numpy(h0).requires_grad_(True)
    ys, _ = module(torch.from_numpy(xs)[:, None], _to_torch_state(stack, h0_t, lstm))
    (ys[-1, 0].sum() / np.sqrt(N)).backward()
    np.testing.assert_allclose(profile[T], np.log(np.linalg.norm(h0_t.grad.numpy())),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(profile[0], 0.0, atol=1e-14)  # ||u|| = 1
    assert np.all(np.isfinite(profile)) and profile.shape == (T + 1,)
    spectrum = np.asarray(gradspec.lyapunov_spectrum(stack, params, xs, h0, k=3))
    # relu's units that stay off make the Jacobians exactly singular: -inf is right.
    assert spectrum.shape == (3,) and np.isfinite(spectrum[0])
    assert not np.any(np.isnan(spectrum)) and np.all(np.diff(spectrum) <= 0)
