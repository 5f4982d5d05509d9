r"""Parallel-in-time kernels: associative scans over step Jacobians, and DEER.

A product of T step Jacobians is associative, so it can be formed by a tree of depth
:math:`\lceil\log_2 T\rceil` instead of a chain of T steps (Blelloch 1990; JAX's
``lax.associative_scan``). Every element here is a **scaled matrix**
:math:`(M, s)` standing for :math:`e^{s} M` with :math:`\max_{ij}|M_{ij}| = 1`, and
two of them combine as

.. math::
    (A, a) \circ (B, b) = \Big(\frac{AB}{\max|AB|},\; a + b + \log\max|AB|\Big),

so no product of any length under- or overflows (an exactly zero product stays zero with
:math:`s = -\infty`, never NaN). The same trick applies to the affine pairs of a linear
recurrence :math:`h_t = A_t h_{t-1} + b_t`, whose composition

.. math::  (A_1, b_1) \bullet (A_2, b_2) = (A_2 A_1,\; A_2 b_1 + b_2)

is associative too: that is the linear solve inside DEER's Newton iterations.

Memory: T step Jacobians are T S^2 numbers; the kernels take them in **blocks** of
:func:`block_length` steps (:data:`BLOCK_BYTES` of Jacobians and scan intermediates)
and carry what crosses a block boundary (a state, a frame, a cotangent) in a
``lax.scan`` over blocks: depth :math:`(T/B)\log_2 B`, peak memory one block.

These are plain traceable functions of the cell's callables (``step``, ``jacobian``);
the jitted entry points live in :mod:`gradspec.measure.jacobians` and
:mod:`gradspec.measure.parallel`.

References:
    Blelloch (1990), "Prefix sums and their applications", CMU-CS-90-190.
    Lim, Zhu, Selfridge, Kasim (2024), "Parallelizing non-linear sequential models over
    the sequence length" (DEER), ICLR, arXiv:2309.12252.
    Gonzalez, Warrington, Smith, Linderman (2024), "Towards scalable and stable
    parallelization of nonlinear RNNs" (quasi-DEER, ELK), NeurIPS, arXiv:2407.19115.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

#: Bytes of step Jacobians (times the scan's intermediates) one block may hold.
BLOCK_BYTES = 64 << 20
#: Intermediates of an associative scan per element, in units of one element.
_SCAN_COPIES = 4


class TrajectoryResult(NamedTuple):
    """What :func:`gradspec.trajectory` returns for ``scan="deer"``, ``"quasi-deer"``
    or ``"auto"``.
    """

    states: jax.Array  # (T, S) h_1..h_T (the sequential scan's where DEER failed)
    iterations: jax.Array  # () int: Newton iterations, the most a block took (0: none)
    converged: jax.Array  # () bool: every block converged (False: some fell back)
    parallel: jax.Array  # () bool: Newton's method ran (False: "auto" chose sequential)


def block_length(steps: int, size: int, dtype, *, chunk: int = 1) -> int:
    """Steps per block: as many (S, S) Jacobians as fit in :data:`BLOCK_BYTES` with the
    scan's intermediates, at most ``steps`` (rounded up to whole chunks), a multiple of
    ``chunk``."""
    per_step = _SCAN_COPIES * size * size * np.dtype(dtype).itemsize
    block = max(1, BLOCK_BYTES // per_step, chunk)
    block = min(block, -(-steps // chunk) * chunk)
    return max(chunk, block // chunk * chunk)


def blocked(tree, block: int):
    """Every array of ``tree`` (T, ...) padded with zeros to whole blocks, as
    (n, block, ...), and the (n, block) mask of the real steps. Padded steps come last
    in time."""
    steps = jax.tree_util.tree_leaves(tree)[0].shape[0]
    n = -(-steps // block)
    valid = (jnp.arange(n * block) < steps).reshape(n, block)

    def pad(a):
        a = jnp.concatenate([a, jnp.zeros((n * block - steps,) + a.shape[1:], a.dtype)])
        return a.reshape((n, block) + a.shape[1:])

    return jax.tree_util.tree_map(pad, tree), valid


def masked_identity(js, valid):
    """Step Jacobians (C, S, S) with the padded steps' replaced by the identity."""
    eye = jnp.eye(js.shape[-1], dtype=js.dtype)
    return jnp.where(valid[:, None, None], js, eye)


