r"""Spectra: of the recurrent weights, of the Jacobian product, and of the dynamics.

- :func:`weight_spectrum`: eigenvalues and singular values of :math:`W_{hh}`.
- :func:`product_singular_values`: log singular values of :math:`P_T = J_T \cdots J_1`.
- :func:`lyapunov_spectrum`: Lyapunov exponents by Benettin's QR method.

Products are never formed: an orthonormal frame Q is pushed through the step Jacobians
(``J Q`` by forward mode, ``J^T Q`` by reverse mode, O(S^2 k) for the vanilla RNN) and
re-orthonormalised by QR each step, :math:`J_t Q_{t-1} = Q_t R_t`, accumulating
:math:`\log|\mathrm{diag}\, R_t|`. Values spanning thousands of orders of magnitude
therefore neither under- nor overflow, in float32 and float64 alike; each function
states its accuracy.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax

from .._checks import (
    check_choice,
    check_finite,
    check_floating,
    check_int,
    check_square_matrix,
    is_concrete,
)
from .._precision import full_precision
from ..cells import RNN
from ._inputs import check_trajectory_inputs
from .parallel import parallel_lyapunov_spectrum, parallel_product_singular_values
from .jacobians import Method, _derivatives, _states

__all__ = [
    "WeightSpectrum",
    "weight_spectrum",
    "product_singular_values",
    "lyapunov_spectrum",
]


class WeightSpectrum(NamedTuple):
    """Spectrum of a square weight matrix W (N, N)."""

    eigenvalues: jax.Array  # (N,) complex, sorted by decreasing modulus
    singular_values: jax.Array  # (N,) descending
    spectral_radius: jax.Array  # () max |eigenvalue|
    spectral_norm: jax.Array  # () max singular value = ||W||_2


def weight_spectrum(W) -> WeightSpectrum:
    r"""Eigenvalues, singular values, spectral radius :math:`\rho(W)` and norm :math:`\|W\|_2`.

    :math:`\rho(W) \le \|W\|_2` with equality for normal W; the gap measures
    non-normality (transient growth of :math:`\|W^k\|` before its asymptotic rate
    :math:`\rho^k`). The eigendecomposition runs on the CPU backend (XLA has no general
    non-symmetric eigensolver on every accelerator).

    Args:
        W: square matrix (N, N), e.g. ``params["W_hh"]``.

    Returns:
        A :class:`WeightSpectrum`.

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> s = gradspec.weight_spectrum(jnp.array([[0.9, 10.0], [0.0, 0.9]]))
        >>> round(float(s.spectral_radius), 3), round(float(s.spectral_norm), 3)
        (0.9, 10.08)
    """
    W = check_square_matrix("W", W)
    cpu = jax.devices("cpu")[0]
    W = jax.device_put(W, cpu)
    with jax.default_device(cpu):
        eig = jnp.linalg.eigvals(W)
        eig = eig[jnp.argsort(-jnp.abs(eig))]
        sv = jnp.linalg.svd(W, compute_uv=False)
    return WeightSpectrum(eig, sv, jnp.abs(eig[0]), sv[0])


def _qr_log_diag(z):
    """QR of z: (Q, log|diag R|). The signs of R's diagonal are irrelevant: only |R_ii|
    enters the spectra."""
    if z.shape[1] == 1:
        # One column: QR is normalisation, without a LAPACK/cuSOLVER call per step (on a
        # GPU that call costs ~0.1 ms whatever the size). A zero column gives e_1 and
        # log 0 = -inf, as Householder QR does.
        norm = jnp.linalg.norm(z)
        e1 = jnp.zeros_like(z).at[0, 0].set(1)
        return jnp.where(norm > 0, z / jnp.where(norm > 0, norm, 1), e1), jnp.log(norm)[None]
    q, r = jnp.linalg.qr(z)
    return q, jnp.log(jnp.abs(jnp.diagonal(r)))


def _frame_sweeps(cell, params, xs, prev, method):
    r"""Forward (``P Q_0``) and backward (``P^T Q_0``) frame sweeps through
    :math:`P = J_T \cdots J_1`, given the states ``prev`` (T, S) each step starts from.
    Each maps a frame Q_0 (S, k) to (Q_T, log|diag R_t| (T, k))."""

    def sweep(apply, reverse):
        body = lambda q, step_inputs: _qr_log_diag(apply(params, *step_inputs, q))
        return lambda q: lax.scan(body, q, (prev, xs), reverse=reverse)

    jvp, vjp_cols = _frame_maps(cell, method)
    return sweep(jvp, False), sweep(vjp_cols, True)


def _frame_maps(cell, method):
    """``(J Q, J^T Q)`` for a frame Q (S, k): the step's jvp, and its vjp per column."""
    d = _derivatives(cell, method)
    return d.jvp, jax.vmap(d.vjp, in_axes=(None, None, None, 1), out_axes=1)


