"""The dynamical-systems toolbox: explicit frames and Lyapunov vectors, the Jacobian-array
path, Kaplan–Yorke dimension, KS entropy, participation ratios, local exponents and
running estimates, against known answers (linear maps, Hénon, Lorenz) and their plots."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import pytest

import gradspec
import gradspec.plots as gp
from gradspec import cells
from gradspec.measure.spectra import start_frame

from .helpers import EPS64, assert_within, log_product_atol
from .test_cells import D, N, _cell_and_params

# Known answers. Hénon (a = 1.4, b = 0.3): lambda_1 = 0.41922 (Sprott, "Chaos and
# Time-Series Analysis", 2003, to 5 digits), lambda_1 + lambda_2 = log b exactly
# (det J = -b at every step). Lorenz (10, 28, 8/3): 0.9056, 0, -14.5723 per unit time
# (Sprott), sum -(sigma + 1 + beta) = -13.6667 exactly (the flow's constant divergence).
HENON_L1 = 0.41922
LORENZ = np.array([0.9056, 0.0, -14.5723])
LORENZ_SUM = -(10.0 + 1.0 + 8.0 / 3.0)
LORENZ_DT = 0.01
#: Same sweep, sums in another order (closed-form D (W q) against (D W) q, masked sums
#: against means): a few eps per step on O(1) logs, averaged: far inside 1e-12.
SAME_SWEEP = 1e-12


@pytest.fixture
def rng():
    """Test data from numpy: each new shape drawn with jax.random would compile."""
    return np.random.default_rng(0)


def _henon_cell():
    def step(p, h, x):
        return jnp.stack([1.0 - p["a"] * h[0] ** 2 + h[1], p["b"] * h[0]])

    return cells.StepCell(step, size=2), {"a": jnp.float64(1.4), "b": jnp.float64(0.3)}


def _lorenz_cell(dt=LORENZ_DT):
    def field(p, u):
        x, y, z = u[0], u[1], u[2]
        return jnp.stack([p["sigma"] * (y - x), x * (p["rho"] - z) - y,
                          x * y - p["beta"] * z])

    def rk4(p, u, _):  # one classical Runge–Kutta step of length dt
        k1 = field(p, u)
        k2 = field(p, u + 0.5 * dt * k1)
        k3 = field(p, u + 0.5 * dt * k2)
        k4 = field(p, u + dt * k3)
        return u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    params = {"sigma": jnp.float64(10.0), "rho": jnp.float64(28.0),
              "beta": jnp.float64(8.0 / 3.0)}
    return cells.StepCell(rk4, size=3), params


def _linear(W):
    n = W.shape[0]
    return cells.RNN("linear"), {"W_hh": W, "W_xh": jnp.zeros((n, 1), W.dtype),
                                 "b": jnp.zeros(n, W.dtype)}


def _chaotic_rnn(T=300):
    # A fixed draw that is chaotic (lambda_1 = +0.16): small networks often are not.
    cell = cells.RNN("tanh")
    k1, k2 = jr.split(jr.key(1))
    params = cell.init(k1, 12, 1, recurrent_init=gradspec.init.gaussian(3.0),
                       dtype=jnp.float64)
    return cell, params, 0.1 * jr.normal(k2, (T, 1), jnp.float64)


# -- spectra: explicit frames, final frames ---------------------------------------------


def test_explicit_frame_is_the_default_frame_and_continues_a_run():
    cell, params, xs = _chaotic_rnn()
    n, T = 12, xs.shape[0]
    lam = gradspec.lyapunov_spectrum(cell, params, xs, k=3)
    q0 = start_frame(None, n, 3, jnp.float64)
    same = gradspec.lyapunov_spectrum(cell, params, xs, frame=q0)  # k read off the frame
    np.testing.assert_array_equal(same, lam)
    # Splitting the run at m and passing (h_m, Q_m) on continues the very same sweep.
    m = T // 2  # halves of one length: one compilation
    h = gradspec.trajectory(cell, params, xs)
    h0 = gradspec.start_state(cell, params, 1)
    first = gradspec.local_exponents(cell, params, xs[:m], h0, k=3)
    _, q_m = gradspec.lyapunov_spectrum(cell, params, xs[:m], h0, k=3, return_vectors=True)
    rest = gradspec.local_exponents(cell, params, xs[m:], h[m - 1], frame=q_m)
    whole = gradspec.local_exponents(cell, params, xs, k=3)
    np.testing.assert_allclose(np.concatenate([first, rest]), whole, rtol=0, atol=SAME_SWEEP)


def test_final_frame_is_orthonormal_and_holds_the_backward_lyapunov_vectors():
    # A diagonal map: the backward Lyapunov vectors are the axes, in the order of the
    # rates (0.9 > 0.6 > 0.3); the frame aligns like (0.6/0.9)^t = 1e-18 at t = 100.
    u = np.array([0.3, 0.9, 0.6])
    cell, params = _linear(jnp.diag(jnp.asarray(u)))
    lam, q = gradspec.lyapunov_spectrum(cell, params, jnp.zeros((100, 1)), jnp.zeros(3),
                                        warmup=50, return_vectors=True)
    np.testing.assert_allclose(lam, np.log([0.9, 0.6, 0.3]), rtol=0, atol=SAME_SWEEP)
    np.testing.assert_allclose(np.abs(np.asarray(q)), np.eye(3)[:, [1, 2, 0]], atol=1e-12)
    np.testing.assert_allclose(gradspec.participation_ratio(q), np.ones(3), atol=1e-12)
    _, q = gradspec.lyapunov_spectrum(*_chaotic_rnn()[:3], return_vectors=True)
    np.testing.assert_allclose(np.asarray(q.T @ q), np.eye(12), atol=1e-13)


def test_frame_errors(getkey):
    cell, params, xs = _chaotic_rnn(T=10)
    q = start_frame(None, 12, 3, jnp.float64)
    with pytest.raises(ValueError, match=r"`frame` must have shape \(12, k\)"):
        gradspec.lyapunov_spectrum(cell, params, xs, frame=q[:5])
    with pytest.raises(ValueError, match=r"`frame` must have shape \(12, 2\)"):
        gradspec.lyapunov_spectrum(cell, params, xs, k=2, frame=q)
    with pytest.raises(ValueError, match="`frame` must be orthonormal"):
        gradspec.lyapunov_spectrum(cell, params, xs, frame=2 * q)
    with pytest.raises(ValueError, match="`frame` and `key` are exclusive"):
        gradspec.lyapunov_spectrum(cell, params, xs, frame=q, key=getkey())
    with pytest.raises(ValueError, match="`frame` must be finite"):
        gradspec.lyapunov_spectrum(cell, params, xs, frame=q.at[0, 0].set(jnp.nan))
    with pytest.raises(TypeError, match="`frame`"):
        gradspec.lyapunov_spectrum(cell, params, xs, frame=np.eye(12, 3, dtype=int))
    # Orthonormal to rounding passes: a float32 QR frame in a float64 run.
    q32 = start_frame(None, 12, 3, jnp.float32)
    assert gradspec.lyapunov_spectrum(cell, params, xs, frame=q32).shape == (3,)


# -- from Jacobians: the cell path's numbers on the cell's Jacobians ---------------------


def test_from_jacobians_equals_the_cell_path(getkey, rng):
    # The RNN's closed-form jvp against the explicit Jacobians (autodiff cells: below).
    cell, params = _cell_and_params("tanh", getkey())
    xs = jnp.asarray(rng.normal(size=(40, D)))
    Js = gradspec.step_jacobians(cell, params, xs)
    lam, q = gradspec.lyapunov_spectrum(cell, params, xs, warmup=5, return_vectors=True)
    lam_j, q_j = gradspec.lyapunov_spectrum_from_jacobians(Js, warmup=5, return_vectors=True)
    np.testing.assert_allclose(lam_j, lam, rtol=0, atol=SAME_SWEEP)
    np.testing.assert_allclose(q_j, q, rtol=0, atol=SAME_SWEEP)
    np.testing.assert_allclose(gradspec.local_exponents_from_jacobians(Js),
                               gradspec.local_exponents(cell, params, xs),
                               rtol=0, atol=SAME_SWEEP)
    # (A readout matrix goes through the same readout_profile as in the cell path.)
    r = jnp.asarray(rng.normal(size=(N,)))
    prof = gradspec.gradient_profile(cell, params, xs, readout=r)
    prof_j = gradspec.gradient_profile_from_jacobians(Js, r)
    # The same reverse scan, sums in another order: the house rounding bound.
    assert_within(prof_j, prof, log_product_atol(np.asarray(r), np.asarray(Js)[::-1]))


def test_product_singular_values_from_jacobians_equal_the_cell_path(getkey, rng):
    # The RNN's cell path regroups P^T around its slopes; the Jacobian path goes through
    # the vjp: both sweep to their rounding floor, ~T eps relative to the summed logs
    # (the documented bound of product_singular_values is 1e-10).
    cell, params = _cell_and_params("tanh", getkey())
    xs = jnp.asarray(rng.normal(size=(40, D)))
    lsv = gradspec.product_singular_values(cell, params, xs)
    lsv_j = gradspec.product_singular_values_from_jacobians(
        gradspec.step_jacobians(cell, params, xs))
    np.testing.assert_allclose(lsv_j, lsv, rtol=1e-12, atol=1e-12)


def test_from_jacobians_of_any_jax_model(rng):
    # Not a gradspec cell: a two-layer map whose Jacobians come from jax.jacrev; the
    # cell path wraps it as a StepCell (autodiff jvps).
    A, B = jnp.asarray(rng.normal(size=(2, 6, 6)) / np.sqrt(6))

    def step(h, x):
        return jnp.tanh(2.0 * A @ jnp.tanh(B @ h) + x)

    xs = jnp.asarray(0.1 * rng.normal(size=(100, 6)))
    h0 = jnp.zeros(6, jnp.float64)
    hs = jax.lax.scan(lambda h, x: (step(h, x), h), h0, xs)[1]  # h_0 .. h_{T-1}
    Js = jax.vmap(jax.jacrev(step))(hs, xs)
    cell = cells.StepCell(lambda p, h, x: step(h, x), size=6)
    lam = gradspec.lyapunov_spectrum(cell, {}, xs, h0, warmup=20)
    np.testing.assert_allclose(gradspec.lyapunov_spectrum_from_jacobians(Js, warmup=20), lam,
                               rtol=0, atol=SAME_SWEEP)


def test_chunks_carry_the_frame():
    cell, params, xs = _chaotic_rnn(T=60)
    Js = np.asarray(gradspec.step_jacobians(cell, params, xs))
    # Uneven chunks, the warm-up (25) spanning the first two.
    cuts = [0, 20, 40, 50, 60]
    chunks = [Js[a:b] for a, b in zip(cuts, cuts[1:])]
    one, q1 = gradspec.lyapunov_spectrum_from_jacobians(Js, k=4, warmup=25, return_vectors=True)
    many, q2 = gradspec.lyapunov_spectrum_from_jacobians(
        (c for c in chunks), k=4, warmup=25, return_vectors=True)  # a generator
    np.testing.assert_allclose(many, one, rtol=0, atol=SAME_SWEEP)
    np.testing.assert_allclose(q2, q1, rtol=0, atol=SAME_SWEEP)
    np.testing.assert_allclose(gradspec.local_exponents_from_jacobians(chunks, k=4),
                               gradspec.local_exponents_from_jacobians(Js, k=4),
                               rtol=0, atol=SAME_SWEEP)


def test_from_jacobians_errors():
    Js = jnp.broadcast_to(jnp.eye(3), (5, 3, 3))
    with pytest.raises(ValueError, match=r"`Js` must have shape \(T, S, S\)"):
        gradspec.lyapunov_spectrum_from_jacobians(Js[:, :2])
    with pytest.raises(ValueError, match="`Js` must have shape"):
        gradspec.gradient_profile_from_jacobians(Js[0], jnp.ones(3))
    with pytest.raises(ValueError, match=r"`Js\[1\]` must have shape \(T, 3, 3\)"):
        gradspec.lyapunov_spectrum_from_jacobians([Js, jnp.eye(4)[None]])
    with pytest.raises(ValueError, match="at least one chunk"):
        gradspec.lyapunov_spectrum_from_jacobians([])
    with pytest.raises(ValueError, match="`warmup` must be < T = 10"):
        gradspec.lyapunov_spectrum_from_jacobians([Js, Js], warmup=10)
    with pytest.raises(ValueError, match=r"`warmup` must be in \[0, 4\]"):
        gradspec.lyapunov_spectrum_from_jacobians(Js, warmup=5)
    with pytest.raises(TypeError, match="one \\(T, S, S\\) array"):
        gradspec.product_singular_values_from_jacobians([Js])
    with pytest.raises(TypeError, match="`Js` must have a floating dtype"):
        gradspec.lyapunov_spectrum_from_jacobians(jnp.ones((2, 3, 3), jnp.int32))
    with pytest.raises(ValueError, match="`Js` must be finite"):
        gradspec.lyapunov_spectrum_from_jacobians(Js.at[0, 0, 0].set(jnp.inf))
    with pytest.raises(ValueError, match="`readout` must have shape"):
        gradspec.gradient_profile_from_jacobians(Js, jnp.ones(4))
    with pytest.raises(ValueError, match="`frame` must have shape"):
        gradspec.lyapunov_spectrum_from_jacobians(Js, frame=jnp.eye(4))


# -- dtype follows the input, for every public function of the toolbox ------------------


def _toolbox(dtype):
    """Every new public function on tiny float inputs of ``dtype``, as name -> output
    (product_singular_values_from_jacobians runs the cell path's kernel, whose dtype
    test_api checks; its compilation is the costliest here)."""
    cell, params = _linear(jnp.asarray([[0.5, 0.2], [0.0, 0.9]], dtype))
    xs, h0 = jnp.zeros((6, 1), dtype), jnp.ones(2, dtype)
    Js = gradspec.step_jacobians(cell, params, xs, h0)
    lam, q = gradspec.lyapunov_spectrum(cell, params, xs, h0, return_vectors=True)
    local = gradspec.local_exponents(cell, params, xs, h0)
    return {
        "lyapunov_spectrum vectors": q,
        "local_exponents": local,
        "lyapunov_convergence": gradspec.lyapunov_convergence(
            cell, params, xs, jnp.stack([h0, -h0])).mean,
        "running_exponents": gradspec.running_exponents(local).mean,
        "kaplan_yorke_dimension": gradspec.kaplan_yorke_dimension(lam),
        "ks_entropy": gradspec.ks_entropy(lam),
        "participation_ratio": gradspec.participation_ratio(q),
        "lyapunov_spectrum_from_jacobians": gradspec.lyapunov_spectrum_from_jacobians(Js),
        "local_exponents_from_jacobians": gradspec.local_exponents_from_jacobians(Js),
        "gradient_profile_from_jacobians":
            gradspec.gradient_profile_from_jacobians(Js, jnp.ones(2, dtype)),
    }


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_follows_the_input(dtype):
    for name, out in _toolbox(dtype).items():
        assert out.dtype == dtype, name
        assert np.isfinite(np.asarray(out)).all(), name


# -- the derived quantities against hand-made answers -----------------------------------


@pytest.mark.parametrize("exponents, expected", [
    ([1.0, -2.0], 1.5),  # j = 1: 1 + 1/2
    ([1.0, 0.0, -2.0], 2.5),  # j = 2: 2 + 1/2
    ([0.5, -1.0, -0.25], 2.25),  # unsorted: sorted to 0.5, -0.25, -1: 2 + 0.25/1
    ([1.0, -1.0, -1.0], 2.0),  # S_2 = 0 >= 0: j = 2, fraction 0
    ([-0.1, -1.0], 0.0),  # lambda_1 < 0: a stable orbit, dimension 0
    ([0.5, 0.2], 2.0),  # every partial sum >= 0: k
    ([0.3, -np.inf], 1.0),  # a dead direction contracts infinitely fast
    (list(LORENZ), 2.0 + 0.9056 / 14.5723),
])
def test_kaplan_yorke_dimension_by_hand(exponents, expected):
    # One division and k additions of O(1) numbers: a few eps.
    d = gradspec.kaplan_yorke_dimension(jnp.asarray(exponents, jnp.float64))
    assert float(d) == pytest.approx(expected, abs=8 * EPS64)


def test_kaplan_yorke_batches_jits_and_refuses_bad_input():
    batch = jnp.array([[1.0, -2.0], [-0.1, -1.0], [jnp.nan, 0.0]])
    d = jax.jit(gradspec.kaplan_yorke_dimension)(batch)
    np.testing.assert_array_equal(d[:2], [1.5, 0.0])
    assert np.isnan(d[2])
    with pytest.raises(ValueError, match="`exponents` must have shape"):
        gradspec.kaplan_yorke_dimension(jnp.zeros((2, 0)))
    with pytest.raises(TypeError, match="`exponents`"):
        gradspec.ks_entropy(jnp.array([1, 2]))


def test_ks_entropy_sums_the_positive_exponents():
    lam = jnp.array([[0.5, 0.25, -1.0], [-0.1, -0.2, -jnp.inf]])
    np.testing.assert_array_equal(gradspec.ks_entropy(lam), [0.75, 0.0])


def test_participation_ratio(rng):
    S = 3000
    q = jnp.stack([jnp.zeros(S).at[7].set(-2.0), jnp.ones(S),
                   jnp.asarray(rng.normal(size=(S,)))], axis=1)
    pr = np.asarray(gradspec.participation_ratio(q))
    assert pr[0] == 1.0 and pr[1] == pytest.approx(S, rel=1e-12)  # scale free
    # Gaussian entries: S (E q^2)^2 / E q^4 = S / 3; the sample fourth moment of S = 3000
    # draws has a relative sd of sqrt(96 / S) / 3 ~ 6%: 4 sd = 24%.
    assert pr[2] == pytest.approx(S / 3, rel=0.24)
    assert float(gradspec.participation_ratio(q[:, 1])) == pytest.approx(S, rel=1e-12)
    with pytest.raises(ValueError, match="`vectors` must have shape"):
        gradspec.participation_ratio(jnp.ones((2, 2, 2)))


def test_local_exponents_average_to_the_spectrum():
    cell, params, xs = _chaotic_rnn()
    ell = gradspec.local_exponents(cell, params, xs, k=4)
    lam = gradspec.lyapunov_spectrum(cell, params, xs, k=4, warmup=50)
    assert ell.shape == (xs.shape[0], 4)
    np.testing.assert_allclose(np.sort(np.asarray(ell[50:]).mean(0))[::-1], lam,
                               rtol=0, atol=SAME_SWEEP)
    assert float(lam[0]) > 0  # really chaotic: the intermittency test below needs it
    assert np.asarray(ell[:, 0]).min() < 0 < np.asarray(ell[:, 0]).max()


def test_running_exponents_by_hand_and_against_numpy(rng):
    c = gradspec.running_exponents(jnp.array([[[1.0], [3.0]], [[3.0], [5.0]]]))
    np.testing.assert_array_equal(c.t, [1, 2])
    np.testing.assert_array_equal(c.mean[:, 0], [2.0, 3.0])
    np.testing.assert_array_equal(c.se[:, 0], [1.0, 1.0])
    local = jnp.asarray(rng.normal(size=(5, 30, 3)))
    c = gradspec.running_exponents(local, warmup=10)
    run = np.cumsum(np.asarray(local)[:, 10:], axis=1) / np.arange(1, 21)[:, None]
    # Sums of <= 30 O(1) terms in another order: 30 eps * |sum of |terms||.
    np.testing.assert_array_equal(c.t, np.arange(11, 31))
    np.testing.assert_allclose(c.mean, run.mean(0), rtol=0, atol=64 * EPS64)
    np.testing.assert_allclose(c.se, run.std(0, ddof=1) / np.sqrt(5), rtol=0, atol=64 * EPS64)
    one = gradspec.running_exponents(local[0])
    np.testing.assert_allclose(one.mean[-1], np.asarray(local[0]).mean(0), atol=64 * EPS64)
    assert np.isnan(np.asarray(one.se)).all()
    with pytest.raises(ValueError, match="`local` must have shape"):
        gradspec.running_exponents(local[0, 0])
    with pytest.raises(ValueError, match="`warmup`"):
        gradspec.running_exponents(local, warmup=30)


def test_lyapunov_convergence_is_the_vmapped_sweep(getkey, rng):
    # An ordered network: in a chaotic one vmap's reordered sums (1e-16) grow like
    # exp(lambda_1 t) along the trajectory, and no rounding bound holds at T = 120.
    cell = cells.RNN("tanh")
    params = cell.init(getkey(), 12, 1, recurrent_init=gradspec.init.gaussian(0.9),
                       dtype=jnp.float64)
    xs = jnp.asarray(0.3 * rng.normal(size=(120, 1)))
    xs_b = jnp.asarray(0.3 * rng.normal(size=(3, 120, 1)))
    h0_b = jnp.asarray(0.5 * rng.normal(size=(3, 12)))
    looped = np.stack([gradspec.local_exponents(cell, params, x, h, k=2)
                       for x, h in zip(xs_b, h0_b)])
    want = gradspec.running_exponents(looped, warmup=20)
    for x, h in ((xs_b, h0_b), (xs_b, None), (xs, h0_b)):
        c = gradspec.lyapunov_convergence(cell, params, x, h, k=2, warmup=20)
        if h is None or x.ndim == 2:
            ref = np.stack([gradspec.local_exponents(
                cell, params, xs_b[b] if x.ndim == 3 else xs, None if h is None else h[b],
                k=2) for b in range(3)])
            want_here = gradspec.running_exponents(ref, warmup=20)
        else:
            want_here = want
        # vmap against a loop: reordered sums of T O(1) logs (see test_api).
        np.testing.assert_allclose(c.mean, want_here.mean, rtol=0, atol=1e-12)
        np.testing.assert_allclose(c.se, want_here.se, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="must carry a batch"):
        gradspec.lyapunov_convergence(cell, params, xs)
    with pytest.raises(ValueError, match="`h0` must have as many rows"):
        gradspec.lyapunov_convergence(cell, params, xs_b, h0_b[:2])
    with pytest.raises(ValueError, match=r"`h0` must have shape \(B, 12\)"):
        gradspec.lyapunov_convergence(cell, params, xs, h0_b[:, :3])


# -- known answers ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_linear_maps_have_their_log_gains(dtype, getkey, rng):
    # W = a Q (Q orthogonal): every exponent is log a, every local exponent too, and a
    # batch agrees exactly (se = 0 to rounding); diag(u): log u_i once aligned.
    tol = {jnp.float32: 1e-5, jnp.float64: 1e-12}[dtype]  # QR of a * orthogonal: eps/step
    cell, params = _linear(gradspec.init.orthogonal(0.7)(getkey(), (5, 5), dtype))
    xs = jnp.zeros((200, 1), dtype)
    h0 = jnp.asarray(rng.normal(size=(4, 5)), dtype)
    c = gradspec.lyapunov_convergence(cell, params, xs, h0)
    assert c.mean.dtype == dtype and c.se.dtype == dtype
    np.testing.assert_allclose(c.mean, np.full((200, 5), math.log(0.7)), atol=tol)
    np.testing.assert_allclose(c.se, 0, atol=tol)
    u = jnp.asarray([1.2, 0.9, 0.5, 0.1], dtype)
    cell, params = _linear(jnp.diag(u))
    lam = gradspec.lyapunov_spectrum(cell, params, xs, jnp.zeros(4, dtype), warmup=100)
    # Aligned to (0.9/1.2)^100 = 3e-13 after the warm-up.
    np.testing.assert_allclose(lam, np.log(np.asarray(u, np.float64)), atol=tol)
    # log u = 0.18, -0.11, -0.69, -2.3: S_2 = 0.077 >= 0 > S_3, so 2 + S_2 / |log 0.5|.
    assert float(gradspec.kaplan_yorke_dimension(lam)) == pytest.approx(
        2 + math.log(1.2 * 0.9) / -math.log(0.5), abs=tol * 10)
    assert float(gradspec.ks_entropy(lam)) == pytest.approx(math.log(1.2), abs=tol)


def _henon_batch(T, B, seed):
    cell, params = _henon_cell()
    h0 = jnp.asarray(0.1 * np.random.default_rng(seed).normal(size=(B, 2)))  # in the basin
    return cell, params, gradspec.lyapunov_convergence(
        cell, params, jnp.zeros((T, 1)), h0, warmup=100)


def _check_henon(c):
    lam, se = np.asarray(c.mean[-1]), np.asarray(c.se[-1])
    # det J = -b every step: log|R_11| + log|R_22| = log b + O(eps) per step.
    assert lam.sum() == pytest.approx(math.log(0.3), abs=1e-12)
    # The batch mean within 4 standard errors of the known value (which is given to
    # 1e-5): a wrong method would be off by far more than the 1e-3 these runs resolve.
    assert abs(lam[0] - HENON_L1) <= 4 * se[0] + 1e-5, (lam, se)
    d = float(gradspec.kaplan_yorke_dimension(lam))  # 1 + 0.41922 / 1.62319 = 1.2583
    assert d == pytest.approx(1 + HENON_L1 / (HENON_L1 - math.log(0.3)), abs=8 * se[0] + 1e-4)
    assert float(gradspec.ks_entropy(lam)) == lam[0]
    return lam, se


def test_henon_map():
    # 8 orbits x 20,000 steps: se(lambda_1) 5e-4 to 8e-4 (measured).
    _check_henon(_henon_batch(20_000, 8, 0)[2])


@pytest.mark.slow
def test_henon_map_long():
    # 16 orbits x 10^6 steps: se(lambda_1) ~ 7e-5 (measured).
    lam, se = _check_henon(_henon_batch(1_000_000, 16, 1)[2])
    assert se[0] < 2e-4


def _lorenz_batch(T, B, seed, dt=LORENZ_DT):
    cell, params = _lorenz_cell(dt)
    # Independent orbits from random points around the attractor. (Relaxed random
    # states near the origin all leave it along its unstable manifold, and correlated
    # members make the standard error too small.)
    h0 = jnp.asarray([0.0, 0.0, 25.0] + 8.0 * np.random.default_rng(seed).normal(size=(B, 3)))
    warmup = int(10 / dt)  # 10 time units: onto the attractor, the frame aligned
    return gradspec.lyapunov_convergence(cell, params, jnp.zeros((T, 1)), h0, warmup=warmup)


def _check_lorenz(c, dt=LORENZ_DT):
    lam, se = np.asarray(c.mean[-1]) / dt, np.asarray(c.se[-1]) / dt
    # The flow's divergence is -13.667 everywhere; RK4's step has log det = that dt
    # + O(dt^5): measured +1.0e-4 per unit time at dt = 0.01, 6e-6 at 0.005.
    assert lam.sum() == pytest.approx(LORENZ_SUM, abs=3e-4)
    # Each exponent within 4 standard errors of the literature value, plus RK4's bias
    # (~1e-4) and the literature's last digit (1e-4).
    np.testing.assert_array_less(np.abs(lam - LORENZ), 4 * se + 5e-4)
    d = float(gradspec.kaplan_yorke_dimension(lam))
    assert d == pytest.approx(2.0 + 0.9056 / 14.5723, abs=4 * se[0] / 14.5 + 1e-3)
    return lam, se, d


def test_lorenz_attractor():
    # 8 orbits x 100 time units: se(lambda_1) 0.005-0.012 per unit time (measured).
    _check_lorenz(_lorenz_batch(10_000, 8, 0))


@pytest.mark.slow
def test_lorenz_attractor_long():
    # 16 orbits x 10,000 time units: se(lambda_1) ~ 3e-4 per unit time.
    lam, se, d = _check_lorenz(_lorenz_batch(1_000_000, 16, 1))
    assert se[0] < 1e-3 and abs(d - 2.0621) < 1e-3


def _engelken_reference(J, h0, q0, dt, steps, every):
    """The algorithm of Engelken's published demo (github.com/RainerEngelken/
    RNN-LyapunovSpectra, demo_lypunov_spectra_chaotic_ratenetwork.py, for Engelken,
    Wolf & Abbott, arXiv:2006.02427), ported to numpy: Euler steps
    h <- (1 - dt) h + dt J tanh(h) (tau = 1), the frame pushed by the Jacobian at the
    step's start, (1 - dt) I + dt J diag(sech^2 h), a QR every ``every`` steps, and the
    summed log|diag R| divided by the elapsed time. (Checked against their unmodified
    code on its own seeds: 4e-15 apart.)"""
    eye, h, q, total = np.eye(len(h0)), h0, q0, 0.0
    for n in range(steps):
        jac = (1 - dt) * eye + J * (dt / np.cosh(h) ** 2)
        h = h * (1 - dt) + dt * J @ np.tanh(h)
        q = jac @ q
        if (n + 1) % every == 0:
            q, r = np.linalg.qr(q)
            total = total + np.log(np.abs(np.diag(r)))
    return total / (steps * dt)


def test_rate_network_spectrum_equals_engelkens_algorithm():
    # Their network: J ~ N(0, g^2/N) without autapses, h0 ~ N(0, (g - 1)^2), dt = 0.1.
    # A chaotic draw (lambda_1 = +0.20 over these 60 tau). The numpy and XLA trajectories
    # separate from rounding at ~e^{lambda_1 t} (x 1.6e5 here): measured 1.5e-11 apart.
    n, g, dt, steps = 50, 4.0, 0.1, 600
    rng = np.random.default_rng(1)
    J = g * rng.normal(size=(n, n)) / np.sqrt(n)
    J -= np.diag(np.diag(J))
    h0 = (g - 1) * rng.normal(size=n)
    q0 = np.linalg.qr(rng.normal(size=(n, n)))[0]
    want = np.sort(_engelken_reference(J, h0, q0, dt, steps, every=10))[::-1]
    cell = cells.RateRNN("tanh", dt=dt)
    params = {"W_hh": jnp.asarray(J), "W_xh": jnp.zeros((n, 1)), "b": jnp.zeros(n)}
    lam = cell.per_unit_time(gradspec.lyapunov_spectrum(
        cell, params, jnp.zeros((steps, 1)), jnp.asarray(h0), frame=jnp.asarray(q0)))
    assert want[0] > 0.1  # chaotic
    np.testing.assert_allclose(lam, want, rtol=0, atol=1e-9)


# -- plots: the drawn data are the inputs -------------------------------------------------


@pytest.fixture
def _close():
    yield
    plt.close("all")


def _by_gid(artists, gid):
    found = [a for a in artists if a.get_gid() == gid]
    assert len(found) == 1, (gid, [a.get_gid() for a in artists])
    return found[0]


def _band_edges(band, x):
    """(lower, upper) y of a fill_between polygon at each x."""
    verts = band.get_paths()[0].vertices
    lo = [verts[np.isclose(verts[:, 0], xi), 1].min() for xi in x]
    hi = [verts[np.isclose(verts[:, 0], xi), 1].max() for xi in x]
    return np.array(lo), np.array(hi)


def test_plot_exponent_spectrum_draws_mean_and_band(_close):
    batch = np.array([[0.42, -1.62, -3.0], [0.41, -1.60, -3.2], [0.44, -1.63, -2.9]])
    fig = gp.plot_exponent_spectrum(
        [{"label": "henon", "exponents": batch},
         {"label": "given", "mean": batch[0], "se": np.full(3, 0.1)}], z=2.0, time_step=0.5)
    ax = fig.axes[0]
    line = _by_gid(ax.lines, "spectrum:henon")
    mean, se = batch.mean(0), batch.std(0, ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(line.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(line.get_ydata(), mean / 0.5, atol=1e-12)
    lo, hi = _band_edges(_by_gid(ax.collections, "band:henon"), [1, 2, 3])
    np.testing.assert_allclose(lo, (mean - 2 * se) / 0.5, atol=1e-12)
    np.testing.assert_allclose(hi, (mean + 2 * se) / 0.5, atol=1e-12)
    lo, hi = _band_edges(_by_gid(ax.collections, "band:given"), [1, 2, 3])
    np.testing.assert_allclose(hi - lo, np.full(3, 0.8), atol=1e-12)
    assert "per unit time" in ax.get_ylabel()
    one = gp.plot_exponent_spectrum([{"label": "one", "exponents": batch[0]}])
    assert not one.axes[0].collections  # one run: no band
    with pytest.raises(TypeError, match="list of dicts"):
        gp.plot_exponent_spectrum({"exponents": batch})
    with pytest.raises(ValueError, match="exponents"):
        gp.plot_exponent_spectrum([{"exponents": batch[None]}])
    with pytest.raises(ValueError, match="`z`"):
        gp.plot_exponent_spectrum([{"exponents": batch}], z=-1)


def test_plot_convergence_draws_the_running_means(_close, rng):
    local = jnp.asarray(0.4 + rng.normal(size=(6, 50, 3)))
    c = gradspec.running_exponents(local, warmup=10)
    fig = gp.plot_convergence(c, indices=[1, 3], reference=[0.4, 0.4])
    ax = fig.axes[0]
    for i in (1, 3):
        line = _by_gid(ax.lines, f"running:{i}")
        np.testing.assert_array_equal(line.get_xdata(), np.arange(11, 51))
        np.testing.assert_allclose(line.get_ydata(), c.mean[:, i - 1], atol=1e-12)
        lo, hi = _band_edges(_by_gid(ax.collections, f"band:{i}"), np.arange(11, 51))
        np.testing.assert_allclose(hi - lo, 4 * np.asarray(c.se[:, i - 1]), atol=1e-12)
        assert _by_gid(ax.lines, f"reference:{i}").get_ydata()[0] == 0.4
    assert not [a for a in ax.lines if a.get_gid() == "running:2"]
    with pytest.raises(ValueError, match="`indices`"):
        gp.plot_convergence(c, indices=[4])
    with pytest.raises(ValueError, match="`reference`"):
        gp.plot_convergence(c, indices=[1], reference=[0.1, 0.2])


def test_plot_local_exponents_draws_histograms(_close, rng):
    local = rng.normal(size=(2, 400, 2))
    local[0, 0, 1] = -np.inf  # a dead direction's step: left out
    fig = gp.plot_local_exponents(local, bins=15)
    ax = fig.axes[0]
    flat = local.reshape(-1, 2)
    pooled = flat[np.isfinite(flat)]
    edges = np.histogram_bin_edges(pooled, bins=15)
    for i in (1, 2):
        values, got_edges, _ = _by_gid(ax.patches, f"local:{i}").get_data()
        v = flat[:, i - 1]
        v = v[np.isfinite(v)]
        np.testing.assert_allclose(got_edges, edges)
        np.testing.assert_allclose(values, np.histogram(v, bins=edges, density=True)[0])
        assert _by_gid(ax.lines, f"mean:{i}").get_xdata()[0] == pytest.approx(v.mean())
    with pytest.raises(ValueError, match="`local` must have shape"):
        gp.plot_local_exponents(local[0, 0])
    with pytest.raises(ValueError, match="`bins`"):
        gp.plot_local_exponents(local, bins=0)