# -- scaled products -------------------------------------------------------------------


def normalise(m):
    """``(m / max|m|, log max|m|)`` over the last two axes; zero stays zero, with
    log -inf."""
    top = jnp.max(jnp.abs(m), axis=(-2, -1))
    safe = jnp.where(top > 0, top, 1)
    return m / safe[..., None, None], jnp.log(top)


def scaled_matmul(x, y):
    r"""The scaled product :math:`(A, a) \circ (B, b)` of two (batches of) scaled
    matrices: :math:`e^{a+b} AB` renormalised."""
    (a, sa), (b, sb) = x, y
    m, s = normalise(a @ b)
    return m, sa + sb + s


def product(js):
    r"""The scaled product :math:`J_C J_{C-1} \cdots J_1` of ``js`` (C, S, S) (later
    steps on the left) by a pairwise tree: C - 1 matmuls, depth
    :math:`\lceil\log_2 C\rceil`.

    Returns:
        ``(M, s)``: (S, S) with max|M| = 1 (or 0), and the log scale, shape ().
    """
    m, s = normalise(js)
    eye = jnp.eye(js.shape[-1], dtype=js.dtype)
    while m.shape[0] > 1:  # static: one level of the tree per pass
        if m.shape[0] % 2:
            m = jnp.concatenate([m, eye[None]])
            s = jnp.concatenate([s, jnp.zeros((1,), s.dtype)])
        m, s = scaled_matmul((m[1::2], s[1::2]), (m[0::2], s[0::2]))
    return m[0], s[0]


def suffix_products(js):
    r"""Every suffix product :math:`J_C \cdots J_{i+1}` of ``js`` (C, S, S), ``js[i]``
    being :math:`J_{i+1}`: a reverse ``lax.associative_scan`` of scaled products,
    about 2C matmuls at depth :math:`2\lceil\log_2 C\rceil`.

    Returns:
        ``(P, s)``: (C, S, S) normalised and (C,) log scales, ``P[i]`` the product of
        ``js[i:]`` (``js[-1]`` on the left).
    """
    # In reverse the scan combines fn(later part, earlier part): later on the left.
    return lax.associative_scan(scaled_matmul, normalise(js), reverse=True)


# -- linear recurrences and DEER -------------------------------------------------------


def linear_recurrence(a, b, h0):
    r"""All of :math:`h_t = A_t h_{t-1} + b_t`, t = 1..C, from :math:`h_0`, by an
    associative scan of the affine pairs :math:`(A_t, b_t)`.

    Args:
        a: (C, S, S) matrices, or (C, S) diagonals (quasi-DEER).
        b: (C, S).
        h0: (S,).

    Returns:
        (C, S), :math:`h_1..h_C`. Work O(C S^3) (O(C S) diagonal), depth
        :math:`O(\log C)`.
    """
    diagonal = a.ndim == 2
    if diagonal:
        apply = lambda m, v: m * v
    else:
        apply = lambda m, v: (m @ v[..., None])[..., 0]
    b = b.at[0].add(apply(a[0], h0))  # fold h_0 into the first pair

    def compose(first, second):  # first then second: (A2 A1, A2 b1 + b2)
        (a1, b1), (a2, b2) = first, second
        return (a2 * a1 if diagonal else a2 @ a1), apply(a2, b1) + b2

    return lax.associative_scan(compose, (a, b))[1]


