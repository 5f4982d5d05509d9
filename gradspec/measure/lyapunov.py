r"""Lyapunov exponents by Benettin's QR method, re-orthonormalised every m steps.

Benettin's sweep pushes an orthonormal frame Q (S, k) through the step Jacobians and
re-orthonormalises it, :math:`J_t Q_{t-1} = Q_t R_t`, summing
:math:`\log|\mathrm{diag}\,R_t|`. The frame only has to be re-orthonormalised often
enough that it keeps its rank in the working precision: pushed through m steps by
products (``J Q`` by forward mode: matrix-matrix work for the vanilla RNN, m jvps of the
frame for other cells), then factored once,

.. math::
    J_{bm} \cdots J_{(b-1)m+1}\, Q_{b-1} = Q_b R_b, \qquad
    \sum_{t \in b} \log|\mathrm{diag}\,R_t| = \log|\mathrm{diag}\,R_b|,

since the diagonal of a product of triangles is the product of their diagonals: the
same sum, regrouped, up to rounding. Each column is normalised after every product (its
log norm added to its sum), so that the block neither under- nor overflows whatever m.
The rounding of a block is relative to its largest column: its i-th value keeps about
:math:`\epsilon\,|(R_b)_{11}/(R_b)_{ii}|` relative accuracy, so m obeys the chunk rule of
:mod:`gradspec.measure.parallel` (the same helpers): the worst block's spread
:math:`\max_b \log|(R_b)_{11}/(R_b)_{kk}|` stays within :math:`L = \frac12\ln(1/\epsilon)`
(:func:`~gradspec.measure.parallel.spread_budget`), and ``reorth_every="auto"`` takes
:math:`m = \lfloor L / (2(\lambda_1 - \lambda_k)) \rfloor` (at most :data:`REORTH_MAX`)
from the first :data:`REORTH_PROBE` steps run with m = 1 (they count in the result),
redoing the rest with a smaller m while a block breaks the rule. A wide spectrum
therefore keeps m = 1: the full spectrum of a random tanh network (N = 512, gain 1,
T = 100) spans ~6 nats per step, and m = 2 spans more than L in its worst blocks (24
nats at N = 256). Measured there against float64 with m = 1, m = 2 leaves errors of
4e-8 (float64) and 0.2 (float32) where m = 1 leaves 7e-12 and 6e-3. The top k
exponents of a narrow part of the spectrum take m up to 8 (the top 64 of that
network: 0.12 nats per step, m = 8, 1.4-1.8 times faster in float64 with the same
error, measured), where the QR of a tall frame costs the most.

Each QR is Householder's (LAPACK, cuSOLVER) or, with ``qr="gram"`` (``"auto"``: frames
of at least :data:`GRAM_MIN_COLUMNS` columns outside a trace), block Gram-Schmidt with
CholeskyQR panels (:mod:`gradspec.measure.gram_qr`): matrix products only, checked per
factorisation and redone by Householder where Cholesky breaks down. CholeskyQR of the
whole frame would square its condition number, up to :math:`e^{2L} = 1/\epsilon` under
the rule above; the panels and the second projection keep it to one panel's.

:func:`lyapunov_sweep` (per-step local exponents: :mod:`gradspec.measure.dynamics`,
:mod:`gradspec.measure.from_jacobians`) stays one QR per step; only
:func:`lyapunov_spectrum`, which needs the sums alone, re-orthonormalises every m.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax

from .._checks import check_choice, check_finite, check_floating, check_int, is_concrete
from .._precision import full_precision
from . import gram_qr
from ._inputs import check_trajectory_inputs
from .jacobians import Method, _derivatives, _states
from .parallel import _chosen_chunk, _spread, parallel_lyapunov_spectrum, platform_of, resolve_scan

__all__ = ["lyapunov_spectrum", "lyapunov_sweep", "start_frame", "resolve_frame"]

#: Seed of the default start frame: one fixed random orthonormal frame, the same in
#: every function that starts a frame (diagnose, the plots), so one question has one answer.
FRAME_SEED = 0
#: Largest m ``reorth_every="auto"`` picks: past 8 the QR is under 1/8 of a step's work.
REORTH_MAX = 8
#: Fewest frame columns for which ``qr="auto"`` factors by :mod:`gradspec.measure.gram_qr`:
#: one panel (k <= 128) is no faster than Householder QR on the CPU (the top 64 of N = 512:
#: 0.89x float32, 0.96x float64), two or more are (the full spectrum: 1.07-1.33x, measured
#: by ``benchmarks/bench_reorth.py``).
GRAM_MIN_COLUMNS = 128
#: Steps run with m = 1 whose spread sets ``reorth_every="auto"``.
REORTH_PROBE = 16


def check_reorth(reorth_every) -> int | None:
    """``reorth_every`` checked: None for ``"auto"``, else the int m >= 1."""
    if isinstance(reorth_every, str):
        if reorth_every != "auto":
            raise ValueError(f"`reorth_every` must be 'auto' or an int >= 1; got "
                             f"{reorth_every!r}.")
        return None
    if isinstance(reorth_every, bool) or not isinstance(reorth_every, (int, np.integer)):
        raise TypeError(f"`reorth_every` must be 'auto' or an int >= 1; got "
                        f"{type(reorth_every).__name__}.")
    return check_int("reorth_every", reorth_every, 1)


def traced(*trees) -> bool:
    """Whether any leaf is a tracer (inside ``jax.jit``/``vmap``: nothing to measure)."""
    return not all(is_concrete(a) for a in jax.tree_util.tree_leaves(trees))


def rate_spread(rates) -> float:
    r""":math:`\lambda_1 - \lambda_k` of measured rates (k,), any order: inf when one
    is not finite (an exactly lost direction), 0 for one."""
    rates = np.sort(np.asarray(rates, np.float64))[::-1]
    return _spread(rates) if np.all(np.isfinite(rates)) else np.inf


def _qr_log_diag(z, q, factor: str = "householder"):
    """QR of z = J q: (Q, log|diag R|). The signs of R's diagonal are irrelevant: only
    |R_ii| enters the spectra. ``factor``: ``"householder"`` (LAPACK) or ``"gram"``
    (:func:`gradspec.measure.gram_qr.qr_log_diag`: matrix products, checked, Householder
    where the check fails); the same values to rounding.

    Where z is exactly zero (the step killed every direction of the frame: all relu
    units off, J = 0) the log is -inf and the frame ``q`` it was pushed from is kept.
    Householder's answer, coordinate axes, would be a trap: an axis can lie in a
    subspace that stays dead (an off relu unit of an IRNN) and report -inf forever
    after, while the generic frame sees the network's growth once it revives."""
    if z.shape[1] == 1:
        # One column: QR is normalisation, without a LAPACK/cuSOLVER call per step (on a
        # GPU that call costs ~0.1 ms whatever the size).
        norm = jnp.linalg.norm(z)
        return jnp.where(norm > 0, z / jnp.where(norm > 0, norm, 1), q), jnp.log(norm)[None]
    if factor == "gram":
        return gram_qr.qr_log_diag(z, q)
    return gram_qr.householder_log_diag(z, q)


