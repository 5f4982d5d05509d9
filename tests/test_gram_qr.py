"""Block Gram-Schmidt QR with Cholesky panels (gradspec.measure.gram_qr) against
Householder QR in float64 (numpy/LAPACK), 40-digit mpmath, and its fallback."""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import gradspec
from gradspec.measure import gram_qr
from gradspec.measure.lyapunov import resolve_qr

EPS64 = np.finfo(np.float64).eps


def _graded(rng, size, k, spread):
    """(size, k) with singular values e^0 .. e^-spread in random directions: the shape
    of a frame pushed through a step whose exponents span ``spread`` nats."""
    u = np.linalg.qr(rng.standard_normal((size, k)))[0]
    v = np.linalg.qr(rng.standard_normal((k, k)))[0]
    return u @ np.diag(np.exp(-np.linspace(0, spread, k))) @ v.T


@pytest.mark.parametrize("k", [1, 37, 128, 129, 300])
def test_matches_householder_float64(k):
    # Panel edges (128 | 129), one panel, one column and the square case. A backward-
    # stable QR returns log R_jj to ~eps cond(z) absolute; cond = e^6 here, so 1e-12
    # leaves ~10x room over 4e2 * eps * e^6 = 3.6e-11 ... measured ~2e-14.
    z = _graded(np.random.default_rng(k), 300, k, 6.0)
    q, diag = jax.jit(gram_qr.gram_qr)(jnp.asarray(z))
    q_ref, r_ref = np.linalg.qr(z)
    np.testing.assert_allclose(np.log(np.asarray(diag)), np.log(np.abs(np.diag(r_ref))),
                               rtol=0, atol=1e-12)
    # Orthonormal to rounding, as Householder's Q (O(k eps)).
    assert np.abs(np.asarray(q.T @ q) - np.eye(k)).max() < 20 * k * EPS64
    # The same columns up to sign: Q_j = z_j's component off the previous columns.
    signs = np.sign(np.diag(r_ref))
    np.testing.assert_allclose(np.asarray(q), q_ref * signs, rtol=0, atol=1e-10)


def test_matches_mpmath():
    # 40-digit QR (mpmath) of a float64 matrix whose singular values span e^8: the
    # float64 logs agree to eps * cond = 2e-16 * 3e3 = 7e-13.
    z = _graded(np.random.default_rng(1), 24, 20, 8.0)
    with mpmath.workdps(40):
        _, r = mpmath.qr(mpmath.matrix(z.tolist()))
        ref = np.array([float(mpmath.log(abs(r[j, j]))) for j in range(20)])
    diag = gram_qr.gram_qr(jnp.asarray(z), panel=8)[1]  # 3 panels: the projections too
    np.testing.assert_allclose(np.log(np.asarray(diag)), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["zero column", "cond 1e12", "all zero"])
def test_falls_back_to_householder(case):
    # Where Cholesky breaks down (a zero or dependent column, cond^2 past 1/eps) the
    # checked factorisation returns Householder's answer for that z, exactly.
    rng = np.random.default_rng(2)
    z = rng.standard_normal((40, 40))
    if case == "zero column":
        z[:, 7] = 0
    elif case == "cond 1e12":
        z = _graded(rng, 40, 40, np.log(1e12))
    else:
        z[:] = 0
    z = jnp.asarray(z)
    q0 = jnp.linalg.qr(jnp.asarray(rng.standard_normal((40, 40))))[0]
    q, logd = jax.jit(lambda z, q: gram_qr.qr_log_diag(z, q))(z, q0)
    q_h, logd_h = gram_qr.householder_log_diag(z, q0)
    np.testing.assert_array_equal(np.asarray(logd), np.asarray(logd_h))
    np.testing.assert_array_equal(np.asarray(q), np.asarray(q_h))


