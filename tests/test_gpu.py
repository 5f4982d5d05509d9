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


def test_product_singular_values_match_cpu():
    # cuSOLVER's QR against LAPACK's, float32, over a 300-step product whose singular
    # values span ~500 decades. Each backend stops once two half-sweeps agree to
    # sqrt(eps) (1 + max|log s|) (the library's rtol), so the two may differ by twice
    # that (first seen on an H100: 0.23 at log s = -1231, where 2 sqrt(eps) 1232 = 0.85);
    # the top value, which no later sweep changes, agrees to rounding.
    acc, cpu = _accelerator(), jax.devices("cpu")[0]
    cell = gradspec.cells.RNN("tanh")
    params = cell.init(jr.key(2), 64, 4, dtype=jnp.float32)
    xs = jr.normal(jr.key(3), (300, 4), jnp.float32)
    out = {
        d.platform: np.asarray(
            gradspec.product_singular_values(cell, *jax.device_put((params, xs), d))
        )
        for d in (acc, cpu)
    }
    got, ref = out[acc.platform], out["cpu"]
    scale = 1.0 + np.max(np.abs(ref))
    np.testing.assert_allclose(got, ref, atol=2 * np.sqrt(np.finfo(np.float32).eps) * scale)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4)


def test_full_precision_on_accelerator():
    # gradspec's kernels trace at "highest": against the float64 CPU reference the
    # accelerator's float32 profile is off by float32 rounding (~1e-5 per step, 1e-3 over
    # 1000 steps), not by TF32's 10-bit mantissa.
    acc, cpu = _accelerator(), jax.devices("cpu")[0]
    cell = gradspec.cells.RNN("tanh")
    params = cell.init(jr.key(4), 256, 4, dtype=jnp.float32)
    xs = jr.normal(jr.key(5), (1000, 4), jnp.float32)
    p64, x64 = jax.device_put(jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), (params, xs)), cpu)
    ref = np.asarray(gradspec.gradient_profile(cell, p64, x64))
    got = np.asarray(gradspec.gradient_profile(cell, *jax.device_put((params, xs), acc)))
    np.testing.assert_allclose(got, ref, atol=2e-3)


def test_training_runs_on_accelerator():
    # The compiled optax loop on the accelerator: same data stream and init as on the CPU,
    # so the loss curves agree up to float32 (and, for training, TF32) rounding.
    acc, cpu = _accelerator(), jax.devices("cpu")[0]
    config = gradspec.TrainConfig(cell="lstm", hidden=32, task="adding", T=20, batch=16, steps=20)
    losses = {}
    for d in (acc, cpu):
        with jax.default_device(d):
            losses[d.platform] = np.asarray(gradspec.train(config, progress=False).loss)
    assert np.all(np.isfinite(losses[acc.platform]))
    np.testing.assert_allclose(losses[acc.platform], losses["cpu"], rtol=2e-2)