def _frame_maps(cell, method):
    """``(J Q, J^T Q)`` for a frame Q (S, k): the step's jvp, and its vjp per column."""
    d = _derivatives(cell, method)
    return d.jvp, jax.vmap(d.vjp, in_axes=(None, None, None, 1), out_axes=1)


def _frame_sweeps(cell, params, xs, prev, method):
    r"""Forward (``P Q_0``) and backward (``P^T Q_0``) frame sweeps through
    :math:`P = J_T \cdots J_1`, given the states ``prev`` (T, S) each step starts from.
    Each maps a frame Q_0 (S, k) to (Q_T, log|diag R_t| (T, k))."""

    def sweep(apply, reverse):
        body = lambda q, step_inputs: _qr_log_diag(apply(params, *step_inputs, q), q)
        return lambda q: lax.scan(body, q, (prev, xs), reverse=reverse)

    jvp, vjp_cols = _frame_maps(cell, method)
    return sweep(jvp, False), sweep(vjp_cols, True)


def push_frame(apply, q, inputs):
    r"""The frame pushed through m factors, :math:`Z = F_m \cdots F_1 Q` with
    ``apply(inputs[i], Z)`` the i-th factor times Z (inputs: pytree with a leading axis
    of m), each column normalised after each factor.

    Returns:
        ``(Z (S, k) with unit columns, log of the columns' scales (k,), the fewest
        nonzero rows of any step's image ())``: :math:`F_m \cdots F_1 Q = Z
        \mathrm{diag}(e^{s})`. An exactly zero column keeps its zeros and gets
        :math:`s = -\infty`; a zero row of a factor (a dead unit) is a zero row of its
        image, counted exactly.
    """
    size, k = q.shape

    def step(carry, step_inputs):
        z, logs, rows = carry
        z = apply(step_inputs, z)
        norm = jnp.linalg.norm(z, axis=0)
        rows = jnp.minimum(rows, jnp.sum(jnp.max(jnp.abs(z), axis=1) != 0))
        return (z / jnp.where(norm > 0, norm, 1)[None, :], logs + jnp.log(norm), rows), None

    start = (q, jnp.zeros(k, q.dtype), jnp.asarray(size))
    return lax.scan(step, start, inputs)[0]


