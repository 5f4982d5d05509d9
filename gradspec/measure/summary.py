r"""One jittable measurement of a network along its inputs: :func:`measurement`.

Everything :func:`gradspec.diagnose` and :func:`gradspec.predict` put into words, as a
pytree of arrays, so it runs under ``jax.jit``, ``jax.vmap`` and ``jax.grad`` (inside a
training step, over seeds, or to optimise an initialization):

- ``lyapunov``: the top exponent along each sequence,
  :math:`\lambda_1 = \frac{1}{n} \sum_{t} \log \|J_t q_{t-1}\|` over the steps after the
  warm-up and before the state first stops being finite (an unbounded ReLU/linear orbit
  overflows; its growth up to then is the answer; a frame that collapses to exactly
  zero after the warm-up, e.g. through dead relu units, gives :math:`-\infty`; inside
  the warm-up it is part of the transient), from the random start frame of
  :func:`gradspec.lyapunov_spectrum`;
- ``profile``: :func:`gradspec.gradient_profile` with the default readout, and its
  slope ``profile_rate`` (:func:`gradspec.profile_rate`);
- with a ``readout`` (the model's own, (N_out,) or (M, N_out)): ``loss_profile``
  :math:`\log\|R\,P\,J_T \cdots J_{T-k+1}\|_F` and its slope ``loss_rate``, the rate the
  loss sees.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._checks import check_int, check_state_vector
from .._precision import full_precision
from ._inputs import check_trajectory_inputs
from .jacobians import Method, _states, default_readout, profile_rate, readout_profile, state_readout
from .spectra import _frame_sweeps, start_frame

__all__ = ["Measurement", "measurement"]


class Measurement(NamedTuple):
    """What :func:`measurement` returns; per sequence (a leading B axis for a batch)."""

    lyapunov: jax.Array  # top exponent, natural log per step
    steps: jax.Array  # steps averaged into it (int)
    finite: jax.Array  # whether the state stayed finite over the whole run (bool)
    profile: jax.Array  # (T + 1,) log ||dL/dh_{T-k}||, default readout
    profile_rate: jax.Array  # its slope in k
    loss_profile: jax.Array | None = None  # (T + 1,) with the given readout
    loss_rate: jax.Array | None = None  # its slope in k


@functools.partial(jax.jit, static_argnames=("cell", "warmup"))
@full_precision
def _top_exponent(cell, params, xs, h0, q0, warmup):
    hs, prev = _states(cell, params, xs, h0)
    forward, _ = _frame_sweeps(cell, params, xs, prev, "auto")
    _, logd = forward(q0)
    states_finite = jnp.isfinite(hs).all(1)
    alive = jnp.cumprod(states_finite.astype(jnp.int32)).astype(bool)  # before overflow
    # Discard the warm-up, but never more than a quarter of the finite steps.
    window = alive & (jnp.arange(xs.shape[0]) >= jnp.minimum(warmup, alive.sum() // 4))
    growth = logd[:, 0]
    counted = window & jnp.isfinite(growth)
    n = counted.sum()
    lam = jnp.where(counted, growth, 0.0).sum() / jnp.maximum(n, 1).astype(logd.dtype)
    # The frame collapsed to exactly zero after the warm-up (every path through the step
    # has a zero derivative: dead relu units) while the state stayed finite: the product
    # over the window is exactly zero, lambda_1 = -inf. A collapse inside the warm-up
    # (a start at h = 0 through zero inputs) is part of the transient it discards.
    collapsed = jnp.any(window & (growth == -jnp.inf))
    return jnp.where(collapsed, -jnp.inf, lam), n, states_finite.all()


def measurement(cell, params, xs, h0=None, *, readout=None, warmup: int | None = None,
                key=None, method: Method = "auto") -> Measurement:
    r"""Top exponent, gradient profile and (with a readout) the loss's rate, as arrays.

    Args:
        cell, params: the network.
        xs: one sequence (T, D) or a batch (B, T, D).
        h0: the start state: None (:func:`gradspec.start_state` for every sequence),
            (S,) for every sequence, or (B, S), one per sequence.
        readout: the model's readout on the visible output (N_out,) / (M, N_out) or on
            the state, as in :func:`gradspec.gradient_profile`; None: no loss fields.
        warmup: leading steps left out of ``lyapunov`` (T // 10 when None; never more
            than a quarter of the finite steps).
        key: PRNG key of the start frames, one per sequence drawn from it; None: the
            fixed frame of :func:`gradspec.lyapunov_spectrum` for every sequence.
        method: ``"auto"`` (closed form when the cell has one) or ``"autodiff"``.

    Returns:
        A :class:`Measurement`; every field has a leading B axis for a batch.

    Examples:
        >>> import jax, jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.RNN("linear")
        >>> params = {"W_hh": 0.9 * jnp.eye(3), "W_xh": jnp.zeros((3, 1)), "b": jnp.zeros(3)}
        >>> m = jax.jit(lambda p: gradspec.measurement(cell, p, jnp.zeros((50, 1))))(params)
        >>> round(float(m.lyapunov), 4), round(float(m.profile_rate), 4)  # log 0.9
        (-0.1054, -0.1054)
    """
    batch = np.ndim(xs) == 3
    seqs = xs if batch else xs[None]
    per_sequence = h0 is not None and np.ndim(h0) == 2
    cell, first, start = check_trajectory_inputs(
        cell, params, seqs[0], h0[0] if per_sequence else h0)
    dtype, (B, T), size = first.dtype, np.shape(seqs)[:2], start.shape[0]
    seqs = jnp.asarray(seqs, dtype)
    if per_sequence:
        if np.shape(h0)[0] != B:
            raise ValueError(f"`h0` must have shape ({size},) or ({B}, {size}) (one per "
                             f"sequence); got {np.shape(h0)}.")
        starts = jax.vmap(lambda h: check_state_vector("h0", h, size, dtype))(jnp.asarray(h0))
    else:
        starts = jnp.broadcast_to(start, (B, size))
    warmup = T // 10 if warmup is None else check_int("warmup", warmup, 0, T - 1)
    if key is None:
        q0 = jnp.broadcast_to(start_frame(None, size, 1, dtype), (B, size, 1))
    else:
        q0 = jax.vmap(lambda k: start_frame(k, size, 1, dtype))(jr.split(key, B))
    lam, steps, finite = jax.vmap(_top_exponent, in_axes=(None, None, 0, 0, 0, None))(
        cell, params, seqs, starts, q0, warmup)

    def profiles(rows):
        return jax.vmap(lambda x, h: readout_profile(cell, params, x, h, rows, method))(
            seqs, starts)

    prof = profiles(default_readout(cell, size, dtype))
    fields = dict(lyapunov=lam, steps=steps, finite=finite, profile=prof,
                  profile_rate=profile_rate(prof))
    if readout is not None:
        loss = profiles(state_readout(cell, readout, size, dtype))
        fields.update(loss_profile=loss, loss_rate=profile_rate(loss))
    out = Measurement(**fields)
    return out if batch else jax.tree_util.tree_map(lambda a: a[0], out)
