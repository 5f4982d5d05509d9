"""gradspec.interop: converted PyTorch, Flax and Equinox cells match their own forward.

Every framework's own forward pass (its cell or module, looped over time) is the
reference: gradspec's trajectory from the converted params must match it to rounding,
and gradspec's step Jacobians must match torch.autograd's.
"""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import interop

# Different summation orders in two frameworks, over T = 12 steps of N = 5 units. Each
# step sums D + N + 1 = 9 products of O(1) terms per gate (default inits, N(0, 1) inputs,
# slopes <= 1): T (D + N + 1) = 108 sums, ~1.3e-5 at one eps32 each (seen 1.9e-6 = 16
# eps32), 2.4e-14 at one eps64 (seen 1.8e-15). float32 sits at that scale; float64 keeps
# 1e-10 (absolute: states of order 1; relative: relu states, LSTM memories beyond 1).
TOL = {jnp.dtype("float32"): 1e-5, jnp.dtype("float64"): 1e-10}
DTYPES = [jnp.dtype("float32"), jnp.dtype("float64")]
T, D, N = 12, 3, 5


def assert_close(got, want, dtype):
    np.testing.assert_allclose(
        np.asarray(got), np.asarray(want), rtol=TOL[dtype], atol=TOL[dtype]
    )


def assert_params_dtype(params, dtype):
    assert all(v.dtype == dtype for v in params.values()), {
        k: v.dtype for k, v in params.items()
    }


def _rng(seed=0):
    return np.random.default_rng(seed)


# -- PyTorch -------------------------------------------------------------------------
# Not pytest.importorskip at module level: that would skip the Flax, Equinox and
# import-hygiene tests below too, and each framework is a separate optional extra.
try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

