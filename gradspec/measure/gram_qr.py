r"""QR of a frame by block Gram-Schmidt with Cholesky panels: matrix products only.

Householder QR (LAPACK ``geqrf`` + ``orgqr``) spends much of its time in panel steps
that are matrix-vector work, and it is the larger part of Benettin's sweep once the
frame is wide. This module factors :math:`Z = QR` (S, k) with the same result to
rounding from matrix-matrix products, plus a small Cholesky factorisation and a
triangular solve per panel. Measured in the full-spectrum sweep (tanh, CPU, one
interleaved run of ``benchmarks/bench_reorth.py``): 1.08x / 1.20x faster at N = 512 and
1.28x / 1.29x at N = 1024 (float32 / float64); a single panel (k <= :data:`PANEL`) is
not faster than Householder.

The columns are split into panels :math:`Z = [Z_1, \dots, Z_p]` of width
:data:`PANEL`; with :math:`Q_{<i}` the finished columns, each panel is projected,
factored, projected again and factored again (BCGS2, Barlow & Smoktunowicz 2013, with
CholeskyQR panels, Yamamoto et al. 2015):

.. math::
    Y_i = Z_i - Q_{<i} Q_{<i}^\top Z_i = U_i R'_i, \qquad
    U_i - Q_{<i} Q_{<i}^\top U_i = Q_i R''_i, \qquad
    R_{ii} = R''_i R'_i,

each :math:`Y = UR'` by CholeskyQR, :math:`R' = \mathrm{chol}(Y^\top Y)^\top`,
:math:`U = Y R'^{-1}`. The second projection acts on the normalised :math:`U_i`: what the
first left along :math:`Q_{<i}` (rounding of size :math:`\epsilon\|Z_i\|`, amplified by
:math:`R'^{-1}` when the panel is nearly dependent on the finished columns) is removed
at its amplified size, so Q is orthonormal to :math:`O(\epsilon)`, as Householder's is;
projecting twice before normalising leaves
:math:`\epsilon\,\kappa` (measured: 2e-13 against 2e-15 for S = 512, float64). Only
:math:`\mathrm{diag}\,R = \mathrm{diag}\,R''_i\,\mathrm{diag}\,R'_i` is returned: the
spectra need :math:`\log|R_{jj}|` alone.

CholeskyQR squares the panel's condition number, so it holds while
:math:`\kappa(Y_i) \lesssim \epsilon^{-1/2}`; BCGS2 itself while
:math:`\kappa(Z) \lesssim \epsilon^{-1}`. Beyond that the Cholesky factor breaks down
(NaN) or Q loses orthogonality. :func:`qr_log_diag` therefore checks every result (the
logs finite, :math:`\|Q^\top Q v - v\|_\infty \le` :data:`ORTHOGONALITY_TOL`
:math:`\cdot\,\epsilon` for a fixed random unit vector v: two matrix-vector products)
and falls back to Householder QR for that factorisation alone, so an exactly singular
step (dead relu units) gets the same answer as before.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular

__all__ = ["PANEL", "ORTHOGONALITY_TOL", "gram_qr", "qr_log_diag"]

#: Columns per panel: wide enough that the products run near the matmul peak, narrow
#: enough that the panel's Cholesky and triangular solve stay a small part of the work
#: (at S = 512: 64 / 128 / 256 measured within 15% of one another, 128 best in float64).
PANEL = 128
#: A factorisation is accepted when :math:`\|Q^\top Q v - v\|_\infty \le` this times
#: the dtype's epsilon (Householder's Q: ~10; this method's: ~10 where it holds; a
#: broken Cholesky factor: O(1)).
ORTHOGONALITY_TOL = 1024


def _cholesky_qr(y):
    """One CholeskyQR of a panel y (S, b): (U, diag R'), y = U R'."""
    r = jnp.linalg.cholesky(y.T @ y).T
    return solve_triangular(r, y.T, trans="T", lower=False).T, jnp.diagonal(r)


def gram_qr(z, panel: int = PANEL):
    r"""Q (S, k) and :math:`\mathrm{diag}\,R` (k,) of :math:`z = QR` by BCGS2 with
    CholeskyQR panels (module docstring); unchecked: NaN or a non-orthonormal Q where
    a panel is too ill-conditioned for Cholesky (:func:`qr_log_diag` checks)."""
    done, diag = None, []
    for start in range(0, z.shape[1], panel):
        y = z[:, start:start + panel]
        if done is not None:
            y = y - done @ (done.T @ y)
        u, first = _cholesky_qr(y)
        if done is not None:
            u = u - done @ (done.T @ u)
        q, second = _cholesky_qr(u)
        done = q if done is None else jnp.concatenate([done, q], axis=1)
        diag.append(first * second)
    return done, jnp.concatenate(diag)


def _probe_vector(k: int, dtype):
    v = jax.random.normal(jax.random.key(0), (k,), dtype)
    return v / jnp.linalg.norm(v)


def householder_log_diag(z, q):
    """Householder QR of z = J q: (Q, log|diag R|); where z is exactly zero the frame
    ``q`` it was pushed from is kept (:func:`gradspec.measure.lyapunov._qr_log_diag`)."""
    q_new, r = jnp.linalg.qr(z)
    return jnp.where(jnp.any(z != 0), q_new, q), jnp.log(jnp.abs(jnp.diagonal(r)))


def qr_log_diag(z, q):
    r"""(Q, log|diag R|) of z = J q (S, k) by :func:`gram_qr`, checked; Householder
    (:func:`householder_log_diag`) for this z where the check fails."""
    q_gram, diag = gram_qr(z)
    logd = jnp.log(diag)
    v = _probe_vector(z.shape[1], z.dtype)
    defect = jnp.max(jnp.abs(q_gram.T @ (q_gram @ v) - v))
    ok = jnp.all(jnp.isfinite(logd)) & (defect <= ORTHOGONALITY_TOL * jnp.finfo(z.dtype).eps)
    return lax.cond(ok, lambda: (q_gram, logd), lambda: householder_log_diag(z, q))
