"""Weight spectra, product singular values and Lyapunov spectra against references."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import cells

from .test_cells import D, _cell_and_params


def _linear_params(W):
    n = W.shape[0]
    return {"W_hh": W, "W_xh": jnp.zeros((n, 1), W.dtype), "b": jnp.zeros(n, W.dtype)}


def test_weight_spectrum_matches_numpy(getkey):
    W = gradspec.init.gaussian(1.3)(getkey(), (30, 30), jnp.float64)
    s = gradspec.weight_spectrum(W)
    ref_eig = np.linalg.eigvals(np.asarray(W))
    np.testing.assert_allclose(np.sort(np.abs(s.eigenvalues)), np.sort(np.abs(ref_eig)), rtol=1e-10)
    np.testing.assert_allclose(s.singular_values, np.linalg.svd(np.asarray(W))[1], rtol=1e-12)
    assert float(s.spectral_radius) == pytest.approx(np.abs(ref_eig).max(), rel=1e-10)
    assert float(s.spectral_norm) == pytest.approx(np.linalg.norm(np.asarray(W), 2), rel=1e-12)
    with pytest.raises(ValueError, match="W.*square"):
        gradspec.weight_spectrum(jnp.zeros((3, 4)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_scaled_orthogonal_linear_rnn_is_exactly_log_g(dtype, getkey):
    # W = g Q: every Jacobian is g Q, the product g^T Q^T: all singular values g^T.
    g, n, T = 0.8, 6, 500
    W = gradspec.init.orthogonal(g)(getkey(), (n, n), dtype)
    params = _linear_params(W)
    xs = jnp.zeros((T, 1), dtype)
    lam = gradspec.lyapunov_spectrum(params=params, cell=cells.RNN("linear"), xs=xs)
    lsv = gradspec.product_singular_values(cells.RNN("linear"), params, xs)
    assert lam.dtype == dtype and lsv.dtype == dtype
    # Each step adds log g + O(eps) rounding from QR of an orthogonal matrix.
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(lam, np.full(n, np.log(g)), atol=tol)
    np.testing.assert_allclose(lsv / T, np.full(n, np.log(g)), atol=tol)


def _mpmath_log_singular_values(Js, dps, zero_below=None):
    """Independent reference: exact product and SVD in arbitrary precision. With
    ``zero_below``, singular values under ``zero_below * sigma_1`` count as 0 (-inf)."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(dps):
        P = mpmath.eye(Js.shape[1])
        for J in Js:
            P = mpmath.matrix(J.tolist()) * P
        sv = mpmath.svd_r(P, compute_uv=False)
        floor = 0 if zero_below is None else zero_below * max(sv)
        logs = [float(mpmath.log(s)) if s > floor else -np.inf for s in sv]
        return np.sort(logs)[::-1]


@pytest.mark.parametrize("name", ["tanh", "gru", "custom"])
def test_product_singular_values_match_arbitrary_precision_svd(name, getkey):
    cell, params = _cell_and_params(name, getkey())
    xs = jr.normal(getkey(), (25, D), jnp.float64)
    Js = np.asarray(gradspec.step_jacobians(cell, params, xs))
    lsv = gradspec.product_singular_values(cell, params, xs)
    ref = _mpmath_log_singular_values(Js, dps=60)
    # Sweeps run to the rounding floor: float64 rounding of the summed logs (measured
    # <= 4e-16 relative; a stop at sqrt(eps) left 7e-10); the documented bound 1e-10.
    np.testing.assert_allclose(lsv, ref, rtol=1e-10)


