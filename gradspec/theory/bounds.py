r"""What the recurrent matrix alone says about the gradient norm over k steps.

- :func:`gradient_bound`: Pascanu et al.'s norm bound
  :math:`(\gamma\, \sigma_{max}(W_{hh}))^k` on Jacobian products.
- :func:`transient_growth`: :math:`\|W^k\|_2` for non-normal W, which can grow for
  many steps although :math:`\rho(W) < 1` (for a linear RNN, the gradient norm).

References:
    Pascanu, Mikolov, Bengio (2013), "On the difficulty of training recurrent neural
    networks", arXiv:1211.5063.
"""

from __future__ import annotations

import functools
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import check_int, check_square_matrix, is_concrete
from .._precision import full_precision
from .._nonlinearities import NONLINEARITIES, Nonlinearity, slope
from ._common import _check_nonlinearity, _check_scale

__all__ = [
    "GradientBound",
    "gradient_bound",
    "TransientGrowth",
    "transient_growth",
]

# sup|f'| of a user's callable: max over a dense grid (see gradient_bound).
_GAMMA_GRID = np.linspace(-50.0, 50.0, 100_001)


# -- Pascanu's bound ---------------------------------------------------------------


class GradientBound(NamedTuple):
    """Pascanu et al.'s bound for one vanilla-RNN weight matrix."""

    log_bound: (
        jax.Array
    )  # shape of k: k log(gamma sigma_max) >= log||J_{t+k}...J_{t+1}||_2
    log_rate: jax.Array  # () log(gamma sigma_max): per-step bound on lambda_max
    gamma: jax.Array  # () sup|f'|
    spectral_norm: jax.Array  # () sigma_max(W_hh) = ||W_hh||_2
    vanishing_guaranteed: jax.Array  # () bool: gamma sigma_max < 1 (sufficient)
    exploding_necessary: (
        jax.Array
    )  # () bool: gamma sigma_max > 1 (necessary; may still vanish)


def _gamma(nonlinearity: Nonlinearity, dtype) -> float:
    if isinstance(nonlinearity, str):
        return NONLINEARITIES[nonlinearity][1]
    grid = jnp.asarray(_GAMMA_GRID, dtype)
    return float(jnp.max(jnp.abs(slope(nonlinearity, grid))))


@jax.jit
@full_precision
def _gradient_bound(W, k, gamma):
    sigma_max = jnp.linalg.norm(W, 2)
    # log(gamma) + log(sigma): no overflow of the product; log 0 = -inf for W = 0.
    log_rate = jnp.log(gamma) + jnp.log(sigma_max)
    log_bound = jnp.where(k == 0, 0, k * log_rate)  # 0 * -inf would be nan
    rate = gamma * sigma_max
    return GradientBound(log_bound, log_rate, gamma, sigma_max, rate < 1, rate > 1)


def gradient_bound(
    params, nonlinearity: Nonlinearity, k, *, gamma=None
) -> GradientBound:
    r"""Pascanu et al. (2013)'s upper bound on the norm of k-step Jacobian products.

    For :math:`J_t = \mathrm{diag}(f'(a_t))\, W_{hh}` and :math:`\gamma = \sup|f'|`,

    .. math::
        \Big\| \prod_{i=t+1}^{t+k} J_i \Big\|_2
        \le \prod_{i} \|\mathrm{diag} f'(a_i)\|_2 \|W_{hh}\|_2
        \le (\gamma\, \sigma_{max}(W_{hh}))^k,

    so ``log_bound = k * log(gamma * sigma_max)`` bounds the log gradient-norm ratio
    over k steps on *every* trajectory. Hence :math:`\gamma\sigma_{max} < 1` is
    *sufficient* for vanishing (``vanishing_guaranteed``), and
    :math:`\gamma\sigma_{max} > 1` is *necessary* for exploding
    (``exploding_necessary``; it does not imply explosion: saturated units can still
    make gradients vanish). The bound is attained for a linear RNN with
    :math:`W_{hh}` a multiple of an orthogonal matrix.

    :math:`\gamma` is 1 for tanh, relu and linear and 1/4 for sigmoid. For a callable
    it is estimated as :math:`\max |f'|` over 100,001 equally spaced points in
    [-50, 50] (0 included), which is exact when the supremum is attained there or
    approached by |u| = 50 to rounding (tanh-, sigmoid- and softplus-like f); pass
    ``gamma`` when it is not, or the bound may be too small.

    Args:
        params: a vanilla RNN's params (dict with ``W_hh`` (N, N)) or ``W_hh`` itself.
        nonlinearity: as in :func:`mean_field`.
        k: lag(s) >= 0: an int or an array of any shape (vectorised, no loop).
        gamma: optional override of :math:`\sup|f'|`, a number > 0.

    Returns:
        A :class:`GradientBound` in the dtype of ``W_hh``; ``log_bound`` has k's shape.

    Raises:
        ValueError: ``W_hh`` not square or not finite; negative ``k``; ``gamma`` <= 0;
            ``params`` without ``W_hh``; unknown ``nonlinearity``.
        TypeError: ``W_hh`` not floating; non-numeric ``k``.

    Examples:
        >>> import jax.numpy as jnp, gradspec.theory as gt
        >>> b = gt.gradient_bound({"W_hh": 0.5 * jnp.eye(3)}, "tanh", jnp.arange(4))
        >>> [round(float(v), 4) for v in b.log_bound]  # k log 0.5
        [0.0, -0.6931, -1.3863, -2.0794]
        >>> bool(b.vanishing_guaranteed), bool(b.exploding_necessary)
        (True, False)
        >>> bool(gt.gradient_bound(4.0 * jnp.eye(3), "sigmoid", 1).exploding_necessary)
        False

    References:
        Pascanu, Mikolov, Bengio (2013), arXiv:1211.5063, section 3.1 and eq. (7).
    """
    if isinstance(params, Mapping):
        if "W_hh" not in params:
            raise ValueError(
                f"`params` must contain 'W_hh' (a vanilla RNN's params); "
                f"got keys {sorted(params)}."
            )
        W = params["W_hh"]
    else:
        W = params
    W = check_square_matrix("W_hh", W)
    nonlinearity = _check_nonlinearity(nonlinearity)
    dtype = W.dtype
    try:
        k_dtype = None if isinstance(k, (bool, np.bool_, str)) else jnp.result_type(k)
    except TypeError:
        k_dtype = None
    if k_dtype is None or not (
        jnp.issubdtype(k_dtype, jnp.integer) or jnp.issubdtype(k_dtype, jnp.floating)
    ):
        raise TypeError(f"`k` must be an int or a real array of lags; got {k!r}.")
    if is_concrete(k):
        k_np = np.asarray(k)
        if not np.all(np.isfinite(k_np)) or np.any(k_np < 0):
            raise ValueError(f"`k` must be finite lags >= 0; got {k!r}.")
    k = jnp.asarray(k).astype(dtype)
    if gamma is None:
        gamma = _gamma(nonlinearity, dtype)
    else:
        gamma = _check_scale("gamma", gamma, dtype, positive=True)
    return _gradient_bound(W, k, jnp.asarray(gamma, dtype))


