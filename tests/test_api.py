"""Public surface: every exported name resolves; dtype follows the input everywhere."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import cells

from .helpers import EPS64


def test_all_names_resolve():
    for name in gradspec.__all__:
        assert getattr(gradspec, name) is not None, name


def test_import_does_not_pull_optional_frameworks():
    code = "import sys, gradspec; print(sorted({'torch','flax','equinox'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _measurements():
    """Every public measurement as f(cell, params, xs) -> array(s)."""
    return {
        "trajectory": gradspec.trajectory,
        "step_jacobians": gradspec.step_jacobians,
        "gradient_profile": gradspec.gradient_profile,
        "product_singular_values": gradspec.product_singular_values,
        "lyapunov_spectrum": gradspec.lyapunov_spectrum,
    }


@pytest.mark.parametrize("name", list(_measurements()))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_follows_params(name, dtype, getkey):
    cell = cells.GRU()
    params = cell.init(getkey(), 4, 2, dtype=dtype)
    xs = jr.normal(getkey(), (6, 2), dtype)
    out = _measurements()[name](cell, params, xs)
    assert out.dtype == dtype, name


@pytest.mark.parametrize("name", list(_measurements()))
def test_vmap_equals_loop(name, getkey):
    cell = cells.RNN("tanh")
    params = cell.init(getkey(), 4, 2, recurrent_init=gradspec.init.gaussian(1.5), dtype=jnp.float64)
    xs = jr.normal(getkey(), (3, 6, 2), jnp.float64)
    fn = _measurements()[name]
    batched = jax.vmap(lambda x: fn(cell, params, x))(xs)
    looped = np.stack([fn(cell, params, x) for x in xs])
    # vmap reorders sums: each of T = 6 steps sums S = 4 products of O(1) terms (states,
    # Jacobians) or adds a log of the size of the results (profiles, spectra), so the bound
    # is eps per term: 16 eps T (S + max|value|) (seen <= 64 eps against ~1800 eps).
    T, S = xs.shape[1], params["W_hh"].shape[0]
    atol = 16 * EPS64 * T * (S + np.abs(looped).max())
    np.testing.assert_allclose(batched, looped, rtol=0, atol=atol)