TORCH_KINDS = {
    "rnn_tanh": (lambda: torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (lambda: torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (lambda: torch.nn.LSTM, {}),
    "gru": (lambda: torch.nn.GRU, {}),
}
TORCH_DTYPES = (
    {jnp.dtype("float32"): torch.float32, jnp.dtype("float64"): torch.float64}
    if torch is not None
    else {}
)


def _torch_module(name, dtype, num_layers=1, bias=True, seed=0):
    torch.manual_seed(seed)
    cls, kwargs = TORCH_KINDS[name]
    return cls()(D, N, num_layers=num_layers, bias=bias, **kwargs).to(
        TORCH_DTYPES[dtype]
    )


def _torch_run(module, xs, h0):
    """Torch's own forward pass from a gradspec state h0; returns gradspec-layout states
    where torch exposes them: outputs h_1..h_T (T, N) and the final full state (S,)."""
    x = torch.from_numpy(np.asarray(xs))[:, None, :]  # (T, 1, D)
    h = torch.from_numpy(np.asarray(h0))
    with torch.no_grad():
        if isinstance(module, torch.nn.LSTM):
            ys, (h_n, c_n) = module(x, (h[None, None, :N], h[None, None, N:]))
            final = torch.cat([h_n[-1, 0], c_n[-1, 0]])
        else:
            ys, h_n = module(x, h[None, None])
            final = h_n[-1, 0]
    return ys[:, 0].numpy(), final.numpy()


def _inputs(dtype, size, seed=1, steps=T):
    return np.asarray(_rng(seed).normal(size=(steps, size)), dtype)


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(TORCH_KINDS))
@pytest.mark.parametrize("source", ["module", "state_dict"])
def test_torch_trajectory_matches_torch(name, dtype, source):
    module = _torch_module(name, dtype)
    if source == "module":
        cell, params = interop.from_torch(module)
    else:
        nl = TORCH_KINDS[name][1].get("nonlinearity")
        cell, params = interop.from_torch(module.state_dict(), nonlinearity=nl)
    assert_params_dtype(params, dtype)
    size = cell.state_size(N)
    xs, h0 = _inputs(dtype, D), np.asarray(_rng(2).normal(size=size), dtype)
    states = gradspec.trajectory(cell, params, xs, h0)
    ys, final = _torch_run(module, xs, h0)
    assert_close(states[:, :N], ys, dtype)
    assert_close(states[-1], final, dtype)


@needs_torch
@pytest.mark.parametrize("name", list(TORCH_KINDS))
def test_torch_second_layer_matches_torch(name):
    """Layer 1 of a two-layer module, driven by torch's own layer-0 outputs."""
    dtype = jnp.dtype("float64")
    module = _torch_module(name, dtype, num_layers=2)
    first = _torch_module(name, dtype, num_layers=1)
    first.load_state_dict(
        {k: v for k, v in module.state_dict().items() if k.endswith("_l0")}
    )
    size = 2 * N if name == "lstm" else N
    xs = _inputs(dtype, D)
    h0 = [np.asarray(_rng(s).normal(size=size), dtype) for s in (3, 4)]
    ys0, _ = _torch_run(first, xs, h0[0])

    cell, params = interop.from_torch(module, layer=1)
    assert params["W_xh" if name.startswith("rnn") else "weight_ih"].shape[-1] == N
    states = gradspec.trajectory(cell, params, ys0, h0[1])

    x = torch.from_numpy(xs)[:, None]
    hs = torch.from_numpy(np.stack(h0))[:, None]
    with torch.no_grad():
        ys = module(x, (hs[:, :, :N], hs[:, :, N:]) if name == "lstm" else hs)[0]
    assert_close(states[:, :N], ys[:, 0].numpy(), dtype)


@needs_torch
def test_torch_state_dict_without_biases_and_numpy_arrays():
    module = _torch_module("gru", jnp.dtype("float64"), bias=False)
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    assert not any(k.startswith("bias") for k in state)
    cell, params = interop.from_torch(state)
    assert isinstance(cell, gradspec.cells.GRU)
    assert not np.any(np.asarray(params["bias_ih"])) and not np.any(
        np.asarray(params["bias_hh"])
    )
    xs = _inputs(jnp.dtype("float64"), D)
    ys, _ = _torch_run(module, xs, np.zeros(N))
    h0 = np.zeros(N)  # torch's default start, given explicitly (gradspec's may differ)
    assert_close(gradspec.trajectory(cell, params, xs, h0), ys, jnp.dtype("float64"))


@needs_torch
def test_torch_rnn_biases_are_summed():
    module = _torch_module("rnn_tanh", jnp.dtype("float64"))
    _, params = interop.from_torch(module)
    sd = module.state_dict()
    np.testing.assert_array_equal(
        params["b"], (sd["bias_ih_l0"] + sd["bias_hh_l0"]).numpy()
    )
    np.testing.assert_array_equal(params["W_hh"], sd["weight_hh_l0"].numpy())
    np.testing.assert_array_equal(params["W_xh"], sd["weight_ih_l0"].numpy())


@needs_torch
def test_torch_dtype_choice():
    f32, f64 = jnp.dtype("float32"), jnp.dtype("float64")
    assert_params_dtype(interop.from_torch(_torch_module("lstm", f32))[1], f32)
    assert_params_dtype(interop.from_torch(_torch_module("lstm", f64))[1], f64)
    assert_params_dtype(
        interop.from_torch(_torch_module("lstm", f64), dtype=f32)[1], f32
    )
    assert_params_dtype(
        interop.from_torch(_torch_module("lstm", f32), dtype="float64")[1], f64
    )
    half = _torch_module("gru", f32).to(torch.bfloat16)
    assert_params_dtype(interop.from_torch(half)[1], f32)


TORCH_CELLS = {
    "rnn_tanh": lambda: torch.nn.RNNCell(D, N, nonlinearity="tanh"),
    "rnn_relu": lambda: torch.nn.RNNCell(D, N, nonlinearity="relu"),
    "lstm": lambda: torch.nn.LSTMCell(D, N),
    "gru": lambda: torch.nn.GRUCell(D, N),
}


@needs_torch
@pytest.mark.parametrize("name", list(TORCH_KINDS))
def test_step_jacobians_match_torch_autograd(name):
    """J_t = d h_t / d h_{t-1} equals torch.autograd's Jacobian of torch's cell step."""
    dtype = jnp.dtype("float64")
    module = _torch_module(name, dtype)
    tcell = TORCH_CELLS[name]().double()
    tcell.load_state_dict({k[: -len("_l0")]: v for k, v in module.state_dict().items()})
    cell, params = interop.from_torch(module)
    # The cell's own state_dict converts to the same params.
    cell2, params2 = interop.from_torch(tcell)
    assert cell2 == cell
    for k in params:
        np.testing.assert_array_equal(params[k], params2[k])

    size = cell.state_size(N)
    steps = 4
    xs, h0 = (
        _inputs(dtype, D, steps=steps),
        np.asarray(_rng(5).normal(size=size), dtype),
    )
    jacs = gradspec.step_jacobians(cell, params, xs, h0)
    prev = np.concatenate(
        [h0[None], np.asarray(gradspec.trajectory(cell, params, xs, h0))[:-1]]
    )

    for t in range(steps):
        x = torch.from_numpy(xs[t])[None]

        def step(h, x=x):
            if name == "lstm":
                return torch.cat(tcell(x, (h[None, :N], h[None, N:])), dim=1)[0]
            return tcell(x, h[None])[0]

        want = torch.autograd.functional.jacobian(step, torch.from_numpy(prev[t]))
        assert_close(jacs[t], want.numpy(), dtype)


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "cell",
    [
        gradspec.cells.RNN("tanh"),
        gradspec.cells.RNN("relu"),
        gradspec.cells.LSTM(),
        gradspec.cells.GRU(),
    ],
    ids=["rnn_tanh", "rnn_relu", "lstm", "gru"],
)
def test_round_trip_through_torch(cell, dtype, getkey):
    params = cell.init(getkey(), hidden=N, inputs=D, dtype=dtype)
    # Nonzero biases so that their placement is checked too.
    params = {
        k: v + 0.1 * jr.normal(getkey(), v.shape, dtype) for k, v in params.items()
    }
    module = interop.to_torch(cell, params)
    assert next(module.parameters()).dtype == TORCH_DTYPES[dtype]
    cell2, params2 = interop.from_torch(module)
    assert cell2 == cell
    assert sorted(params2) == sorted(params)
    for k in params:
        assert params2[k].dtype == dtype
        np.testing.assert_array_equal(params2[k], params[k])
    # The torch module runs the same recurrence.
    xs, h0 = (
        _inputs(dtype, D),
        np.asarray(_rng(6).normal(size=cell.state_size(N)), dtype),
    )
    ys, final = _torch_run(module, xs, h0)
    states = gradspec.trajectory(cell, params, xs, h0)
    assert_close(states[:, :N], ys, dtype)
    assert_close(states[-1], final, dtype)