def test_dependent_column_is_rounding_either_way():
    # A column that is an exact combination of earlier ones: R_jj is rounding noise in
    # both factorisations (the check may accept it: Q stays orthonormal), ~eps |z|; the
    # logs before it agree to eps cond (after it the QR is not unique: its Q column is
    # the direction of the noise).
    rng = np.random.default_rng(2)
    z = rng.standard_normal((40, 40))
    z[:, 30] = z[:, 3] + z[:, 4]
    logd = gram_qr.qr_log_diag(jnp.asarray(z), jnp.eye(40))[1]
    logd_h = np.log(np.abs(np.diag(np.linalg.qr(z)[1])))
    bound = np.log(1e3 * EPS64 * np.linalg.norm(z, 2))
    assert logd[30] < bound and logd_h[30] < bound
    np.testing.assert_allclose(np.asarray(logd)[:30], logd_h[:30], rtol=0, atol=1e-12)


def test_accepted_where_it_holds():
    # The check passes on a well-conditioned frame, and then the result is gram_qr's
    # (compiled together: the same operations, so the same bits).
    z = jnp.asarray(_graded(np.random.default_rng(3), 200, 150, 6.0))
    q0 = jnp.eye(200, 150)
    both = jax.jit(lambda z, q0: (gram_qr.qr_log_diag(z, q0), gram_qr.gram_qr(z)))
    (q, logd), (q_g, diag) = both(z, q0)
    np.testing.assert_array_equal(np.asarray(logd), np.log(np.asarray(diag)))
    np.testing.assert_array_equal(np.asarray(q), np.asarray(q_g))


def _tanh_network(size, gain, dtype, steps=60):
    key = jax.random.key(size)
    params = {"W_hh": (gain * jax.random.normal(key, (size, size)) / np.sqrt(size)).astype(dtype),
              "W_xh": jnp.zeros((size, 1), dtype), "b": jnp.zeros(size, dtype)}
    h0 = (0.5 * jax.random.normal(jax.random.key(1), (size,))).astype(dtype)
    return gradspec.cells.RNN("tanh"), params, jnp.zeros((steps, 1), dtype), h0


@pytest.mark.parametrize("gain", [1.0, 3.0])
def test_spectrum_same_as_householder(gain):
    # The full spectrum (k = S = 160: two panels) by both factorisations, float64,
    # m = 1: each step's logs are good to ~eps cond(J_t), which saturated units make
    # large at gain 3 (tanh' ~ 1e-4), so the tolerance is 10 eps max_t cond(J_t) (the
    # mean of T such errors): 1e-12 at gain 1, ~1e-10 at gain 3.
    cell, params, xs, h0 = _tanh_network(160, gain, jnp.float64)
    lam = {qr: gradspec.lyapunov_spectrum(cell, params, xs, h0, qr=qr, reorth_every=1)
           for qr in ("gram", "householder")}
    w, h = np.asarray(params["W_hh"]), np.asarray(h0)
    conds = []
    for _ in range(xs.shape[0]):
        h = np.tanh(w @ h)
        conds.append(np.linalg.cond((1 - h**2)[:, None] * w))
    np.testing.assert_allclose(np.asarray(lam["gram"]), np.asarray(lam["householder"]),
                               rtol=0, atol=10 * EPS64 * max(conds))


def test_spectrum_float32_as_accurate_as_householder():
    # Against float64, float32 loses ~eps32 cond(J) per step in the tail either way:
    # the gram path's error stays within 2x Householder's.
    cell, params, xs, h0 = _tanh_network(160, 1.0, jnp.float32)
    cast = lambda t: jax.tree.map(lambda a: a.astype(jnp.float64), t)
    ref = gradspec.lyapunov_spectrum(cell, cast(params), cast(xs), cast(h0),
                                     qr="householder", reorth_every=1)
    err = {qr: np.abs(np.asarray(gradspec.lyapunov_spectrum(
        cell, params, xs, h0, qr=qr, reorth_every=1), np.float64) - np.asarray(ref)).max()
        for qr in ("gram", "householder")}
    assert err["gram"] < 2 * err["householder"] + 1e-6, err


