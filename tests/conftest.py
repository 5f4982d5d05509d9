"""Strict numerics for every test (as Equinox does): float64 available, no silent dtype
or rank promotion, so a float32 input that comes back float64 (or vice versa) fails."""

import os

# Compiling, not computing, is most of this suite's time: a test compiles its programs
# and runs them once on small inputs. XLA's CPU backend at optimisation level 0 compiles
# them ~1.5x faster (tests/test_spectra.py: 115 -> 74 s, one core). The arithmetic is the
# same up to rounding (instruction selection and order), which every tolerance here
# allows for, as it allows for AVX2 vs AVX-512. Subprocesses inherit it. A level already
# in XLA_FLAGS wins: XLA_FLAGS=--xla_backend_optimization_level=3 tests the default.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402  (after XLA_FLAGS: read when the CPU backend starts)
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
    thousands of programs in one process, and two full runs died inside XLA's CPU
    compiler at ~60% of the suite (a segfault and an abort, with two suites sharing 2
    cores). The cause is not confirmed; freeing compiled code between modules bounds
    the process's memory and mappings (3,300 maps, 1.7 GB RSS at 11% with it)."""
    yield
    jax.clear_caches()
