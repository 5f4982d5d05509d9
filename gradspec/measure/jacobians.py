r"""Trajectories, step Jacobians and gradient profiles along real inputs.

Backpropagation through time multiplies one Jacobian per step,

.. math::
    \frac{\partial L}{\partial h_{T-k}} = \frac{\partial L}{\partial h_T}
    J_T J_{T-1} \cdots J_{T-k+1}, \qquad J_t = \frac{\partial h_t}{\partial h_{t-1}},

and this module computes those factors exactly along the trajectory that the inputs
``xs`` drive. Everything is a ``lax.scan`` over time under ``jax.jit``; products are
carried in the log domain, so no length T under- or overflows. ``scan=`` selects the
parallel-in-time alternatives of :mod:`gradspec.measure._associative` (associative
scans of scaled Jacobian products; DEER's Newton iterations for the trajectory).
"""

from __future__ import annotations

import functools
from typing import Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import check_choice, check_finite, check_floating, check_int, is_concrete
from .._precision import full_precision
from ..cells import Cell
from ._associative import (
    TrajectoryResult,
    block_length,
    deer_trajectory,
    platform_of,
    resolve_scan,
    reverse_profile,
)
from ._inputs import check_trajectory_inputs

Method = Literal["auto", "autodiff"]
Scan = Literal["sequential", "deer", "quasi-deer", "auto"]
ProfileScan = Literal["sequential", "parallel", "auto"]

#: Newton iterations after which DEER / quasi-DEER give up and the block is recomputed
#: by the sequential scan. Measured on tanh RNNs with dense W_hh, N = 16 and 64: DEER
#: takes about 2.3 / |lambda_1| iterations (5-6 at lambda_1 = -0.4, 7-8 at -0.3, 17-23
#: at -0.115, 32-43 at -0.08, over 150 at -0.06); quasi-DEER 30 at -1, 100-150 at -0.4
#: to -0.3.
MAX_ITERATIONS = {"deer": 32, "quasi-deer": 256}
#: DEER stops when max_t |h_t - F(h_{t-1}, x_t)| <= DEER_RTOL_EPS eps (1 + max|F|): its
#: rounding floor is a few eps, and Newton's last step lands on it from ~sqrt(eps).
DEER_RTOL_EPS = 128
#: Newton iterations of DEER per unit of 1/|lambda_1| (the measurements above).
DEER_ITERATIONS_PER_XI = 2.3
#: Steps of the probe whose gradient profile estimates lambda_1 for scan="auto".
DEER_PROBE_STEPS = 512

__all__ = ["trajectory", "step_jacobians", "gradient_profile", "default_readout", "profile_rate"]


class _Derivatives(NamedTuple):
    """The state-derivative functions of a cell that the measurements use."""

    jacobian: Callable  # (params, state, x) -> J (S, S)
    jvp: Callable  # (params, state, x, tangents (S, k)) -> J @ tangents
    vjp: Callable  # (params, state, x, cotangent (S,)) -> cotangent @ J
    step_and_residuals: Callable  # (params, state, x) -> (next state, residuals)
    vjp_from_residuals: Callable  # (params, residuals, cotangent) -> cotangent @ J


def _derivatives(cell: Cell, method: Method) -> _Derivatives:
    """The cell's own derivatives (closed forms where it has them) for "auto"; the base
    class's autodiff, bound to this cell, for "autodiff"."""
    if method == "auto":
        return _Derivatives(
            cell.jacobian, cell.jvp, cell.vjp, cell.step_and_residuals, cell.vjp_from_residuals
        )
    vjp = functools.partial(Cell.vjp, cell)
    return _Derivatives(
        functools.partial(Cell.jacobian, cell),
        functools.partial(Cell.jvp, cell),
        vjp,
        functools.partial(Cell.step_and_residuals, cell),  # residuals = the step's inputs
        lambda params, residuals, cotangent: vjp(params, *residuals, cotangent),
    )


def _states(cell, params, xs, h0):
    """(T, S) states h_1..h_T and the (T, S) states h_0..h_{T-1} each step starts from."""

    def body(h, x):
        h = cell.step(params, h, x)
        return h, h

    _, hs = lax.scan(body, h0, xs)
    return hs, jnp.concatenate([h0[None], hs[:-1]])


