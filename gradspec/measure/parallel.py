r"""Parallel-in-time spectra: the top exponent, the top-k Lyapunov spectrum and the
product's singular values from scaled products of chunks of step Jacobians.

The sequential measurements push a frame through one step Jacobian at a time: T steps
in a chain. Here the Jacobians of C consecutive steps are first multiplied together by
a tree of depth :math:`\lceil\log_2 C\rceil` (each product kept as :math:`e^{s} M`,
max|M| = 1: :mod:`gradspec.measure._associative`), and the frame is pushed through
the T/C chunk products:

.. math::
    M_c = J_{cC} \cdots J_{(c-1)C+1}, \qquad M_c Q_{c-1} = Q_c R_c, \qquad
    \lambda_i = \frac{1}{T - w} \sum_{c} \big(s_c + \log |(R_c)_{ii}|\big).

The diagonal of a product of triangles is the product of their diagonals, so this is
Benettin's sum regrouped: the same numbers up to rounding. Work :math:`O(T S^3)`
(against :math:`O(T S^2 k)` sequentially), depth :math:`T/C + \log_2 C` per block
(the states themselves still come from the sequential scan, block by block). On a
2-core CPU (``benchmarks/bench_parallel.py``, T = 10^3-10^5, float64) the top
exponent is 2-3 times slower than the sequential sweep at S = 16 and 11-14 times at
S = 64; the top 8 exponents are 1.5-2.4 times *faster* at S = 16 (one QR per chunk
of 9-18 steps instead of one per step) and 3.7-5 times slower at S = 64.

**The chunk rule.** A chunk product is rounded relative to its largest value, so its
k-th direction keeps about :math:`\epsilon\,|(R_c)_{11}/(R_c)_{kk}|` relative
accuracy. Every chunk's spread :math:`\log|(R_c)_{11}/(R_c)_{kk}|` (measured for free
during the sweep) must stay within

.. math::  L = \tfrac12 \ln(1/\epsilon)

(:func:`spread_budget`: 18.0 in float64, 7.97 in float32), keeping half the digits.
The mean spread is :math:`C(\lambda_1 - \lambda_k)`, but the worst chunk's is larger
by the fluctuations of the local exponents (a few steps of saturated tanh units): on
tanh RNNs (N = 16-64, float64, k = 16) the worst chunk
spans 1.2-2.5 times the mean, and :math:`C(\lambda_1 - \lambda_{16}) = 18` left
errors of 1e-9 to 3e-8 in :math:`\lambda_{16}`, while a worst chunk within 18 left
at most 4e-12. So with ``chunk=None`` C is first set to
:math:`L / (2(\lambda_1 - \lambda_k))` (at most :data:`CHUNK_MAX`) from the first
:data:`PROBE_STEPS` steps run with C = 1, and while the run's worst chunk exceeds
L, C is scaled down to fit and the run redone (a new compilation each time). A
``chunk`` given explicitly is kept, with a warning when a chunk breaks the rule.
Under a trace (inside ``jax.jit``) nothing can be measured: C is then
:data:`CHUNK_TRACED` unless given, unchecked. The top exponent alone (k = 1) has no
such limit and takes a whole block as one product: a reduce of normalised products,
no QR.

**Memory.** Jacobians are taken in blocks of about 64 MiB
(:data:`gradspec.measure._associative.BLOCK_BYTES`), the state and the frame carried
across blocks: the exponents hold one block plus the inputs, whatever T. The
product's singular values keep the (T, S) states, as the sequential sweeps do, and
form each chunk product again in every sweep (:class:`_Chunks`): O(T S), never the
:math:`(T/C)\,S^2` numbers of all chunk products (8 GiB at T = 10^6, S = 64, C = 4).
Measured by ``python -m benchmarks.bench_parallel --memory N T`` (float64, the peak
resident memory of a second, compiled run over the resident memory before it; 2 CPU
cores, 2026-12-07): at T = 10^6, S = 64 the top exponent took 0.032 GiB and the top 8
0.040 GiB (the sequential sweeps 0.97 GiB each: they keep every step's logs);
the singular values at T = 10^5, S = 64 0.056 GiB (sequential 0.19 GiB).

The functions take *checked* inputs (those of :func:`gradspec.lyapunov_spectrum` and
:func:`gradspec.product_singular_values` after their checks) and return what the
sequential kernels return, so that those functions can select them with
``scan="parallel"``; ``scan="auto"`` selects by :func:`resolve_scan`, from the table
:data:`CROSSOVER` of where each platform measured the parallel scan faster (on the CPU:
only the top 4 exponents at S = 8-16, by 10-20%).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int, is_concrete
from .._precision import full_precision
from ..cells import Cell
from ._associative import CROSSOVER as CROSSOVER
from ._associative import CROSSOVER_SOURCE as CROSSOVER_SOURCE
from ._associative import Crossover as Crossover
from ._associative import (
    block_length,
    blocked,
    chunk_scales,
    frame_sweep,
    masked_identity,
    product,
)
from ._associative import platform_of as platform_of
from ._associative import resolve_scan as resolve_scan
from .jacobians import Method, _derivatives, _states

__all__ = [
    "parallel_top_exponent",
    "parallel_lyapunov_spectrum",
    "parallel_product_singular_values",
    "spread_budget",
    "chunk_for_spread",
    "resolve_scan",
    "platform_of",
    "Crossover",
    "CROSSOVER",
    "CROSSOVER_SOURCE",
]

#: Largest chunk the automatic rule picks (a tree of depth 6).
CHUNK_MAX = 64
#: Steps of the C = 1 run that measures the spread before the chunk is chosen.
PROBE_STEPS = 256
#: Chunk used under a trace when none is given (spread unknown, nothing checked).
CHUNK_TRACED = 8
#: Margin on the probe's spread (it comes from the start of the run, with transients).
_PROBE_MARGIN = 2.0


def spread_budget(dtype) -> float:
    r""":math:`L = \frac12 \ln(1/\epsilon)` of ``dtype``: the most nats
    :math:`\log|(R_c)_{11}/(R_c)_{kk}|` a chunk product may span (18.0 float64, 7.97
    float32)."""
    return 0.5 * math.log(1 / float(np.finfo(dtype).eps))


def chunk_for_spread(spread: float, dtype, *, most: int = CHUNK_MAX) -> int:
    r"""The longest chunk C <= ``most`` with :math:`C \cdot` ``spread`` :math:`\le L`
    (:func:`spread_budget`), ``spread`` being nats per step (e.g.
    :math:`\lambda_1 - \lambda_k`); 1 for an infinite or NaN spread.

    Examples:
        >>> import numpy as np
        >>> from gradspec.measure.parallel import chunk_for_spread
        >>> chunk_for_spread(0.5, np.float64), chunk_for_spread(0.5, np.float32)
        (36, 15)
    """
    if not spread > 0:
        return most if spread == 0 else 1
    if not math.isfinite(spread):
        return 1
    return int(max(1, min(most, math.floor(spread_budget(dtype) / spread))))


def _spread(values) -> float:
    """First minus last finite value of a descending spectrum; inf if the first is not
    finite, 0 for one value."""
    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    if not np.isfinite(v[0]):
        return math.inf
    return float(finite[0] - finite[-1])


@functools.partial(jax.jit, static_argnames=("cell", "warmup", "method", "chunk"))
@full_precision
def _frames(cell, params, xs, h0, q0, warmup, method, chunk):
    """(exponents (k,) descending, Q_T (S, k), worst chunk spread): :func:`frame_sweep`
    over the warm-up (its logs dropped), then over the rest. ``chunk=None``: one
    product per block."""
    d = _derivatives(cell, method)
    states = lambda x, h: _states(cell, params, x, h)
    size, dtype = h0.shape[0], h0.dtype

    def sweep(x, h, q):
        block = block_length(x.shape[0], size, dtype, chunk=chunk or 1)
        return frame_sweep(d.jacobian, states, params, x, h, q, block=block,
                           chunk=chunk or block)

    h, q, worst = h0, q0, jnp.zeros((), dtype)
    if warmup:
        h, q, _, worst = sweep(xs[:warmup], h, q)
    _, q, logd, worst_after = sweep(xs[warmup:], h, q)
    rates = jnp.sort(logd / (xs.shape[0] - warmup))[::-1]
    return rates, q, jnp.maximum(worst, worst_after)


def parallel_top_exponent(cell, params, xs, h0, q0, warmup: int,
                          method: Method = "auto"):
    r"""The top Lyapunov exponent by a reduce of normalised Jacobian products (no QR).

    .. math::
        \lambda_1 = \frac{\log\|P_T q_0\| - \log\|P_w q_0\|}{T - w}, \qquad
        P_t = J_t \cdots J_1,

    which is Benettin's :math:`\frac{1}{T-w}\sum_{t>w} \log\|J_t q_{t-1}\|` telescoped.
    Each block's product is one tree reduce; the unit vector is carried across blocks.

    Args:
        cell, params, xs, h0: checked inputs (:func:`gradspec.lyapunov_spectrum`).
        q0: (S, 1) unit start vector.
        warmup: leading steps left out, 0 <= warmup < T.
        method: ``"auto"`` or ``"autodiff"``.

    Returns:
        ``(exponent (1,), q_T (S, 1))``, as the sequential sweep's ``(rates, Q_T)``.
    """
    return _frames(cell, params, xs, h0, q0, warmup, method, None)[:2]


def _chosen_chunk(run: Callable, probe: Callable, chunk, dtype, *, arg: str = "chunk",
                  most: int = CHUNK_MAX, traced: int = CHUNK_TRACED, auto=None):
    """``run(C)`` with C from ``chunk``, or from the per-step spread ``probe()``
    measures; redone with a smaller C (automatic) or warned about (explicit) while the
    worst chunk's spread breaks the chunk rule. ``run(C) -> (result, worst chunk
    spread or None under a trace)``; ``probe() -> spread or None under a trace``.

    Shared by every length chosen by the rule: ``arg`` names the argument in messages
    (``auto`` being its value that chooses), ``most`` caps the automatic length and
    ``traced`` is the length used under a trace (:mod:`gradspec.measure.lyapunov`'s
    ``reorth_every``: at most ``REORTH_MAX``, 1 under a trace)."""
    budget = spread_budget(dtype)
    explicit = chunk is not None
    if explicit:
        c = check_int(arg, chunk, 1)
    else:
        spread = probe()
        if spread is None:
            c = traced
        else:
            c = chunk_for_spread(_PROBE_MARGIN * spread, dtype, most=most)
    while True:
        result, worst = run(c)
        if worst is None or c == 1 or not worst > budget:
            return result
        if explicit:
            loss = np.exp(min(worst, 700.0)) * float(np.finfo(dtype).eps)
            warnings.warn(
                f"`{arg}` = {c}: a product of {c} steps spans {worst:.3g} nats "
                f"(log |R_11 / R_kk|), over the {budget:.3g} its dtype keeps (half its "
                f"digits): its smallest values lose ~{loss:.1g} relative accuracy. "
                f"Use a smaller `{arg}` (or {arg}={auto!r} to choose it).", stacklevel=4)
            return result
        # The spread grows about linearly in C: scale C down to fit, by at least 1.
        fit = math.floor(c * budget / worst) if math.isfinite(worst) else 1
        c = max(1, min(c - 1, fit))


def parallel_lyapunov_spectrum(cell, params, xs, h0, q0, warmup: int,
                               method: Method = "auto", *, chunk: int | None = None):
    r"""The k Lyapunov exponents of the frame ``q0`` from chunk products: Benettin's QR
    method applied every C steps to :math:`M_c = J_{cC} \cdots J_{(c-1)C+1}`.

    C obeys the chunk rule of this module: every chunk's
    :math:`\log|(R_c)_{11}/(R_c)_{kk}| \le L`. One column (k = 1) is
    :func:`parallel_top_exponent`.

    Args:
        cell, params, xs, h0: checked inputs (:func:`gradspec.lyapunov_spectrum`).
        q0: (S, k) orthonormal start frame.
        warmup: leading steps left out, 0 <= warmup < T.
        method: ``"auto"`` or ``"autodiff"``.
        chunk: steps per product C; None chooses it by the rule.

    Returns:
        ``(exponents (k,) descending, Q_T (S, k))``, as the sequential sweep's.

    Warns:
        UserWarning: an explicit ``chunk`` whose measured spread breaks the rule.
    """
    if q0.shape[1] == 1:
        return parallel_top_exponent(cell, params, xs, h0, q0, warmup, method)

    def run(c):
        rates, q, worst = _frames(cell, params, xs, h0, q0, warmup, method, c)
        return (rates, q), float(worst) if is_concrete(worst) else None

    def probe():
        steps = min(xs.shape[0], PROBE_STEPS)
        rates = _frames(cell, params, xs[:steps], h0, q0, 0, method, 1)[0]
        return _spread(rates) if is_concrete(rates) else None

    return _chosen_chunk(run, probe, chunk, h0.dtype)


@dataclasses.dataclass(frozen=True)
class _Chunks(Cell):
    r"""C steps of ``cell`` as one step of a cell whose Jacobian is their normalised
    product :math:`\hat M_c` (max = 1): the sequential kernels sweep chunk products.

    Its input at chunk c is ``(h (C, S), x (C, D), valid (C,))``, the chunk's states
    already computed, so that every sweep forms :math:`\hat M_c` again (C Jacobians
    at once and a tree of products, no sequential step) instead of holding all of
    them: the sweeps hold O(T S), not O(T S^2 / C)."""

    cell: Cell
    method: str

    def _matrix(self, params, state, x):
        hs, xs, valid = x
        prev = jnp.concatenate([state[None], hs[:-1]])
        jacobian = _derivatives(self.cell, self.method).jacobian
        js = jax.vmap(jacobian, in_axes=(None, 0, 0))(params, prev, xs)
        return product(masked_identity(js, valid))[0]

    def step(self, params, state, x):
        hs, _, valid = x
        return hs[jnp.sum(valid) - 1]

    def jacobian(self, params, state, x):
        return self._matrix(params, state, x)

    def jvp(self, params, state, x, tangents):
        return self._matrix(params, state, x) @ tangents

    def vjp(self, params, state, x, cotangent):
        return cotangent @ self._matrix(params, state, x)

    def step_and_residuals(self, params, state, x):
        return self.step(params, state, x), (state, x)

    def vjp_from_residuals(self, params, residuals, cotangent):
        return self.vjp(params, *residuals, cotangent)


@functools.partial(jax.jit, static_argnames=("cell", "method", "chunk"))
@full_precision
def _chunk_scales(cell, params, xs, h0, method, chunk):
    """:func:`chunk_scales`, the states and inputs in chunks for :class:`_Chunks`."""
    block = block_length(xs.shape[0], h0.shape[0], h0.dtype, chunk=chunk)
    states = lambda x, h: _states(cell, params, x, h)
    hs, log_scale, worst = chunk_scales(_derivatives(cell, method).jacobian, states,
                                        params, xs, h0, block=block, chunk=chunk)
    (hb, xb), valid = blocked((hs, xs), chunk)
    return (hb, xb, valid), log_scale, worst


def parallel_product_singular_values(cell, params, xs, h0, method: Method,
                                     max_sweeps: int, rtol: float, *, sweeps: Callable,
                                     chunk: int | None = None):
    r"""Log singular values of :math:`P_T = J_T \cdots J_1` from its chunk products:
    :math:`\log\sigma_i(P_T) = \sum_c s_c + \log\sigma_i(\hat M_{T/C} \cdots \hat M_1)`,
    the second term by the sequential kernel ``sweeps`` run on the T/C normalised
    chunk products :math:`\hat M_c` in place of the step Jacobians.

    Memory: the states (T, S) are computed once (with the scales and the spreads,
    block by block) and kept; each sweep forms the chunk products again from them
    (:class:`_Chunks`), so nothing of size :math:`T S^2 / C` is held: 0.056 GiB at
    T = 10^5, S = 64 in float64 (the sequential sweeps 0.19 GiB; ``python -m
    benchmarks.bench_parallel --memory 64 100000``). The price: the products are
    formed 1 + 2 x (sweep pairs) times instead of once (199 s against 155 s for the
    sequential sweeps there, on 2 busy CPU cores).

    C obeys the chunk rule with k = S: every chunk product's
    :math:`\log(\sigma_1/\sigma_S) \le L`.
    Exactly dead units (zero rows of a J_t inside a chunk) no longer give exact zeros
    in a chunk product: their ``-inf`` becomes rounding noise (use the sequential
    path, or C = 1, for them).

    Args:
        cell, params, xs, h0: checked inputs (:func:`gradspec.product_singular_values`).
        method, max_sweeps, rtol: as there (``rtol`` resolved, not None).
        sweeps: the sequential kernel,
            ``(cell, params, xs, h0, method, max_sweeps, rtol) -> (S,)`` (the
            product's singular values of the step Jacobians of that cell); passed in
            so that this module does not import :mod:`gradspec.measure.spectra`,
            which imports it.
        chunk: steps per product C; None chooses it by the rule.

    Returns:
        Shape (S,), descending, natural log.

    Warns:
        UserWarning: an explicit ``chunk`` whose measured spread breaks the rule.
    """
    size, dtype, steps = h0.shape[0], h0.dtype, xs.shape[0]

    def run(c):
        chunks, log_scale, worst = _chunk_scales(cell, params, xs, h0, method, c)
        lsv = sweeps(_Chunks(cell, method), params, chunks, h0, "auto", max_sweeps,
                     rtol)
        return lsv + log_scale, float(worst) if is_concrete(worst) else None

    def probe():
        first = min(steps, PROBE_STEPS)
        frame = jnp.eye(size, dtype=dtype)
        rates = _frames(cell, params, xs[:first], h0, frame, 0, method, 1)[0]
        return _spread(rates) if is_concrete(rates) else None

    return _chosen_chunk(run, probe, chunk, dtype)