def test_product_singular_values_spanning_hundreds_of_decades(getkey):
    # Non-normal, non-diagonal W (a sheared diagonal) so no step is trivially aligned;
    # T = 300 steps spread the singular values over ~600 decades.
    n, T = 4, 300
    S = np.eye(n) + np.triu(np.asarray(jr.normal(getkey(), (n, n), jnp.float64)), 1)
    W = S @ np.diag([3.0, 1.1, 0.5, 0.02]) @ np.linalg.inv(S)
    params = _linear_params(jnp.asarray(W))
    lsv = gradspec.product_singular_values(cells.RNN("linear"), params, jnp.zeros((T, 1)))
    Js = np.repeat(W[None], T, axis=0)
    ref = _mpmath_log_singular_values(Js, dps=2000)
    assert ref[0] - ref[-1] > 600 * np.log(10)  # really spans > 600 decades
    # Relative accuracy of each log sigma: T eps rounding (measured 1.5e-15), well
    # inside the documented 1e-10.
    np.testing.assert_allclose(lsv, ref, rtol=1e-10)
    lsv32 = gradspec.product_singular_values(
        cells.RNN("linear"), jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params),
        jnp.zeros((T, 1), jnp.float32),
    )
    assert np.all(np.isfinite(np.asarray(lsv32)))
    np.testing.assert_allclose(lsv32, ref, rtol=1e-4)


@pytest.mark.parametrize("gain", [0.5, 1.5])
def test_product_singular_values_of_relu_products_with_dead_units(gain, getkey):
    # Half the units of a bias-free ReLU network are dead at each step: zero rows of J_t,
    # a product of rank 11 of 32. Reference: the product formed and decomposed with 80
    # digits, where its null singular values come out ~1e-80 sigma_1 and its nonzero
    # ones above 1e-20 sigma_1, so that a 1e-40 cut counts the rank without ambiguity.
    n, T = 32, 50
    cell = cells.RNN("relu")
    params = cell.init(getkey(), n, D, recurrent_init=gradspec.init.gaussian(gain), dtype=jnp.float64)
    xs = jr.normal(getkey(), (T, D), jnp.float64)
    Js = np.asarray(gradspec.step_jacobians(cell, params, xs))
    ref = _mpmath_log_singular_values(Js, dps=80, zero_below=1e-40)
    lsv = np.asarray(gradspec.product_singular_values(cell, params, xs))
    rank = int(np.isfinite(ref).sum())
    assert 8 <= rank < n  # singular, with a nontrivial finite part
    # Beyond the rank: exactly -inf, not rounding noise.
    np.testing.assert_array_equal(lsv[rank:], -np.inf)
    # The finite part: float64 rounding of T steps' logs (measured: 2e-15; a stop after
    # one sweep pair left 0.06-0.42 nats); the documented bound 1e-10 relative.
    np.testing.assert_allclose(lsv[:rank], ref[:rank], rtol=1e-10)


def test_product_singular_values_to_float64_rounding_across_160_nats(getkey):
    # A contracting tanh network: log sigma from -37 down to -199, close pairs (gaps of
    # 0.84 nats) among them, where a stop at sqrt(eps) left errors of 1e-3 relative.
    n, T = 16, 60
    cell = cells.RNN("tanh")
    params = cell.init(getkey(), n, D, recurrent_init=gradspec.init.gaussian(0.5), dtype=jnp.float64)
    xs = 0.5 * jr.normal(getkey(), (T, D), jnp.float64)
    Js = np.asarray(gradspec.step_jacobians(cell, params, xs))
    # 80 digits resolve sigma_min / sigma_1 ~ e^-162 = 1e-70 to 1e-10: the reference is
    # good to ~1e-14 relative in the logs (checked against 150 digits).
    ref = _mpmath_log_singular_values(Js, dps=80)
    assert ref[0] > -45 and ref[-1] < -190
    lsv = gradspec.product_singular_values(cell, params, xs)
    # Float64 rounding of the summed logs (measured: 1e-14); the documented bound 1e-10.
    np.testing.assert_allclose(lsv, ref, rtol=1e-10)


def test_product_singular_values_of_a_saturated_rnn(getkey):
    # Inputs of scale 6 saturate the tanh units: slopes down to 1e-14, log sigma from
    # -18 to -299. The backward sweep regroups P^T so that every QR sees the slopes as
    # row scales (through the vjp, W^T D_t Q, they were lost: 1e-4 relative errors).
    n, T = 16, 15
    cell = cells.RNN("tanh")
    params = cell.init(getkey(), n, D, dtype=jnp.float64)
    xs = 6.0 * jr.normal(getkey(), (T, D), jnp.float64)
    Js = np.asarray(gradspec.step_jacobians(cell, params, xs))
    assert np.abs(Js).max(2).min() < 1e-12
    # 150 digits: sigma_min / sigma_1 ~ 1e-122 still leaves ~28 exact digits.
    ref = _mpmath_log_singular_values(Js, dps=150)
    assert ref[-1] - ref[0] < -250
    lsv = gradspec.product_singular_values(cell, params, xs)
    # Float64 rounding (measured: 7e-16); the documented bound 1e-10.
    np.testing.assert_allclose(lsv, ref, rtol=1e-10)