@functools.partial(jax.jit, static_argnames="cell")
@full_precision
def _trajectory(cell, params, xs, h0):
    return _states(cell, params, xs, h0)[0]


@functools.partial(
    jax.jit, static_argnames=("cell", "quasi", "max_iterations", "block"))
@full_precision
def _deer_trajectory(cell, params, xs, h0, quasi, max_iterations, block):
    rtol = DEER_RTOL_EPS * float(np.finfo(h0.dtype).eps)
    sequential = lambda x, h: _states(cell, params, x, h)[0]  # the fallback
    return deer_trajectory(
        cell.step, _derivatives(cell, "auto").jacobian, sequential, params, xs, h0,
        block=block, quasi=quasi, max_iterations=max_iterations, rtol=rtol)


def trajectory(cell, params, xs, h0=None, *, scan: Scan = "sequential",
               max_iterations: int | None = None) -> jax.Array | TrajectoryResult:
    r"""Run the cell over the inputs: :math:`h_t = F(h_{t-1}, x_t)`, t = 1..T.

    ``scan="sequential"`` is one ``lax.scan`` (T steps in a chain). ``"deer"`` solves
    for all T states at once by Newton's method on the whole trajectory (DEER, Lim et
    al. 2024): iteration i linearises every step about the current guess,

    .. math::
        h^{(i+1)}_t = F(h^{(i)}_{t-1}, x_t)
            + \tilde J_t\,(h^{(i+1)}_{t-1} - h^{(i)}_{t-1}),

    and solves that linear recurrence by an associative scan over the pairs
    :math:`(\tilde J_t, b_t)` (depth :math:`O(\log T)`, work :math:`O(T S^3)` per
    iteration). ``"quasi-deer"`` (Gonzalez et al. 2024) keeps only
    :math:`\mathrm{diag}(J_t)`: :math:`O(T S)` per solve (the diagonal is read off the
    cell's Jacobian, :math:`O(T S^2)` per iteration for the vanilla RNN), but a linear
    instead of a quadratic rate, set by the off-diagonal part of :math:`J_t`: on a dense
    random :math:`W_{hh}` it needs ~100 iterations where DEER needs 8. The iterate stops
    at a residual :math:`\max_t |h_t - F(h_{t-1}, x_t)| \le` :data:`DEER_RTOL_EPS`
    :math:`\epsilon\,(1 + \max|F|)`, which leaves the states within ~1e-14 of the
    sequential scan in float64 (tested to 1e-12).

    **Convergence is governed by the top Lyapunov exponent.** Newton's error at step t
    is fed by the errors before it through :math:`J_t \cdots`; for
    :math:`\lambda_1 < 0` they fade within ~:math:`1/|\lambda_1|` steps and DEER
    converges in a number of iterations independent of T (about
    :math:`2.3/|\lambda_1|` measured: 8 at :math:`\lambda_1 = -0.3`). For
    :math:`\lambda_1 \ge 0` nothing fades: each iteration fixes only the next few steps
    and DEER needs ~T iterations (it is exact after T). After ``max_iterations``
    solves, or if an iterate stops being finite, the block is **recomputed by the
    sequential scan** and ``converged`` is False: the states are never silently wrong
    and never NaN where the sequential scan is not.

    Memory: the step Jacobians are taken in blocks of ~64 MiB (8192 steps at S = 16, 512
    at S = 64 in float64), each solved by DEER from the last state of the one before;
    ``iterations`` is the most any block took. Peak: one block plus the (T, S) output
    and its blocked copy (0.17 GiB at T = 10^6, S = 16 in float64, the sequential scan
    0.12 GiB; at S = 64 the sequential scan 0.48 GiB: ``python -m
    benchmarks.bench_parallel --memory 16 1000000``). On a 2-core CPU DEER is
    28-70 times slower than the sequential scan at S = 16 and 300-500 times at S = 64
    (``benchmarks/bench_parallel.py``, T = 10^3-10^5): its O(T S^3) work per iteration
    only pays where the chain of T small steps is latency-bound, on an accelerator.

    ``"auto"`` runs DEER only where both hold: the platform's measured table says DEER
    is faster at this (S, T) (:func:`gradspec.measure.parallel.resolve_scan`; no
    platform has such an entry yet: DEER lost 28-500x on the CPU), and Newton is
    predicted to converge fast: with :math:`\hat\lambda_1` the slope (:func:`profile_rate`) of
    the gradient profile over the first :data:`DEER_PROBE_STEPS` steps (one sequential
    scan, :math:`O(P S^2)`),

    .. math::
        \hat\lambda_1 < 0 \quad\text{and}\quad 2.3 / |\hat\lambda_1| \le
        \min(\text{max\_iterations} / 2,\; T / 10),

    the factor 2 a margin for a probe that sees only the start of the run. Otherwise
    (and under a trace, where nothing can be measured) it runs the sequential scan.
    Either way it returns a :class:`TrajectoryResult` whose ``parallel`` says which
    ran (``iterations`` 0 and ``converged`` True for the sequential scan).

    Args:
        cell: a :class:`gradspec.cells.Cell`.
        params: the cell's params (dict of arrays).
        xs: inputs, shape (T, D).
        h0: initial state, shape (S,); when None the default start
            :func:`gradspec.start_state` (a relaxed fixed-key random state; pass zeros
            for h0 = 0).
        scan: ``"sequential"``, ``"deer"``, ``"quasi-deer"`` or ``"auto"`` (DEER
            where the table and the probe say it pays, else sequential).
        max_iterations: Newton iterations before the sequential fallback;
            :data:`MAX_ITERATIONS` of the scan (of ``"deer"`` for ``"auto"``) when None.

    Returns:
        ``"sequential"``: the states h_1..h_T, shape (T, S), in the params' dtype.
        Otherwise a :class:`TrajectoryResult` ``(states, iterations, converged,
        parallel)``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.RNN("tanh")
        >>> params = cell.init(jax.random.key(0), hidden=4, inputs=1)
        >>> gradspec.trajectory(cell, params, jnp.ones((10, 1))).shape
        (10, 4)
        >>> params = dict(params, W_hh=0.5 * params["W_hh"])  # contracting
        >>> out = gradspec.trajectory(cell, params, jnp.ones((10, 1)), scan="deer")
        >>> bool(out.converged), out.states.shape
        (True, (10, 4))
        >>> out = gradspec.trajectory(cell, params, jnp.ones((10, 1)), scan="auto")
        >>> bool(out.parallel)  # on a CPU: the sequential scan
        False

    References:
        Lim, Zhu, Selfridge, Kasim (2024), ICLR, arXiv:2309.12252. Gonzalez, Warrington,
        Smith, Linderman (2024), NeurIPS, arXiv:2407.19115.
    """
    check_choice("scan", scan, ("sequential", "deer", "quasi-deer", "auto"))
    cell, xs, h0 = check_trajectory_inputs(cell, params, xs, h0)
    if scan == "sequential":
        return _trajectory(cell, params, xs, h0)
    if max_iterations is None:
        max_iterations = MAX_ITERATIONS["deer" if scan == "auto" else scan]
    max_iterations = check_int("max_iterations", max_iterations, 1)
    if scan == "auto" and not _deer_pays(cell, params, xs, h0, max_iterations):
        states = _trajectory(cell, params, xs, h0)
        return TrajectoryResult(states, jnp.asarray(0), jnp.asarray(True),
                                jnp.asarray(False))
    block = block_length(xs.shape[0], h0.shape[0], h0.dtype)
    quasi = scan == "quasi-deer"
    return _deer_trajectory(cell, params, xs, h0, quasi, max_iterations, block)


