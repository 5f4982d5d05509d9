"""Shared test helpers: tolerances per dtype and tree comparisons."""

import jax
import jax.numpy as jnp
import numpy as np

# Rounding of O(S) flops per step accumulated over T steps: float64 leaves ~1e-12 relative
# room, float32 ~1e-5 (eps 1.2e-7 times a few hundred operations of growth).
RTOL = {jnp.dtype("float32"): 1e-5, jnp.dtype("float64"): 1e-12}


def tree_allclose(a, b, rtol=1e-7, atol=0.0):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(
        np.allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol) for x, y in zip(la, lb)
    )
