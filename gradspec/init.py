"""Recurrent-weight initializers.

Every initializer here is a factory returning ``init_fn(key, shape, dtype) -> Array``,
the same signature as ``jax.nn.initializers``, so they compose with the cells' ``init``
(``recurrent_init=gradspec.init.orthogonal(1.0)``) and with any JAX code.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import jax.random as jr

from .theory import critical_gain

Initializer = Callable[[jax.Array, tuple, jnp.dtype], jax.Array]

__all__ = [
    "Initializer",
    "gaussian",
    "orthogonal",
    "identity",
    "glorot",
    "uniform",
    "critical",
]


def _check_gain(gain: float, name: str = "gain") -> float:
    if not isinstance(gain, (int, float)) or not math.isfinite(gain) or gain < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0; got {gain!r}.")
    return float(gain)


def _check_square(shape: tuple, name: str) -> int:
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"`shape` for {name} must be square (N, N); got {tuple(shape)}.")
    return shape[0]


def gaussian(gain: float = 1.0) -> Initializer:
    r"""I.i.d. Gaussian weights scaled by fan-in.

    .. math:: W_{ij} \sim \mathcal N(0, g^2 / N)

    with ``g = gain`` and ``N = shape[-1]`` (fan-in). For a vanilla RNN the eigenvalues of
    W fill the disk of radius ``g`` (circular law) as N grows.

    Examples:
        >>> import jax, gradspec
        >>> W = gradspec.init.gaussian(1.5)(jax.random.key(0), (4, 4), "float32")
        >>> W.shape
        (4, 4)
    """
    gain = _check_gain(gain)

    def init_fn(key, shape, dtype=jnp.float32):
        fan_in = shape[-1]
        return gain / math.sqrt(fan_in) * jr.normal(key, shape, dtype)

    return init_fn


def orthogonal(gain: float = 1.0) -> Initializer:
    r"""Haar-random orthogonal matrix times ``gain``: every singular value equals ``g``.

    Drawn as the Q factor of a Gaussian matrix with the signs of diag(R) folded in, which
    makes Q Haar distributed (Mezzadri 2007, arXiv:math-ph/0609050).
    """
    gain = _check_gain(gain)

    def init_fn(key, shape, dtype=jnp.float32):
        n = _check_square(shape, "orthogonal")
        a = jr.normal(key, (n, n), dtype)
        q, r = jnp.linalg.qr(a)
        q = q * jnp.sign(jnp.diag(r))[None, :]
        return gain * q

    return init_fn


def identity(gain: float = 1.0) -> Initializer:
    r"""``gain`` times the identity: the IRNN initialization (Le, Jaitly & Hinton 2015,
    arXiv:1504.00941), usually paired with ReLU."""
    gain = _check_gain(gain)

    def init_fn(key, shape, dtype=jnp.float32):
        n = _check_square(shape, "identity")
        return gain * jnp.eye(n, dtype=dtype)

    return init_fn


def glorot(gain: float = 1.0) -> Initializer:
    r"""Glorot/Xavier uniform: :math:`W_{ij} \sim U(-a, a)`, ``a = g sqrt(6 / (fan_in + fan_out))``.

    For a square W this has variance :math:`g^2/N`, the same as :func:`gaussian`."""
    gain = _check_gain(gain)

    def init_fn(key, shape, dtype=jnp.float32):
        a = gain * math.sqrt(6.0 / (shape[0] + shape[-1]))
        return jr.uniform(key, shape, dtype, -a, a)

    return init_fn


def uniform(scale: float) -> Initializer:
    r""":math:`W_{ij} \sim U(-s, s)`: PyTorch's default for RNN/LSTM/GRU is ``s = 1/sqrt(N)``."""
    scale = _check_gain(scale, "scale")

    def init_fn(key, shape, dtype=jnp.float32):
        return jr.uniform(key, shape, dtype, -scale, scale)

    return init_fn


def critical(
    nonlinearity="tanh", *, sigma_b: float = 0.0, sigma_x: float = 0.0
) -> Initializer:
    r"""Gaussian weights at the edge of chaos: :func:`gaussian` with the critical gain.

    .. math:: W_{ij} \sim \mathcal N(0, \sigma_w^{*2} / N), \qquad
        \chi(\sigma_w^*; \sigma_b, \sigma_x) = 1,

    where :math:`\sigma_w^*` is :func:`gradspec.theory.critical_gain`: the mean-field
    scale at which the gradient norm neither vanishes nor explodes per step (tanh 1 and
    relu :math:`\sqrt 2` without bias; larger for tanh with bias ``sigma_b`` or
    input drive ``sigma_x``).

    Args:
        nonlinearity: ``"tanh"``, ``"sigmoid"``, ``"relu"``, ``"linear"`` or a callable.
        sigma_b: standard deviation of the bias the cell will use (>= 0).
        sigma_x: standard deviation of each unit's input drive (>= 0).

    Raises:
        ValueError: unknown ``nonlinearity``, negative ``sigma_b``/``sigma_x``, or no
            gain reaches chi = 1.

    Examples:
        >>> import jax, gradspec
        >>> W = gradspec.init.critical("relu")(jax.random.key(0), (4, 4), "float32")
        >>> W.shape
        (4, 4)
    """
    gain = float(critical_gain(nonlinearity, sigma_b=sigma_b, sigma_x=sigma_x))
    if not math.isfinite(gain):
        raise ValueError(
            f"`nonlinearity` {nonlinearity!r} has no critical gain (chi < 1 for every "
            f"sigma_w up to 2**30 at sigma_b={sigma_b}, sigma_x={sigma_x})."
        )
    return gaussian(gain)