def _deer_pays(cell, params, xs, h0, max_iterations: int) -> bool:
    r"""The rule of ``trajectory(scan="auto")``: the table has DEER faster at this
    (platform, S, T) and the probe's :math:`\hat\lambda_1` predicts at most
    ``min(max_iterations / 2, T / 10)`` Newton iterations; False under a trace."""
    size, steps = h0.shape[0], xs.shape[0]
    table = resolve_scan("trajectory", platform=platform_of(xs), size=size,
                         length=steps)
    leaves = jax.tree_util.tree_leaves((params, xs, h0))
    if table != "parallel" or not all(map(is_concrete, leaves)):
        return False
    readout = default_readout(cell, size, h0.dtype)
    probe = _gradient_profile(cell, params, xs[:DEER_PROBE_STEPS], h0, readout, "auto")
    rate = float(profile_rate(probe))
    if not rate < 0:  # expanding, neutral or NaN: Newton needs ~T iterations
        return False
    return DEER_ITERATIONS_PER_XI / -rate <= min(max_iterations / 2, steps / 10)


@functools.partial(jax.jit, static_argnames=("cell", "method"))
@full_precision
def _step_jacobians(cell, params, xs, h0, method):
    _, prev = _states(cell, params, xs, h0)
    return jax.vmap(_derivatives(cell, method).jacobian, in_axes=(None, 0, 0))(params, prev, xs)


