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


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_code():
    """Drop JAX's compiled executables after every test module. The suite compiles
    thousands of programs in one process; each holds memory mappings of its machine code,
    and two full runs at ~60% of the suite died inside XLA's compiler (a segfault and an
    abort) as the process neared the kernel's vm.max_map_count (65530). Recompiling per
    module costs a little time and keeps the count bounded."""
    yield
    jax.clear_caches()