def deer(step: Callable, jacobian: Callable, params, xs, h0, valid, *, quasi: bool,
         max_iterations: int, rtol: float):
    r"""Newton's method on the whole block's trajectory (DEER), or with diagonal
    Jacobians (quasi-DEER).

    Iteration i linearises every step about the current guess :math:`h^{(i)}`,

    .. math::
        h^{(i+1)}_t = F(h^{(i)}_{t-1}, x_t)
            + \tilde J_t \,(h^{(i+1)}_{t-1} - h^{(i)}_{t-1}),
        \qquad \tilde J_t = J_t \text{ (DEER) or } \mathrm{diag}(J_t) \text{ (quasi)},

    a linear recurrence :math:`h_t = \tilde J_t h_{t-1} + b_t` solved by
    :func:`linear_recurrence`, from the guess :math:`h^{(0)}_t = F(h_0, x_t)` (each
    step driven by its input from the start state). It stops when the residual
    :math:`\max_t |h_t - F(h_{t-1}, x_t)|` is at most ``rtol (1 + max|F|)``, or after
    ``max_iterations`` solves, or when an iterate stops being finite.

    Args:
        step, jacobian: ``(params, state, x) -> state`` and ``-> (S, S)``.
        params, xs (C, D), h0 (S,): the block's inputs and start state.
        valid: (C,) bool, the real steps (padded ones keep the state).

    Returns:
        ``(states (C, S), iterations, converged)``; the states are only meaningful
        where ``converged``.
    """
    steps = jax.vmap(step, in_axes=(None, 0, 0))
    jacobians = jax.vmap(jacobian, in_axes=(None, 0, 0))

    def linearise(hs):
        prev = jnp.concatenate([h0[None], hs[:-1]])
        f = jnp.where(valid[:, None], steps(params, prev, xs), prev)
        js = masked_identity(jacobians(params, prev, xs), valid)
        if quasi:
            js = jnp.diagonal(js, axis1=1, axis2=2)
        residual = jnp.max(jnp.abs(hs - f)) / (1 + jnp.max(jnp.abs(f)))
        return prev, f, js, jnp.where(jnp.isfinite(residual), residual, jnp.inf)

    def cond(state):
        *_, residual, it = state
        return (residual > rtol) & (it < max_iterations) & jnp.isfinite(residual)

    def body(state):
        hs, prev, f, js, _, it = state
        apply = (js * prev) if quasi else (js @ prev[:, :, None])[:, :, 0]
        hs = linear_recurrence(js, f - apply, h0)  # b_t = F(h_{t-1}) - J_t h_{t-1}
        return (hs, *linearise(hs), it + 1)

    starts = jnp.broadcast_to(h0, xs.shape[:1] + h0.shape)
    hs = jnp.where(valid[:, None], steps(params, starts, xs), h0)
    state = lax.while_loop(cond, body, (hs, *linearise(hs), jnp.asarray(0)))
    hs, residual, it = state[0], state[-2], state[-1]
    converged = (residual <= rtol) & jnp.all(jnp.isfinite(hs))
    return hs, it, converged


def deer_trajectory(step, jacobian, sequential, params, xs, h0, *, block: int,
                    quasi: bool, max_iterations: int, rtol: float) -> TrajectoryResult:
    """:func:`deer` block after block (each starting from the last state of the one
    before), each block that does not converge recomputed by ``sequential(xs_block,
    h_start) -> states``."""
    steps = xs.shape[0]
    xb, valid = blocked(xs, block)

    def body(h, inputs):
        x, v = inputs
        hs, it, ok = deer(step, jacobian, params, x, h, v, quasi=quasi,
                          max_iterations=max_iterations, rtol=rtol)
        hs = lax.cond(ok, lambda: hs, lambda: sequential(x, h))
        return hs[jnp.sum(v) - 1], (hs, it, ok)  # the last real state starts the next

    _, (hs, its, oks) = lax.scan(body, h0, (xb, valid))
    return TrajectoryResult(hs.reshape(-1, h0.shape[0])[:steps], its.max(), oks.all(),
                            jnp.asarray(True))


