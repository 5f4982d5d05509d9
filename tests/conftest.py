"""Strict numerics for every test (as Equinox does): float64 available, no silent dtype
or rank promotion, so a float32 input that comes back float64 (or vice versa) fails."""

import jax
import jax.random as jr
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    """A fresh PRNG key per call, deterministic per test."""
    keys = iter(jr.split(jr.key(0), 10_000))
    return lambda: next(keys)
