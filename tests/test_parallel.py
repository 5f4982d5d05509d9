"""Parallel-in-time scans (issue #17) against the sequential ones they replace.

Tolerances (float64): a parallel result regroups the same products, so it differs from
the sequential one by rounding only: ~T eps per summed log (1e-13 at T = 10^4) for the
profile and the top exponent, ~eps e^L / C per chunk for the k-th exponent under the
chunk rule (L = 18: 1e-8 asserted, ~1e-12 measured). DEER stops at a residual of
128 eps and contracts the rest away: its states sit within ~1e-14 of the scan.
"""

import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec.measure import _associative, parallel, spectra
from gradspec.measure._inputs import check_trajectory_inputs

from .test_cells import D, _cell_and_params

#: Parallel vs sequential: every lag of the profile, and |delta lambda| * T.
TOL_PROFILE = 1e-9
TOL_TOP = 1e-9
#: The k-th exponent when every chunk obeys the rule (and at the issue's
#: C (lambda_1 - lambda_16) <= 18).
TOL_TOPK = 1e-8
#: DEER's states against the sequential scan.
TOL_DEER = 1e-12


def _tanh(gain, n, steps, seed=0, dtype=jnp.float64):
    """A driven tanh RNN, W_hh ~ N(0, gain^2/N), checked as the spectra pass it on."""
    cell = gradspec.cells.RNN("tanh")
    init = gradspec.init.gaussian(gain)
    params = cell.init(jr.key(seed), n, 1, recurrent_init=init, dtype=dtype)
    xs = jr.normal(jr.key(seed + 1), (steps, 1), dtype)
    cell, xs, h0 = check_trajectory_inputs(cell, params, xs, None)
    return cell, params, xs, h0


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 25 steps at S = 16 (64 at S = 10, 256 at S = 5, in float64), so that
    short runs cross several, the last one padded."""
    monkeypatch.setattr(_associative, "BLOCK_BYTES", 25 * 16 * 16 * 8 * 4)


# -- the scaled-product kernels --------------------------------------------------------


def test_products_by_hand():
    rng = np.random.default_rng(0)
    js = jnp.asarray(rng.normal(size=(7, 3, 3)))
    ref = [np.eye(3)]
    for j in np.asarray(js)[::-1]:  # suffixes J_7 ... J_i, the later on the left
        ref.append(ref[-1] @ j)
    ref = np.asarray(ref[:0:-1])
    product = jax.jit(_associative.product)
    mats, logs = jax.jit(_associative.suffix_products)(js)
    # An entry of a product is a sum of terms up to |ref| in size and may cancel (one
    # is 6e-3 here, beside entries of ~10): rounding relative to the largest entry.
    scale = 1e-13 * np.abs(ref).max(axis=(1, 2), keepdims=True)
    err = np.abs(np.exp(logs)[:, None, None] * mats - ref)
    assert np.all(err <= scale), (err / scale).max()
    m, s = product(js)
    assert np.all(np.abs(np.exp(s) * m - ref[0]) <= scale[0])
    # 7 factors of 10^300 I: 10^2100 is far past float64, its log is not.
    m, s = product(jnp.broadcast_to(1e300 * jnp.eye(3), (7, 3, 3)))
    assert float(s) == pytest.approx(2100 * np.log(10), rel=1e-14)
    np.testing.assert_array_equal(m, jnp.eye(3))
    # A zero factor: exactly zero, log -inf, no NaN.
    m, s = product(js.at[3].set(0))
    assert float(s) == -np.inf and not np.isnan(m).any() and not m.any()


@pytest.mark.parametrize("diagonal", [False, True])
def test_linear_recurrence_by_hand(diagonal):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(9, 4) if diagonal else (9, 4, 4)) * 0.5
    b, h = rng.normal(size=(9, 4)), rng.normal(size=4)
    solve = jax.jit(_associative.linear_recurrence)
    out = solve(jnp.asarray(a), jnp.asarray(b), jnp.asarray(h))
    ref = []
    for t in range(9):
        h = (a[t] * h if diagonal else a[t] @ h) + b[t]
        ref.append(h)
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-14)


# -- the gradient profile --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh", "lstm"])
def test_gradient_profile_parallel_equals_sequential(name, getkey, small_blocks):
    cell, params = _cell_and_params(name, getkey())
    xs = jr.normal(getkey(), (300, D), jnp.float64)
    size = cell.state_size(cell.hidden_size(params))
    # One readout matrix of 3 rows (LSTM: on h only, zero on c), or the default vector.
    readout = jr.normal(getkey(), (3, size), jnp.float64) if name == "tanh" else None
    seq = gradspec.gradient_profile(cell, params, xs, readout=readout)
    par = gradspec.gradient_profile(cell, params, xs, readout=readout, scan="parallel")
    assert par.shape == (301,) and par.dtype == seq.dtype
    np.testing.assert_allclose(par, seq, rtol=0, atol=TOL_PROFILE)
    auto = gradspec.gradient_profile(cell, params, xs, readout=readout, scan="auto")
    np.testing.assert_array_equal(auto, seq)


def test_gradient_profile_parallel_at_T_10000(small_blocks):
    # 400 blocks of 25 steps; the gradient falls by e^-3000.
    cell, params, xs, h0 = _tanh(1.2, 16, 10_000)
    seq = gradspec.gradient_profile(cell, params, xs, h0)
    par = gradspec.gradient_profile(cell, params, xs, h0, scan="parallel")
    assert float(seq[-1]) < -2000
    np.testing.assert_allclose(par, seq, rtol=0, atol=TOL_PROFILE)


def test_gradient_profile_parallel_dead_relu_and_float32():
    relu = gradspec.cells.RNN("relu")
    params = {"W_hh": jnp.eye(2), "W_xh": jnp.zeros((2, 1)), "b": -jnp.ones(2)}
    prof = gradspec.gradient_profile(relu, params, jnp.zeros((5, 1)), jnp.zeros(2),
                                     scan="parallel")
    assert np.isfinite(prof[0]) and np.all(prof[1:] == -np.inf)  # all dead: no NaN
    cell, params, xs, h0 = _tanh(1.5, 16, 1000, dtype=jnp.float32)
    par = gradspec.gradient_profile(cell, params, xs, h0, scan="parallel")
    seq = gradspec.gradient_profile(cell, params, xs, h0)
    assert par.dtype == jnp.float32 and np.isfinite(par).all()
    np.testing.assert_allclose(par, seq, rtol=1e-5, atol=1e-3)


# -- exponents and singular values -----------------------------------------------------


def test_top_exponent_equals_sequential(small_blocks):
    cell, params, xs, h0 = _tanh(1.5, 16, 2000)
    q0 = spectra.start_frame(None, 16, 1, jnp.float64)
    warmup = 77  # the warm-up ends inside a block, the run crosses 77 more
    lam, q = spectra._lyapunov_spectrum(cell, params, xs, h0, q0, warmup, "auto")
    par, qp = parallel.parallel_top_exponent(cell, params, xs, h0, q0, warmup)
    assert par.shape == (1,) and qp.shape == (16, 1)
    assert abs(float(par[0] - lam[0])) * 2000 <= TOL_TOP
    np.testing.assert_allclose(qp, q, atol=1e-12)


@pytest.mark.slow
def test_top_k_within_1e8_by_the_chunk_rule():
    # The case: C (lambda_1 - lambda_16) <= 18 at N = 64.
    cell, params, xs, h0 = _tanh(1.2, 64, 1000)
    q0 = spectra.start_frame(None, 64, 16, jnp.float64)
    lam, q = spectra._lyapunov_spectrum(cell, params, xs, h0, q0, 100, "auto")
    chunk = int(18 // float(lam[0] - lam[-1]))
    with pytest.warns(UserWarning, match="chunk"):  # its worst chunk spans ~21 nats
        par, _ = parallel.parallel_lyapunov_spectrum(cell, params, xs, h0, q0, 100,
                                                     chunk=chunk)
    assert chunk * float(lam[0] - lam[-1]) <= 18
    np.testing.assert_allclose(par, lam, rtol=0, atol=TOL_TOPK)
    # A wide spectrum (all 16 exponents, lambda_1 - lambda_16 = 2.3): the rule picks C.
    cell, params, xs, h0 = _tanh(1.0, 16, 1000)
    q0 = spectra.start_frame(None, 16, 16, jnp.float64)
    lam, q = spectra._lyapunov_spectrum(cell, params, xs, h0, q0, 100, "auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # chunk=None never warns
        par, qp = parallel.parallel_lyapunov_spectrum(cell, params, xs, h0, q0, 100)
    np.testing.assert_allclose(par, lam, rtol=0, atol=TOL_TOPK)
    assert np.abs(qp.T @ qp - np.eye(16)).max() < 1e-12
    with pytest.raises(ValueError, match="chunk"):
        parallel.parallel_lyapunov_spectrum(cell, params, xs, h0, q0, 100, chunk=0)


def test_chunk_rule_by_hand():
    assert parallel.spread_budget(np.float64) == pytest.approx(18.0, abs=0.03)
    assert parallel.spread_budget(np.float32) == pytest.approx(7.97, abs=0.01)
    assert parallel.chunk_for_spread(3.0, np.float64) == 6
    assert parallel.chunk_for_spread(0.0, np.float64) == parallel.CHUNK_MAX
    assert parallel.chunk_for_spread(np.inf, np.float64) == 1
    assert parallel.chunk_for_spread(100.0, np.float32) == 1


@pytest.mark.slow
def test_exponents_under_jit_use_the_traced_chunk():
    cell, params, xs, h0 = _tanh(1.0, 8, 400)
    q0 = spectra.start_frame(None, 8, 4, jnp.float64)
    lam, _ = spectra._lyapunov_spectrum(cell, params, xs, h0, q0, 0, "auto")
    fn = jax.jit(
        lambda p: parallel.parallel_lyapunov_spectrum(cell, p, xs, h0, q0, 0)[0])
    np.testing.assert_allclose(fn(params), lam, rtol=0, atol=TOL_TOPK)


def test_product_singular_values_equal_sequential():
    cell, params, xs, h0 = _tanh(1.5, 8, 300)
    rtol = spectra.default_rtol(jnp.float64)
    ref = spectra._product_singular_values(cell, params, xs, h0, "auto", 30, rtol)
    par = parallel.parallel_product_singular_values(
        cell, params, xs, h0, "auto", 30, rtol, chunk=2,
        sweeps=spectra._product_singular_values)
    assert float(ref[0] - ref[-1]) > 600  # 260 decades apart
    np.testing.assert_allclose(par, ref, rtol=1e-10)


def test_product_singular_values_stream_over_blocks(small_blocks):
    # Bytes per step of the pass that feeds the sweeps (states, scales, spreads), from
    # the compiled program: holding the chunk products at C = 1 would take one (S, S)
    # matrix a step (2048 bytes at S = 16 in float64); the states take S numbers.
    def per_run(steps):
        cell, params, xs, h0 = _tanh(1.0, 16, steps)
        compiled = parallel._chunk_scales.lower(cell, params, xs, h0, "auto", 1).compile()
        m = compiled.memory_analysis()
        return m.temp_size_in_bytes + m.output_size_in_bytes + m.argument_size_in_bytes

    per_step = (per_run(2000) - per_run(1000)) / 1000
    assert 16 * 8 <= per_step < 16 * 16 * 8 / 4, per_step


# -- DEER ------------------------------------------------------------------------------


def _deer_case(steps, gain=1.1, seed=1):
    # lambda_1 = -0.31 (seed 1, gain 1.1, N = 16); -0.06 at gain 1.8 (seed 0).
    cell, params, xs, h0 = _tanh(gain, 16, steps, seed=seed)
    return cell, params, xs, h0


@pytest.mark.parametrize("steps", [1000, 10_000])
def test_deer_converges_in_few_iterations_at_any_length(steps):
    cell, params, xs, h0 = _deer_case(steps)
    out = gradspec.trajectory(cell, params, xs, h0, scan="deer")
    assert bool(out.converged) and int(out.iterations) <= 8
    seq = gradspec.trajectory(cell, params, xs, h0)
    np.testing.assert_allclose(out.states, seq, rtol=0, atol=TOL_DEER)


@pytest.mark.slow
def test_deer_at_T_100000():
    cell, params, xs, h0 = _deer_case(100_000)
    out = gradspec.trajectory(cell, params, xs, h0, scan="deer")
    assert bool(out.converged) and int(out.iterations) <= 8
    seq = gradspec.trajectory(cell, params, xs, h0)
    np.testing.assert_allclose(out.states, seq, rtol=0, atol=TOL_DEER)


@pytest.mark.parametrize("gain", [1.8, 3.0])
def test_deer_falls_back_where_lambda_is_near_or_above_zero(gain):
    # gain 1.8: lambda_1 = -0.06 (Newton needs ~150 iterations); 3.0: chaotic, +0.12,
    # where the linear solves overflow. Both: the sequential scan, flagged, no NaN.
    cell, params, xs, h0 = _tanh(gain, 16, 1000)
    lam = gradspec.lyapunov_spectrum(cell, params, xs, h0, k=1, warmup=100)
    assert float(lam[0]) >= -0.061
    out = gradspec.trajectory(cell, params, xs, h0, scan="deer")
    assert not bool(out.converged) and np.isfinite(out.states).all()
    np.testing.assert_array_equal(out.states, gradspec.trajectory(cell, params, xs, h0))


def test_quasi_deer_on_a_nearly_diagonal_network(getkey):
    cell = gradspec.cells.RNN("tanh")
    W = 0.5 * jnp.eye(16) + 0.02 * jr.normal(getkey(), (16, 16), jnp.float64)
    params = {"W_hh": W, "W_xh": jnp.ones((16, 1)), "b": jnp.zeros(16)}
    xs = jr.normal(getkey(), (500, 1), jnp.float64)
    out = gradspec.trajectory(cell, params, xs, scan="quasi-deer")
    assert bool(out.converged) and int(out.iterations) < 40
    np.testing.assert_allclose(out.states, gradspec.trajectory(cell, params, xs),
                               rtol=0, atol=TOL_DEER)



def test_deer_float32_gru_under_jit_and_vmap(getkey):
    cell, params = _cell_and_params("gru", getkey())
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), params)
    xs = jr.normal(getkey(), (2, 200, D), jnp.float32)
    deer = lambda x: gradspec.trajectory(cell, params, x, scan="deer")
    out = jax.jit(jax.vmap(deer))(xs)
    assert out.states.dtype == jnp.float32 and bool(out.converged.all())
    np.testing.assert_allclose(out.states[1], gradspec.trajectory(cell, params, xs[1]),
                               rtol=0, atol=1e-5)
    # The profile under the same transforms, against the sequential scan's.
    prof = lambda x: gradspec.gradient_profile(cell, params, x, scan="parallel")
    np.testing.assert_allclose(jax.jit(jax.vmap(prof))(xs)[0],
                               gradspec.gradient_profile(cell, params, xs[0]),
                               rtol=0, atol=1e-3)


@pytest.mark.slow
def test_T_one_million_at_N_16():
    cell, params, xs, h0 = _deer_case(1_000_000)
    out = gradspec.trajectory(cell, params, xs, h0, scan="deer")
    seq = gradspec.trajectory(cell, params, xs, h0)
    assert bool(out.converged) and np.isfinite(out.states).all()
    np.testing.assert_allclose(out.states, seq, rtol=0, atol=TOL_DEER)
    prof = gradspec.gradient_profile(cell, params, xs, h0, scan="parallel")
    assert np.isfinite(prof).all()
    np.testing.assert_allclose(prof, gradspec.gradient_profile(cell, params, xs, h0),
                               rtol=0, atol=1e-7)  # T eps |l| at |l| ~ 3e5
    q0 = spectra.start_frame(None, 16, 1, jnp.float64)
    lam = spectra._lyapunov_spectrum(cell, params, xs, h0, q0, 1000, "auto")[0]
    par = parallel.parallel_top_exponent(cell, params, xs, h0, q0, 1000)[0]
    assert abs(float(par[0] - lam[0])) * 1e6 <= 1e-7


@pytest.mark.slow
def test_T_one_million_at_N_64():
    """The block-streamed parallel scans at T = 10^6, S = 64, float64 (576 s on 2 busy
    CPU cores, 1 GiB for the profile's states): finite and equal to the sequential
    scans.
    DEER is left out here (~300 times the sequential scan on a CPU: ~15 min)."""
    cell, params, xs, h0 = _tanh(1.0, 64, 1_000_000)
    q1 = spectra.start_frame(None, 64, 1, jnp.float64)
    lam = spectra._lyapunov_spectrum(cell, params, xs, h0, q1, 1000, "auto")[0]
    par = parallel.parallel_top_exponent(cell, params, xs, h0, q1, 1000)[0]
    assert np.isfinite(par).all() and abs(float(par[0] - lam[0])) * 1e6 <= 1e-7
    q8 = spectra.start_frame(None, 64, 8, jnp.float64)
    lam = spectra._lyapunov_spectrum(cell, params, xs, h0, q8, 1000, "auto")[0]
    par = parallel.parallel_lyapunov_spectrum(cell, params, xs, h0, q8, 1000)[0]
    np.testing.assert_allclose(par, lam, rtol=0, atol=TOL_TOPK)
    prof = gradspec.gradient_profile(cell, params, xs, h0, scan="parallel")
    assert np.isfinite(prof).all()
    np.testing.assert_allclose(prof, gradspec.gradient_profile(cell, params, xs, h0),
                               rtol=0, atol=1e-7)  # T eps |l| at |l| ~ 4e5


def test_errors(getkey):
    cell, params = _cell_and_params("tanh", getkey())
    xs = jnp.ones((10, D), jnp.float64)
    with pytest.raises(ValueError, match="scan"):
        gradspec.trajectory(cell, params, xs, scan="parallel")
    with pytest.raises(ValueError, match="scan"):
        gradspec.gradient_profile(cell, params, xs, scan="deer")
    with pytest.raises(ValueError, match="max_iterations"):
        gradspec.trajectory(cell, params, xs, scan="deer", max_iterations=0)
    with pytest.raises(TypeError, match="max_iterations"):
        gradspec.trajectory(cell, params, xs, scan="deer", max_iterations=2.5)


def test_public_scan_argument_of_the_spectra(getkey):
    """lyapunov_spectrum / product_singular_values(scan="parallel") give the sequential
    numbers: a contracting tanh RNN, float64, 300 steps (chunks hold the spread within
    the rule, so the chunk products lose nothing above 1e-10)."""
    cell, params = _cell_and_params("tanh", getkey())
    xs = jr.normal(getkey(), (300, D), jnp.float64)
    for k in (1, 3):
        seq = gradspec.lyapunov_spectrum(cell, params, xs, k=k, warmup=30)
        par = gradspec.lyapunov_spectrum(cell, params, xs, k=k, warmup=30, scan="parallel")
        np.testing.assert_allclose(par, seq, rtol=0, atol=1e-10)
    seq = gradspec.product_singular_values(cell, params, xs[:60])
    par = gradspec.product_singular_values(cell, params, xs[:60], scan="parallel")
    np.testing.assert_allclose(par, seq, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="scan"):
        gradspec.lyapunov_spectrum(cell, params, xs, scan="deer")


# -- scan="auto": the measured table ---------------------------------------------------


def test_resolve_scan_follows_the_cpu_table():
    resolve = lambda m, **kw: parallel.resolve_scan(m, platform="cpu", **kw)
    # Measured faster in parallel on 2 CPU cores: the top 4 exponents at S = 8-16.
    assert resolve("lyapunov_spectrum", size=16, length=10**4, k=4) == "parallel"
    assert resolve("lyapunov_spectrum", size=8, length=10**6, k=4) == "parallel"
    # Measured slower: k = 1, 2, 8; S = 32, 64; and T = 1000 is below the measured.
    for kw in (dict(size=16, length=10**4, k=1), dict(size=16, length=10**4, k=8),
               dict(size=8, length=10**4, k=2), dict(size=32, length=10**4, k=4),
               dict(size=16, length=1000, k=4)):
        assert resolve("lyapunov_spectrum", **kw) == "sequential", kw
    for m in ("trajectory", "gradient_profile", "product_singular_values"):
        assert resolve(m, size=8, length=10**5, k=4) == "sequential"
    # No accelerator measured yet: sequential everywhere.
    assert parallel.resolve_scan("lyapunov_spectrum", platform="gpu", size=16,
                                 length=10**4, k=4) == "sequential"
    assert set(parallel.CROSSOVER) <= set(parallel.CROSSOVER_SOURCE)
    with pytest.raises(ValueError, match="measurement"):
        resolve("spectrum", size=16, length=10)


def test_auto_on_cpu_runs_the_sequential_scan():
    cell, params, xs, h0 = _deer_case(1000)
    out = gradspec.trajectory(cell, params, xs, h0, scan="auto")
    assert not bool(out.parallel) and bool(out.converged) and int(out.iterations) == 0
    np.testing.assert_array_equal(out.states, gradspec.trajectory(cell, params, xs, h0))
    assert parallel.platform_of(xs) == "cpu"


def _spectra_take_auto() -> bool:
    """Whether lyapunov_spectrum accepts scan="auto" (spectra.py calls resolve_scan)."""
    try:
        gradspec.lyapunov_spectrum(gradspec.cells.RNN("tanh"), _tanh(1.0, 4, 2)[1],
                                   jnp.zeros((2, 1), jnp.float64), scan="auto")
    except ValueError:
        return False
    return True


@pytest.mark.skipif(not _spectra_take_auto(),
                    reason="spectra.py does not pass scan='auto' to resolve_scan yet")
def test_lyapunov_spectrum_auto_on_cpu_is_what_the_table_says():
    cell, params, xs, h0 = _tanh(1.0, 16, 10_000)
    for k in (1, 4):  # sequential at k = 1, parallel at k = 4 (chunk chosen alike)
        chosen = parallel.resolve_scan("lyapunov_spectrum", platform="cpu", size=16,
                                       length=10_000, k=k)
        auto = gradspec.lyapunov_spectrum(cell, params, xs, h0, k=k, scan="auto")
        ref = gradspec.lyapunov_spectrum(cell, params, xs, h0, k=k, scan=chosen)
        np.testing.assert_array_equal(auto, ref)
    assert chosen == "parallel"


@pytest.fixture
def fake_table(monkeypatch):
    """A CPU table that has DEER and the parallel profile faster everywhere."""
    everywhere = dict(sizes=(1, 10**6), lengths=(1, np.inf), ks=(1, 10**6),
                      ratio="fake")
    rows = tuple(_associative.Crossover(m, **everywhere)
                 for m in ("trajectory", "gradient_profile"))
    monkeypatch.setitem(_associative.CROSSOVER, "cpu", rows)


def test_auto_with_a_table_that_says_parallel(fake_table):
    # lambda_1 = -0.31: 2.3 / 0.31 = 7.4 predicted iterations <= 32 / 2: DEER.
    cell, params, xs, h0 = _deer_case(1000)
    seq = gradspec.trajectory(cell, params, xs, h0)
    out = gradspec.trajectory(cell, params, xs, h0, scan="auto")
    assert bool(out.parallel) and bool(out.converged) and int(out.iterations) <= 8
    np.testing.assert_allclose(out.states, seq, rtol=0, atol=TOL_DEER)
    deer = gradspec.trajectory(cell, params, xs, h0, scan="deer")
    np.testing.assert_array_equal(out.states, deer.states)
    assert out.iterations.dtype == deer.iterations.dtype
    # ... but a cap of 8 leaves no margin (7.4 > 8 / 2): sequential.
    capped = gradspec.trajectory(cell, params, xs, h0, scan="auto", max_iterations=8)
    assert not bool(capped.parallel)
    np.testing.assert_array_equal(capped.states, seq)
    # lambda_1 = -0.06: 38 iterations predicted, over the cap: sequential, exactly.
    cell, params, xs, h0 = _tanh(1.8, 16, 1000)
    out = gradspec.trajectory(cell, params, xs, h0, scan="auto")
    assert not bool(out.parallel) and int(out.iterations) == 0
    np.testing.assert_array_equal(out.states, gradspec.trajectory(cell, params, xs, h0))
    # The profile: the parallel scan, equal to the sequential one to rounding.
    prof = gradspec.gradient_profile(cell, params, xs, h0, scan="auto")
    np.testing.assert_array_equal(
        prof, gradspec.gradient_profile(cell, params, xs, h0, scan="parallel"))
    np.testing.assert_allclose(prof, gradspec.gradient_profile(cell, params, xs, h0),
                               rtol=0, atol=TOL_PROFILE)


def test_auto_under_jit_cannot_probe_and_runs_sequential(fake_table):
    cell, params, xs, h0 = _deer_case(300)
    run = jax.jit(lambda x: gradspec.trajectory(cell, params, x, h0, scan="auto"))
    out = run(xs)
    assert not bool(out.parallel)
    np.testing.assert_allclose(out.states, gradspec.trajectory(cell, params, xs, h0),
                               rtol=0, atol=1e-15)