def block_spread(logd):
    """``max - min`` of one block's log|diag R| (k,): inf where a direction is exactly
    lost (-inf) or NaN, 0 for one column."""
    spread = jnp.max(logd) - jnp.min(logd)
    return jnp.where(jnp.isnan(spread), jnp.inf, spread)


def blocks(inputs, m: int):
    """A time-major pytree split into ``(whole blocks (n, m, ...), the rest (r, ...))``,
    n = T // m, r = T % m (either may be empty: None)."""
    steps = jax.tree_util.tree_leaves(inputs)[0].shape[0]
    n = steps // m
    whole = jax.tree_util.tree_map(lambda a: a[: n * m].reshape((n, m) + a.shape[1:]), inputs)
    rest = jax.tree_util.tree_map(lambda a: a[n * m:], inputs)
    return (whole if n else None), (rest if steps % m else None)


def _blocked_sum(apply, q, inputs, m: int, factor: str = "householder"):
    """Benettin's sweep of the frame q through the factors ``inputs`` in time order, one
    QR (``factor``: :func:`_qr_log_diag`) per m of them (m = 1: exactly the per-step
    sweep, no normalisation):
    ``(Q_end, summed log|diag R| (k,), worst block spread ())``."""
    k, dtype = q.shape[1], q.dtype

    def block(carry, block_inputs):
        q, total, worst = carry
        if m == 1:
            q, logd = _qr_log_diag(apply(block_inputs, q), q, factor)
        else:
            z, logs, _ = push_frame(apply, q, block_inputs)
            q, logd = _qr_log_diag(z, q, factor)
            logd = logd + logs
        return (q, total + logd, jnp.maximum(worst, block_spread(logd))), None

    carry = (q, jnp.zeros(k, dtype), jnp.zeros((), dtype))
    whole, rest = (inputs, None) if m == 1 else blocks(inputs, m)
    if whole is not None:
        carry = lax.scan(block, carry, whole)[0]
    if rest is not None:  # the last T % m steps: one shorter block
        carry = block(carry, rest)[0]
    return carry


@functools.partial(jax.jit, static_argnames=("cell", "method", "warmup", "m", "factor"))
@full_precision
def _blocked_spectrum(cell, params, xs, h0, q0, warmup, method, m, factor="householder"):
    """Blocked sweep over the warm-up, then over the rest (blocks never straddle it):
    ``(summed log|diag R| after the warm-up (k,), summed over all steps (k,), Q_T, h_T,
    worst block spread)``."""
    hs, prev = _states(cell, params, xs, h0)
    jvp = _frame_maps(cell, method)[0]
    apply = lambda step_inputs, q: jvp(params, *step_inputs, q)
    q, before, worst = q0, jnp.zeros(q0.shape[1], q0.dtype), jnp.zeros((), q0.dtype)
    if warmup:
        q, before, worst = _blocked_sum(apply, q, (prev[:warmup], xs[:warmup]), m, factor)
    q, after, worst_after = _blocked_sum(apply, q, (prev[warmup:], xs[warmup:]), m, factor)
    return after, before + after, q, hs[-1], jnp.maximum(worst, worst_after)