# -- the gradient profile --------------------------------------------------------------


def _log_frobenius(m):
    """log of the Frobenius norm over the last two axes, scaled: no square under- or
    overflows; -inf for zero."""
    top = jnp.max(jnp.abs(m), axis=(-2, -1))
    safe = jnp.where(top > 0, top, 1)
    squares = jnp.sum((m / safe[..., None, None]) ** 2, axis=(-2, -1))
    return jnp.log(top) + 0.5 * jnp.log(squares)


def reverse_profile(jacobian: Callable, params, prev, xs, readout, *, block: int):
    r""":math:`\log \| R\, J_T J_{T-1} \cdots J_{j+1} \|_F` for j = 0..T-1, by suffix
    products inside blocks and a scaled cotangent carried across them, last block first.

    Inside a block of B steps ending at step e, :func:`suffix_products` gives every
    :math:`P_j = J_e \cdots J_{j+1}`, and with the carried :math:`G = R J_T \cdots
    J_{e+1}` (kept as :math:`e^{g} \hat G`, max|Ĝ| = 1) the block's entries are
    :math:`g + s_j + \log\|\hat G \hat P_j\|_F`; then
    :math:`G \leftarrow G J_e \cdots J_{e-B+1}`.

    Args:
        jacobian: ``(params, state, x) -> (S, S)``.
        prev: (T, S), the state each step starts from.
        xs: (T, D).
        readout: (M, S) rows (one row for a vector readout).

    Returns:
        (T,), entry j the log norm at lag T - j (the layout of the sequential reverse
        scan's output).
    """
    steps = xs.shape[0]
    (pb, xb), valid = blocked((prev, xs), block)

    def body(carry, inputs):
        g, log_g = carry
        p, x, v = inputs
        js = masked_identity(jax.vmap(jacobian, in_axes=(None, 0, 0))(params, p, x), v)
        mats, logs = suffix_products(js)
        gp = g @ mats  # (B, M, S): the cotangent rows at every step of the block
        g_next, log_next = normalise(gp[0])
        return (g_next, log_g + logs[0] + log_next), log_g + logs + _log_frobenius(gp)

    _, out = lax.scan(body, normalise(readout), (pb, xb, valid), reverse=True)
    return out.reshape(-1)[:steps]


# -- frames through chunk products -----------------------------------------------------


def _orthonormalise(z):
    """(Q, log|diag R|) of z (S, k); one column is normalised (no QR call), a zero
    column giving e_1 and -inf."""
    if z.shape[1] == 1:
        norm = jnp.linalg.norm(z)
        e1 = jnp.zeros_like(z).at[0, 0].set(1)
        q = jnp.where(norm > 0, z / jnp.where(norm > 0, norm, 1), e1)
        return q, jnp.log(norm)[None]
    q, r = jnp.linalg.qr(z)
    return q, jnp.log(jnp.abs(jnp.diagonal(r)))


def _block_products(jacobian, states, params, x, h, valid, chunk):
    """The block's chunk products from h: ((C_n, S, S), (C_n,)) scaled, chunk i the
    product of steps i C + 1 .. (i + 1) C of the block; its states (B, S); and the
    state its last real step reaches."""
    hs, prev = states(x, h)
    js = jax.vmap(jacobian, in_axes=(None, 0, 0))(params, prev, x)
    js = masked_identity(js, valid)
    size = js.shape[-1]
    mats, logs = jax.vmap(product)(js.reshape(-1, chunk, size, size))
    return (mats, logs), hs, hs[jnp.sum(valid) - 1]