@pytest.mark.parametrize("nonlinearity", ["tanh", "sigmoid"])
def test_lyapunov_sum_rule(nonlinearity, getkey):
    # sum_i lambda_i = (1/T) sum_t log|det J_t| = log|det W| + mean_t sum_i log f'(a_ti).
    n, T = 12, 400
    cell = cells.RNN(nonlinearity)
    params = cell.init(getkey(), n, D, recurrent_init=gradspec.init.gaussian(1.7), dtype=jnp.float64)
    xs = jr.normal(getkey(), (T, D), jnp.float64)
    lam = gradspec.lyapunov_spectrum(cell, params, xs)
    hs = gradspec.trajectory(cell, params, xs)
    prev = jnp.concatenate([gradspec.start_state(cell, params, D)[None], hs[:-1]])
    a = prev @ params["W_hh"].T + xs @ params["W_xh"].T + params["b"][None]
    slope = jax.vmap(jax.vmap(jax.grad(cell.f)))(a)
    expected = np.linalg.slogdet(np.asarray(params["W_hh"]))[1] + np.log(slope).sum(1).mean()
    assert float(lam.sum()) == pytest.approx(float(expected), abs=1e-10)
    assert np.all(np.diff(np.asarray(lam)) <= 0)  # descending


def test_lyapunov_top_k_start_frame_and_warmup(getkey):
    cell = cells.RNN("tanh")
    n, T = 40, 3000
    params = cell.init(getkey(), n, D, recurrent_init=gradspec.init.gaussian(2.0), dtype=jnp.float64)
    xs = 0.3 * jr.normal(getkey(), (T, D), jnp.float64)
    full = gradspec.lyapunov_spectrum(cell, params, xs, warmup=200)
    top = gradspec.lyapunov_spectrum(cell, params, xs, k=3, warmup=200)
    rand = gradspec.lyapunov_spectrum(cell, params, xs, k=3, warmup=200, key=getkey())
    # The frame's first k columns evolve identically whatever the columns after them.
    np.testing.assert_allclose(top, full[:3], atol=1e-12)
    # A random start frame forgets itself within the warm-up (convergence at rate
    # exp(-(lambda_i - lambda_{i+1}) t)); the remaining difference is O(1/T).
    np.testing.assert_allclose(rand, top, atol=5e-3)
    auto = gradspec.lyapunov_spectrum(cell, params, xs, k=3, warmup=200, method="autodiff")
    np.testing.assert_allclose(auto, top, atol=1e-12)
    # k = 1 normalises instead of calling QR: the same first column of the frame.
    one = gradspec.lyapunov_spectrum(cell, params, xs, k=1, warmup=200)
    np.testing.assert_allclose(one, full[:1], atol=1e-12)


def test_one_column_qr_is_normalisation_even_for_zero_columns():
    from gradspec.measure.lyapunov import _qr_log_diag

    z, prev = jnp.array([[3.0], [-4.0]]), jnp.array([[1.0], [0.0]])
    q, logd = _qr_log_diag(z, prev)
    np.testing.assert_allclose(q, [[0.6], [-0.8]])
    np.testing.assert_allclose(logd, [np.log(5.0)])
    # A dead ReLU layer maps the frame to 0: log 0 = -inf and the frame it came from is
    # kept, not the NaN of 0 / 0 that would poison every later step, nor an axis.
    prev = jnp.array([[0.6], [0.0], [0.8]])
    q, logd = _qr_log_diag(jnp.zeros((3, 1)), prev)
    np.testing.assert_array_equal(q, prev)
    assert logd[0] == -np.inf
    prev3 = jnp.linalg.qr(jnp.arange(9.0).reshape(3, 3) + jnp.eye(3))[0][:, :2]
    q, logd = _qr_log_diag(jnp.zeros((3, 2)), prev3)
    np.testing.assert_array_equal(q, prev3)
    assert np.all(logd == -np.inf)


