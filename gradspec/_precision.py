r"""Full-precision matrix products for gradspec's measurements.

On GPUs and TPUs JAX's default float32 matmul runs on reduced-precision units (TF32 on
NVIDIA tensor cores: a 10-bit mantissa, ~1e-3 relative error per product). Along a
trajectory those errors compound: the log-norm of a T-step product then carries an error
of order :math:`10^{-3}\sqrt{T}`, far above float32 rounding. gradspec claims its numbers
are exact to rounding on every backend, so its kernels trace under
``jax.default_matmul_precision("highest")``, unless the caller has chosen a precision
(``with jax.default_matmul_precision(...)`` or the ``jax_default_matmul_precision``
flag): that choice is respected, e.g. to trade accuracy for TF32 speed in a large sweep.
On CPU every setting computes the same full-precision product.
"""

from __future__ import annotations

import functools

import jax


def full_precision(fn):
    """Run ``fn`` (typically while it is traced) with "highest" matmul precision, unless
    the caller has set a default matmul precision of their own."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if jax.config.jax_default_matmul_precision is not None:
            return fn(*args, **kwargs)
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapped
