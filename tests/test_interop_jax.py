"""gradspec.interop under JAX transformations: jit, vmap and grad through the converters.

Every converter past reading the framework's objects is ``jnp`` on static shapes, so a
conversion composes with the transformations: vmap over init keys equals a loop of
conversions, jit equals eager, and the gradient of a measured Lyapunov exponent reaches
the framework's own variables (checked against central finite differences in float64;
the conftest turns x64 on).
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import interop

D, N, T = 3, 4, 16
F64 = jnp.dtype("float64")
# Central differences f'(x) ~ (f(x + h) - f(x - h)) / 2h: truncation ~h^2 f''' / 6 =
# 1e-10 (at O(1) derivatives), rounding ~ T eps64 |f| / h ~ 4e-10 with h = 1e-5 and
# T = 16 steps of O(N) flops; both far inside 1e-6 relative to the derivative.
FD_STEP, FD_RTOL = 1e-5, 1e-6

LINEN = {  # linen cell -> the from_flax kwargs its bare param dict needs
    "LSTMCell": {},
    "GRUCell": {},
    "SimpleCell": {"nonlinearity": "tanh"},
}


def _linen(name):
    nn = pytest.importorskip("flax.linen")
    module = getattr(nn, name)(features=N, param_dtype=F64)

    def init(key):
        carry = module.initialize_carry(jr.key(0), (D,))
        variables = module.init(key, carry, jnp.zeros(D, F64))
        # Flax initialises biases to zero, which would hide a bias routed wrongly:
        # add noise to every leaf (drawn from the same key, so vmap-able).
        leaves, tree = jax.tree_util.tree_flatten(variables)
        noise = jr.split(jr.fold_in(key, 1), len(leaves))
        return jax.tree_util.tree_unflatten(
            tree, [v + 0.3 * jr.normal(k, v.shape, F64) for v, k in zip(leaves, noise)]
        )

    return module, init


def _assert_trees_equal(got, want):
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        assert g.dtype == w.dtype and g.shape == w.shape
        # Transposes, concatenations and one addition per element: exact.
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def _keys(n=3):
    return jr.split(jr.key(7), n)


# -- vmap and jit ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LINEN))
def test_flax_vmap_over_init_keys_equals_a_loop(name):
    module, init = _linen(name)
    keys = _keys()
    batched = jax.vmap(lambda k: interop.from_flax(module, init(k))[1])(keys)
    looped = [interop.from_flax(module, init(k))[1] for k in keys]
    _assert_trees_equal(batched, jax.tree_util.tree_map(lambda *a: jnp.stack(a), *looped))
    # The bare param dict too (a SimpleCell dict needs its nonlinearity).
    bare = jax.vmap(lambda k: interop.from_flax(init(k), **LINEN[name])[1])(keys)
    _assert_trees_equal(bare, batched)


@pytest.mark.parametrize("name", list(LINEN))
def test_flax_jit_equals_eager(name):
    module, init = _linen(name)
    variables = init(_keys()[0])
    eager = interop.from_flax(module, variables)[1]
    _assert_trees_equal(jax.jit(lambda v: interop.from_flax(module, v)[1])(variables),
                        eager)
    _assert_trees_equal(
        jax.jit(lambda v: interop.from_flax(v, **LINEN[name])[1])(variables), eager
    )


def test_flax_batched_variables_outside_vmap_are_refused_with_the_fix():
    module, init = _linen("LSTMCell")
    batched = jax.vmap(init)(_keys())
    with pytest.raises(ValueError, match=r"got shape \(3, 3, 4\).*jax\.vmap"):
        interop.from_flax(module, batched)
    with pytest.raises(ValueError, match=r"leading batch axis.*jax\.vmap"):
        interop.from_flax(batched)


def test_flax_residual_simple_cell_under_vmap():
    """The residual identity (W_hh = W_h + I) is added per cell, not per batch."""
    nn = pytest.importorskip("flax.linen")
    module = nn.SimpleCell(features=N, residual=True, param_dtype=F64)
    init = lambda k: module.init(k, jnp.zeros(N, F64), jnp.zeros(D, F64))  # noqa: E731
    keys = _keys()
    batched = jax.vmap(lambda k: interop.from_flax(module, init(k))[1])(keys)
    for i, k in enumerate(keys):
        kernel = init(k)["params"]["h"]["kernel"]
        np.testing.assert_array_equal(batched["W_hh"][i], kernel.T + jnp.eye(N, dtype=F64))


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell"])
def test_equinox_vmap_and_jit(name):
    eqx = pytest.importorskip("equinox")
    make = getattr(eqx.nn, name)
    keys = _keys()
    batched = jax.vmap(lambda k: interop.from_equinox(make(D, N, dtype=F64, key=k))[1])(
        keys
    )
    looped = [interop.from_equinox(make(D, N, dtype=F64, key=k))[1] for k in keys]
    _assert_trees_equal(batched, jax.tree_util.tree_map(lambda *a: jnp.stack(a), *looped))
    module = make(D, N, dtype=F64, key=keys[0])
    jitted = eqx.filter_jit(lambda m: interop.from_equinox(m)[1])(module)
    _assert_trees_equal(jitted, looped[0])
    stacked = jax.vmap(lambda k: make(D, N, dtype=F64, key=k))(keys)
    with pytest.raises(ValueError, match="jax.vmap"):
        interop.from_equinox(stacked)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_torch_state_dict_of_jax_arrays_under_vmap_and_jit(nonlinearity):
    """A state_dict of jax arrays needs no torch: jnp all the way."""
    keys = _keys()

    def state(key):
        k = jr.split(key, 4)
        return {"weight_ih_l0": jr.normal(k[0], (N, D), F64),
                "weight_hh_l0": jr.normal(k[1], (N, N), F64),
                "bias_ih_l0": jr.normal(k[2], (N,), F64),
                "bias_hh_l0": jr.normal(k[3], (N,), F64)}

    convert = lambda sd: interop.from_torch(sd, nonlinearity=nonlinearity)[1]  # noqa: E731
    batched = jax.vmap(lambda k: convert(state(k)))(keys)
    looped = [convert(state(k)) for k in keys]
    _assert_trees_equal(batched, jax.tree_util.tree_map(lambda *a: jnp.stack(a), *looped))
    _assert_trees_equal(jax.jit(convert)(state(keys[0])), looped[0])
    sd = state(keys[0])
    np.testing.assert_array_equal(looped[0]["b"], sd["bias_ih_l0"] + sd["bias_hh_l0"])


# -- grad: a measured exponent's gradient reaches the framework's variables ------------


def _inputs():
    return jr.normal(jr.key(3), (T, D), F64)


def _assert_grad_matches_central_differences(f, grads, point, directions):
    """<grad f, u> against (f(x + h u) - f(x - h u)) / 2h, one direction per leaf (so a
    gradient routed to the wrong leaf cannot cancel out)."""
    for i, u in enumerate(directions):
        plus = f(jax.tree_util.tree_map(lambda x, d: x + FD_STEP * d, point, u))
        minus = f(jax.tree_util.tree_map(lambda x, d: x - FD_STEP * d, point, u))
        fd = (plus - minus) / (2 * FD_STEP)
        ad = sum(jnp.vdot(g, d) for g, d in zip(jax.tree_util.tree_leaves(grads),
                                                jax.tree_util.tree_leaves(u)))
        assert abs(float(ad)) > 1e-6, f"leaf {i}: gradient vanishes ({ad})"
        np.testing.assert_allclose(float(ad), float(fd), rtol=FD_RTOL,
                                   err_msg=f"direction {i}")


def _leaf_directions(tree, key):
    """One random unit direction per leaf of ``tree``, zero on the other leaves."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    out = []
    for i, k in enumerate(jr.split(key, len(leaves))):
        u = [jnp.zeros_like(v) for v in leaves]
        d = jr.normal(k, leaves[i].shape, F64)
        u[i] = d / jnp.linalg.norm(d)
        out.append(jax.tree_util.tree_unflatten(treedef, u))
    return out