def frame_sweep(jacobian, states, params, xs, h0, q0, *, block: int, chunk: int):
    r"""Benettin's sweep of the frame ``q0`` (S, k) through chunk products:
    :math:`M_c Q_{c-1} = Q_c R_c`, :math:`M_c` the scaled product of C steps.

    Since :math:`J_{cC} \cdots J_{(c-1)C+1} Q = Q' R_{cC} \cdots R_{(c-1)C+1}` and the
    diagonal of a product of triangles is the product of their diagonals, the summed
    :math:`\log|\mathrm{diag}\,R_c|` (plus the chunks' log scales) equals the
    step-by-step sum of Benettin's method exactly, up to rounding. That rounding is
    relative to :math:`\|M_c\|`: the chunk's k-th value keeps about
    :math:`\epsilon\,|(R_c)_{11} / (R_c)_{kk}|` relative accuracy, so the sweep also
    returns the worst chunk's spread :math:`\max_c \log|(R_c)_{11}/(R_c)_{kk}|`
    (max over i minus min over i, to be exact). One column (k = 1) is only normalised
    (no QR, spread 0), and the whole block is one chunk.

    Args:
        jacobian: ``(params, state, x) -> (S, S)``.
        states: ``(xs (B, D), h) -> (h_1..h_B, h_0..h_{B-1})``, the sequential scan.
        xs: (T, D); h0: (S,); q0: (S, k) orthonormal.
        block: steps per block, a multiple of ``chunk``.

    Returns:
        ``(h_T, Q_T, sum of log|diag R| (k,), worst chunk spread ())``.
    """
    xb, valid = blocked(xs, block)

    def body(carry, inputs):
        h, q, logd, worst = carry
        x, v = inputs
        (mats, logs), _, h = _block_products(jacobian, states, params, x, h, v, chunk)

        def chunk_step(frame, chunk_product):
            q, logd, worst = frame
            m, s = chunk_product
            q, log_r = _orthonormalise(m @ q)
            spread = jnp.max(log_r) - jnp.min(log_r)  # inf: an exactly lost direction
            worst = jnp.maximum(worst, jnp.where(jnp.isnan(spread), jnp.inf, spread))
            return (q, logd + s + log_r, worst), None

        frame = lax.scan(chunk_step, (q, logd, worst), (mats, logs))[0]
        return (h, *frame), None

    logd = jnp.zeros(q0.shape[1], q0.dtype)
    return lax.scan(body, (h0, q0, logd, jnp.zeros((), q0.dtype)), (xb, valid))[0]


def chunk_scales(jacobian, states, params, xs, h0, *, block: int, chunk: int):
    r"""The states, and what the chunk products' sweeps need besides their normalised
    factors: the summed log scales :math:`\sum_c s_c` of the n = ceil(T/C) chunk
    products :math:`M_c = e^{s_c} \hat M_c` and the worst chunk's spread
    :math:`\max_c \log(\sigma_1/\sigma_S)(M_c)` (its relative rounding is about
    :math:`\epsilon\,\sigma_1/\sigma_S`). The products themselves are dropped block
    by block: the peak is one block, plus the (T, S) states.

    Returns:
        ``(states h_1..h_T (T, S), sum of s_c (), worst spread ())``.
    """
    xb, valid = blocked(xs, block)

    def body(h, inputs):
        x, v = inputs
        (mats, logs), hs, h = _block_products(jacobian, states, params, x, h, v, chunk)
        sv = jnp.linalg.svd(mats, compute_uv=False)
        spread = jnp.max(jnp.log(sv[:, 0]) - jnp.log(sv[:, -1]))
        return h, (hs, logs.sum(), spread)

    hs, logs, worst = lax.scan(body, h0, (xb, valid))[1]
    return hs.reshape((-1,) + hs.shape[2:])[:xs.shape[0]], logs.sum(), worst.max()


# -- which scan: the measured crossover ------------------------------------------------

#: The measurements that take ``scan=``.
MEASUREMENTS = ("trajectory", "gradient_profile", "lyapunov_spectrum",
                "product_singular_values")


