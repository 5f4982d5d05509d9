"""Strict numerics for every test (as Equinox does): float64 available, no silent dtype
or rank promotion, so a float32 input that comes back float64 (or vice versa) fails."""

import os

import jax
import jax.random as jr
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

#: The default selection (pyproject's addopts).
DEFAULT_SELECTION = "not slow and not gpu"


def pytest_configure(config):
    """The default suite compiles at XLA's CPU optimisation level 0. Compiling, not
    computing, is most of its time: a test compiles its programs and runs them once on
    small inputs, and level 0 compiles them ~1.5x faster (tests/test_spectra.py: 115 ->
    74 s, one core). The arithmetic is the same up to rounding (instruction selection
    and order), which every tolerance allows for, as it allows for AVX2 vs AVX-512.
    Subprocesses inherit it. ``-m slow`` / ``-m gpu`` and a level already in XLA_FLAGS
    keep theirs (``XLA_FLAGS=--xla_backend_optimization_level=3`` tests the default).
    Set before any computation: XLA reads XLA_FLAGS when its CPU backend starts."""
    flags = os.environ.get("XLA_FLAGS", "")
    if config.option.markexpr == DEFAULT_SELECTION and "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_backend_optimization_level=0").strip()


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