def _adjoint_factors(cell, params, prev, xs, method):
    r"""The factors of :math:`P^\top` as a backward sweep applies them: (apply, inputs,
    reverse), ``apply(inputs[t], Q)`` being the t-th factor times Q.

    In general the step vjps, :math:`J_t^\top Q`. For the vanilla RNN,
    :math:`J_t = D_t W` with D_t the slopes, whose vjp :math:`W^\top (D_t Q)` mixes the
    rows that saturated units scale down into the others, losing them to rounding; the
    product is regrouped instead as :math:`W^\top (D_1 W^\top) \cdots
    (D_{T-1} W^\top) D_T`, T + 1 factors each scaled by rows (or unscaled), whose
    row-sorted QRs keep every slope's relative accuracy."""
    if not (isinstance(cell, RNN) and type(cell).vjp is RNN.vjp and method == "auto"):
        vjp_cols = _frame_maps(cell, method)[1]
        return (lambda step, q: vjp_cols(params, *step, q)), (prev, xs), True
    slope = lambda h, x: cell.slope(cell.preactivation(params, h, x))
    slopes = jax.vmap(slope)(prev, xs)
    scales = jnp.concatenate([slopes[::-1], jnp.ones_like(slopes[:1])])
    with_w = jnp.arange(scales.shape[0]) > 0  # all but D_T have a W^T on their right

    def apply(step, q):
        scale, times_w = step
        return scale[:, None] * jnp.where(times_w, params["W_hh"].T @ q, q)

    return apply, (scales, with_w), False


# Neighbours in the spectrum closer than _CLUSTER_GAP nats converge slowly under the
# sweeps alone (their errors shrink by (sigma_{i+1}/sigma_i)^4 per sweep pair); up to
# _CLUSTER_SIZE of them, spanning at most _CLUSTER_WIDTH nats, are resolved together
# from their block of the product (whose explicit SVD keeps e^8 eps relative accuracy
# at the cluster's bottom).
_CLUSTER_GAP = 2.0
_CLUSTER_WIDTH = 8.0
_CLUSTER_SIZE = 16


def _qr_rank(z):
    """QR of a square frame image z, its rows sorted by decreasing size: (Q, R, rank).

    Sorted rows make Householder QR row-wise stable (Cox & Higham 1998), so rows scaled
    down by saturated units keep their relative accuracy. ``rank`` counts the nonzero
    rows; R's rows from ``rank`` on are exactly zero, so a dead ReLU unit (a zero row of
    J) gives an exactly zero, trailing diagonal entry, not a rounding-level one in the
    middle of the frame."""
    row = jnp.max(jnp.abs(z), axis=1)
    rank = jnp.sum(row != 0)  # a NaN row is not dead: it makes all of R NaN
    order = jnp.argsort(jnp.where(row == 0, jnp.inf, -row), stable=True)
    q, r = jnp.linalg.qr(z[order])
    r = jnp.where((jnp.arange(z.shape[0]) < rank)[:, None], r, 0)
    return jnp.zeros_like(q).at[order].set(q), r, rank