def step_jacobians(cell, params, xs, h0=None, *, method: Method = "auto") -> jax.Array:
    r"""Every step Jacobian :math:`J_t = \partial h_t / \partial h_{t-1}` along the trajectory.

    For the vanilla RNN ``method="auto"`` uses the closed form
    :math:`J_t = \mathrm{diag}(f'(a_t)) W_{hh}`; ``"autodiff"`` forces ``jax.jacrev`` of the
    step (the only path for LSTM, GRU and user cells). Both are exact and agree to rounding.

    Memory: this materialises T·S·S numbers. The profile and spectrum functions never do;
    prefer them for long T or large S.

    Args:
        cell, params, xs, h0: as in :func:`trajectory`.
        method: ``"auto"`` (closed form when the cell has one) or ``"autodiff"``.

    Returns:
        Shape (T, S, S); ``J[t-1]`` is :math:`\partial h_t / \partial h_{t-1}`.
    """
    check_choice("method", method, ("auto", "autodiff"))
    cell, xs, h0 = check_trajectory_inputs(cell, params, xs, h0)
    return _step_jacobians(cell, params, xs, h0, method)


def default_readout(cell: Cell, size: int, dtype) -> jax.Array:
    r"""The readout used when none is given: the unit vector
    :math:`u = \mathbf 1 / \sqrt{N_{out}}` over the cell's visible output (h, not an
    LSTM's memory c), zero elsewhere. So L = u·h_T and ‖∂L/∂h_T‖ = 1."""
    n_out = cell.output_size(size)
    u = jnp.zeros((size,), dtype).at[:n_out].set(1.0)
    return u / jnp.sqrt(jnp.asarray(n_out, dtype))


@functools.partial(jax.jit, static_argnames=("cell", "method"))
@full_precision
def _gradient_profile(cell, params, xs, h0, readout, method):
    d = _derivatives(cell, method)
    _, residuals = lax.scan(lambda h, x: d.step_and_residuals(params, h, x), h0, xs)
    norm0 = jnp.linalg.norm(readout)
    tiny = jnp.finfo(readout.dtype).tiny

    def body(carry, res):
        g, log_scale = carry
        g = d.vjp_from_residuals(params, res, g)
        n = jnp.linalg.norm(g)
        # Renormalise every step and keep the scale as a log: no under/overflow at any T.
        # An exactly zero cotangent (dead ReLU units) stays zero with log-norm -inf.
        g = g / jnp.where(n > tiny, n, 1.0)
        log_scale = log_scale + jnp.log(n)
        return (g, log_scale), log_scale

    init = (readout / jnp.where(norm0 > 0, norm0, 1.0), jnp.log(norm0))
    _, log_norms = lax.scan(body, init, residuals, reverse=True)
    # log_norms[j] = log ||dL/dh_j|| for j = 0..T-1; lag k = T - j.
    return jnp.concatenate([jnp.log(norm0)[None], log_norms[::-1]])


@functools.partial(jax.jit, static_argnames=("cell", "method", "block"))
@full_precision
def _parallel_profile(cell, params, xs, h0, readout, method, block):
    _, prev = _states(cell, params, xs, h0)
    rows = readout.reshape(-1, readout.shape[-1])  # (M, S): one row for a vector
    jacobian = _derivatives(cell, method).jacobian
    log_norms = reverse_profile(jacobian, params, prev, xs, rows, block=block)
    norm0 = jnp.log(jnp.linalg.norm(readout))  # 2-norm of a vector, Frobenius of rows
    return jnp.concatenate([norm0[None], log_norms[::-1]])