class Crossover(NamedTuple):
    """A region of (S, T, k) where the parallel scan (DEER for ``"trajectory"``) was
    measured faster than the sequential one; every range is closed."""

    measurement: str  # one of MEASUREMENTS
    sizes: tuple  # (S from, S to): the state sizes
    lengths: tuple  # (T from, T to); inf where the ratio was flat in T and is extended
    ks: tuple  # (k from, k to): the exponents (lyapunov_spectrum; else (1, inf))
    ratio: str  # the parallel / sequential times measured there


#: Measured crossovers by platform (``jax.Device.platform``). ``scan="auto"`` runs the
#: parallel scan inside one of them and the sequential scan everywhere else, on a
#: platform not listed included (no accelerator has been measured yet: refill this
#: from a device run, ``benchmarks/device_check.sh`` then
#: ``python -m benchmarks.bench_parallel --crossover``). An entry needs the parallel
#: call below 0.9 times the sequential one by both the best and the median of the
#: interleaved rounds (the noise of a busy machine is ~10%).
#: :data:`CROSSOVER_SOURCE` says where each platform's entries come from.
CROSSOVER = {
    "cpu": (
        # Against the sequential sweep with one QR per reorth_every="auto" steps; at
        # T = 10^4 only (on the grid the ratios were flat in T from 10^3 to 10^5).
        # Elsewhere on the grid the parallel call took 1.3-15 times as long.
        Crossover("lyapunov_spectrum", (8, 16), (10_000, np.inf), (4, 4),
                  "0.79x at S = 8 and 0.89x at S = 16 (medians 0.74x, 0.86x), k = 4"),
    ),
}
#: Where each platform's :data:`CROSSOVER` entries were measured.
CROSSOVER_SOURCE = {
    "cpu": "python -m benchmarks.bench_parallel --crossover: 2 AMD EPYC cores (load "
           "~10 from other jobs), jax 0.10.2, float64, tanh RNN (lambda_1 ~ -0.4), "
           "N in {8, 16, 32, 64} x k in {1, 2, 4, 8, 16}, T = 10^4; 2026-12-07",
}


def platform_of(x) -> str:
    """The platform (``"cpu"``, ``"gpu"``, ``"tpu"``) of the device holding the array
    ``x``; the default backend's for a tracer, whose device is not known yet."""
    if isinstance(x, jax.core.Tracer) or not isinstance(x, jax.Array):
        return jax.default_backend()
    return next(iter(x.devices())).platform


def resolve_scan(measurement: str, *, platform: str, size: int, length: int,
                 k: int = 1) -> str:
    """What ``scan="auto"`` runs: ``"parallel"`` where a :data:`CROSSOVER` entry of
    ``platform`` holds (``measurement``, S = ``size``, T = ``length``, ``k``), else
    ``"sequential"``. For ``"trajectory"``, ``"parallel"`` means DEER is worth trying
    there; :func:`gradspec.trajectory` also requires that Newton converge fast.

    Args:
        measurement: one of :data:`MEASUREMENTS`.
        platform: ``jax.Device.platform`` of the inputs (:func:`platform_of`).
        size: the state size S; length: the number of steps T; k: exponents (the
            Lyapunov spectrum; S for the product's singular values).

    Returns:
        ``"parallel"`` or ``"sequential"``.

    Raises:
        ValueError: ``measurement`` not one of :data:`MEASUREMENTS`.

    Examples:
        >>> from gradspec.measure.parallel import resolve_scan
        >>> resolve_scan("lyapunov_spectrum", platform="cpu", size=16, length=10**4,
        ...              k=4)
        'parallel'
        >>> resolve_scan("gradient_profile", platform="gpu", size=16, length=10**5)
        'sequential'
    """
    if measurement not in MEASUREMENTS:
        raise ValueError(f"`measurement` must be one of {list(MEASUREMENTS)}; got "
                         f"{measurement!r}.")
    inside = lambda v, bounds: bounds[0] <= v <= bounds[1]
    for c in CROSSOVER.get(platform, ()):
        if (c.measurement == measurement and inside(size, c.sizes)
                and inside(length, c.lengths) and inside(k, c.ks)):
            return "parallel"
    return "sequential"
