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
    np.testing.assert_allclose(batched, looped, atol=1e-12)