def test_dead_relu_network_same_answer():
    # A relu step that kills the frame exactly (J = 0 on the first steps: h0 = 0 and
    # negative bias) falls back to Householder's kept frame: the same exponents.
    size = 40
    w = jax.random.normal(jax.random.key(0), (size, size), jnp.float64) / np.sqrt(size)
    params = {"W_hh": jnp.eye(size) + 0.1 * w, "W_xh": jnp.ones((size, 1)),
              "b": -0.5 * jnp.ones(size)}
    xs = jnp.concatenate([jnp.zeros((5, 1)), jnp.ones((40, 1))])
    cell = gradspec.cells.RNN("relu")
    lam = {qr: gradspec.lyapunov_spectrum(cell, params, xs, qr=qr, reorth_every=1)
           for qr in ("gram", "householder")}
    np.testing.assert_allclose(np.asarray(lam["gram"]), np.asarray(lam["householder"]),
                               rtol=0, atol=1e-12)


def test_auto_choice_and_checks():
    assert resolve_qr("auto", 512, traced_call=False) == "gram"
    assert resolve_qr("auto", 512, traced_call=True) == "householder"  # no vmap'd cond
    assert resolve_qr("auto", 64, traced_call=False) == "householder"  # one panel
    assert resolve_qr("householder", 512, traced_call=False) == "householder"
    cell, params, xs, h0 = _tanh_network(8, 1.0, jnp.float64, steps=5)
    with pytest.raises(ValueError, match="`qr`"):
        gradspec.lyapunov_spectrum(cell, params, xs, h0, qr="cholesky")
    with pytest.raises(ValueError, match="`qr` are for scan='sequential'"):
        gradspec.lyapunov_spectrum(cell, params, xs, h0, qr="gram", scan="parallel")


def _mpmath_benettin(Js, frame, dps=40):
    """Benettin's sweep in ``dps`` digits from the float64 Jacobians: the mean
    log|diag R| per step, descending."""
    with mpmath.workdps(dps):
        q, total = mpmath.matrix(frame.tolist()), np.zeros(frame.shape[1])
        for J in Js:
            q, r = mpmath.qr(mpmath.matrix(J.tolist()) * q)
            total += [float(mpmath.log(abs(r[j, j]))) for j in range(frame.shape[1])]
    return np.sort(total / len(Js))[::-1]


@pytest.mark.parametrize("reorth_every", [1, "auto"])
def test_spectrum_matches_mpmath_benettin(reorth_every):
    # The full spectrum of a driven tanh network (S = 12, T = 150, gain 1.5; spread
    # ~3 nats per step) with every QR by gram_qr, against 40-digit Benettin on the same
    # Jacobians and start frame. Measured: 1.3e-15 (m = 1) and 3.6e-15 ("auto"), where
    # Householder's path gives 4.0e-15 and 6.6e-14; asserted 1e-13 and 1e-12 (the rule
    # for m allows eps e^18 per block at worst).
    from gradspec.measure.lyapunov import start_frame
    size, steps = 12, 150
    cell = gradspec.cells.RNN("tanh")
    params = cell.init(jax.random.key(4), size, 2, recurrent_init=gradspec.init.gaussian(1.5),
                       dtype=jnp.float64)
    xs = 0.5 * jax.random.normal(jax.random.key(5), (steps, 2), jnp.float64)
    frame = start_frame(None, size, size, jnp.float64)
    lam = gradspec.lyapunov_spectrum(cell, params, xs, frame=frame, qr="gram",
                                     reorth_every=reorth_every)
    ref = _mpmath_benettin(np.asarray(gradspec.step_jacobians(cell, params, xs)),
                           np.asarray(frame))
    tol = 1e-13 if reorth_every == 1 else 1e-12
    np.testing.assert_allclose(np.asarray(lam), ref, rtol=0, atol=tol)