def resolve_qr(qr: str, k: int, traced_call: bool) -> str:
    """The factorisation ``qr="auto"`` means: ``"gram"`` (:mod:`gradspec.measure.gram_qr`)
    for frames of at least :data:`GRAM_MIN_COLUMNS` columns outside a trace,
    ``"householder"`` otherwise (under ``jax.vmap`` its per-step fallback would run both)."""
    check_choice("qr", qr, ("auto", "householder", "gram"))
    if qr != "auto":
        return qr
    return "gram" if k >= GRAM_MIN_COLUMNS and not traced_call else "householder"


def _reorthonormalised_spectrum(cell, params, xs, h0, q0, warmup, method, m, qr="auto"):
    """``(exponents (k,) descending, Q_T)`` re-orthonormalised every m steps (None:
    "auto", the first :data:`REORTH_PROBE` steps with m = 1 setting m for the rest), each
    QR by ``qr`` (:func:`resolve_qr`)."""
    steps, dtype = xs.shape[0], h0.dtype
    factor = resolve_qr(qr, q0.shape[1], traced(params, xs, h0, q0))
    done = {"steps": 0, "h": h0, "q": q0, "sum": jnp.zeros(q0.shape[1], dtype)}

    def probe():
        if traced(params, xs, h0, q0):
            return None
        first = min(steps, REORTH_PROBE)
        after, total, q, h, _ = _blocked_spectrum(cell, params, xs[:first], h0, q0,
                                                  min(warmup, first), method, 1, factor)
        done.update(steps=first, h=h, q=q, sum=after)
        return rate_spread(total / first)

    def run(m):
        total, q, worst = done["sum"], done["q"], None
        if done["steps"] < steps:
            after, _, q, _, worst = _blocked_spectrum(
                cell, params, xs[done["steps"]:], done["h"], q, max(0, warmup - done["steps"]),
                method, m, factor)
            total = total + after
            worst = float(worst) if is_concrete(worst) else None
        return (jnp.sort(total / (steps - warmup))[::-1], q), worst

    return _chosen_chunk(run, probe, m, dtype, arg="reorth_every", most=REORTH_MAX,
                         traced=1, auto="auto")