@pytest.mark.parametrize("k", [1, 2])
def test_a_frame_killed_by_dead_units_recovers_with_the_network(k):
    """IRNN (W_hh = I, relu) from h = 0: a zero input holds every unit at a = 0,
    relu'(0) = 0, so J = 0 for the first 5 steps; then an input that is positive on
    units 0-3 only turns them on (J = diag(1,1,1,1,0,0)), units 4-5 stay off forever.
    After the blank the frame Q_0 is projected once onto the live units (P) and then
    carried by J = I, so over the 45 counted steps exactly
    lambda_i = log|R_ii(P Q_0)| / 45 (-> 0, the live units' exponent, as T grows).
    Householder's axes after the collapse would start at e_1, a dead unit: -inf forever."""
    n = 6
    cell = cells.RNN("relu")
    w_x = jnp.array([-1.0, -1.0, 1.0, 1.0, 1.0, 1.0])[:, None]  # units 0, 1 stay off
    params = {"W_hh": jnp.eye(n), "W_xh": w_x, "b": jnp.zeros(n)}
    xs = jnp.concatenate([jnp.zeros((5, 1)), jnp.ones((45, 1))])
    lam = gradspec.lyapunov_spectrum(cell, params, xs, jnp.zeros(n), k=k, warmup=5)
    q0 = np.asarray(gradspec.measure.spectra.start_frame(None, n, k, jnp.float64))
    live = q0 * (np.arange(n) >= 2)[:, None]
    expected = np.sort(np.log(np.abs(np.diag(np.linalg.qr(live)[1]))) / 45)[::-1]
    np.testing.assert_allclose(lam, expected, rtol=1e-10)
    assert np.all(expected > -0.1)


def test_lyapunov_lstm_float32_T_10000_finite(getkey):
    cell = cells.LSTM()
    params = cell.init(getkey(), 16, D, dtype=jnp.float32)
    xs = jr.normal(getkey(), (10_000, D), jnp.float32)
    lam = gradspec.lyapunov_spectrum(cell, params, xs, k=4)
    lsv = gradspec.product_singular_values(cell, params, xs[:2000])
    assert lam.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(lam)))
    assert np.all(np.isfinite(np.asarray(lsv)))
    # Leading singular value of P_T over T and lambda_1 measure the same growth rate.
    assert float(lsv[0]) / 2000 == pytest.approx(float(lam[0]), abs=5e-3)


def test_spectra_errors(getkey):
    cell = cells.RNN("tanh")
    params = cell.init(getkey(), 4, 2)
    xs = jnp.zeros((10, 2), jnp.float32)
    with pytest.raises(ValueError, match="`k` must be in \\[1, 4\\]; got 5"):
        gradspec.lyapunov_spectrum(cell, params, xs, k=5)
    with pytest.raises(ValueError, match="warmup"):
        gradspec.lyapunov_spectrum(cell, params, xs, warmup=10)
    with pytest.raises(TypeError, match="`k` must be an int"):
        gradspec.lyapunov_spectrum(cell, params, xs, k=2.0)
    with pytest.raises(ValueError, match="max_sweeps"):
        gradspec.product_singular_values(cell, params, xs, max_sweeps=0)