# -- transient growth of non-normal W ----------------------------------------------


class TransientGrowth(NamedTuple):
    """Norms of the powers of a square matrix W, in the log domain."""

    log_norms: jax.Array  # (K,) log||W^k||_2 for k = 1..K
    log_max_growth: jax.Array  # () max_k log||W^k||_2
    peak_power: jax.Array  # () int, the k (1-based) where ||W^k||_2 peaks
    log_spectral_radius: jax.Array  # () log rho(W) = lim_k (1/k) log||W^k||_2

    @property
    def max_growth(self) -> jax.Array:
        """:math:`\\max_k \\|W^k\\|_2` (may overflow to inf; prefer the log)."""
        return jnp.exp(self.log_max_growth)


@functools.partial(jax.jit, static_argnames="max_power")
@full_precision
def _transient_growth(W, max_power):
    tiny = jnp.finfo(W.dtype).tiny

    def body(carry, _):
        p, log_scale = carry  # W^k = exp(log_scale) * p with ||p||_2 = 1
        p = W @ p
        n = jnp.linalg.norm(p, 2)
        log_norm = log_scale + jnp.log(n)
        # Renormalise each power: ||W^k|| may span thousands of orders of magnitude.
        # An exactly zero power (nilpotent W) stays zero with log-norm -inf.
        return (p / jnp.where(n > tiny, n, 1), log_norm), log_norm

    init = (jnp.eye(W.shape[0], dtype=W.dtype), jnp.zeros((), W.dtype))
    _, log_norms = lax.scan(body, init, None, length=max_power)
    peak = jnp.argmax(log_norms)
    rho = jnp.max(jnp.abs(jnp.linalg.eigvals(W)))
    return TransientGrowth(
        log_norms, log_norms[peak], peak + 1, jnp.log(rho).astype(W.dtype)
    )


def transient_growth(W, *, max_power: int = 100) -> TransientGrowth:
    r"""Transient growth of :math:`\|W^k\|_2` before its asymptotic rate
    :math:`\rho(W)^k`.

    For normal W, :math:`\|W^k\|_2 = \rho(W)^k`. A non-normal W can amplify for many
    steps although :math:`\rho(W) < 1`: e.g. :math:`W = [[0.9, 10], [0, 0.9]]` has
    :math:`\|W^k\|_2 \approx 10 k\, 0.9^{k-1}`, peaking near 38.7 at k = 9 before
    decaying like :math:`0.9^k`: "vanishing with transient growth". For a linear RNN
    this is exactly the gradient norm over k steps.

    .. math::
        \ell_k = \log \|W^k\|_2,\ k = 1..K, \qquad
        \lim_{k\to\infty} \ell_k / k = \log \rho(W).

    The powers are a ``lax.scan`` of one matrix product and one SVD per k,
    renormalised every step (log domain: finite at any K). :math:`\rho(W)` comes from
    ``jnp.linalg.eigvals`` (CPU and GPU; not TPU).

    Args:
        W: square matrix (N, N), e.g. ``params["W_hh"]``.
        max_power: K >= 1, the largest power.

    Returns:
        A :class:`TransientGrowth` in W's dtype (``peak_power`` int).

    Raises:
        ValueError: W not square or not finite; ``max_power`` < 1.
        TypeError: W not floating; ``max_power`` not an int.

    Examples:
        >>> import jax.numpy as jnp, gradspec.theory as gt
        >>> tg = gt.transient_growth(jnp.array([[0.9, 10.0], [0.0, 0.9]]), max_power=50)
        >>> round(float(tg.max_growth), 2), int(tg.peak_power)
        (38.75, 9)
        >>> round(float(tg.log_spectral_radius), 4)  # log 0.9 < 0: vanishes eventually
        -0.1054
    """
    W = check_square_matrix("W", W)
    max_power = check_int("max_power", max_power, 1)
    return _transient_growth(W, max_power)
