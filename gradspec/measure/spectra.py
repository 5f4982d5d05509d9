r"""Spectra: of the recurrent weights, of the Jacobian product, and of the dynamics.

- :func:`weight_spectrum`: eigenvalues and singular values of :math:`W_{hh}`.
- :func:`product_singular_values`: log singular values of :math:`P_T = J_T \cdots J_1`.
- :func:`lyapunov_spectrum`: Lyapunov exponents by Benettin's QR method
  (:mod:`gradspec.measure.lyapunov`, re-exported here with its helpers).

Products are never formed: an orthonormal frame Q is pushed through the step Jacobians
(``J Q`` by forward mode, ``J^T Q`` by reverse mode, O(S^2 k) for the vanilla RNN) and
re-orthonormalised by QR each step (or every m steps, the frame pushed through m
Jacobians in between), :math:`J_t Q_{t-1} = Q_t R_t`, accumulating
:math:`\log|\mathrm{diag}\, R_t|`. Values spanning thousands of orders of magnitude
therefore neither under- nor overflow, in float32 and float64 alike; each function
states its accuracy.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import check_choice, check_int, check_square_matrix, is_concrete
from .._precision import full_precision
from ..cells import RNN
from ._inputs import check_trajectory_inputs
from .jacobians import Method, _states
from .lyapunov import (
    FRAME_SEED,
    REORTH_MAX,
    REORTH_PROBE,
    _blocked_spectrum,
    _frame_maps,
    _frame_sweeps,
    _lyapunov_spectrum,
    _qr_log_diag,
    block_spread,
    blocks,
    check_reorth,
    lyapunov_spectrum,
    lyapunov_sweep,
    push_frame,
    rate_spread,
    resolve_frame,
    start_frame,
    traced,
)
from .parallel import _chosen_chunk, parallel_product_singular_values, platform_of, resolve_scan

__all__ = [
    "WeightSpectrum",
    "weight_spectrum",
    "product_singular_values",
    "lyapunov_spectrum",
    # Moved to gradspec.measure.lyapunov, importable from here as before (the package's
    # modules, tests and benchmarks import them from this module).
    "FRAME_SEED",
    "lyapunov_sweep",
    "start_frame",
    "resolve_frame",
    "_frame_maps",
    "_frame_sweeps",
    "_lyapunov_spectrum",
    "_qr_log_diag",
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


def _product_singular_values(cell, params, xs, h0, method, max_sweeps, rtol, m=1):
    """The sweeps' log singular values (S,), descending; one QR per m factors."""
    return _psv_sweeps(cell, params, xs, h0, method, max_sweeps, rtol, m)[0]


