"""Accelerator checks (`make test-gpu`): the same numbers on the accelerator as on the CPU.

Skipped by default (marker `gpu`) and wherever JAX sees no GPU/TPU.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec

pytestmark = pytest.mark.gpu


def _accelerator():
    devices = [d for d in jax.devices() if d.platform != "cpu"]
    if not devices:
        pytest.skip("no accelerator visible to JAX")
    return devices[0]


@pytest.mark.parametrize("cell", [gradspec.cells.RNN("tanh"), gradspec.cells.LSTM()])
def test_measurements_match_cpu(cell):
    acc, cpu = _accelerator(), jax.devices("cpu")[0]
    params = cell.init(jr.key(0), 128, 4, dtype=jnp.float32)
    xs = jr.normal(jr.key(1), (1000, 4), jnp.float32)
    out = {}
    for device in (acc, cpu):
        p, x = jax.device_put((params, xs), device)
        out[device.platform] = (
            gradspec.gradient_profile(cell, p, x),
            gradspec.lyapunov_spectrum(cell, p, x, k=8, warmup=100),
        )
    # float32 over 1000 steps, different reduction orders on each backend: the log-norms
    # agree to ~1e-4 relative, the exponents (averages) to 1e-4 absolute.
    np.testing.assert_allclose(out[acc.platform][0], out["cpu"][0], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(out[acc.platform][1], out["cpu"][1], atol=1e-3)
