r"""Random-matrix laws of :math:`W \sim \mathcal N(0, g^2/N)` as N grows.

- :func:`circular_law_density`: the density of the eigenvalues (Girko's circular law).
- :func:`quarter_circle_density`: the density of the singular values (the
  quarter-circle law).

References:
    Girko (1985), circular law; Marchenko & Pastur (1967), quarter-circle law.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._common import _check_scale

__all__ = ["circular_law_density", "quarter_circle_density"]


def _real_dtype(name: str, x, *, allow_complex: bool) -> jnp.dtype:
    dtype = jnp.result_type(x)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        if not allow_complex:
            raise TypeError(
                f"`{name}` must be real (singular values); got dtype {dtype}."
            )
        return jnp.finfo(dtype).dtype
    if jnp.issubdtype(dtype, jnp.floating):
        return dtype
    if jnp.issubdtype(dtype, jnp.integer) or isinstance(x, (int, float)):
        return jnp.zeros(()).dtype
    raise TypeError(f"`{name}` must be a real or complex array; got dtype {dtype}.")


def circular_law_density(z, gain=1.0) -> jax.Array:
    r"""Girko's circular law: eigenvalue density of :math:`W \sim \mathcal N(0, g^2/N)`.

    .. math::
        p(z) = \frac{1}{\pi g^2}\ \text{for}\ |z| \le g, \qquad 0\ \text{otherwise},

    a density on the complex plane (integrates to 1 over the disk of radius
    ``g = gain``) that the empirical eigenvalue distribution approaches as
    :math:`N \to \infty`. So :math:`\rho(W) \to g` and a fraction :math:`r^2/g^2` of
    the eigenvalues has modulus at most r.

    Args:
        z: points of the complex plane, any shape (complex, or real for the real axis).
        gain: g > 0, as in :func:`gradspec.init.gaussian`.

    Returns:
        Same shape as ``z``, real, in z's (real) precision.

    Raises:
        ValueError: ``gain`` not a finite number > 0.

    Examples:
        >>> import jax.numpy as jnp, gradspec.theory as gt
        >>> p = gt.circular_law_density(jnp.array([0.5j, 1.5]), 1.0)
        >>> [round(float(v), 4) for v in p]
        [0.3183, 0.0]
    """
    dtype = _real_dtype("z", z, allow_complex=True)
    gain = _check_scale("gain", gain, dtype, positive=True)
    r2 = jnp.abs(jnp.asarray(z)).astype(dtype) ** 2
    g2 = gain**2
    return jnp.where(r2 <= g2, 1 / (jnp.pi * g2), jnp.zeros((), dtype))


def quarter_circle_density(s, gain=1.0) -> jax.Array:
    r"""Quarter-circle law: singular values of :math:`W \sim \mathcal N(0, g^2/N)`.

    .. math::
        p(\sigma) = \frac{1}{\pi g^2} \sqrt{4 g^2 - \sigma^2}, \qquad
        0 \le \sigma \le 2g,

    zero elsewhere; it integrates to 1 (the Marchenko–Pastur law of :math:`W^\top W`
    with aspect ratio 1, in the variable :math:`\sigma = \sqrt{\text{eigenvalue}}`).
    So :math:`\|W\|_2 \to 2g` while :math:`\rho(W) \to g`: a Gaussian W is far from
    normal, and the gap is why norm bounds (:func:`gradient_bound`) are loose for it.

    Args:
        s: singular values, real, any shape.
        gain: g > 0, as in :func:`gradspec.init.gaussian`.

    Returns:
        Same shape as ``s``, in s's dtype.

    Raises:
        TypeError: complex ``s``.
        ValueError: ``gain`` not a finite number > 0.

    Examples:
        >>> import jax.numpy as jnp, gradspec.theory as gt
        >>> p = gt.quarter_circle_density(jnp.array([0.0, 2.0, 3.0]))
        >>> [round(float(v), 4) for v in p]
        [0.6366, 0.0, 0.0]
    """
    dtype = _real_dtype("s", s, allow_complex=False)
    gain = _check_scale("gain", gain, dtype, positive=True)
    s = jnp.asarray(s).astype(dtype)
    g2 = gain**2
    inside = (s >= 0) & (s <= 2 * gain)
    root = jnp.sqrt(jnp.maximum(4 * g2 - s**2, 0))
    return jnp.where(inside, root / (jnp.pi * g2), jnp.zeros((), dtype))
