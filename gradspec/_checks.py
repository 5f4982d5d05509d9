"""Input checks at the API boundary: clear errors before anything is traced.

Shape checks work under ``jax.vmap`` too (they see the per-example shape); value checks
(NaN/inf) run only on concrete arrays, since a tracer has no values to look at.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .cells import Cell, StepCell, as_cell


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_finite(name: str, x) -> None:
    if is_concrete(x) and not np.isfinite(np.asarray(x)).all():
        raise ValueError(f"`{name}` must be finite; it contains NaN or inf.")


def check_floating(name: str, x) -> None:
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`{name}` must have a floating dtype (float32/float64); got {dtype}.")


def check_square_matrix(name: str, W) -> jax.Array:
    """A finite floating (N, N) matrix, as a JAX array."""
    check_floating(name, W)
    if np.ndim(W) != 2 or np.shape(W)[0] != np.shape(W)[1]:
        raise ValueError(f"`{name}` must be square (N, N); got {np.shape(W)}.")
    check_finite(name, W)
    return jnp.asarray(W)


def check_params(cell: Cell, params) -> jnp.dtype:
    """Validate ``params`` for ``cell``; return the dtype every computation follows."""
    cell.check_params(params)
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in flat:
        name = "params" + jax.tree_util.keystr(path)
        check_floating(name, leaf)
        check_finite(name, leaf)
    return jnp.result_type(*(leaf for _, leaf in flat)) if flat else jnp.zeros(()).dtype


def check_state_vector(name: str, v, size: int, dtype) -> jax.Array:
    """A floating, finite vector of shape (size,) (h0, a readout), cast to ``dtype``."""
    check_floating(name, v)
    if np.shape(v) != (size,):
        raise ValueError(f"`{name}` must have shape ({size},) (state size S); got {np.shape(v)}.")
    check_finite(name, v)
    return jnp.asarray(v, dtype)


def check_trajectory_inputs(cell, params, xs, h0):
    """Common checks of ``(cell, params, xs, h0)``.

    Returns ``(cell, xs, h0)`` with xs and h0 as arrays of the params' dtype (the dtype
    follows the user's params) and ``h0`` defaulting to zeros.
    """
    cell = as_cell(cell)
    dtype = check_params(cell, params)
    if isinstance(cell, StepCell):  # no weight layout to read the dtype from
        dtype = jnp.result_type(dtype, xs)
    xs = xs if isinstance(xs, jax.Array) else np.asarray(xs)
    check_floating("xs", xs)
    if np.ndim(xs) != 2:
        raise ValueError(
            f"`xs` must have shape (T, D) (one sequence; use jax.vmap for a batch); "
            f"got shape {np.shape(xs)}."
        )
    steps, inputs = np.shape(xs)
    if steps == 0:
        raise ValueError("`xs` must have at least one time step (T >= 1); got T = 0.")
    expected_inputs = cell.input_size(params)
    if expected_inputs is not None and inputs != expected_inputs:
        raise ValueError(
            f"`xs` must have shape (T, {expected_inputs}) to match the input weights; "
            f"got {np.shape(xs)}."
        )
    check_finite("xs", xs)
    size = cell.state_size(cell.hidden_size(params))
    h0 = jnp.zeros((size,), dtype) if h0 is None else check_state_vector("h0", h0, size, dtype)
    return cell, jnp.asarray(xs, dtype), h0


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; got {value!r}.")


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int; got {type(value).__name__}.")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be {bound}; got {value}.")
    return int(value)
