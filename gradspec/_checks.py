"""Input checks at the API boundary: clear errors before anything is traced.

Shape checks work under ``jax.vmap`` too (they see the per-example shape); value checks
(NaN/inf) run only on concrete arrays, since a tracer has no values to look at.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np



def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_finite(name: str, x) -> None:
    if is_concrete(x) and not np.isfinite(np.asarray(x)).all():
        raise ValueError(f"`{name}` must be finite; it contains NaN or inf.")


def check_floating(name: str, x) -> None:
    if isinstance(x, (str, bytes)) or (isinstance(x, np.ndarray) and x.dtype.kind in "OSU"):
        raise TypeError(f"`{name}` must be a floating array; got {type(x).__name__} "
                        f"{x!r:.60}.")
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


def check_state_vector(name: str, v, size: int, dtype) -> jax.Array:
    """A floating, finite vector of shape (size,) (h0, a readout), cast to ``dtype``."""
    check_floating(name, v)
    if np.shape(v) != (size,):
        raise ValueError(f"`{name}` must have shape ({size},) (state size S); got {np.shape(v)}.")
    check_finite(name, v)
    return jnp.asarray(v, dtype)


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
