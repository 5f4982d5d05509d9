r"""Spectra and gradient profiles of step Jacobians you already have, from any model.

A model that is not a gradspec cell (any JAX function of the state, a model whose
Jacobians were saved to disk) still has step Jacobians
:math:`J_t = \partial h_{t+1} / \partial h_t`, e.g.

.. code-block:: python

    Js = jax.vmap(jax.jacrev(step, argnums=1))(params, hs[:-1], xs)   # (T, S, S)

Here ``Js[t]`` is :math:`\partial h_{t+1} / \partial h_t` (the convention of
:func:`gradspec.step_jacobians`). The functions of this module measure them with the
very code the cell path runs: ``Js`` is fed, one matrix per step, to a private linear
cell whose step is :math:`v_t = J_t v_{t-1}` (the tangent dynamics) and whose input at
step t is :math:`J_t`; the same QR sweeps (:func:`gradspec.lyapunov_spectrum`,
:func:`gradspec.product_singular_values`) and the same renormalised reverse scan
(:func:`gradspec.gradient_profile`) then run on it. So the results equal the cell
path's on the same Jacobians to rounding (1e-12 in float64, tested), and inherit their
accuracy statements.

Long T: the Lyapunov functions also take an iterable of (C, S, S) chunks (a generator
reading them from disk or computing them on the fly) and carry the frame from one chunk
to the next, so only one chunk is ever in memory (one compilation per chunk length).
The product's singular values need the whole product (their sweeps go forward and
backward) and the gradient profile runs backward in time: those take one array.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite, check_floating, check_int
from .._precision import full_precision
from ..cells import Cell
from .jacobians import readout_profile, state_readout
from .spectra import (
    _product_singular_values,
    default_rtol,
    lyapunov_sweep,
    resolve_frame,
)

__all__ = [
    "lyapunov_spectrum_from_jacobians",
    "local_exponents_from_jacobians",
    "product_singular_values_from_jacobians",
    "gradient_profile_from_jacobians",
]


@dataclasses.dataclass(frozen=True)
class _Tangent(Cell):
    """The tangent dynamics :math:`v_t = J_t v_{t-1}` as a cell whose input at step t is
    :math:`J_t` (S, S): its step Jacobians are the given ones, exactly."""

    def step(self, params, state, x):
        return x @ state

    def jacobian(self, params, state, x):
        return x

    def jvp(self, params, state, x, tangents):
        return x @ tangents

    def vjp(self, params, state, x, cotangent):
        return cotangent @ x

    def step_and_residuals(self, params, state, x):
        return x @ state, x  # the reverse step needs J_t only

    def vjp_from_residuals(self, params, residuals, cotangent):
        return cotangent @ residuals


_TANGENT = _Tangent()


def _check_chunk(name: str, Js, size: int | None, dtype) -> jax.Array:
    """A floating, finite (C, S, S) array (S = ``size`` when given), as a JAX array of
    ``dtype`` (its own when None)."""
    check_floating(name, Js)
    shape = np.shape(Js)
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] == 0 or (
            size is not None and shape[1] != size):
        s = "S" if size is None else size
        raise ValueError(
            f"`{name}` must have shape (T, {s}, {s}) with T >= 1 (Js[t] = dh_(t+1)/dh_t; "
            f"for chunks, an iterable of (C, {s}, {s}) arrays); got {shape}.")
    check_finite(name, Js)
    return jnp.asarray(Js, dtype)


def _chunks(Js):
    """(first chunk, iterator over the rest, is_array): one array is one chunk."""
    if hasattr(Js, "shape") and hasattr(Js, "dtype"):
        return _check_chunk("Js", Js, None, None), iter(()), True
    if not isinstance(Js, Iterable) or isinstance(Js, (str, bytes)):
        raise TypeError("`Js` must be an array (T, S, S) or an iterable of (C, S, S) "
                        f"chunks; got {type(Js).__name__}.")
    it = iter(Js)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("`Js` must hold at least one chunk; got an empty iterable.") from None
    return _check_chunk("Js[0]", first, None, None), it, False


def _one_array(Js) -> jax.Array:
    if not (hasattr(Js, "shape") and hasattr(Js, "dtype")):
        raise TypeError(f"`Js` must be one (T, S, S) array here (the computation runs over "
                        f"the whole product); got {type(Js).__name__}.")
    return _check_chunk("Js", Js, None, None)


@jax.jit
@full_precision
def _chunk_sweep(q, Js, skip):
    """The sweep over one chunk: (Q_C, sum of log|diag R_t| over t >= skip, the local
    exponents (C, k))."""
    zero = jnp.zeros(Js.shape[1], Js.dtype)  # v_0 = 0: the tangent states stay exactly 0
    q, logd = lyapunov_sweep(_TANGENT, None, Js, zero, q, "auto")
    kept = (jnp.arange(Js.shape[0]) >= skip)[:, None]
    return q, jnp.where(kept, logd, 0).sum(0), logd


def _sweep_chunks(Js, k, warmup, frame, key, local):
    """Run the frame through every chunk: (sum of kept log|R_ii|, kept steps, steps,
    Q_T, local exponents (T, k) or None)."""
    first, rest, is_array = _chunks(Js)
    size, dtype = first.shape[1], first.dtype
    warmup = check_int("warmup", warmup, 0, first.shape[0] - 1 if is_array else None)
    q = resolve_frame(key, frame, size, k, dtype)
    total, kept, seen, logs = jnp.zeros(q.shape[1], dtype), 0, 0, []
    chunk, i = first, 0
    while chunk is not None:
        steps = chunk.shape[0]
        skip = min(max(warmup - seen, 0), steps)  # the warm-up's part in this chunk
        q, part, logd = _chunk_sweep(q, chunk, skip)
        total, kept, seen = total + part, kept + steps - skip, seen + steps
        if local:
            logs.append(logd)
        i += 1
        chunk = next(rest, None)
        if chunk is not None:
            chunk = _check_chunk(f"Js[{i}]", chunk, size, dtype)
    if kept == 0:
        raise ValueError(f"`warmup` must be < T = {seen} (the chunks' total length); "
                         f"got {warmup}.")
    return total, kept, q, (jnp.concatenate(logs) if local else None)


def lyapunov_spectrum_from_jacobians(
    Js,
    *,
    k: int | None = None,
    warmup: int = 0,
    frame=None,
    return_vectors: bool = False,
    key=None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""The k largest Lyapunov exponents of given step Jacobians (natural log per step).

    Benettin's QR method as in :func:`gradspec.lyapunov_spectrum`,

    .. math::
        J_t Q_{t-1} = Q_t R_t, \qquad
        \lambda_i = \frac{1}{T - w} \sum_{t > w} \log |(R_t)_{ii}|,

    with ``Js[t-1]`` as :math:`J_t`, the same start frame (``key``/``frame``) and the
    same code, so on :func:`gradspec.step_jacobians` of a cell it returns that cell's
    :func:`gradspec.lyapunov_spectrum` to rounding.

    Args:
        Js: step Jacobians, shape (T, S, S), ``Js[t]`` = :math:`\partial h_{t+1}/\partial
            h_t`; or an iterable of chunks (C, S, S), consecutive in time (chunk lengths
            may differ; each new length compiles once), the frame carried across them.
        k: number of exponents, 1 <= k <= S; all S when None (or the frame's k).
        warmup: leading steps excluded from the average, counted across chunks.
        frame: explicit orthonormal start frame (S, k), as in
            :func:`gradspec.lyapunov_spectrum`; exclusive with ``key``.
        return_vectors: also return the final frame :math:`Q_T` (S, k), the backward
            Lyapunov vectors at the end (see :func:`gradspec.lyapunov_spectrum`).
        key: PRNG key of the random start frame; ``key(FRAME_SEED)`` when None.

    Returns:
        Shape (k,), descending; ``(exponents, Q_T)`` with ``return_vectors``.

    Raises:
        ValueError: ``Js`` (or a chunk) not (T, S, S) or not finite; ``warmup`` >= T;
            a bad ``frame`` or ``k``.
        TypeError: ``Js`` neither an array nor an iterable, or not floating.

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> Js = jnp.broadcast_to(jnp.diag(jnp.array([2.0, 0.5])), (100, 2, 2))
        >>> lam = gradspec.lyapunov_spectrum_from_jacobians(Js, warmup=10)
        >>> [round(float(v), 4) for v in lam]  # log 2, log 0.5
        [0.6931, -0.6931]
        >>> chunks = (Js[i:i + 25] for i in range(0, 100, 25))  # e.g. read from disk
        >>> lam = gradspec.lyapunov_spectrum_from_jacobians(chunks, warmup=10)
        >>> [round(float(v), 4) for v in lam]
        [0.6931, -0.6931]
    """
    total, kept, q, _ = _sweep_chunks(Js, k, warmup, frame, key, local=False)
    lam = jnp.sort(total / kept)[::-1]
    return (lam, q) if return_vectors else lam