def gradient_profile(
    cell, params, xs, h0=None, *, readout=None, method: Method = "auto",
    scan: ProfileScan = "sequential",
) -> jax.Array:
    r"""Log gradient norm at every lag, from one reverse scan of vector–Jacobian products.

    With :math:`L = r \cdot h_T` (``r = readout``),

    .. math::
        \ell_k = \log \Big\| \frac{\partial L}{\partial h_{T-k}} \Big\|
              = \log \| r^\top J_T J_{T-1} \cdots J_{T-k+1} \|, \qquad k = 0, \dots, T.

    A readout matrix R (M rows: a trained linear layer's weight, one row per output)
    gives the Frobenius norm :math:`\log \| R\, P\, J_T \cdots J_{T-k+1} \|_F`, P
    the embedding of the visible output in the state: the gradient of the loss the
    model has, whatever direction it takes.

    The cotangent is renormalised after each step and its scale accumulated as a log, so
    the result is finite in float32 at T = 10,000 for any gain. The slope of
    :math:`\ell_k` in k is the per-step decay (< 0, vanishing) or growth rate; the
    ratio :math:`\|\partial L/\partial h_0\| / \|\partial L/\partial h_T\|` is
    ``exp(profile[T] - profile[0])``.

    ``scan="parallel"`` forms the products :math:`J_T \cdots J_{T-k+1}` themselves by a
    reverse ``lax.associative_scan`` of scaled matrices (each kept as :math:`e^{s} M`,
    max|M| = 1, and renormalised after every product), then applies the readout: work
    :math:`O(T S^3)` at depth :math:`O(\log T)` per block, against the sequential
    :math:`O(T S^2)` at depth T (vector-matrix products do not associate into anything
    cheaper: a prefix of them is a matrix). Blocks of ~64 MiB of Jacobians are scanned
    last first, the cotangent carried between them; the trajectory itself is still one
    sequential scan, (T, S) stored twice (measured peak 0.97 GiB at T = 10^6, S = 64 in
    float64, against 0.49 GiB for the sequential scan: ``python -m
    benchmarks.bench_parallel --memory 64 1000000``). Same values as the sequential
    scan to rounding in float64 (max over lags 7e-13 at T = 10^3, 4e-10 at T = 10^5;
    tested to 1e-9). ``"auto"`` runs the
    parallel scan where the platform's measured table says it is faster
    (:func:`gradspec.measure.parallel.resolve_scan`), which today is nowhere: on a
    2-core CPU it is 4-9 times slower at S = 16 and 47-62 times at S = 64
    (``benchmarks/bench_parallel.py``), and no accelerator has been measured yet.

    Args:
        cell, params, xs, h0: as in :func:`trajectory`.
        readout: a vector on the whole state (S,) or on the visible output
            (N_out,) (h, not an LSTM's memory c), or a matrix (M, S) or (M, N_out) of M
            readout rows; default :func:`default_readout` (unit norm on h).
        method: ``"auto"`` (closed form when the cell has one) or ``"autodiff"``.
        scan: ``"sequential"`` (one reverse scan of vector-Jacobian products),
            ``"parallel"`` (associative scan of the Jacobian products) or ``"auto"``
            (the faster of the two by the measured table).

    Returns:
        Shape (T + 1,), natural log; entry k is the lag-k gradient norm. An exactly
        vanished gradient (all dead ReLUs) is ``-inf``.

    Examples:
        >>> import jax, jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.RNN("linear")
        >>> params = {"W_hh": 0.5 * jnp.eye(2), "W_xh": jnp.zeros((2, 1)), "b": jnp.zeros(2)}
        >>> readout = jnp.array([1.0, 0.0])
        >>> prof = gradspec.gradient_profile(cell, params, jnp.zeros((3, 1)), readout=readout)
        >>> [round(float(v), 4) for v in prof]  # k log 0.5
        [0.0, -0.6931, -1.3863, -2.0794]
    """
    check_choice("method", method, ("auto", "autodiff"))
    check_choice("scan", scan, ("sequential", "parallel", "auto"))
    cell, xs, h0 = check_trajectory_inputs(cell, params, xs, h0)
    if readout is None:
        readout = default_readout(cell, h0.shape[0], h0.dtype)
    readout = state_readout(cell, readout, h0.shape[0], h0.dtype)
    if scan == "auto":
        scan = resolve_scan("gradient_profile", platform=platform_of(xs),
                            size=h0.shape[0], length=xs.shape[0])
    if scan == "parallel":
        block = block_length(xs.shape[0], h0.shape[0], h0.dtype)
        return _parallel_profile(cell, params, xs, h0, readout, method, block)
    return readout_profile(cell, params, xs, h0, readout, method)