@functools.partial(jax.jit, static_argnames=("cell", "method"))
@full_precision
def lyapunov_sweep(cell, params, xs, h0, q0, method: Method = "auto"):
    r"""Benettin's forward sweep from the frame ``q0`` (S, k) along checked inputs:
    ``(Q_T, log|diag R_t|)``, shapes (S, k) and (T, k), from :math:`J_t Q_{t-1} = Q_t R_t`;
    traceable. Every per-step Lyapunov quantity of gradspec (local exponents, running
    estimates, the Jacobian-array path) is read off this one sweep, one QR per step;
    :func:`lyapunov_spectrum` sums the same logs, re-orthonormalising every m steps."""
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
    reorth_every: int | str = "auto",
    qr: str = "auto",
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

    The frame is re-orthonormalised every m = ``reorth_every`` steps (one QR per block
    of m products, :mod:`gradspec.measure.lyapunov`); ``"auto"`` picks the largest m
    (at most 8) whose blocks keep at least half the dtype's digits in their smallest
    value, which is m = 1 for a spectrum spanning more than ~2 (float64) or ~1
    (float32) nats per step, e.g. the full spectrum of most networks.

    Precision: the leading exponents are exact to rounding in either dtype. The most
    contracting ones are limited by one step's conditioning (QR returns the small
    :math:`|R_{ii}|` to about :math:`\epsilon\,\mathrm{cond}(J_t)` relative), and a
    random N x N :math:`W_{hh}` has cond ~ N: in float32 the bottom 1% of a tanh
    network's spectrum is off by ~0.02 at N = 1024 and ~0.1 at N = 2048 (measured
    against float64). Use float64 for the tail of a large spectrum. With m > 1 a block
    of m steps takes the place of one step, conditioned like
    :math:`e^{m(\lambda_1 - \lambda_k)}`; ``"auto"`` keeps every block within
    :math:`\epsilon^{-1/2}` and the mean within :math:`\epsilon^{-1/4}`. Measured
    against 40-digit mpmath Benettin sweeps (tanh, N = 12-16, T = 300, gains 1-2,
    spectra spanning 0.5-3.2 nats per step; m picked 2-8 in float64, 1-7 in float32):
    the exponents with "auto" are within 6e-12 in float64 (m = 1: 2e-14) and 2e-5 in
    float32 (m = 1: 2e-6); fixed m past the rule lose up to 1.5e-6 (float64) and 0.9
    (float32) there.

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
        scan: ``"sequential"`` (Benettin, one QR per ``reorth_every`` steps) or
            ``"parallel"`` (:mod:`gradspec.measure.parallel`: k = 1 by a reduce of
            normalised products, no QR; k > 1 by associative-scan products of chunks of
            ``chunk`` steps with a QR between chunks, each chunk's spread kept below
            half the dtype's log range), or ``"auto"``: the faster of the two for this
            platform, size, length and k by the measured table of
            :func:`gradspec.measure.parallel.resolve_scan` (sequential where it has
            no entry, and whenever ``reorth_every`` is an int).
        chunk: steps per chunk for ``scan="parallel"``; None: chosen from the spread
            measured on a probe of the first steps.
        reorth_every: steps per QR for ``scan="sequential"``: an int m >= 1 (warned
            about when a block's spread breaks the rule above), or ``"auto"``: m chosen
            from the spread of the first 16 steps, run with m = 1, and lowered while a
            block breaks the rule; m = 1 under a trace (inside ``jax.jit``), where
            nothing can be measured.
        qr: how each re-orthonormalisation is factored for ``scan="sequential"``:
            ``"householder"`` (LAPACK/cuSOLVER QR), ``"gram"`` (block Gram-Schmidt with
            Cholesky panels, :mod:`gradspec.measure.gram_qr`: matrix products, 1.1-1.3x
            faster for the full spectrum at N = 512-1024 on a CPU; each factorisation checked and redone by
            Householder where it fails) or ``"auto"``: ``"gram"`` for k >= 128 outside a
            trace, else ``"householder"``. The same exponents to rounding.
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
        ValueError: ``frame`` not (S, k) or not orthonormal, or given with ``key``;
            ``reorth_every`` neither "auto" nor an int >= 1, or an int with
            ``scan="parallel"``; ``qr`` not one of its choices, or explicit with
            ``scan="parallel"``.

    Warns:
        UserWarning: an explicit ``reorth_every`` whose worst block spans more than
            half the dtype's digits.

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
        ...                                     return_vectors=True, reorth_every=4)
        >>> q.shape  # the backward Lyapunov vectors at T: pass as frame= to continue
        (3, 2)
    """
    check_choice("method", method, ("auto", "autodiff"))
    cell, xs, h0 = check_trajectory_inputs(cell, params, xs, h0)
    size, steps = h0.shape[0], xs.shape[0]
    q0 = resolve_frame(key, frame, size, k, h0.dtype)
    warmup = check_int("warmup", warmup, 0, steps - 1)
    check_choice("scan", scan, ("sequential", "parallel", "auto"))
    m = check_reorth(reorth_every)
    check_choice("qr", qr, ("auto", "householder", "gram"))
    if scan == "auto":  # the measured table of gradspec.measure.parallel; an explicit m: ours
        scan = "sequential" if m is not None or qr != "auto" else resolve_scan(
            "lyapunov_spectrum", platform=platform_of(xs), size=size, length=steps,
            k=q0.shape[1])
    if scan == "parallel":  # k = 1: reduce of normalised products; k > 1: chunks + QR
        if m is not None or qr != "auto":
            raise ValueError("`reorth_every` and `qr` are for scan='sequential'; with "
                             "scan='parallel' `chunk` sets the steps per QR.")
        lam, q = parallel_lyapunov_spectrum(cell, params, xs, h0, q0, warmup, method,
                                            chunk=chunk)
    else:
        lam, q = _reorthonormalised_spectrum(cell, params, xs, h0, q0, warmup, method, m, qr)
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
