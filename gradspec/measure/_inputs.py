r"""What every trajectory measurement takes: the input checks and the one default start.

**The default start state.** Every measurement that follows a trajectory
(:func:`gradspec.trajectory`, :func:`gradspec.gradient_profile`,
:func:`gradspec.lyapunov_spectrum`, :func:`gradspec.product_singular_values`,
:func:`gradspec.diagnose`, the plots) starts, when ``h0`` is not given, from

.. math::  h_0 = F^{R}(z), \qquad z \sim \mathcal N(0, 0.5^2 I) \text{ drawn with key } \texttt{START\_SEED},

the state reached after :data:`RELAX_STEPS` undriven steps :math:`F(h) = \mathrm{step}(h, 0)`
from a fixed-key random state (drawn in float32 and cast, so float32 and float64 runs start
from the same point). A relaxed random state lies on the network's attractor, not on a
fixed point that the undriven dynamics leave (``h = 0`` is one for every bias-free cell:
tanh at gain 1.5 measures :math:`\log\rho(W) \approx +0.4` there instead of its chaotic
exponent :math:`\approx +0.07`). ``h0 = 0`` is used only when passed.

A relaxation step is kept only while the state stays finite and
:math:`\max_i |h_i| \le` :data:`RELAX_CAP`: an exploding linear or relu network stops
relaxing at the cap instead of overflowing before the measurement starts.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax

from .._precision import full_precision
from .._checks import check_finite, check_floating, check_state_vector
from ..cells import StepCell, as_cell, check_params

#: Key of the random state the default start relaxes from.
START_SEED = 1
#: Undriven steps from the random state to the default start state.
RELAX_STEPS = 100
#: Largest entry a relaxation step may reach and still be kept.
RELAX_CAP = 1e4


@functools.partial(jax.jit, static_argnames=("cell", "size", "inputs"))
@full_precision
def _relax(cell, params, z, size, inputs):
    x0 = jnp.zeros((inputs,), z.dtype)

    def body(h, _):
        new = cell.step(params, h, x0)
        keep = jnp.all(jnp.isfinite(new)) & (jnp.max(jnp.abs(new)) <= RELAX_CAP)
        return jnp.where(keep, new, h), None

    return lax.scan(body, z, None, length=RELAX_STEPS)[0]


def start_state(cell, params, inputs: int, dtype=None, *, key=None) -> jax.Array:
    """The default start state: :data:`RELAX_STEPS` undriven steps from a random state.

    Args:
        cell, params: the network.
        inputs: the input size D (the undriven steps are fed zeros of shape (D,)).
        dtype: the state's dtype; the params' dtype when None.
        key: PRNG key of the random state; ``key(START_SEED)`` when None (the default
            every measurement uses). A batch of keys, shape (n,), gives n start states
            by the same rule (``predict`` samples its trajectories so).

    Returns:
        Shape (S,), the state size of the cell; (n, S) for n keys.
    """
    cell = as_cell(cell)
    dtype = check_params(cell, params) if dtype is None else dtype
    size = cell.state_size(cell.hidden_size(params))
    key = jr.key(START_SEED) if key is None else key

    def one(k):
        z = (0.5 * jr.normal(k, (size,), jnp.float32)).astype(dtype)
        return _relax(cell, params, z, size, int(inputs))

    return one(key) if key.ndim == 0 else jax.vmap(one)(key)


def check_trajectory_inputs(cell, params, xs, h0):
    """Common checks of ``(cell, params, xs, h0)``.

    Returns ``(cell, xs, h0)`` with xs and h0 as arrays of the params' dtype (the dtype
    follows the user's params) and ``h0`` defaulting to :func:`start_state`.
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
    xs = jnp.asarray(xs, dtype)
    if isinstance(cell, StepCell):  # the user's step must keep the state's size
        out = jax.eval_shape(cell.step, params, jnp.zeros((size,), dtype), xs[0])
        if getattr(out, "shape", None) != (size,):
            raise ValueError(
                f"`step_fn` must return a state of shape ({size},) (StepCell size={size}); "
                f"it returned shape {getattr(out, 'shape', None)}.")
    if h0 is None:
        h0 = start_state(cell, params, inputs, dtype)
    else:
        h0 = check_state_vector("h0", h0, size, dtype)
    return cell, xs, h0