@pytest.mark.parametrize("order", [0, 1, 2])
def test_default_frame_finds_the_top_exponent_in_any_unit_order(order):
    # A diagonal recurrence h' = u * h (LRU/indRNN-like): every axis is an invariant
    # subspace, so a frame of coordinate axes would report whichever unit comes first.
    # Exact: lambda_i = log u_i sorted, whatever the order of the units.
    u = np.linspace(0.1, 0.99, 12)
    perm = np.random.default_rng(order).permutation(12)
    cell = cells.RNN("linear")
    params = {"W_hh": jnp.diag(jnp.asarray(u[perm])), "W_xh": jnp.zeros((12, 1)),
              "b": jnp.zeros(12)}
    xs = jnp.zeros((400, 1))
    top = gradspec.lyapunov_spectrum(cell, params, xs, k=1, warmup=100)
    # From a random frame the 0.99 direction dominates once the next one, 0.909, has
    # decayed relative to it: (0.909/0.99)^100 ~ 2e-4, so after a 100-step warm-up the
    # mean log growth is log 0.99 to ~1e-6.
    assert float(top[0]) == pytest.approx(math.log(0.99), abs=1e-5)
    full = gradspec.lyapunov_spectrum(cell, params, xs, warmup=200)
    # The frame aligns with the axes like the slowest neighbour ratio, (0.909/0.99)^t:
    # 4e-8 after the 200-step warm-up; then R_t is diagonal and each rate exact.
    np.testing.assert_allclose(np.sort(np.asarray(full)), np.log(np.sort(u)), atol=1e-5)
    d = gradspec.diagnose(cell, params, xs)  # |log 0.99| 400 = 4.0 > ln 10: vanishing
    assert d.regime == "vanishing" and d.lyapunov == pytest.approx(math.log(0.99), abs=3e-3)


# -- re-orthonormalisation every m steps (reorth_every) ---------------------------------

#: Exponents with m > 1 against m = 1, float64: the top 6 of this network span 0.23
#: nats per step, the worst block of 8 steps 3.6 nats: its rounding, eps e^3.6 ~ 8e-15
#: relative in the smallest diagonal entry, left the rates within 1.2e-15 (measured);
#: 1e-11 is the bound the rule guarantees at worst (eps e^18 / T per block and step).
REORTH_TOL64 = 1e-11
#: float32 against the float64 reference: 7.7e-5 at every m, m = 1 included (the float32
#: trajectory of this chaotic network, not the blocks: measured); asserted with margin.
REORTH_TOL32 = 3e-4


def _reorth_case(getkey, n=24, T=203, dtype=jnp.float64):
    cell = cells.RNN("tanh")
    params = cell.init(getkey(), n, D, recurrent_init=gradspec.init.gaussian(1.5), dtype=jnp.float64)
    xs = 0.5 * jr.normal(getkey(), (T, D), jnp.float64)
    cast = lambda a: a.astype(dtype)
    return cell, jax.tree_util.tree_map(cast, params), cast(xs)


@pytest.mark.parametrize("m", range(1, 9))
def test_reorth_every_sweep_against_float64(m, getkey):
    # T = 203 and warm-up 13 are multiples of no m > 1: blocks end at the warm-up and a
    # shorter block closes each part. Reference: one QR per step in float64 (m = 1).
    cell, params, xs = _reorth_case(getkey)
    kw = dict(k=6, warmup=13)
    ref = np.asarray(gradspec.lyapunov_spectrum(cell, params, xs, reorth_every=1, **kw))
    lam = gradspec.lyapunov_spectrum(cell, params, xs, reorth_every=m, **kw)
    assert ref[0] - ref[-1] < 1.0  # narrow enough for m = 8 within the budget
    np.testing.assert_allclose(lam, ref, rtol=0, atol=REORTH_TOL64)
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    lam32 = gradspec.lyapunov_spectrum(cell, p32, xs.astype(jnp.float32), reorth_every=m, **kw)
    assert lam32.dtype == jnp.float32
    np.testing.assert_allclose(lam32, ref, rtol=0, atol=REORTH_TOL32)
    # The blocked sweep applies the cell's jvp m times between QRs: the autodiff jvp
    # (jax.jvp of the step, vmapped over the frame) gives the same numbers.
    auto = gradspec.lyapunov_spectrum(cell, params, xs, reorth_every=m, method="autodiff", **kw)
    np.testing.assert_allclose(auto, lam, rtol=0, atol=1e-13)


@pytest.mark.parametrize("m", [2, 5, 8])
def test_product_singular_values_reorth_every_against_arbitrary_precision(m, getkey):
    # A contracting GRU (the jvp path): log sigma from -9 to -32 at T = 25, a block of 8
    # steps spans at most 8.4 nats. Reference: the explicit product, 60-digit SVD.
    cell, params = _cell_and_params("gru", getkey())
    xs = jr.normal(getkey(), (25, D), jnp.float64)
    Js = np.asarray(gradspec.step_jacobians(cell, params, xs))
    ref = _mpmath_log_singular_values(Js, dps=60)
    lsv = gradspec.product_singular_values(cell, params, xs, reorth_every=m)
    # As with m = 1 (the test above): float64 rounding of the summed logs; blocks of m
    # add eps e^(block spread) relative to the smallest values (measured <= 4e-16, as
    # with m = 1); the documented bound 1e-10.
    np.testing.assert_allclose(lsv, ref, rtol=1e-10)


