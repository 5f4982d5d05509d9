"""Input checks shared by the theory modules: the nonlinearity, the result dtype and
scalar scales (standard deviations, gains)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import is_concrete
from .._nonlinearities import Nonlinearity, check_nonlinearity


def _check_nonlinearity(nonlinearity) -> Nonlinearity:
    check_nonlinearity(nonlinearity)  # a known name or a callable
    if isinstance(nonlinearity, str):
        return nonlinearity
    probe = jax.ShapeDtypeStruct((3,), jnp.zeros(()).dtype)
    try:
        out = jax.eval_shape(nonlinearity, probe)
    except Exception as err:  # the user's function failed: say which argument
        raise TypeError(
            f"`nonlinearity` must map an array to an array elementwise; calling it on "
            f"a (3,) array raised {type(err).__name__}: {err}"
        ) from err
    if getattr(out, "shape", None) != (3,):
        raise ValueError(
            "`nonlinearity` must be elementwise (output shape = input shape); "
            f"got shape {getattr(out, 'shape', None)} for a (3,) input."
        )
    return nonlinearity


def _float_dtype(**values) -> jnp.dtype:
    """The dtype the result follows: that of the array arguments (the widest if they
    differ), the default float dtype when all are Python numbers."""
    dtypes = []
    for name, value in values.items():
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"`{name}` must be a real number; got {value!r}.")
        if isinstance(value, (int, float)):  # weakly typed: follows the others
            continue
        dtype = jnp.result_type(value)
        if jnp.issubdtype(dtype, jnp.floating):
            dtypes.append(dtype)
        elif not jnp.issubdtype(dtype, jnp.integer):
            raise TypeError(
                f"`{name}` must be a real number or float array; got {dtype}."
            )
    if not dtypes:
        return jnp.zeros(()).dtype
    return functools.reduce(np.promote_types, dtypes)


def _check_scale(name: str, value, dtype, *, positive: bool = False) -> jax.Array:
    """A scalar standard deviation / gain: shape (), finite, >= 0 (> 0 if positive)."""
    if np.ndim(value) != 0:
        raise ValueError(
            f"`{name}` must be a scalar (use jax.vmap over a grid); "
            f"got shape {np.shape(value)}."
        )
    if is_concrete(value):
        v = float(value)
        if not math.isfinite(v) or v < 0 or (positive and v == 0):
            bound = "> 0" if positive else ">= 0"
            raise ValueError(
                f"`{name}` must be a finite number {bound}; got {value!r}."
            )
    return jnp.asarray(value).astype(dtype)