@pytest.mark.parametrize("name", ["SimpleCell", "GRUCell"])
def test_grad_of_lyapunov_exponent_through_from_flax(name):
    assert jax.config.jax_enable_x64  # the conftest's float64
    module, init = _linen(name)
    variables = init(_keys()[0])
    xs = _inputs()

    @jax.jit
    def lambda_max(v):
        cell, params = interop.from_flax(module, v)
        return gradspec.lyapunov_spectrum(cell, params, xs, k=1)[0]

    grads = jax.grad(lambda_max)(variables)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(variables)
    _assert_grad_matches_central_differences(
        lambda_max, grads, variables, _leaf_directions(variables, jr.key(11))
    )


def test_grad_of_lyapunov_exponent_through_from_equinox():
    eqx = pytest.importorskip("equinox")
    module = eqx.nn.GRUCell(D, N, dtype=F64, key=_keys()[0])
    arrays, static = eqx.partition(module, eqx.is_array)
    xs = _inputs()

    @jax.jit
    def lambda_max(a):
        cell, params = interop.from_equinox(eqx.combine(a, static))
        return gradspec.lyapunov_spectrum(cell, params, xs, k=1)[0]

    grads = jax.grad(lambda_max)(arrays)
    _assert_grad_matches_central_differences(
        lambda_max, grads, arrays, _leaf_directions(arrays, jr.key(12))
    )