# -- errors --------------------------------------------------------------------------
@needs_torch
def test_torch_errors():
    lstm2 = torch.nn.LSTM(D, N, num_layers=2)
    bi = torch.nn.GRU(D, N, bidirectional=True)
    proj = torch.nn.LSTM(D, N, proj_size=2)
    with pytest.raises(ValueError, match="bidirectional"):
        interop.from_torch(bi)
    with pytest.raises(ValueError, match="bidirectional"):
        interop.from_torch(bi.state_dict())
    with pytest.raises(ValueError, match="proj_size"):
        interop.from_torch(proj)
    with pytest.raises(ValueError, match="proj_size"):
        interop.from_torch(proj.state_dict())
    with pytest.raises(ValueError, match=r"`layer` must be in \[0, 1\]"):
        interop.from_torch(lstm2, layer=2)
    with pytest.raises(ValueError, match="`layer`"):
        interop.from_torch(lstm2.state_dict(), layer=-1)
    with pytest.raises(ValueError, match="`layer` must be 0"):
        interop.from_torch(torch.nn.GRUCell(D, N), layer=1)
    with pytest.raises(TypeError, match="`layer`"):
        interop.from_torch(lstm2, layer=1.0)
    with pytest.raises(ValueError, match="`kind`"):
        interop.from_torch(lstm2.state_dict(), kind="transformer")
    with pytest.raises(ValueError, match="`kind` 'gru'"):
        interop.from_torch(lstm2.state_dict(), kind="gru")
    with pytest.raises(ValueError, match="`kind` 'rnn' contradicts"):
        interop.from_torch(lstm2, kind="rnn")
    with pytest.raises(ValueError, match="cannot infer `kind`"):
        interop.from_torch(
            {"weight_hh_l0": np.zeros((2 * N, N)), "weight_ih_l0": np.zeros((2 * N, D))}
        )
    with pytest.raises(ValueError, match="`nonlinearity`"):
        interop.from_torch(lstm2, nonlinearity="relu")
    with pytest.raises(ValueError, match="`nonlinearity` 'tanh' contradicts"):
        interop.from_torch(torch.nn.RNN(D, N, nonlinearity="relu"), nonlinearity="tanh")
    with pytest.raises(ValueError, match="prefix"):
        interop.from_torch({"rnn." + k: v for k, v in lstm2.state_dict().items()})
    with pytest.raises(TypeError, match="state_dict_or_module"):
        interop.from_torch(torch.nn.Linear(D, N))
    with pytest.raises(TypeError, match="state_dict_or_module"):
        interop.from_torch([1, 2])
    with pytest.raises(TypeError, match="`dtype`"):
        interop.from_torch(lstm2, dtype="int32")