def local_exponents_from_jacobians(
    Js, *, k: int | None = None, frame=None, key=None
) -> jax.Array:
    r"""Finite-time (local) exponents of given step Jacobians: :math:`\log|(R_t)_{ii}|`
    of the QR sweep, shape (T, k), as :func:`gradspec.measure.dynamics.local_exponents`
    for a cell. ``Js`` as in :func:`lyapunov_spectrum_from_jacobians` (chunks are
    concatenated in time).

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> Js = jnp.broadcast_to(0.5 * jnp.eye(2), (3, 2, 2))
        >>> ell = gradspec.local_exponents_from_jacobians(Js)
        >>> ell.shape, [round(float(v), 4) for v in ell[:, 0]]  # log 0.5 every step
        ((3, 2), [-0.6931, -0.6931, -0.6931])
    """
    return _sweep_chunks(Js, k, 0, frame, key, local=True)[3]


def product_singular_values_from_jacobians(
    Js, *, max_sweeps: int = 30, rtol: float | None = None
) -> jax.Array:
    r"""Log singular values of :math:`P_T = J_T \cdots J_1` from given step Jacobians.

    The alternating QR sweeps of :func:`gradspec.product_singular_values` (same code,
    the general vjp path, with its accuracy statement: in float64 ~1e-12 relative on
    spectra spanning hundreds of nats), never forming :math:`P_T`.

    Args:
        Js: step Jacobians, one array (T, S, S) (the sweeps run forward and backward
            over the whole product, so no chunks).
        max_sweeps, rtol: as in :func:`gradspec.product_singular_values`.

    Returns:
        Shape (S,), descending, natural log; exactly ``-inf`` beyond the rank that
        exactly-zero rows or columns of a :math:`J_t` impose.

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> Js = jnp.broadcast_to(jnp.array([[2.0, 1.0], [0.0, 0.5]]), (1, 2, 2))
        >>> [round(float(v), 4) for v in gradspec.product_singular_values_from_jacobians(Js)]
        [0.8099, -0.8099]
    """
    check_int("max_sweeps", max_sweeps, 1)
    Js = _one_array(Js)
    rtol = default_rtol(Js.dtype) if rtol is None else rtol
    zero = jnp.zeros(Js.shape[1], Js.dtype)
    return _product_singular_values(_TANGENT, None, Js, zero, "auto", max_sweeps, rtol)