def readout_profile(cell, params, xs, h0, readout, method: Method = "auto") -> jax.Array:
    """:func:`gradient_profile` of checked inputs and a readout already on the whole
    state, (S,) or (M, S) (the Frobenius norm over the M rows); traceable."""
    if readout.ndim == 1:
        return _gradient_profile(cell, params, xs, h0, readout, method)
    rows = jax.vmap(_gradient_profile, in_axes=(None, None, None, None, 0, None))(
        cell, params, xs, h0, readout, method)
    return 0.5 * jax.nn.logsumexp(2 * rows, axis=0)  # log of the Frobenius norm


def state_readout(cell: Cell, readout, size: int, dtype) -> jax.Array:
    """``readout`` as rows on the whole state: (S,) or (M, S), zero on the memory.

    Raises:
        ValueError: neither (S,), (N_out,), (M, S) nor (M, N_out).
    """
    n_out = cell.output_size(size)
    shape = np.shape(readout)
    if len(shape) not in (1, 2) or shape[-1] not in (size, n_out) or 0 in shape:
        visible = f" or on the visible output ({n_out},) / (M, {n_out})" if n_out != size else ""
        raise ValueError(f"`readout` must have shape ({size},) or (M, {size}) on the "
                         f"state{visible}; got {shape}.")
    check_floating("readout", readout)
    check_finite("readout", readout)
    readout = jnp.asarray(readout, dtype)
    if shape[-1] != size:
        readout = jnp.zeros(shape[:-1] + (size,), dtype).at[..., :n_out].set(readout)
    return readout


@jax.jit
@full_precision
def profile_rate(log_norms: jax.Array, lags: jax.Array | None = None) -> jax.Array:
    r"""Per-step rate of a gradient profile: the least-squares slope of
    :math:`\ell_k` against the lag k, over the finite entries.

    .. math:: \hat\lambda = \frac{\sum_k (k - \bar k)(\ell_k - \bar\ell)}{\sum_k (k - \bar k)^2}

    Negative: the gradient vanishes by :math:`e^{\hat\lambda}` per step; positive: it
    explodes. For a profile from :func:`gradient_profile` this converges to the top
    Lyapunov exponent as T grows. Returns NaN if fewer than two entries are finite
    (or their lags are all equal).

    Args:
        log_norms: shape (..., K): :math:`\ell_k`, e.g. from :func:`gradient_profile`.
        lags: shape (K,), the lag of each entry (e.g. a training run's recorded
            ``lags``); ``0, 1, ..., K - 1`` when None.

    Returns:
        Shape (...,).

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> round(float(gradspec.profile_rate(jnp.array([0.0, -0.5, -1.0, -1.5]))), 6)
        -0.5
        >>> round(float(gradspec.profile_rate(jnp.array([0.0, -1.0, -5.0]),
        ...                                   lags=jnp.array([0, 10, 50]))), 6)
        -0.1
    """
    if lags is None:
        lags = jnp.arange(log_norms.shape[-1])
    lags = jnp.broadcast_to(jnp.asarray(lags).astype(log_norms.dtype), log_norms.shape)
    w = jnp.isfinite(log_norms).astype(log_norms.dtype)
    y = jnp.where(w > 0, log_norms, 0.0)
    n = w.sum(-1, keepdims=True)
    k_mean = (w * lags).sum(-1, keepdims=True) / n
    y_mean = (w * y).sum(-1, keepdims=True) / n
    cov = (w * (lags - k_mean) * (y - y_mean)).sum(-1)
    var = (w * (lags - k_mean) ** 2).sum(-1)
    return jnp.where(var > 0, cov / jnp.where(var > 0, var, 1.0), jnp.nan)