@functools.partial(jax.jit, static_argnames=("cell", "method", "max_sweeps", "m"))
@full_precision
def _psv_sweeps(cell, params, xs, h0, method, max_sweeps, rtol, m):
    """``(log singular values (S,) descending, worst block spread ())``."""
    size, dtype = h0.shape[0], h0.dtype
    _, prev = _states(cell, params, xs, h0)
    jvp = _frame_maps(cell, method)[0]
    adjoint = _adjoint_factors(cell, params, prev, xs, method)
    pos = jnp.arange(size)
    inf = jnp.asarray(jnp.inf, dtype)

    def sweep(apply, inputs, reverse, q, same=None):
        # (Q_T, summed log|diag R_t|, min_t rank_t, cluster block product if `same`,
        # worst block spread), one QR per block of m factors.
        def body(carry, step_inputs):
            q, acc, worst = carry
            if m == 1:
                z, logs, rows = apply(step_inputs, q), 0, size
            else:  # F_m ... F_1 Q = Z diag(e^logs); a zero row of any F_i counted
                z, logs, rows = push_frame(apply, q, step_inputs)
            q, r, rank = _qr_rank(z)
            rank = jnp.minimum(rank, rows)
            if same is not None:  # R diag(e^logs) G = R (diag(e^(s + logs)) G)
                acc = _block_product_step(r, same, (acc[0], acc[1] + logs))
            logd = jnp.where(pos < rank, jnp.log(jnp.abs(jnp.diagonal(r))) + logs, -inf)
            return (q, acc, jnp.maximum(worst, block_spread(logd))), (logd, rank)

        acc = ()
        if same is not None:
            acc = jnp.eye(size, dtype=dtype), jnp.zeros(size, dtype)
        carry = (q, acc, jnp.zeros((), dtype))
        if m == 1:
            carry, (logd, rank) = lax.scan(body, carry, inputs, reverse=reverse)
            logd, rank = logd.sum(0), rank.min()
        else:
            if reverse:  # blocks of m from the last step back
                inputs = jax.tree_util.tree_map(lambda a: a[::-1], inputs)
            whole, rest = blocks(inputs, m)
            logd, rank = jnp.zeros(size, dtype), jnp.asarray(size)
            if whole is not None:
                carry, (logds, ranks) = lax.scan(body, carry, whole)
                logd, rank = logds.sum(0), ranks.min()
            if rest is not None:
                carry, (logd_rest, rank_rest) = body(carry, rest)
                logd, rank = logd + logd_rest, jnp.minimum(rank, rank_rest)
        q, acc, worst = carry
        return q, logd, rank, acc, worst

    def forward(q, starts):
        apply = lambda step, q: jvp(params, *step, q)

        def plain(q):
            q, est, rank, _, worst = sweep(apply, (prev, xs), False, q)
            return q, est, rank, worst

        def resolved(q):
            same = starts[:, None] == starts[None, :]
            q, est, rank, (g, s), worst = sweep(apply, (prev, xs), False, q, same)
            return q @ _cluster_rotation(g, s, starts), est, rank, worst

        return lax.cond(jnp.any(starts != pos), resolved, plain, q)

    def pair(q, starts, n_live):
        # One forward and one backward sweep: a step of the zero-shift QR algorithm on
        # P^T P, with each cluster of close values rotated onto its own singular vectors
        # in between. diag(R_T...R_1) converges to the singular values of P, the
        # off-diagonal between clusters shrinking like (sigma_{i+1}/sigma_i)^2 per pair
        # (Stewart 1997, "On graded QR decompositions of products of matrices").
        q, est_f, rank_f, worst_f = forward(q, starts)
        q, est_b, rank_b, _, worst_b = sweep(*adjoint, q)
        # Exactly-zero rows of J_t (forward) or columns (backward) bound rank(P): the
        # frame's trailing directions beyond it are exactly annihilated.
        n_live = jnp.minimum(n_live, jnp.minimum(rank_f, rank_b))
        live = pos < n_live
        est_f, est_b = jnp.where(live, est_f, -inf), jnp.where(live, est_b, -inf)
        # The two half-sweeps' estimates are equal once R has become diagonal.
        delta = jnp.where(est_b == est_f, 0, jnp.abs(est_b - est_f))
        scale = 1 + jnp.max(jnp.where(live, jnp.abs(est_b), 0))
        return q, est_b, n_live, delta, scale, jnp.maximum(worst_f, worst_b)

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
        *_, finished, pairs, _ = state
        return (pairs < max_sweeps) & ~finished

    def body(state):
        q, est, n_live, delta_prev, floored, _, pairs, worst = state
        # No clusters before the first estimates.
        starts = jnp.where(pairs == 0, pos, _clusters(est, n_live, pairs % 2 == 1))
        q, est, n_live, delta, scale, worst_pair = pair(q, starts, n_live)
        floored, finished = settle(delta, delta_prev, scale, floored, pairs + 1)
        worst = jnp.maximum(worst, worst_pair)
        return q, est, n_live, delta, floored, finished, pairs + 1, worst

    start = jnp.eye(size, dtype=dtype), jnp.zeros(size, dtype), jnp.asarray(size)
    no = jnp.zeros(size, bool)
    state = (*start, jnp.full(size, inf), no, jnp.asarray(False), jnp.asarray(0),
             jnp.zeros((), dtype))
    state = lax.while_loop(cond, body, state)
    return jnp.sort(state[1])[::-1], state[-1]


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
    reorth_every: int | str = "auto",
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

    Re-orthonormalisation every m = ``reorth_every`` factors (the frame pushed through
    m of them, then one row-sorted QR) obeys the rule of
    :func:`gradspec.lyapunov_spectrum`: every block's spread within half the dtype's
    digits, which keeps m = 1 for a product whose singular values drift apart by more
    than ~2 (float64) or ~1 (float32) nats per step, and for dead units (an exactly
    lost direction has an infinite spread). With m > 1 a saturated unit is no longer a
    row scale of its QR (the regrouping above holds per block only), and a dead unit
    inside a block gives rounding noise in place of ``-inf``.

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
            noise there instead of ``-inf``), or ``"auto"``: the faster by the measured
            table of :func:`gradspec.measure.parallel.resolve_scan`.
        chunk: steps per chunk for ``scan="parallel"`` (None: chosen from the spread
            measured on a probe, :func:`gradspec.measure.parallel.chunk_for_spread`).
        reorth_every: factors per QR for ``scan="sequential"``: an int m >= 1 (warned
            about when a block breaks the rule), or ``"auto"``: m from the Lyapunov
            spread of the first 16 steps (one extra forward sweep over them, m = 1),
            lowered while a block breaks the rule; m = 1 under a trace.

    Returns:
        Shape (S,), descending, natural log. ``sum`` equals
        :math:`\sum_t \log|\det J_t|`.

    Raises:
        ValueError: ``reorth_every`` neither "auto" nor an int >= 1, or an int with
            ``scan="parallel"``.

    Warns:
        UserWarning: an explicit ``reorth_every`` whose worst block spans more than
            half the dtype's digits.

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
    check_choice("scan", scan, ("sequential", "parallel", "auto"))
    m = check_reorth(reorth_every)
    if scan == "auto":  # the measured table of gradspec.measure.parallel; an explicit m: ours
        scan = "sequential" if m is not None else resolve_scan(
            "product_singular_values", platform=platform_of(xs), size=h0.shape[0],
            length=xs.shape[0], k=h0.shape[0])
    if scan == "parallel":
        if m is not None:
            raise ValueError("`reorth_every` is for scan='sequential'; with "
                             "scan='parallel' `chunk` sets the steps per QR.")
        return parallel_product_singular_values(cell, params, xs, h0, method, max_sweeps, rtol,
                                                chunk=chunk, sweeps=_product_singular_values)

    def run(m):
        lsv, worst = _psv_sweeps(cell, params, xs, h0, method, max_sweeps, rtol, m)
        return lsv, float(worst) if is_concrete(worst) else None

    def probe():
        # The Lyapunov spread of the first steps: the rate at which sigma_1 / sigma_S of
        # a block grows with its length.
        if traced(params, xs, h0):
            return None
        first = min(xs.shape[0], REORTH_PROBE)
        frame = start_frame(None, h0.shape[0], h0.shape[0], h0.dtype)
        total = _blocked_spectrum(cell, params, xs[:first], h0, frame, 0, method, 1)[1]
        return rate_spread(total / first)

    return _chosen_chunk(run, probe, m, h0.dtype, arg="reorth_every", most=REORTH_MAX,
                         traced=1, auto="auto")


def default_rtol(dtype) -> float:
    """The default ``rtol`` of :func:`product_singular_values` for ``dtype``: float64
    converges to ~1000 eps; float32's rounding floor is near sqrt(eps)."""
    eps = float(np.finfo(dtype).eps)
    return 1e3 * eps if eps < 1e-10 else float(np.sqrt(eps))