def gradient_profile_from_jacobians(Js, readout) -> jax.Array:
    r"""Log gradient norm at every lag from given step Jacobians:

    .. math::
        \ell_k = \log \| r^\top J_T J_{T-1} \cdots J_{T-k+1} \|, \qquad k = 0, \dots, T,

    by the renormalised reverse scan of :func:`gradspec.gradient_profile` (same code;
    finite at any T in float32). A readout matrix R (M, S) gives the Frobenius norm of
    :math:`R\, J_T \cdots J_{T-k+1}`.

    Args:
        Js: step Jacobians, one array (T, S, S), ``Js[t]`` = :math:`\partial
            h_{t+1}/\partial h_t`.
        readout: r, shape (S,), or M readout rows (M, S): :math:`\partial L/\partial h_T`.

    Returns:
        Shape (T + 1,), natural log; entry k is the lag-k gradient norm.

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> Js = jnp.broadcast_to(0.5 * jnp.eye(2), (3, 2, 2))
        >>> prof = gradspec.gradient_profile_from_jacobians(Js, jnp.array([1.0, 0.0]))
        >>> [round(float(v), 4) for v in prof]  # k log 0.5
        [0.0, -0.6931, -1.3863, -2.0794]
    """
    Js = _one_array(Js)
    size, dtype = Js.shape[1], Js.dtype
    readout = state_readout(_TANGENT, readout, size, dtype)
    return readout_profile(_TANGENT, None, Js, jnp.zeros(size, dtype), readout, "auto")
