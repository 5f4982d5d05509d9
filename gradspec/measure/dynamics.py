r"""The dynamical-systems toolbox read off a Lyapunov spectrum and its QR sweep.

From the exponents :math:`\lambda_1 \ge \dots \ge \lambda_k` (natural log per step, of
:func:`gradspec.lyapunov_spectrum` or :func:`gradspec.lyapunov_spectrum_from_jacobians`):

- :func:`kaplan_yorke_dimension`: the Lyapunov (Kaplan–Yorke) dimension of the attractor;
- :func:`ks_entropy`: the Kolmogorov–Sinai entropy rate by Pesin's formula.

From the sweep itself (:math:`J_t Q_{t-1} = Q_t R_t`):

- :func:`participation_ratio`: how many state entries a Lyapunov vector spreads over;
- :func:`local_exponents`: the finite-time exponents :math:`\log|(R_t)_{ii}|`, (T, k);
- :func:`running_exponents`, :func:`lyapunov_convergence`: the running estimate
  :math:`\lambda_i(t)` with its standard error over a batch of input sequences or start
  states, to see whether (and how fast) the estimate converges.

Flows (Lorenz) integrated with a step of length :math:`\Delta t` give exponents per
step: divide them (and :func:`ks_entropy`) by :math:`\Delta t` for rates per unit
time; the Kaplan–Yorke dimension does not depend on the unit.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_choice, check_finite, check_floating, check_int
from ..cells import as_cell, check_params
from ._inputs import check_trajectory_inputs
from .jacobians import Method
from .spectra import lyapunov_sweep, resolve_frame

__all__ = [
    "kaplan_yorke_dimension",
    "ks_entropy",
    "participation_ratio",
    "local_exponents",
    "LyapunovConvergence",
    "running_exponents",
    "lyapunov_convergence",
]


def _check_exponents(name: str, x, min_ndim: int = 1) -> jax.Array:
    check_floating(name, x)
    if np.ndim(x) < min_ndim or np.shape(x)[-1] == 0:
        raise ValueError(f"`{name}` must have shape (..., k) with k >= 1; got {np.shape(x)}.")
    return jnp.asarray(x)


@jax.jit
def _kaplan_yorke(lam):
    lam = jnp.sort(lam, axis=-1)[..., ::-1]  # NaN sorts first here: caught below
    n = lam.shape[-1]
    partial = jnp.cumsum(lam, axis=-1)
    # The partial sums of a descending sequence rise while lambda_i >= 0 and fall after:
    # those >= 0 are a prefix, and j is its length.
    j = jnp.sum(partial >= 0, axis=-1)
    at = lambda a, i: jnp.take_along_axis(a, jnp.clip(i, 0, n - 1)[..., None], -1)[..., 0]
    # S_j / |lambda_{j+1}|; lambda_{j+1} = -inf (a dead direction) gives 0.
    frac = jnp.where(j > 0, at(partial, j - 1) / jnp.abs(at(lam, j)), 0)
    dim = jnp.where(j == n, n, j.astype(lam.dtype) + frac)
    return jnp.where(jnp.isnan(lam).any(-1), jnp.nan, dim)


def kaplan_yorke_dimension(exponents) -> jax.Array:
    r"""The Kaplan–Yorke (Lyapunov) dimension of an attractor from its spectrum.

    .. math::
        D_{KY} = j + \frac{\sum_{i \le j} \lambda_i}{|\lambda_{j+1}|},

    :math:`\lambda` sorted descending (``exponents`` is sorted first), j the largest
    index with :math:`\sum_{i \le j} \lambda_i \ge 0`: the dimension of the largest
    volume element that does not shrink, plus the fraction of the next direction that
    keeps the volume balanced. :math:`D_{KY} = 0` when :math:`\lambda_1 < 0` (a stable
    fixed point or orbit: volumes of every dimension shrink) and :math:`D_{KY} = k`
    when all k exponents sum to >= 0 (with k < S given, the dimension is then at least
    k: pass more exponents). Kaplan & Yorke conjecture it equals the information
    dimension for typical attractors; it bounds the dimension of the attractor's
    natural measure from above (Ledrappier 1981).
    The Lorenz attractor: :math:`2 + 0.9056/14.5723 = 2.062`; a network in the ordered
    phase: 0; a chaotic RNN: a dimension far below S when only a few exponents are
    positive. A ``-inf`` exponent (a dead unit) contributes an exactly contracting
    direction; NaN gives NaN.

    Args:
        exponents: shape (..., k), any order, natural log per step (or per unit time:
            the ratio does not depend on the unit).

    Returns:
        Shape (...,), in [0, k].

    References:
        Kaplan & Yorke (1979), Lecture Notes in Math. 730:204–227. Frederickson, Kaplan,
        Yorke, Yorke (1983), J. Diff. Eq. 49:185–207.

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> lorenz = jnp.array([0.9056, 0.0, -14.5723])
        >>> round(float(gradspec.kaplan_yorke_dimension(lorenz)), 4)
        2.0621
        >>> float(gradspec.kaplan_yorke_dimension(jnp.array([-0.1, -0.5])))
        0.0
    """
    return _kaplan_yorke(_check_exponents("exponents", exponents))


@jax.jit
def _ks_entropy(lam):
    return jnp.sum(jnp.maximum(lam, 0), axis=-1)


def ks_entropy(exponents) -> jax.Array:
    r"""The Kolmogorov–Sinai entropy rate by Pesin's formula: the sum of the positive
    exponents,

    .. math:: h_{KS} = \sum_{i:\ \lambda_i > 0} \lambda_i .

    It is the rate (nats per step, or per unit time for a flow's exponents divided by
    :math:`\Delta t`) at which the dynamics creates information about the initial
    state: nearby trajectories separate along the expanding directions. The equality is
    Pesin's (1977) for measures smooth along the unstable directions (SRB measures, the
    physical ones of dissipative attractors); in general the sum is an upper bound
    (Ruelle's inequality). Zero for a network whose gradients vanish in every direction.
    Give all positive exponents (a top-k spectrum with :math:`\lambda_k > 0` gives a
    lower bound).

    Args:
        exponents: shape (..., k), natural log per step.

    Returns:
        Shape (...,), >= 0.

    References:
        Pesin (1977), Russian Math. Surveys 32:55–114. Ruelle (1978), Bol. Soc. Bras.
        Mat. 9:83–87.

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> round(float(gradspec.ks_entropy(jnp.array([0.419, -1.623]))), 4)  # Henon
        0.419
    """
    return _ks_entropy(_check_exponents("exponents", exponents))


@jax.jit
def _participation_ratio(q):
    q2 = q * q
    return jnp.sum(q2, axis=0) ** 2 / jnp.sum(q2 * q2, axis=0)


def participation_ratio(vectors) -> jax.Array:
    r"""Participation ratio of each Lyapunov vector: how many of the S state entries it
    spreads over,

    .. math:: \mathrm{PR}(q) = \frac{\left(\sum_i q_i^2\right)^2}{\sum_i q_i^4},

    between 1 (one entry: a localised direction, a single unit or memory cell carries
    the growth) and S (all entries equal in size: a collective mode). A random unit
    vector has PR about S/3 for large S (Gaussian entries: :math:`E q^4 = 3 (E q^2)^2`).
    Scale free: the vector need not be normalised. A zero vector gives NaN.

    Args:
        vectors: shape (S,) or (S, k), one vector per column, e.g. the ``Q_T`` of
            ``gradspec.lyapunov_spectrum(..., return_vectors=True)``.

    Returns:
        Shape () or (k,).

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> q = jnp.array([[1.0, 0.5], [0.0, 0.5], [0.0, 0.5], [0.0, 0.5]])
        >>> gradspec.participation_ratio(q).tolist()  # localised, uniform over 4
        [1.0, 4.0]
    """
    check_floating("vectors", vectors)
    if np.ndim(vectors) not in (1, 2) or np.shape(vectors)[0] == 0:
        raise ValueError(f"`vectors` must have shape (S,) or (S, k); got {np.shape(vectors)}.")
    return _participation_ratio(jnp.asarray(vectors))


def local_exponents(
    cell,
    params,
    xs,
    h0=None,
    *,
    k: int | None = None,
    method: Method = "auto",
    frame=None,
    key=None,
) -> jax.Array:
    r"""Finite-time (local) Lyapunov exponents: each step's log growth factors,

    .. math:: \ell_{t,i} = \log |(R_t)_{ii}|, \qquad J_t Q_{t-1} = Q_t R_t,

    from the very sweep of :func:`gradspec.lyapunov_spectrum` (same start frame, same
    code): their mean over :math:`t > w` is its spectrum (there sorted). Their spread is
    the intermittency of the gradient: a mean near 0 with wide tails means a gradient
    that is critical on average but explodes and vanishes in bursts. Their distribution
    converges to a Dirac at :math:`\lambda_i` only averaged over windows
    (:func:`running_exponents`).

    Args:
        cell, params, xs, h0: as in :func:`gradspec.trajectory`.
        k: number of exponents, 1 <= k <= S; all S when None (or the frame's k).
        method: ``"auto"`` or ``"autodiff"``.
        frame, key: the start frame, as in :func:`gradspec.lyapunov_spectrum`.

    Returns:
        Shape (T, k), natural log per step, columns in the sweep's order (the
        descending order of the exponents once the frame has converged). ``-inf``
        where a direction is annihilated exactly (a dead ReLU layer).

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.RNN("linear")
        >>> params = {"W_hh": jnp.diag(jnp.array([2.0, 0.5])), "W_xh": jnp.zeros((2, 1)),
        ...           "b": jnp.zeros(2)}
        >>> ell = gradspec.local_exponents(cell, params, jnp.zeros((200, 1)))
        >>> ell.shape, [round(float(v), 4) for v in ell[-1]]  # aligned: log 2, log 0.5
        ((200, 2), [0.6931, -0.6931])
    """
    check_choice("method", method, ("auto", "autodiff"))
    cell, xs, h0 = check_trajectory_inputs(cell, params, xs, h0)
    q0 = resolve_frame(key, frame, h0.shape[0], k, h0.dtype)
    return lyapunov_sweep(cell, params, xs, h0, q0, method)[1]


class LyapunovConvergence(NamedTuple):
    r"""The running estimate :math:`\lambda_i(t)` over a batch, per step after the
    warm-up w (:func:`running_exponents`, :func:`lyapunov_convergence`)."""

    t: jax.Array  # (T - w,) int: the last step averaged, w + 1 .. T
    mean: jax.Array  # (T - w, k) mean over the batch of lambda_i(t), natural log per step
    se: jax.Array  # (T - w, k) its standard error sd / sqrt(B); NaN for B = 1


def running_exponents(local, *, warmup: int = 0) -> LyapunovConvergence:
    r"""Running Lyapunov estimates from local exponents, with their standard error.

    For each batch member b and each step t > w,

    .. math::
        \lambda_i^{(b)}(t) = \frac{1}{t - w} \sum_{s=w+1}^{t} \ell^{(b)}_{s,i},
        \qquad
        \bar\lambda_i(t) = \frac1B \sum_b \lambda_i^{(b)}(t),
        \qquad
        \mathrm{se}_i(t) = \sqrt{\frac{\sum_b (\lambda_i^{(b)}(t) - \bar\lambda_i(t))^2}
                                      {B (B - 1)}},

    the standard error of the mean over B independent members (input sequences, start
    states). ``mean ± 2 se`` is an approximate 95% interval for the batch's mean at
    time t; at large t the se shrinks like :math:`1/\sqrt{t B}` for mixing dynamics,
    and a run is converged when the running means stop moving by more than it. The
    cumulative sums are XLA's ``cumsum``: rounding of a few eps relative to the summed
    :math:`|\ell|` (measured 1.7e-7 in float32 at T = 10^5).

    Args:
        local: local exponents, shape (B, T, k) (e.g. ``jax.vmap`` of
            :func:`local_exponents`) or (T, k) (one run: ``se`` is NaN).
        warmup: leading steps left out, 0 <= w < T.

    Returns:
        A :class:`LyapunovConvergence`; its last row is the batch mean of the runs'
        spectra (in sweep order, not sorted).

    Examples:
        >>> import jax.numpy as jnp, gradspec
        >>> local = jnp.array([[[1.0], [3.0]], [[3.0], [5.0]]])  # B = 2, T = 2, k = 1
        >>> c = gradspec.running_exponents(local)
        >>> c.t.tolist(), c.mean[:, 0].tolist(), c.se[:, 0].tolist()
        ([1, 2], [2.0, 3.0], [1.0, 1.0])
    """
    check_floating("local", local)
    if np.ndim(local) not in (2, 3) or 0 in np.shape(local):
        raise ValueError(f"`local` must have shape (B, T, k) or (T, k); got {np.shape(local)}.")
    warmup = check_int("warmup", warmup, 0, np.shape(local)[-2] - 1)
    return _running(jnp.asarray(local), warmup)


@jax.jit
def _running_mean_se(local):
    count = jnp.arange(1, local.shape[-2] + 1, dtype=local.dtype)
    run = jnp.cumsum(local, axis=-2) / count.reshape((1,) * (local.ndim - 2) + (-1, 1))
    if local.ndim == 2:
        return run, jnp.full_like(run, jnp.nan)
    batch = local.shape[0]
    mean = run.mean(0, keepdims=True)
    if batch == 1:
        return mean[0], jnp.full_like(mean[0], jnp.nan)
    se = jnp.sqrt(jnp.sum((run - mean) ** 2, axis=0) / (batch * (batch - 1)))
    return mean[0], se


def _running(local, warmup: int) -> LyapunovConvergence:
    mean, se = _running_mean_se(local[..., warmup:, :])
    return LyapunovConvergence(jnp.arange(warmup + 1, local.shape[-2] + 1), mean, se)


def lyapunov_convergence(
    cell,
    params,
    xs,
    h0=None,
    *,
    k: int | None = None,
    warmup: int = 0,
    method: Method = "auto",
    frame=None,
    key=None,
) -> LyapunovConvergence:
    r"""The running Lyapunov estimate :math:`\lambda_i(t)` ± its standard error over a
    batch of input sequences and/or start states, one sweep per member under
    ``jax.vmap``.

    Each member runs :func:`local_exponents` (the sweep of
    :func:`gradspec.lyapunov_spectrum`, same start frame); :func:`running_exponents`
    turns them into the batch mean and standard error at every step. Whether the
    estimate has converged, and to what precision, is then read off the figure
    (:func:`gradspec.plots.plot_convergence`), not assumed.

    Args:
        cell, params: the network.
        xs: inputs (B, T, D), one sequence per member, or (T, D) shared by all.
        h0: start states (B, S), one per member (e.g. ``gradspec.start_state(cell,
            params, D, key=jax.random.split(key, B))``), or (S,) shared, or None
            (the default start state for all). At least one of xs and h0 is batched.
        k, warmup, method, frame, key: as in :func:`gradspec.lyapunov_spectrum`.

    Returns:
        A :class:`LyapunovConvergence` with (T - w,) rows.

    Raises:
        ValueError: neither xs nor h0 batched, or their batch sizes differ; the checks
            of :func:`gradspec.lyapunov_spectrum`.

    Examples:
        >>> import jax, jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.RNN("linear")
        >>> W = gradspec.init.orthogonal(0.5)(jax.random.key(0), (3, 3), jnp.float32)
        >>> params = {"W_hh": W, "W_xh": jnp.ones((3, 1)), "b": jnp.zeros(3)}
        >>> xs = jax.random.normal(jax.random.key(1), (4, 50, 1))  # B = 4 sequences
        >>> c = gradspec.lyapunov_convergence(cell, params, xs, k=1)
        >>> round(float(c.mean[-1, 0]), 4), float(c.se[-1, 0]) < 1e-6  # log 0.5, exact
        (-0.6931, True)
    """
    check_choice("method", method, ("auto", "autodiff"))
    check_floating("xs", xs)
    x_batch = np.ndim(xs) == 3
    h_batch = h0 is not None and np.ndim(h0) == 2
    if not (x_batch or h_batch):
        raise ValueError(
            "`xs` (B, T, D) or `h0` (B, S) must carry a batch to average over; got xs "
            f"{np.shape(xs)} and h0 {None if h0 is None else np.shape(h0)} (one run: "
            "gradspec.running_exponents(gradspec.local_exponents(...))).")
    if x_batch and h_batch and np.shape(xs)[0] != np.shape(h0)[0]:
        raise ValueError(f"`h0` must have as many rows as `xs` has sequences, "
                         f"{np.shape(xs)[0]}; got {np.shape(h0)}.")
    if h_batch:  # the batch's shape first: the per-member check would name (S,)
        cell = as_cell(cell)
        check_params(cell, params)
        size = cell.state_size(cell.hidden_size(params))
        check_floating("h0", h0)
        if np.shape(h0)[1] != size:
            raise ValueError(f"`h0` must have shape (B, {size}) (state size S); "
                             f"got {np.shape(h0)}.")
        check_finite("h0", h0)
    cell, first, start = check_trajectory_inputs(
        cell, params, xs[0] if x_batch else xs, h0[0] if h_batch else h0)
    dtype, size = first.dtype, start.shape[0]
    if x_batch:
        check_finite("xs", xs)
    xs = jnp.asarray(xs, dtype) if x_batch else first
    h0 = jnp.asarray(h0, dtype) if h_batch else start
    warmup = check_int("warmup", warmup, 0, first.shape[0] - 1)
    q0 = resolve_frame(key, frame, size, k, dtype)
    sweep = lambda x, h: lyapunov_sweep(cell, params, x, h, q0, method)[1]
    local = jax.vmap(sweep, in_axes=(0 if x_batch else None, 0 if h_batch else None))(xs, h0)
    return _running(local, warmup)
