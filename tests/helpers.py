"""Shared test helpers: tolerances per dtype, tree comparisons and rounding bounds.

House rule: a tolerance is relative to the size of the terms that are summed, never to
the (possibly cancelled) result: XLA's summation order, hence its rounding, changes with
the CPU's instruction set (AVX2 vs AVX-512) and with vmap/jit/batch size.
"""

import jax
import jax.numpy as jnp
import numpy as np

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)

# Rounding of O(S) flops per step accumulated over T steps: float64 leaves ~1e-12 relative
# room, float32 ~1e-5 (eps 1.2e-7 times a few hundred operations of growth).
RTOL = {jnp.dtype("float32"): 1e-5, jnp.dtype("float64"): 1e-12}


def tree_allclose(a, b, rtol=1e-7, atol=0.0):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(
        np.allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol) for x, y in zip(la, lb)
    )


def log_product_atol(start, factors, c=16.0):
    r"""Absolute rounding bound on :math:`\ell_k = \log\|s F_1 \cdots F_k\|`, k = 0..K, for
    two computations that differ only in the order of their sums (a reference against the
    library, vmap against a loop, AVX2 against AVX-512).

    ``start`` is a vector (2-norm) or a matrix (spectral norm); each factor acts from the
    right (``p @ F``: pass ``J[::-1]`` for a gradient profile r^T J_T ... J_1, or
    ``W.T`` for powers W^k). Step k sums S products of sizes ``|p||F_k|`` (p the running
    product, normalised), so it moves the product by ~S eps ``‖|p||F_k|‖`` relative to
    ``‖p F_k‖`` (1 when nothing cancels, large when the step cancels), which is that much
    absolute on the log; the running sum of logs adds eps ``|ℓ_k|``. The bound is
    ``c eps`` times the sum of both over the steps so far (c: the constants of those
    bounds, and the rounding of the factors themselves).
    """
    factors = np.asarray(factors)
    eps = float(np.finfo(factors.dtype).eps)
    p = np.asarray(start, np.float64)

    def norm(a):
        return np.linalg.norm(a, 2) if a.ndim == 2 else np.linalg.norm(a)

    n = norm(p)
    ell, p = np.log(n), p / n
    acc = [1.0 + abs(ell)]
    for F in factors.astype(np.float64):
        q = p @ F
        n = norm(q)
        kappa = norm(np.abs(p) @ np.abs(F)) / n
        ell, p = ell + np.log(n), q / n
        acc.append(acc[-1] + F.shape[0] * kappa + abs(ell))
    return c * eps * np.array(acc)


_MEAN_FIELD = ("q_star", "chi", "lambda_max", "xi", "timescale")


def assert_mean_field_close(got, want, rtol, atol=0.0, err_msg=""):
    """Mean-field results (a ``MeanField`` or a dict of its fields) equal, each field on
    its own scale.

    q* and chi are sums of positive terms: relative (``rtol``, ``atol``). lambda_max =
    log(chi)/2 is the log of a ratio that is ~1 near criticality, so its error is
    absolute, chi's relative error: ``rtol`` absolute (an rtol on it demands ever more
    digits of chi as lambda -> 0). xi = -1/log chi and timescale = 1/|lambda| blow that up
    by 1/lambda^2, so they are compared as their reciprocals (log chi, |lambda|) on the
    same absolute scale.
    """
    g = got._asdict() if hasattr(got, "_asdict") else dict(got)
    w = want._asdict() if hasattr(want, "_asdict") else dict(want)
    assert set(g) == set(w) == set(_MEAN_FIELD), (sorted(g), sorted(w))
    g, w = ({k: np.asarray(d[k], np.float64) for k in _MEAN_FIELD} for d in (g, w))
    for k in ("q_star", "chi"):
        np.testing.assert_allclose(g[k], w[k], rtol=rtol, atol=atol, err_msg=f"{k} {err_msg}")
    with np.errstate(divide="ignore"):  # xi, timescale = inf at chi = 1: reciprocal 0
        for k, f in (("lambda_max", lambda x: x), ("xi", lambda x: -1 / x),
                     ("timescale", lambda x: 1 / x)):
            np.testing.assert_allclose(f(g[k]), f(w[k]), rtol=0, atol=rtol,
                                       err_msg=f"{k} {err_msg}")


def assert_within(got, want, atol, err_msg=""):
    """``|got - want| <= atol`` elementwise, ``atol`` an array of per-element bounds (such
    as :func:`log_product_atol`; ``np.testing.assert_allclose`` takes scalars only). Equal
    infinities and NaN against NaN pass."""
    got, want = np.broadcast_arrays(np.asarray(got, np.float64), np.asarray(want, np.float64))
    atol = np.broadcast_to(np.asarray(atol, np.float64), got.shape)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore"):
        err = np.where(same, 0.0, np.abs(got - want))
    bad = ~same & ~(err <= atol)
    if bad.any():
        worst = np.unravel_index(np.argmax(np.where(bad, err / atol, -1.0)), got.shape)
        raise AssertionError(
            f"{err_msg} {bad.sum()} of {bad.size} entries beyond their bound; worst at "
            f"{worst}: got {got[worst]!r}, want {want[worst]!r}, |diff| {err[worst]:.3g} > "
            f"{atol[worst]:.3g}")