@needs_torch
def test_to_torch_errors(getkey):
    rnn = gradspec.cells.RNN("sigmoid")
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        interop.to_torch(rnn, rnn.init(getkey(), hidden=N, inputs=D))
    step = gradspec.cells.StepCell(lambda p, h, x: h, size=N)
    with pytest.raises(TypeError, match="`cell`"):
        interop.to_torch(step, {})
    lstm = gradspec.cells.LSTM()
    params = lstm.init(getkey(), hidden=N, inputs=D)
    with pytest.raises(ValueError, match="bias_hh"):
        interop.to_torch(lstm, {**params, "bias_hh": params["bias_hh"][:N]})


# -- stacked torch modules, whole models -----------------------------------------------
@needs_torch
@pytest.mark.parametrize("name", list(TORCH_KINDS))
def test_torch_layer_none_is_the_whole_stack_and_layer_l_one_layer(name):
    module = _torch_module(name, jnp.dtype("float64"), num_layers=2)
    nl = TORCH_KINDS[name][1].get("nonlinearity")
    stack, params = interop.from_torch(module)
    assert isinstance(stack, gradspec.cells.Stack) and sorted(params) == [
        "layer0",
        "layer1",
    ]
    stack2, params2 = interop.from_torch(module.state_dict(), nonlinearity=nl)
    assert stack2 == stack
    for layer in (0, 1):
        cell, one = interop.from_torch(module, layer=layer)
        assert cell == stack.layers[layer]  # a plain cell, not a Stack
        jax.tree_util.tree_map(
            np.testing.assert_array_equal, one, params[f"layer{layer}"]
        )
        jax.tree_util.tree_map(
            np.testing.assert_array_equal, params2[f"layer{layer}"], one
        )
    # One layer: the plain cell, as before.
    cell, _ = interop.from_torch(_torch_module(name, jnp.dtype("float64")))
    assert not isinstance(cell, gradspec.cells.Stack)


@needs_torch
def test_torch_refuses_bidirectional_and_an_unrecorded_nonlinearity():
    bi = torch.nn.LSTM(D, N, num_layers=2, bidirectional=True)
    for source in (bi, bi.state_dict()):
        with pytest.raises(ValueError, match="bidirectional.*reverse time order"):
            interop.from_torch(source)
    forward = {k: v for k, v in bi.state_dict().items() if not k.endswith("_reverse")}
    with pytest.raises(ValueError, match=r"`params\['layer1'\]` reads 10 inputs"):
        interop.from_torch(forward)  # layer 1 reads both directions' outputs
    relu = torch.nn.RNN(D, N, num_layers=2, nonlinearity="relu")
    for layer in (None, 1):
        with pytest.raises(ValueError, match="`nonlinearity` is required"):
            interop.from_torch(relu.state_dict(), layer=layer)
    cell, _ = interop.from_torch(relu.state_dict(), layer=1, nonlinearity="relu")
    assert cell == gradspec.cells.RNN("relu")
    with pytest.raises(TypeError, match="find_recurrent"):
        interop.from_torch(torch.nn.Sequential(torch.nn.LSTM(D, N)))


