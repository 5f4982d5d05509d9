r"""Covariant Lyapunov vectors by Ginelli's method: :func:`covariant_lyapunov_vectors`.

The backward (Gram–Schmidt) vectors of :func:`gradspec.lyapunov_spectrum` are
orthonormal and depend on the basis; the covariant Lyapunov vectors (CLVs) are the
intrinsic directions of the dynamics: the Oseledets splitting, carried by the tangent
dynamics into itself, :math:`J_t v_{t-1,i} \propto v_{t,i}`, each growing on average at
its own exponent :math:`\lambda_i`. They are not orthogonal; their angles measure how
close the dynamics comes to a tangency (loss of hyperbolicity).

Ginelli et al. (2007): a forward Benettin sweep :math:`J_t Q_{t-1} = Q_t R_t` stores the
frames and the triangular factors; from an upper-triangular :math:`C_T` a backward pass

.. math::
    C_{t-1} = R_t^{-1} C_t \,\mathrm{diag}(n_t)^{-1}, \qquad
    n_{t,i} = \|(R_t^{-1} C_t)_{:,i}\|, \qquad
    V_t = Q_t C_t,

converges (backward in time, at the rates :math:`\lambda_i - \lambda_{i+1}`) to the
CLVs expressed in the Gram–Schmidt basis. Since
:math:`J_t V_{t-1} = Q_t R_t R_t^{-1} C_t \mathrm{diag}(n_t)^{-1} = V_t \mathrm{diag}(n_t)^{-1}`,
each CLV grows by :math:`\|J_t v_{t-1,i}\| = 1/n_{t,i}` in step t: the local covariant
exponents :math:`\gamma_{t,i} = -\log n_{t,i}`, whose time average is :math:`\lambda_i`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular

from .._checks import check_choice, check_int
from .._precision import full_precision
from ._inputs import check_trajectory_inputs
from .jacobians import Method, _states
from .spectra import _frame_maps, resolve_frame

__all__ = ["CovariantVectors", "covariant_lyapunov_vectors"]


class CovariantVectors(NamedTuple):
    r"""Covariant Lyapunov vectors on the steps :math:`w_f \le t \le T - w_b`
    (:func:`covariant_lyapunov_vectors`); n = T - w_f - w_b + 1 steps."""

    t: jax.Array  # (n,) int: the step of each row; row j is the tangent space at h_t
    vectors: jax.Array  # (n, S, k) unit columns v_{t,i}, sign arbitrary, i in sweep order
    local: jax.Array  # (n - 1, k) log ||J_t v_{t-1,i}||, t = w_f + 1 .. T - w_b
    exponents: jax.Array  # (k,) mean of `local` over its steps, natural log per step


@functools.partial(jax.jit, static_argnames=("cell", "method", "warmup", "backward_warmup"))
@full_precision
def _covariant(cell, params, xs, h0, q0, warmup, backward_warmup, method):
    jvp = _frame_maps(cell, method)[0]
    prev = _states(cell, params, xs, h0)[1]

    def forward(q, step):  # J_t Q_{t-1} = Q_t R_t
        q, r = jnp.linalg.qr(jvp(params, *step, q))
        return q, (q, r)

    _, (qs, rs) = lax.scan(forward, q0, (prev, xs))  # Q_t, R_t for t = 1..T

    def backward(c, r):  # C_{t-1} = R_t^{-1} C_t, columns normalised
        # An exactly annihilated direction, (R_t)_ii = 0, has no covariant vector: its
        # column and the later ones become NaN. A unit pivot in its place keeps the
        # solve of the earlier columns (zero in that row: C is upper triangular) exact.
        dead = jnp.diagonal(r) == 0
        b = solve_triangular(r + jnp.diag(dead.astype(r.dtype)), c, lower=False)
        b = jnp.where(jnp.cumsum(dead)[None, :] > 0, jnp.nan, b)
        norm = jnp.linalg.norm(b, axis=0)
        return b / norm[None, :], (c, -jnp.log(norm))

    k = q0.shape[1]
    steps = xs.shape[0]
    # C_T = I (upper triangular, nonzero diagonal: every column has a component along
    # its CLV).
    c0, (cs, gammas) = lax.scan(backward, jnp.eye(k, dtype=q0.dtype), rs, reverse=True)
    # reverse=True stacks outputs in time order: cs[t-1] = C_t, gammas[t-1] = gamma_t.
    cs = jnp.concatenate([c0[None], cs])  # C_0 .. C_T
    qs = jnp.concatenate([q0[None], qs])  # Q_0 .. Q_T
    last = steps - backward_warmup
    vectors = jnp.einsum("tsk,tkj->tsj", qs[warmup:last + 1], cs[warmup:last + 1])
    local = gammas[warmup:last]  # gamma_t, t = warmup + 1 .. last
    return jnp.arange(warmup, last + 1), vectors, local, local.mean(0)


def covariant_lyapunov_vectors(
    cell,
    params,
    xs,
    h0=None,
    *,
    k: int | None = None,
    warmup: int | None = None,
    backward_warmup: int | None = None,
    method: Method = "auto",
    frame=None,
    key=None,
) -> CovariantVectors:
    r"""The k leading covariant Lyapunov vectors along a trajectory (Ginelli et al. 2007).

    A forward Benettin sweep from :math:`Q_0` stores :math:`J_t Q_{t-1} = Q_t R_t`
    (t = 1..T); a backward pass from :math:`C_T = I`,

    .. math::
        C_{t-1} = R_t^{-1} C_t\, \mathrm{diag}(n_t)^{-1}, \qquad V_t = Q_t C_t,

    with :math:`n_t` the column norms of :math:`R_t^{-1} C_t`, gives unit vectors that
    are covariant, :math:`J_t v_{t-1,i} = e^{\gamma_{t,i}} v_{t,i}` with
    :math:`\gamma_{t,i} = -\log n_{t,i}` (module doc). They are the CLVs once both
    passes have forgotten their starts: the first ``warmup`` steps align :math:`Q_t`
    with the backward Lyapunov vectors (at rates :math:`\lambda_i - \lambda_{i+1}`),
    the last ``backward_warmup`` steps align :math:`C_t` (at the same rates, backward
    in time); only the steps between are returned. The first k CLVs need only the
    leading k x k block of the R's, so ``k < S`` gives the same first k vectors.

    Cost: one sweep of :func:`gradspec.lyapunov_spectrum` plus T triangular solves of
    (k, k); memory O(T S k) (the frames are stored): split a long run into windows
    (``frame=`` continues a sweep) if that is too much.

    Args:
        cell, params, xs, h0: as in :func:`gradspec.trajectory`.
        k: number of vectors, 1 <= k <= S; all S when None (or the frame's k).
        warmup: forward transient :math:`w_f` (steps); ``T // 4`` when None.
        backward_warmup: backward transient :math:`w_b` (steps); ``T // 4`` when None.
            ``warmup + backward_warmup < T``.
        method: ``"auto"`` or ``"autodiff"``.
        frame, key: the start frame, as in :func:`gradspec.lyapunov_spectrum`.

    Returns:
        A :class:`CovariantVectors`: ``vectors`` (n, S, k) at steps
        ``t = w_f .. T - w_b`` (row j is the tangent space at the state :math:`h_t`,
        :math:`h_0` the start), columns in the sweep's order (the exponents' descending
        order once converged) with arbitrary signs; ``local`` (n - 1, k) the local
        covariant exponents; ``exponents`` (k,) their mean, the Lyapunov exponents per
        step (not sorted). A direction the dynamics annihilates exactly (a dead ReLU
        layer: :math:`(R_t)_{ii} = 0`) has no covariant vector, and its column and
        those after it come back NaN: ask for k below the rank.

    Raises:
        ValueError: ``warmup + backward_warmup >= T``; the checks of
            :func:`gradspec.lyapunov_spectrum`.

    References:
        Ginelli, Poggi, Turchi, Chaté, Livi, Politi (2007), PRL 99:130601. Kuptsov &
        Parlitz (2012), J. Nonlinear Sci. 22:727–762, arXiv:1105.5228.

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> A = jnp.array([[2.0, 3.0], [0.0, 0.5]])  # non-normal: eigenvectors not orthogonal
        >>> cell = gradspec.cells.RNN("linear")
        >>> params = {"W_hh": A, "W_xh": jnp.zeros((2, 1)), "b": jnp.zeros(2)}
        >>> clv = gradspec.covariant_lyapunov_vectors(cell, params, jnp.zeros((80, 1)))
        >>> v = clv.vectors[0]
        >>> [round(abs(float(x)), 4) for x in v[:, 1]]  # the eigenvector of 0.5: (-2, 1)
        [0.8944, 0.4472]
        >>> [round(float(x), 4) for x in clv.exponents]  # log 2, log 0.5
        [0.6931, -0.6931]
    """
    check_choice("method", method, ("auto", "autodiff"))
    cell, xs, h0 = check_trajectory_inputs(cell, params, xs, h0)
    steps = xs.shape[0]
    q0 = resolve_frame(key, frame, h0.shape[0], k, h0.dtype)
    warmup = steps // 4 if warmup is None else check_int("warmup", warmup, 0, steps - 1)
    backward_warmup = (steps // 4 if backward_warmup is None
                       else check_int("backward_warmup", backward_warmup, 0, steps - 1))
    if warmup + backward_warmup >= steps:
        raise ValueError(
            f"`warmup + backward_warmup` must be < T = {steps} (the steps left between "
            f"the two transients); got {warmup} + {backward_warmup}.")
    return CovariantVectors(*_covariant(cell, params, xs, h0, q0, warmup,
                                        backward_warmup, method))