def _chosen_m(monkeypatch):
    """Record (m, worst block spread) of every blocked run of lyapunov_spectrum."""
    from gradspec.measure import lyapunov

    calls, run = [], lyapunov._blocked_spectrum

    def spy(*args):
        out = run(*args)
        # args: cell, params, xs, h0, q0, warmup, method, m, factor.
        calls.append((args[7], out[-1]))  # (m, worst block spread: traced under jit)
        return out

    monkeypatch.setattr(lyapunov, "_blocked_spectrum", spy)
    return calls


def test_auto_reorth_chooses_m_within_the_budget(getkey, monkeypatch):
    from gradspec.measure.parallel import spread_budget

    cell, params, xs = _reorth_case(getkey, T=400)
    calls = _chosen_m(monkeypatch)
    top = gradspec.lyapunov_spectrum(cell, params, xs, k=6, warmup=50)
    # The probe: 16 steps with m = 1; then the rest with m from their spread.
    assert [c[0] for c in calls[:1]] == [1]
    m, worst = calls[-1]
    ref = gradspec.lyapunov_spectrum(cell, params, xs, k=6, warmup=50, reorth_every=1)
    spread = float(ref[0] - ref[-1])
    assert m > 1 and float(worst) <= spread_budget(jnp.float64)
    assert m * spread <= spread_budget(jnp.float64)  # 2 (lambda_1 - lambda_k) m <= L
    np.testing.assert_allclose(top, ref, rtol=0, atol=REORTH_TOL64)
    # The whole spectrum spans ~5 nats per step, L / (2 * 5) < 2 in float64 and float32:
    # m stays 1, the result that of the per-step sweep (summed in two parts: rounding).
    for dtype, tol in ((jnp.float64, 1e-13), (jnp.float32, 1e-5)):
        calls.clear()
        p, x = jax.tree_util.tree_map(lambda a: a.astype(dtype), (params, xs))
        full = gradspec.lyapunov_spectrum(cell, p, x, warmup=50)
        assert {c[0] for c in calls} == {1}
        one = gradspec.lyapunov_spectrum(cell, p, x, warmup=50, reorth_every=1)
        assert float(one[0] - one[-1]) > 4
        np.testing.assert_allclose(full, one, rtol=0, atol=tol)
    # Under jit nothing can be measured: m = 1, the per-step sweep, and no probe.
    calls.clear()
    jitted = jax.jit(lambda x: gradspec.lyapunov_spectrum(cell, params, x, k=6, warmup=50))
    np.testing.assert_allclose(jitted(xs), ref, rtol=0, atol=1e-14)
    assert [c[0] for c in calls] == [1]


def test_explicit_reorth_every_over_the_budget_warns(getkey):
    cell, params, xs = _reorth_case(getkey, T=64)
    with pytest.warns(UserWarning, match="reorth_every"):  # ~5 nats/step x 8 > 18
        gradspec.lyapunov_spectrum(cell, params, xs, reorth_every=8)


def test_reorth_every_errors(getkey):
    cell = cells.RNN("tanh")
    params = cell.init(getkey(), 4, 2)
    xs = jnp.zeros((10, 2), jnp.float32)
    for f in (gradspec.lyapunov_spectrum, gradspec.product_singular_values):
        with pytest.raises(ValueError, match="`reorth_every` must be 'auto' or an int"):
            f(cell, params, xs, reorth_every="fast")
        with pytest.raises(ValueError, match="`reorth_every` must be >= 1; got 0"):
            f(cell, params, xs, reorth_every=0)
        with pytest.raises(TypeError, match="`reorth_every` must be 'auto' or an int"):
            f(cell, params, xs, reorth_every=2.0)
        with pytest.raises(ValueError, match="reorth_every.*scan='parallel'"):
            f(cell, params, xs, reorth_every=2, scan="parallel")