@needs_torch
def test_find_recurrent_in_an_embedding_lstm_linear_model():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(20, D)
            self.rnn = torch.nn.LSTM(D, N, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(N, 4)

        def forward(self, tokens):
            return self.head(self.rnn(self.embed(tokens))[0])

    torch.manual_seed(0)
    model = Model().double()
    found = interop.find_recurrent(model)
    assert (found.name, found.module, found.embedding, found.readout) == (
        "rnn",
        model.rnn,
        model.embed,
        model.head,
    )
    cell, params = interop.from_torch(found.module)
    tokens = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    xs = found.embedding(tokens)[0].detach().numpy()
    h0 = np.zeros(cell.state_size(N))  # the model starts from torch's zero state
    states = gradspec.trajectory(cell, params, xs, h0)
    with torch.no_grad():
        logits = model(tokens)[0].numpy()
    W, b = (found.readout.weight.detach().numpy(), found.readout.bias.detach().numpy())
    assert_close(np.asarray(states[:, :N]) @ W.T + b, logits, jnp.dtype("float64"))
    # The model's own readout (M, N) on the visible output, the last layer's h.
    profile = gradspec.gradient_profile(cell, params, xs, readout=W)
    assert profile.shape == (len(xs) + 1,) and np.all(np.isfinite(profile))

    assert interop.find_recurrent(model.rnn).name == ""
    two = torch.nn.Sequential(torch.nn.GRU(D, N), torch.nn.LSTM(N, N))
    with pytest.raises(ValueError, match=r"2 recurrent modules \('0' \(GRU\), '1'"):
        interop.find_recurrent(two)
    with pytest.raises(ValueError, match="holds no torch.nn.RNN"):
        interop.find_recurrent(torch.nn.Linear(D, N))
    with pytest.raises(TypeError, match="`model`"):
        interop.find_recurrent({"rnn": model.rnn})


# -- Flax ----------------------------------------------------------------------------
def _randomize(tree, seed, dtype):
    """Every leaf + noise: Flax's zero-initialised biases would hide their layout."""
    rng = _rng(seed)
    return jax.tree_util.tree_map(
        lambda v: jnp.asarray(
            np.asarray(v) + 0.3 * rng.normal(size=np.shape(v)), dtype
        ),
        tree,
    )


def _flax_loop(apply, carry, xs):
    """The framework's own step, looped over time (a Python loop: T is tiny)."""
    out = []
    for x in xs:
        carry, _ = apply(carry, x)
        out.append(carry)
    return out


def _to_state(carry):
    """A Flax carry, (c, h) for an LSTM, as the gradspec state concat(h, c)."""
    return jnp.concatenate([carry[1], carry[0]]) if isinstance(carry, tuple) else carry


def _from_state(state, lstm):
    return (state[N:], state[:N]) if lstm else state


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("LSTMCell", {}),
        ("OptimizedLSTMCell", {}),
        ("GRUCell", {}),
        ("SimpleCell", {}),
        ("SimpleCell", {"residual": True, "activation_fn": jax.nn.relu}),
    ],
    ids=["lstm", "optimized_lstm", "gru", "simple", "simple_residual_relu"],
)
def test_flax_linen_trajectory_matches_flax(name, kwargs, dtype):
    nn = pytest.importorskip("flax.linen")
    module = getattr(nn, name)(features=N, param_dtype=dtype, **kwargs)
    lstm = "LSTM" in name
    xs = jnp.asarray(_inputs(dtype, D))
    carry = module.initialize_carry(jr.key(0), (D,))
    variables = _randomize(module.init(jr.key(1), carry, xs[0]), 2, dtype)
    cell, params = interop.from_flax(module, variables)
    assert_params_dtype(params, dtype)
    if "activation_fn" in kwargs:
        assert cell == gradspec.cells.RNN("relu")

    h0 = jnp.asarray(_rng(3).normal(size=cell.state_size(N)), dtype)
    want = _flax_loop(
        lambda c, x: module.apply(variables, c, x), _from_state(h0, lstm), xs
    )
    got = gradspec.trajectory(cell, params, xs, h0)
    assert_close(got, jnp.stack([_to_state(c) for c in want]), dtype)

    # The bare param dict (with or without the 'params' level) gives the same params
    # (a dict cannot record residual / the activation: a SimpleCell's must be named).
    if not kwargs:
        nl = {"nonlinearity": "tanh"} if name == "SimpleCell" else {}
        for tree in (variables, variables["params"]):
            cell2, params2 = interop.from_flax(tree, **nl)
            assert cell2 == cell
            for k in params:
                np.testing.assert_array_equal(params2[k], params[k])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "name", ["LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell"]
)
def test_flax_nnx_trajectory_matches_flax(name, dtype):
    nnx = pytest.importorskip("flax.nnx")
    # nnx's SimpleCell computes in `dtype` (default float32) whatever its param_dtype.
    module = getattr(nnx, name)(D, N, dtype=dtype, param_dtype=dtype, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(module)
    module = nnx.merge(graphdef, _randomize(state, 4, dtype))
    lstm = "LSTM" in name
    cell, params = interop.from_flax(module)
    assert_params_dtype(params, dtype)

    xs = jnp.asarray(_inputs(dtype, D))
    h0 = jnp.asarray(_rng(5).normal(size=cell.state_size(N)), dtype)
    want = _flax_loop(module, _from_state(h0, lstm), xs)
    got = gradspec.trajectory(cell, params, xs, h0)
    assert_close(got, jnp.stack([_to_state(c) for c in want]), dtype)


def test_flax_gru_bias_placement():
    """linen keeps the hidden n-bias inside r * (...) (bias_hh = (0, 0, b_hn)); nnx has
    none (bias_hh = 0) and puts all three biases on the input side."""
    nn = pytest.importorskip("flax.linen")
    nnx = pytest.importorskip("flax.nnx")
    module = nn.GRUCell(features=N, param_dtype=jnp.float64)
    variables = _randomize(
        module.init(jr.key(0), jnp.zeros(N), jnp.zeros(D)), 7, jnp.float64
    )
    _, params = interop.from_flax(module, variables)
    p = variables["params"]
    np.testing.assert_array_equal(params["bias_hh"][: 2 * N], 0.0)
    np.testing.assert_array_equal(params["bias_hh"][2 * N :], p["hn"]["bias"])
    np.testing.assert_array_equal(params["bias_ih"][2 * N :], p["in"]["bias"])
    np.testing.assert_array_equal(params["weight_hh"][:N], p["hr"]["kernel"].T)
    _, params = interop.from_flax(nnx.GRUCell(D, N, rngs=nnx.Rngs(0)))
    np.testing.assert_array_equal(params["bias_hh"], 0.0)


def test_flax_dtype_follows_the_computation_dtype():
    nnx = pytest.importorskip("flax.nnx")
    f32, f64 = jnp.dtype("float32"), jnp.dtype("float64")
    simple = nnx.SimpleCell(D, N, param_dtype=f64, rngs=nnx.Rngs(0))  # dtype=float32
    assert_params_dtype(interop.from_flax(simple)[1], f32)
    assert_params_dtype(interop.from_flax(simple, dtype=f64)[1], f64)
    gru = nnx.GRUCell(D, N, param_dtype=f64, rngs=nnx.Rngs(0))  # dtype=None
    assert_params_dtype(interop.from_flax(gru)[1], f64)


def test_flax_errors():
    nn = pytest.importorskip("flax.linen")
    lstm = nn.LSTMCell(features=N)
    variables = lstm.init(
        jr.key(0), lstm.initialize_carry(jr.key(1), (D,)), jnp.zeros(D, jnp.float32)
    )
    with pytest.raises(ValueError, match="MGUCell is not supported"):
        interop.from_flax(nn.MGUCell(features=N), variables)
    with pytest.raises(ValueError, match="gate_fn"):
        interop.from_flax(
            nn.LSTMCell(features=N, gate_fn=jax.nn.hard_sigmoid), variables
        )
    with pytest.raises(TypeError, match="`params`"):
        interop.from_flax(lstm)
    with pytest.raises(ValueError, match="`params` does not hold"):
        interop.from_flax(nn.GRUCell(features=N), variables)
    with pytest.raises(ValueError, match="`cell_or_params`"):
        interop.from_flax({"params": {"dense": {"kernel": jnp.zeros((D, N))}}})
    with pytest.raises(ValueError, match="`kind` 'gru' contradicts"):
        interop.from_flax(variables, kind="gru")
    with pytest.raises(ValueError, match="`kind`"):
        interop.from_flax(variables, kind="mlp")
    with pytest.raises(TypeError, match="`cell_or_params`"):
        interop.from_flax(object())
    # A SimpleCell's bare dict does not record tanh vs relu: never guessed.
    simple = nn.SimpleCell(features=N).init(
        jr.key(2), jnp.zeros(N, jnp.float32), jnp.zeros(D, jnp.float32)
    )
    with pytest.raises(ValueError, match="`nonlinearity` is required.*Flax param dict"):
        interop.from_flax(simple)
    assert interop.from_flax(simple, nonlinearity="relu")[0] == gradspec.cells.RNN("relu")
    with pytest.raises(ValueError, match="`nonlinearity` 'relu' contradicts"):
        interop.from_flax(nn.SimpleCell(features=N), simple, nonlinearity="relu")
    with pytest.raises(TypeError, match=r"`params\['ii'\]\['kernel'\]` must have a "
                       "floating dtype"):
        interop.from_flax(jax.tree_util.tree_map(lambda v: v.astype(jnp.int32), variables))


# -- Equinox -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
def test_equinox_trajectory_matches_equinox(name, use_bias, dtype):
    eqx = pytest.importorskip("equinox")
    module = getattr(eqx.nn, name)(D, N, use_bias=use_bias, dtype=dtype, key=jr.key(0))
    lstm = name == "LSTMCell"
    cell, params = interop.from_equinox(module)
    assert_params_dtype(params, dtype)

    xs = jnp.asarray(_inputs(dtype, D))
    h0 = jnp.asarray(_rng(6).normal(size=cell.state_size(N)), dtype)
    carry = (h0[:N], h0[N:]) if lstm else h0  # Equinox's LSTM carry is (h, c)
    want = []
    for x in xs:
        carry = module(x, carry)
        want.append(jnp.concatenate(carry) if lstm else carry)
    assert_close(gradspec.trajectory(cell, params, xs, h0), jnp.stack(want), dtype)


def test_flax_and_equinox_lists_of_cells_are_stacks():
    """A list of cells, layer 0 first, is one Stack: its trajectory is the cells looped,
    each layer reading the visible h of the one below at the same step."""
    nn = pytest.importorskip("flax.linen")
    nnx = pytest.importorskip("flax.nnx")
    eqx = pytest.importorskip("equinox")
    f64 = jnp.dtype("float64")
    xs = jnp.asarray(_inputs(f64, D))
    zeros = jnp.zeros(N, f64)
    rngs = nnx.Rngs(0)
    flax_layers = [
        nnx.LSTMCell(D, N, param_dtype=f64, dtype=f64, rngs=rngs),
        nnx.GRUCell(N, N, param_dtype=f64, dtype=f64, rngs=rngs),
    ]
    eqx_layers = [
        eqx.nn.GRUCell(D, N, dtype=f64, key=jr.key(1)),
        eqx.nn.LSTMCell(N, N, dtype=f64, key=jr.key(2)),
    ]
    # (layers, step(layer, x, carry) -> carry, visible h of a carry, state of a carry)
    cases = [
        (flax_layers, lambda m, x, c: m(c, x)[0], [(zeros, zeros), zeros],
         lambda c: c[1] if isinstance(c, tuple) else c, _to_state),
        (eqx_layers, lambda m, x, c: m(x, c), [zeros, (zeros, zeros)],
         lambda c: c[0] if isinstance(c, tuple) else c,
         lambda c: jnp.concatenate(c) if isinstance(c, tuple) else c),
    ]
    convert = {id(flax_layers): interop.from_flax, id(eqx_layers): interop.from_equinox}
    for layers, step, carries, visible, to_state in cases:
        cell, params = convert[id(layers)](layers)
        assert isinstance(cell, gradspec.cells.Stack) and len(cell.layers) == 2
        start, want = list(carries), []
        for x in xs:
            for i, m in enumerate(layers):
                carries[i] = step(m, x, carries[i])
                x = visible(carries[i])
            want.append(cell.join_states([to_state(c) for c in carries]))
        h0 = cell.join_states([to_state(c) for c in start])  # the frameworks' zeros
        assert_close(gradspec.trajectory(cell, params, xs, h0), jnp.stack(want), f64)
    # linen: a list of cells with a list of their variables.
    linen = [nn.GRUCell(features=N, param_dtype=f64),
             nn.SimpleCell(features=N, param_dtype=f64)]
    variables = [
        m.init(jr.key(i), zeros, jnp.zeros(d, f64))
        for i, (m, d) in enumerate(zip(linen, (D, N)))
    ]
    cell, params = interop.from_flax(linen, variables)
    assert cell == gradspec.cells.Stack((gradspec.cells.GRU(), gradspec.cells.RNN()))
    with pytest.raises(ValueError, match="one entry per layer"):
        interop.from_flax(linen, variables[:1])


def test_equinox_errors():
    eqx = pytest.importorskip("equinox")
    with pytest.raises(TypeError, match="`cell`"):
        interop.from_equinox(eqx.nn.Linear(D, N, key=jr.key(0)))
    with pytest.raises(TypeError, match="`cell`"):
        interop.from_equinox({"weight_ih": np.zeros((4 * N, D))})


# -- import hygiene ------------------------------------------------------------------
def test_import_gradspec_does_not_import_frameworks():
    code = (
        "import sys, gradspec, gradspec.interop\n"
        "bad = [m for m in ('torch', 'flax', 'equinox') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