def _clusters(est, n_live, shifted):
    """Start position of each frame position's cluster: runs of neighbours less than
    _CLUSTER_GAP apart, cut where a cluster would exceed _CLUSTER_SIZE positions or
    _CLUSTER_WIDTH nats; dead positions stay alone. ``shifted`` halves the first cluster
    of each run, so that sweeps alternating it move every cut inside a cluster."""
    size = est.shape[0]

    def body(carry, i):
        start, lo, hi, first = carry
        e = est[i]
        near = jnp.abs(e - est[i - 1]) < _CLUSTER_GAP
        half = first & shifted
        most = jnp.where(half, _CLUSTER_SIZE // 2, _CLUSTER_SIZE)
        widest = jnp.where(half, _CLUSTER_WIDTH / 2, _CLUSTER_WIDTH)
        spread = jnp.maximum(hi, e) - jnp.minimum(lo, e)
        join = (i < n_live) & near & (i - start < most) & (spread <= widest)
        first = jnp.where(join, first, ~near)
        start = jnp.where(join, start, i)
        lo = jnp.where(join, jnp.minimum(lo, e), e)
        hi = jnp.where(join, jnp.maximum(hi, e), e)
        return (start, lo, hi, first), start

    pos = jnp.arange(size)
    _, starts = lax.scan(body, (pos[0], est[0], est[0], jnp.bool_(True)), pos[1:])
    return jnp.concatenate([pos[:1], starts])


def _block_product_step(r, same, acc):
    """G <- blockdiag(R) G over the clusters (``same``: same-cluster mask), with G kept
    as diag(e^s) G, |G| <= 1, so that no row under/overflows."""
    g, s = acc
    b = jnp.where(same, r, 0)
    logb = jnp.where(b != 0, jnp.log(jnp.abs(b)), -jnp.inf) + s[None, :]
    top = jnp.max(logb, axis=1)
    top = jnp.where(jnp.isfinite(top), top, 0)
    coef = jnp.where(b != 0, jnp.sign(b) * jnp.exp(logb - top[:, None]), 0)
    g = coef @ g
    big = jnp.max(jnp.abs(g), axis=1)
    safe = jnp.where(big > 0, big, 1)
    return g / safe[:, None], jnp.where(big > 0, top + jnp.log(safe), -jnp.inf)


def _cluster_rotation(g, s, starts):
    """Orthogonal U, block diagonal over the clusters: each block the left singular
    vectors (descending) of that cluster's block of the product diag(e^s) G."""
    size = g.shape[0]
    width = min(size, _CLUSTER_SIZE)
    pos = jnp.arange(size)
    same = starts[:, None] == starts[None, :]
    top = jax.ops.segment_max(s, starts, num_segments=size)[starts]
    x = jnp.where(jnp.isfinite(s - top)[:, None], jnp.exp(s - top)[:, None] * g, 0)
    corner = jnp.minimum(starts, size - width)  # each cluster inside its window

    def window(b):
        mine = lax.dynamic_slice(starts, (corner[b],), (width,)) == starts[b]
        block = lax.dynamic_slice(x, (corner[b], corner[b]), (width, width))
        return jnp.where(mine[:, None] & mine[None, :], block, 0)

    u = jnp.linalg.svd(jax.vmap(window)(pos))[0]
    vecs = u[pos, :, pos - starts]  # column b: its cluster's (b - start)-th vector
    rows = jnp.clip(pos[:, None] - corner[None, :], 0, width - 1)
    rot = jnp.where(same, vecs[pos[None, :], rows], 0)
    alone = same.sum(0) == 1
    return jnp.where(alone[None, :], jnp.eye(size, dtype=g.dtype), rot)


@functools.partial(jax.jit, static_argnames=("cell", "method", "max_sweeps"))
@full_precision
def _product_singular_values(cell, params, xs, h0, method, max_sweeps, rtol):
    size, dtype = h0.shape[0], h0.dtype
    _, prev = _states(cell, params, xs, h0)
    jvp = _frame_maps(cell, method)[0]
    adjoint = _adjoint_factors(cell, params, prev, xs, method)
    pos = jnp.arange(size)
    inf = jnp.asarray(jnp.inf, dtype)

    def sweep(apply, inputs, reverse, q, same=None):
        # (Q_T, summed log|diag R_t|, min_t rank_t, cluster block product if `same`).
        def body(carry, step_inputs):
            q, acc = carry
            q, r, rank = _qr_rank(apply(step_inputs, q))
            if same is not None:
                acc = _block_product_step(r, same, acc)
            logd = jnp.where(pos < rank, jnp.log(jnp.abs(jnp.diagonal(r))), -inf)
            return (q, acc), (logd, rank)

        acc = ()
        if same is not None:
            acc = jnp.eye(size, dtype=dtype), jnp.zeros(size, dtype)
        (q, acc), (logd, rank) = lax.scan(body, (q, acc), inputs, reverse=reverse)
        return q, logd.sum(0), rank.min(), acc

    def forward(q, starts):
        apply = lambda step, q: jvp(params, *step, q)

        def plain(q):
            return sweep(apply, (prev, xs), False, q)[:3]

        def resolved(q):
            same = starts[:, None] == starts[None, :]
            q, est, rank, (g, s) = sweep(apply, (prev, xs), False, q, same)
            return q @ _cluster_rotation(g, s, starts), est, rank

        return lax.cond(jnp.any(starts != pos), resolved, plain, q)

    def pair(q, starts, n_live):
        # One forward and one backward sweep: a step of the zero-shift QR algorithm on
        # P^T P, with each cluster of close values rotated onto its own singular vectors
        # in between. diag(R_T...R_1) converges to the singular values of P, the
        # off-diagonal between clusters shrinking like (sigma_{i+1}/sigma_i)^2 per pair
        # (Stewart 1997, "On graded QR decompositions of products of matrices").
        q, est_f, rank_f = forward(q, starts)
        q, est_b, rank_b, _ = sweep(*adjoint, q)
        # Exactly-zero rows of J_t (forward) or columns (backward) bound rank(P): the
        # frame's trailing directions beyond it are exactly annihilated.
        n_live = jnp.minimum(n_live, jnp.minimum(rank_f, rank_b))
        live = pos < n_live
        est_f, est_b = jnp.where(live, est_f, -inf), jnp.where(live, est_b, -inf)
        # The two half-sweeps' estimates are equal once R has become diagonal.
        delta = jnp.where(est_b == est_f, 0, jnp.abs(est_b - est_f))
        scale = 1 + jnp.max(jnp.where(live, jnp.abs(est_b), 0))
        return q, est_b, n_live, delta, scale

    def settle(delta, delta_prev, scale, floored, pairs):
        # Whether every value has converged to rtol or reached its rounding floor.
        converged = (delta <= rtol * scale) | jnp.isnan(delta)
        # A value whose change no longer halves has reached its floor (~T eps cond(J_t)
        # in the summed logs; noise for a direction the product annihilates, but not
        # exactly), where more sweeps would not make it better. Every gap is either
        # >= _CLUSTER_GAP (a factor e^-8 per sweep) or resolved inside a cluster, so
        # past the first sweeps (or near rtol) a converging value does halve.
        early = (pairs < 3) & (delta > 16 * rtol * scale)
        floored = floored | ((delta > 0.5 * delta_prev) & ~early)
        return floored, jnp.all(converged | floored)

    def cond(state):
        *_, finished, pairs = state
        return (pairs < max_sweeps) & ~finished

    def body(state):
        q, est, n_live, delta_prev, floored, _, pairs = state
        # No clusters before the first estimates.
        starts = jnp.where(pairs == 0, pos, _clusters(est, n_live, pairs % 2 == 1))
        q, est, n_live, delta, scale = pair(q, starts, n_live)
        floored, finished = settle(delta, delta_prev, scale, floored, pairs + 1)
        return q, est, n_live, delta, floored, finished, pairs + 1

    start = jnp.eye(size, dtype=dtype), jnp.zeros(size, dtype), jnp.asarray(size)
    no = jnp.zeros(size, bool)
    state = (*start, jnp.full(size, inf), no, jnp.asarray(False), jnp.asarray(0))
    est = lax.while_loop(cond, body, state)[1]
    return jnp.sort(est)[::-1]


def product_singular_values(
    cell,
    params,
    xs,
    h0=None,
    *,
    max_sweeps: int = 30,
    rtol: float | None = None,
    method: Method = "auto",
    scan: str = "sequential",
    chunk: int | None = None,
) -> jax.Array:
    r"""Log singular values of the whole product :math:`P_T = J_T J_{T-1} \cdots J_1`.

    Alternating QR sweeps through :math:`P_T` and :math:`P_T^\top` (never formed) make
    the accumulated triangular factor diagonal; its log-diagonal, summed over steps in
    the log domain, is :math:`\log \sigma_i(P_T)`. A sweep pair shrinks the coupling of
    neighbours by :math:`(\sigma_{i+1}/\sigma_i)^2`, too slowly for close ones: values
    less than 2 nats apart (runs of at most 16 within 8 nats, cut at places that
    alternate between sweeps) are resolved together, the frame being rotated onto the
    singular vectors of their block of the product after each forward sweep. Stops
    when every value's change between two half-sweeps is below
    ``rtol * (1 + max|log sigma|)`` or has stopped halving (its rounding floor), or
    after ``max_sweeps``. Widely separated values (the common case at large T) take two
    or three sweep pairs; exactly equal ones (orthogonal W) one.

    Accuracy: each value is exact up to the rounding of its summed logs (plus
    :math:`e^8 \epsilon` inside a cluster). For the vanilla RNN the backward sweep
    applies :math:`P^\top` regrouped so that every QR sees the slopes as row scales,
    and saturated units keep their relative accuracy; for other cells (and
    ``method="autodiff"``) it goes through the vjp, whose rounding is relative to
    :math:`\|J_t\|`, and units saturated to slopes of 1e-10 (1e-14) cost the most
    contracting values ~1e-8 (~1e-4) relative (measured on a tanh RNN). In float64,
    against 80- to 150-digit SVDs of the explicit product (tests): within 1e-12
    relative on tanh (saturated to slopes of 1e-14 too), GRU, LSTM and ReLU spectra
    spanning up to 300 nats, pairs a few hundredths of a nat apart included; the bound
    asserted is 1e-10. In float32 the leading values are good to ~1e-6 relative, the
    most contracting ones to a few 1e-4 (1 + max|log sigma|) at T ~ 1000. Runs of more
    than 16 values closer than 2 nats to each other, or spanning more than 8, can
    converge slower than ``max_sweeps`` allows.

    Singular products: exactly-zero rows (dead ReLU units) or columns of a step
    Jacobian bound the rank of :math:`P_T`; beyond that rank the values are exactly
    ``-inf``, and the finite ones are as accurate as above. A product that is singular
    only through cancellation (a low-rank :math:`W_{hh}`, say) gives rounding noise
    (about :math:`T \log \epsilon`) in those places instead.

    Args:
        cell, params, xs, h0: as in :func:`gradspec.trajectory`.
        max_sweeps: cap on forward+backward sweep pairs (each costs 2T QRs of (S, S)).
        rtol: convergence tolerance; default ``1000 eps`` in float64, ``sqrt(eps)`` in
            float32 (where its rounding floor lies).
        method: ``"auto"`` (closed-form Jacobian products when the cell has them) or
            ``"autodiff"``.
        scan: ``"sequential"`` (one QR per step) or ``"parallel"``: the same sweeps over
            the products of chunks of ``chunk`` steps, each formed by an associative scan
            (:mod:`gradspec.measure.parallel`; a dead unit inside a chunk gives rounding
            noise there instead of ``-inf``).
        chunk: steps per chunk for ``scan="parallel"`` (None: chosen from the spread
            measured on a probe, :func:`gradspec.measure.parallel.chunk_for_spread`).

    Returns:
        Shape (S,), descending, natural log. ``sum`` equals
        :math:`\sum_t \log|\det J_t|`.

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.RNN("linear")
        >>> params = {"W_hh": jnp.diag(jnp.array([2.0, 0.5])),
        ...           "W_xh": jnp.zeros((2, 1)), "b": jnp.zeros(2)}
        >>> lsv = gradspec.product_singular_values(cell, params, jnp.zeros((1000, 1)))
        >>> [round(float(v), 2) for v in lsv]  # 1000 log 2: sigma spans 600 decades
        [693.15, -693.15]
        >>> relu = gradspec.cells.RNN("relu")  # b = -1 keeps the second unit dead
        >>> params = dict(params, b=jnp.array([1.0, -1.0]))
        >>> lsv = gradspec.product_singular_values(relu, params, jnp.zeros((10, 1)))
        >>> [round(float(v), 2) for v in lsv]  # 10 log 2, and exactly singular
        [6.93, -inf]
    """
    check_choice("method", method, ("auto", "autodiff"))
    check_int("max_sweeps", max_sweeps, 1)
    cell, xs, h0 = check_trajectory_inputs(cell, params, xs, h0)
    rtol = default_rtol(h0.dtype) if rtol is None else rtol
    check_choice("scan", scan, ("sequential", "parallel"))
    if scan == "parallel":
        return parallel_product_singular_values(cell, params, xs, h0, method, max_sweeps, rtol,
                                                chunk=chunk, sweeps=_product_singular_values)
    return _product_singular_values(cell, params, xs, h0, method, max_sweeps, rtol)


def default_rtol(dtype) -> float:
    """The default ``rtol`` of :func:`product_singular_values` for ``dtype``: float64
    converges to ~1000 eps; float32's rounding floor is near sqrt(eps)."""
    eps = float(np.finfo(dtype).eps)
    return 1e3 * eps if eps < 1e-10 else float(np.sqrt(eps))


#: Seed of the default start frame: one fixed random orthonormal frame, the same in
#: every function that starts a frame (diagnose, the plots), so one question has one answer.
FRAME_SEED = 0


@functools.partial(jax.jit, static_argnames=("cell", "method"))
@full_precision
def lyapunov_sweep(cell, params, xs, h0, q0, method: Method = "auto"):
    r"""Benettin's forward sweep from the frame ``q0`` (S, k) along checked inputs:
    ``(Q_T, log|diag R_t|)``, shapes (S, k) and (T, k), from :math:`J_t Q_{t-1} = Q_t R_t`;
    traceable. Every Lyapunov quantity of gradspec (spectrum, local exponents, running
    estimates, the Jacobian-array path) is read off this one sweep."""
    forward, _ = _frame_sweeps(cell, params, xs, _states(cell, params, xs, h0)[1], method)
    return forward(q0)


@functools.partial(jax.jit, static_argnames=("cell", "method", "warmup"))
@full_precision
def _lyapunov_spectrum(cell, params, xs, h0, q0, warmup, method):
    q, logd = lyapunov_sweep(cell, params, xs, h0, q0, method)
    rates = logd[warmup:].mean(0)
    return jnp.sort(rates)[::-1], q


def lyapunov_spectrum(
    cell,
    params,
    xs,
    h0=None,
    *,
    k: int | None = None,
    warmup: int = 0,
    method: Method = "auto",
    frame=None,
    return_vectors: bool = False,
    key=None,
    scan: str = "sequential",
    chunk: int | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""The k largest Lyapunov exponents by Benettin's QR method (natural log per step).

    .. math::
        J_t Q_{t-1} = Q_t R_t, \qquad
        \lambda_i = \frac{1}{T - w} \sum_{t > w} \log |(R_t)_{ii}|,

    with :math:`Q_0` (S, k) orthonormal, ``w = warmup`` steps discarded (the frame and
    the state forget their start). Cost O(T S^2 k) for the vanilla RNN, O(T k) steps of
    forward mode otherwise: the top few exponents are far cheaper than the spectrum.
    :math:`\lambda_1 < 0` means gradients vanish at rate :math:`e^{\lambda_1}` per step
    along this trajectory, :math:`\lambda_1 > 0` that they explode;
    :math:`\xi = 1/|\lambda_1|` is the time scale in steps.

    Precision: the leading exponents are exact to rounding in either dtype. The most
    contracting ones are limited by one step's conditioning (QR returns the small
    :math:`|R_{ii}|` to about :math:`\epsilon\,\mathrm{cond}(J_t)` relative), and a
    random N x N :math:`W_{hh}` has cond ~ N: in float32 the bottom 1% of a tanh
    network's spectrum is off by ~0.02 at N = 1024 and ~0.1 at N = 2048 (measured
    against float64). Use float64 for the tail of a large spectrum.

    Args:
        cell, params, xs, h0: as in :func:`gradspec.trajectory`; xs drives the dynamics
            (use zeros for the autonomous system).
        k: number of exponents, 1 <= k <= S; all S when None.
        warmup: leading steps excluded from the average, 0 <= warmup < T.
        method: ``"auto"`` or ``"autodiff"``.
        frame: an explicit start frame :math:`Q_0`, shape (S, k), orthonormal
            (:math:`\max|Q_0^\top Q_0 - I| \le \max(10^{-6}, S\epsilon)`, checked, not
            repaired: a frame that is not orthonormal is a bug upstream), e.g. the
            ``Q_T`` of a previous run to continue it; k is read off it when ``k`` is
            None. Exclusive with ``key``.
        return_vectors: also return the final frame :math:`Q_T`.
        scan: ``"sequential"`` (Benettin, one QR per step) or ``"parallel"``
            (:mod:`gradspec.measure.parallel`: k = 1 by a reduce of normalised products,
            no QR; k > 1 by associative-scan products of chunks of ``chunk`` steps with
            a QR between chunks, each chunk's spread kept below half the dtype's log
            range).
        chunk: steps per chunk for ``scan="parallel"``; None: chosen from the spread
            measured on a probe of the first steps.
        key: PRNG key of the random orthonormal start frame; ``key(FRAME_SEED)`` when
            None. Never coordinate axes: a frame of axes never leaves an invariant
            subspace (decoupled memory cells, a diagonal recurrence), so it can miss
            the top exponent entirely.

    Returns:
        Shape (k,), descending. With ``k = S`` and ``warmup = 0`` their sum equals
        :math:`\frac1T \sum_t \log|\det J_t|` exactly. With ``return_vectors``,
        ``(exponents, Q_T)``, :math:`Q_T` (S, k) orthonormal: the **backward Lyapunov
        vectors** at step T (Legras & Vautard; Kuptsov & Parlitz 2012), also called
        Gram–Schmidt vectors (Ginelli et al. 2007): the first i columns span the
        subspace into which perturbations made in the far past have grown fastest
        (Oseledets' backward filtration), fixed by the trajectory before T once the
        sweep has forgotten :math:`Q_0`. They are neither the covariant Lyapunov
        vectors (not orthogonal; Ginelli's backward pass on the R's) nor the forward
        ones (a sweep of :math:`J^\top` from the future). Columns are in the sweep's
        order, which is the exponents' descending order once the sweep has converged
        (ties aside). ``Q_T`` passed back as ``frame`` with the next inputs and
        ``h0 = h_T`` continues the run.

    Raises:
        ValueError: ``frame`` not (S, k) or not orthonormal, or given with ``key``.

    References:
        Benettin, Galgani, Giorgilli, Strelcyn (1980), Meccanica 15:9–20.
        Ginelli et al. (2007), PRL 99:130601. Kuptsov & Parlitz (2012), J. Nonlinear
        Sci. 22:727–762, arXiv:1105.5228.

    Examples:
        >>> import jax, jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.RNN("linear")
        >>> W = gradspec.init.orthogonal(0.5)(jax.random.key(0), (3, 3), jnp.float32)
        >>> params = {"W_hh": W, "W_xh": jnp.zeros((3, 1)), "b": jnp.zeros(3)}
        >>> lam = gradspec.lyapunov_spectrum(cell, params, jnp.zeros((50, 1)), k=2)
        >>> [round(float(v), 4) for v in lam]  # log 0.5
        [-0.6931, -0.6931]
        >>> lam, q = gradspec.lyapunov_spectrum(cell, params, jnp.zeros((50, 1)), k=2,
        ...                                     return_vectors=True)
        >>> q.shape  # the backward Lyapunov vectors at T: pass as frame= to continue
        (3, 2)
    """
    check_choice("method", method, ("auto", "autodiff"))
    cell, xs, h0 = check_trajectory_inputs(cell, params, xs, h0)
    size, steps = h0.shape[0], xs.shape[0]
    q0 = resolve_frame(key, frame, size, k, h0.dtype)
    warmup = check_int("warmup", warmup, 0, steps - 1)
    check_choice("scan", scan, ("sequential", "parallel"))
    if scan == "parallel":  # k = 1: reduce of normalised products; k > 1: chunks + QR
        lam, q = parallel_lyapunov_spectrum(cell, params, xs, h0, q0, warmup, method,
                                            chunk=chunk)
    else:
        lam, q = _lyapunov_spectrum(cell, params, xs, h0, q0, warmup, method)
    return (lam, q) if return_vectors else lam


def start_frame(key, size: int, k: int, dtype) -> jax.Array:
    """The orthonormal (S, k) start frame of the Lyapunov sweeps drawn with ``key``
    (``key(FRAME_SEED)`` when None): the first k columns of one (S, S) draw, so top-k
    exponents equal the full spectrum's leading ones; drawn in float32 whatever the
    dtype, so float32 and float64 runs start from the same frame."""
    key = jr.key(FRAME_SEED) if key is None else key
    z = jr.normal(key, (size, size), jnp.float32)[:, :k].astype(dtype)
    return jnp.linalg.qr(z)[0]


def resolve_frame(key, frame, size: int, k: int | None, dtype) -> jax.Array:
    """The start frame (S, k) of a sweep: ``frame`` checked (k read off it when None),
    else :func:`start_frame` of ``key``.

    Raises:
        ValueError: ``frame`` with ``key``, not (S, k), or not orthonormal to
            ``max(1e-6, S eps)`` (the loss of orthogonality of a Householder QR in the
            frame's dtype, at worst).
    """
    if frame is None:
        k = size if k is None else check_int("k", k, 1, size)
        return start_frame(key, size, k, dtype)
    if key is not None:
        raise ValueError("`frame` and `key` are exclusive: `key` draws a random start "
                         "frame, `frame` is one; pass one of them.")
    if k is not None:
        check_int("k", k, 1, size)
    check_floating("frame", frame)
    shape = np.shape(frame)
    if (len(shape) != 2 or shape[0] != size or not 1 <= shape[1] <= size
            or (k is not None and shape[1] != k)):
        want = f"({size}, {k})" if k is not None else f"({size}, k), 1 <= k <= {size}"
        raise ValueError(f"`frame` must have shape {want} (state size S, k exponents); "
                         f"got {shape}.")
    check_finite("frame", frame)
    if is_concrete(frame):
        q = np.asarray(frame, np.float64)
        err = float(np.abs(q.T @ q - np.eye(shape[1])).max())
        tol = max(1e-6, size * float(np.finfo(jnp.result_type(frame)).eps))
        if err > tol:
            raise ValueError(
                f"`frame` must be orthonormal (Q^T Q = I to {tol:.1e}); got max|Q^T Q - I| "
                f"= {err:.2e}. Orthonormalise it first: jnp.linalg.qr(frame)[0].")
    return jnp.asarray(frame, dtype)
