"""Mean-field theory, critical gain, Pascanu bounds and random-matrix laws against
independent references: numpy integration and iteration, closed forms, sampled matrices
and Lyapunov exponents measured on real trajectories."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import theory

from .helpers import (
    EPS32,
    EPS64,
    assert_mean_field_close,
    assert_within,
    log_product_atol,
    tree_allclose,
)

# -- independent numpy references --------------------------------------------------
# Trapezoid rule on z in [-12, 12], h = 1e-3: the integrands are analytic with poles
# pi / (2 sqrt(q)) (tanh, q <= 7 here) or pi / sqrt(q) (sigmoid, q <= 70) >= 0.37 from
# the real axis, so the rule's error exp(-2 pi 0.37 / 1e-3) and the tail beyond 12
# (1e-32) are far below float64 rounding; the reference is exact to ~1e-15.
_Z = np.linspace(-12.0, 12.0, 24_001)
_PHI = np.exp(-0.5 * _Z**2) / np.sqrt(2 * np.pi)


def _np_sigmoid(u):
    return 0.5 * (1 + np.tanh(0.5 * u))


# f and f' written by hand (no autodiff), for the reference only.
_REF_FNS = {
    "tanh": (np.tanh, lambda u: 1 / np.cosh(u) ** 2),
    "sigmoid": (_np_sigmoid, lambda u: _np_sigmoid(u) * (1 - _np_sigmoid(u))),
}


def _ref_expect(g, q):
    return np.trapezoid(g(np.sqrt(q) * _Z) * _PHI, _Z)


def _ref_fixed_point(name, sigma_w, sigma_b=0.0, sigma_x=0.0):
    """Plain iteration of the variance map from above until the step is < 1e-15 q."""
    f, _ = _REF_FNS[name]
    s2 = sigma_b**2 + sigma_x**2
    q = sigma_w**2 + s2 + 1.0
    for _ in range(200_000):
        q_next = sigma_w**2 * _ref_expect(lambda u: f(u) ** 2, q) + s2
        done = abs(q_next - q) <= 1e-15 * q_next or q_next < 1e-200
        q = q_next
        if done:
            break
    return 0.0 if q < 1e-200 else q


def _ref_chi(name, sigma_w, sigma_b=0.0, sigma_x=0.0):
    q = _ref_fixed_point(name, sigma_w, sigma_b, sigma_x)
    df = _REF_FNS[name][1]
    return q, sigma_w**2 * (
        df(0.0) ** 2 if q == 0 else _ref_expect(lambda u: df(u) ** 2, q)
    )


# Points on both sides of the tanh critical line sigma_w*(sigma_b) (1 at sigma_b = 0,
# 1.55 at sigma_b = 0.5, 1.86 at sigma_b = 1), away from it so that plain iteration
# converges geometrically (contraction <= 0.9 per step).
TANH_POINTS = [
    (0.5, 0.0, 0.0),
    (0.9, 0.0, 0.0),
    (1.2, 0.0, 0.0),
    (1.5, 0.0, 0.0),
    (3.0, 0.0, 0.0),
    (0.8, 0.3, 0.0),
    (1.3, 0.5, 0.0),
    (2.0, 0.5, 0.0),
    (1.5, 1.0, 0.0),
    (2.5, 1.0, 0.0),
    (1.2, 0.2, 0.3),
]
SIGMOID_POINTS = [(1.0, 0.0, 0.0), (4.0, 0.0, 0.0), (6.0, 0.5, 0.0), (12.0, 0.0, 0.5)]

# Implementation and reference both reach ~1e-13; 1e-9 (three orders tighter than the
# 1e-6 the issue asks for) leaves room for the iteration's stopping error.
MF_RTOL = 1e-9
MF_ATOL = 1e-12


@pytest.mark.parametrize("sigma_w, sigma_b, sigma_x", TANH_POINTS)
def test_mean_field_tanh_matches_numpy_integration(sigma_w, sigma_b, sigma_x):
    mf = theory.mean_field("tanh", sigma_w, sigma_b=sigma_b, sigma_x=sigma_x)
    q_ref, chi_ref = _ref_chi("tanh", sigma_w, sigma_b, sigma_x)
    np.testing.assert_allclose(mf.q_star, q_ref, rtol=MF_RTOL, atol=MF_ATOL)
    np.testing.assert_allclose(mf.chi, chi_ref, rtol=MF_RTOL)
    # lambda = log(chi)/2 is a log of a ratio near 1 at criticality: its error is
    # absolute, half chi's relative one. xi = -1/log chi and timescale = 1/|lambda|
    # amplify it by 1/lambda^2, so they are checked through their reciprocals.
    log_chi = np.log(chi_ref)
    np.testing.assert_allclose(mf.lambda_max, 0.5 * log_chi, rtol=0, atol=MF_RTOL / 2)
    np.testing.assert_allclose(-1 / mf.xi, log_chi, rtol=0, atol=MF_RTOL)
    np.testing.assert_allclose(1 / mf.timescale, 0.5 * abs(log_chi), rtol=0, atol=MF_RTOL / 2)


@pytest.mark.parametrize("sigma_w, sigma_b, sigma_x", SIGMOID_POINTS)
def test_mean_field_sigmoid_matches_numpy_integration(sigma_w, sigma_b, sigma_x):
    mf = theory.mean_field("sigmoid", sigma_w, sigma_b=sigma_b, sigma_x=sigma_x)
    q_ref, chi_ref = _ref_chi("sigmoid", sigma_w, sigma_b, sigma_x)
    assert q_ref > 0  # f(0) = 1/2: the sigmoid's variance never collapses
    np.testing.assert_allclose(mf.q_star, q_ref, rtol=MF_RTOL)
    np.testing.assert_allclose(mf.chi, chi_ref, rtol=MF_RTOL)


def test_mean_field_tanh_without_bias_published_values():
    # Poole et al. 2016: q* = 0 and chi = sigma_w^2 below 1, critical at 1.
    for s in [0.0, 0.3, 0.7, 0.99, 1.0]:
        mf = theory.mean_field("tanh", s)
        assert float(mf.q_star) <= 1e-15
        # s^2 times 1000 positive quadrature weights summing to 1 (no cancellation): any
        # summation order rounds by ~sqrt(1000) u ~ 8 eps; 1e-14 is 45 eps (seen 1).
        np.testing.assert_allclose(mf.chi, s**2, rtol=1e-14, atol=0)
    assert theory.mean_field("tanh", 1.0).regime == "critical"
    assert float(theory.mean_field("tanh", 1.01).q_star) > 1e-3  # new branch above 1


def test_mean_field_relu_and_linear_closed_forms():
    # V(q) = a q + s2 with a = sigma_w^2 / 2 (relu) or sigma_w^2 (linear): exact. The
    # tolerances are a few roundings of the closed forms (q*: s2 / (1 - a) with 1 - a >=
    # 0.15, so <= 6 eps of cancellation; 0.8**2 is 1 ulp from the literal 0.64).
    for s, sb, sx in [(0.5, 0.5, 0.0), (1.0, 0.5, 0.0), (1.3, 0.2, 0.4)]:
        mf = theory.mean_field("relu", s, sigma_b=sb, sigma_x=sx)
        a = s**2 / 2
        np.testing.assert_allclose(mf.q_star, (sb**2 + sx**2) / (1 - a), rtol=1e-14)
        np.testing.assert_allclose(mf.chi, a, rtol=1e-15)
    lin = theory.mean_field("linear", 0.8, sigma_b=0.3, sigma_x=0.4)
    np.testing.assert_allclose(lin.q_star, 0.25 / (1 - 0.64), rtol=1e-14)
    np.testing.assert_allclose(lin.chi, 0.64, rtol=1e-15)
    # chi > 1: the variance diverges; chi < 1 without bias: it collapses to 0.
    assert float(theory.mean_field("relu", 2.0).q_star) == np.inf
    assert float(theory.mean_field("relu", 1.5, sigma_b=0.1).q_star) == np.inf
    assert float(theory.mean_field("linear", 1.1).q_star) == np.inf
    assert float(theory.mean_field("relu", 1.0).q_star) == 0.0
    np.testing.assert_allclose(theory.mean_field("relu", 2.0).chi, 2.0, rtol=1e-15)  # 2^2/2
    # chi = 1 exactly without bias: every q is neutral, none stable.
    assert np.isnan(float(theory.mean_field("linear", 1.0).q_star))
    assert theory.mean_field("linear", 1.0).regime == "critical"


def test_mean_field_callable_matches_builtin_and_closed_forms():
    # A user's relu goes through the generic path (quadrature, bisection, bracket
    # growth): the symmetric rule integrates the kink exactly. rtol 1e-12 here and below:
    # sums of 1000 positive quadrature terms round by <= 1000 eps = 2.2e-13 in any order,
    # and these fixed points are well conditioned (V'(q*) <= 0.5).
    def relu(u):
        return jnp.maximum(u, 0)

    for s, sb in [(1.0, 0.5), (1.0, 0.0), (2.0, 0.0), (1.8, 0.3)]:
        got = theory.mean_field(relu, s, sigma_b=sb)
        want = theory.mean_field("relu", s, sigma_b=sb)
        np.testing.assert_allclose(got.q_star, want.q_star, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got.chi, want.chi, rtol=1e-12)
    # sin: E[sin^2(sqrt(q) z)] = (1 - e^{-2q}) / 2, E[cos^2] = (1 + e^{-2q}) / 2.
    for s in [1.5, 2.5]:
        q = s**2
        for _ in range(2000):
            q = s**2 * (1 - math.exp(-2 * q)) / 2
        mf = theory.mean_field(jnp.sin, s)
        np.testing.assert_allclose(mf.q_star, q, rtol=1e-12)
        np.testing.assert_allclose(
            mf.chi, s**2 * (1 + math.exp(-2 * q)) / 2, rtol=1e-12
        )
    # softplus grows like relu: q* diverges above sigma_w = sqrt(2), chi -> sigma_w^2/2.
    mf = theory.mean_field(jax.nn.softplus, 2.0)
    assert float(mf.q_star) == np.inf
    np.testing.assert_allclose(mf.chi, 2.0, rtol=1e-12)


def test_critical_gain_closed_forms_and_numpy_root():
    assert float(theory.critical_gain("tanh")) == 1.0
    # sqrt(2) correctly rounded both ways (a closed form, no root finding).
    np.testing.assert_allclose(theory.critical_gain("relu"), math.sqrt(2), rtol=1e-15)
    np.testing.assert_allclose(theory.critical_gain("relu", sigma_b=0.7), math.sqrt(2))
    assert float(theory.critical_gain("linear", sigma_x=0.3)) == 1.0
    # With bias: a numpy bisection on the reference chi (40 halvings of [1, 3]).
    for name, sb, bracket in [("tanh", 0.5, (1.0, 3.0)), ("sigmoid", 0.0, (4.0, 16.0))]:
        lo, hi = bracket
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if _ref_chi(name, mid, sb)[1] < 1 else (lo, mid)
        got = float(theory.critical_gain(name, sigma_b=sb))
        assert got == pytest.approx(0.5 * (lo + hi), abs=1e-8)  # 1e-8: the bar
        # Absolute (lambda -> 0 here by construction): half chi's relative rounding, a
        # sum of 1000 positive terms (<= 1000 eps/2 = 1.1e-13), at a root bisected to an ulp.
        assert abs(float(theory.mean_field(name, got, sigma_b=sb).lambda_max)) < 1e-12


def test_critical_gain_is_the_regime_boundary():
    g = float(theory.critical_gain("tanh", sigma_b=1.0))
    assert theory.mean_field("tanh", g * 0.9, sigma_b=1.0).regime == "vanishing"
    assert theory.mean_field("tanh", g, sigma_b=1.0).regime == "critical"
    assert theory.mean_field("tanh", g * 1.1, sigma_b=1.0).regime == "exploding"


def test_init_critical_uses_critical_gain(getkey):
    key = getkey()
    got = gradspec.init.critical("relu")(key, (8, 8), jnp.float64)
    want = gradspec.init.gaussian(math.sqrt(2))(key, (8, 8), jnp.float64)
    np.testing.assert_allclose(got, want, rtol=1e-15)  # same draw times the same gain
    g = float(theory.critical_gain("tanh", sigma_b=0.5))
    got = gradspec.init.critical("tanh", sigma_b=0.5)(key, (8, 8), jnp.float32)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, gradspec.init.gaussian(g)(key, (8, 8), jnp.float32))
    with pytest.raises(ValueError, match="nonlinearity"):
        gradspec.init.critical("bogus")
    with pytest.raises(ValueError, match="has no critical gain"):
        gradspec.init.critical(lambda u: 0 * u)


# -- theory versus measurement -----------------------------------------------------


def _autonomous_lambda(key, nonlinearity, sigma_w, n, steps, warmup):
    """Top Lyapunov exponent of h_t = f(W h_{t-1}), W ~ N(0, sigma_w^2/N), random h0."""
    k_w, k_h, k_q = jr.split(key, 3)
    cell = gradspec.cells.RNN(nonlinearity)
    W = gradspec.init.gaussian(sigma_w)(k_w, (n, n), jnp.float64)
    params = {"W_hh": W, "W_xh": jnp.zeros((n, 1)), "b": jnp.zeros(n)}
    h0 = jr.normal(k_h, (n,), jnp.float64)  # h0 = 0 would stay at the fixed point 0
    lam = gradspec.lyapunov_spectrum(
        cell, params, jnp.zeros((steps, 1)), h0, k=1, warmup=warmup, key=k_q
    )
    return float(lam[0]), W


@pytest.mark.parametrize("sigma_w, tol", [(1.5, 0.03), (3.0, 0.015)])
def test_mean_field_predicts_measured_lyapunov_exponent(getkey, sigma_w, tol):
    # Chaotic regime: lambda_max -> 1/2 log chi as N -> inf. At N = 400 the quenched W
    # shifts single networks by ~0.01 (seen: 0.037..0.064 at sigma_w = 1.5 against
    # 0.065, 0.303..0.307 at 3.0 against 0.310), so two networks are averaged and the
    # tolerances are ~3 of those standard deviations.
    pred = float(theory.mean_field("tanh", sigma_w).lambda_max)
    measured = [
        _autonomous_lambda(getkey(), "tanh", sigma_w, 400, 3000, 500)[0]
        for _ in range(2)
    ]
    assert abs(np.mean(measured) - pred) < tol, (measured, pred)


def test_mean_field_ordered_regime_is_the_spectral_radius(getkey):
    # sigma_w = 0.5: h -> 0, so J -> W and lambda_max = log rho(W) for this W exactly
    # (up to the 2500-step average, 1e-3); the circular law puts rho(W) at sigma_w up
    # to an edge correction of order sqrt(log N / N) ~ 0.06 at N = 400.
    measured, W = _autonomous_lambda(getkey(), "tanh", 0.5, 400, 3000, 500)
    rho = float(np.abs(np.linalg.eigvals(np.asarray(W))).max())
    assert measured == pytest.approx(math.log(rho), abs=2e-3)
    assert measured == pytest.approx(
        float(theory.mean_field("tanh", 0.5).lambda_max), abs=0.06
    )


@pytest.mark.slow
@pytest.mark.parametrize("sigma_w", [1.5, 2.0, 3.0])
def test_mean_field_predicts_lyapunov_exponent_large_n(getkey, sigma_w):
    # N = 1000: quenched shifts ~0.004 (seen -0.004 on average at 1.5 and 3.0).
    pred = float(theory.mean_field("tanh", sigma_w).lambda_max)
    measured = [
        _autonomous_lambda(getkey(), "tanh", sigma_w, 1000, 4000, 500)[0]
        for _ in range(2)
    ]
    assert abs(np.mean(measured) - pred) < 0.012, (measured, pred)


# -- mean field along an input sequence ----------------------------------------------


def test_mean_field_along_matches_numpy_recursion():
    # The recursion by hand with the trapezoid reference, on a drive that jumps.
    s2 = np.array([0.0, 2.0, 0.1, 0.0, 5.0, 0.3, 0.3, 1.0])
    f, df = _REF_FNS["tanh"]
    h2, qs, chis = 0.0, [], []
    for s in s2:
        q = 1.5**2 * h2 + 0.2**2 + s
        h2 = _ref_expect(lambda u: f(u) ** 2, q)
        qs.append(q)
        chis.append(1.5**2 * _ref_expect(lambda u: df(u) ** 2, q))
    path = theory.mean_field_along("tanh", 1.5, jnp.asarray(s2), sigma_b=0.2, warmup=2)
    # q and chi: sums of positive quadrature terms (<= 1000 eps in any order), so relative.
    np.testing.assert_allclose(path.q, qs, rtol=1e-12)
    np.testing.assert_allclose(path.chi, chis, rtol=1e-12)
    # lambda is a mean of log(chi_t)/2 of both signs (+0.01 .. -0.37 here): it can cancel
    # to ~0, and each term's error is absolute, half chi's relative 1e-12.
    assert float(path.lambda_max) == pytest.approx(0.5 * np.log(chis[2:]).mean(), abs=5e-13)


def test_mean_field_along_constant_drive_and_closed_forms():
    # A constant drive settles at the fixed point of the constant-drive theory. abs=1e-12
    # here and below: lambda = log(chi)/2 carries chi's relative rounding as an absolute
    # error (~1000 eps/2 at most for the quadrature; exact closed forms for linear, relu).
    path = theory.mean_field_along("tanh", 1.5, jnp.full(300, 0.36), warmup=150)
    assert float(path.lambda_max) == pytest.approx(
        float(theory.mean_field("tanh", 1.5, sigma_x=0.6).lambda_max), abs=1e-12
    )
    # chi does not depend on q for linear (sigma_w^2) and relu (sigma_w^2 / 2).
    s2 = jnp.asarray(np.random.default_rng(0).chisquare(1, 50))
    assert float(theory.mean_field_along("linear", 0.8, s2).lambda_max) == pytest.approx(
        math.log(0.8), abs=1e-12
    )
    assert float(theory.mean_field_along("relu", 1.2, s2).lambda_max) == pytest.approx(
        math.log(1.2) - 0.5 * math.log(2), abs=1e-12
    )
    with pytest.raises(ValueError, match="drive_variance"):
        theory.mean_field_along("tanh", 1.0, jnp.array([0.1, -0.1]))
    with pytest.raises(ValueError, match="drive_variance"):
        theory.mean_field_along("tanh", 1.0, jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="warmup"):
        theory.mean_field_along("tanh", 1.0, jnp.ones(5), warmup=5)


def test_mean_field_along_predicts_single_input_network(getkey):
    # D = 1 unit Gaussian input: the drive's variance across units, x_t^2 |w|^2 / N, is
    # chi^2_1-distributed over time. N = 1024, one trajectory of 4000 steps: the
    # network's top exponent is within 0.01 of the theory along its inputs, while the
    # constant-drive theory (sigma_x^2 = mean s_t^2) misses by ~0.04 (measured 0.044).
    cell = gradspec.cells.RNN("tanh")
    n, steps = 1024, 4000
    params = cell.init(
        getkey(), n, 1, recurrent_init=gradspec.init.gaussian(1.5), dtype=jnp.float64
    )
    xs = jr.normal(getkey(), (steps, 1), jnp.float64)
    s2 = jnp.mean((xs @ params["W_xh"].T) ** 2, 1)  # s_t^2 = mean_i (W_xh x_t)_i^2
    sigma_w = float(np.sqrt(n * np.mean(np.asarray(params["W_hh"]) ** 2)))
    along = float(theory.mean_field_along("tanh", sigma_w, s2, warmup=200).lambda_max)
    constant = float(
        theory.mean_field("tanh", sigma_w, sigma_x=float(jnp.sqrt(s2.mean()))).lambda_max
    )
    measured = float(gradspec.lyapunov_spectrum(cell, params, xs, k=1, warmup=200)[0])
    assert abs(along - measured) < 0.01, (along, measured)
    assert abs(constant - measured) > 0.03, (constant, measured)


# -- Pascanu's bound ---------------------------------------------------------------


def _rnn(key, nonlinearity, gain, n=24, d=3):
    cell = gradspec.cells.RNN(nonlinearity)
    k1, k2 = jr.split(key)
    params = cell.init(
        k1, n, d, recurrent_init=gradspec.init.gaussian(gain), dtype=jnp.float64
    )
    params["b"] = 0.3 * jr.normal(k2, (n,), jnp.float64)
    return cell, params


@pytest.mark.parametrize(
    "nonlinearity, gain",
    [
        ("tanh", 0.5),
        ("tanh", 1.0),
        ("tanh", 2.0),
        ("tanh", 4.0),
        ("sigmoid", 1.0),
        ("sigmoid", 4.0),
        ("sigmoid", 8.0),
        ("sigmoid", 16.0),
    ],
)
def test_gradient_bound_never_violated(getkey, nonlinearity, gain):
    cell, params = _rnn(getkey(), nonlinearity, gain)
    steps = 60
    xs = jr.normal(getkey(), (steps, 3), jnp.float64)
    h0 = jr.normal(getkey(), (24,), jnp.float64)
    lags = jnp.arange(steps + 1)
    bound = theory.gradient_bound(params, nonlinearity, lags)
    # Whole product J_T ... J_1: its top log singular value.
    log_sv = gradspec.product_singular_values(cell, params, xs, h0)
    slack = 1e-9 * max(1.0, abs(float(bound.log_bound[-1])))  # rounding of 60 QR steps
    assert float(log_sv[0]) <= float(bound.log_bound[-1]) + slack
    # Every lag: ||dL/dh_{T-k}|| / ||dL/dh_T|| <= (gamma sigma_max)^k.
    prof = gradspec.gradient_profile(cell, params, xs, h0)
    assert np.all(np.asarray(prof - prof[0]) <= np.asarray(bound.log_bound) + slack)
    rate = bound.gamma * bound.spectral_norm
    assert bool(bound.vanishing_guaranteed) == bool(rate < 1)
    assert bool(bound.exploding_necessary) == bool(rate > 1)
    np.testing.assert_allclose(
        bound.spectral_norm, np.linalg.norm(np.asarray(params["W_hh"]), 2)
    )


def test_gradient_bound_is_sharp_for_orthogonal_linear_rnn(getkey):
    # J_t = g Q for every t: the product is g^T Q^T, all singular values g^T.
    for gain in [0.7, 1.0, 1.3]:
        W = gradspec.init.orthogonal(gain)(getkey(), (16, 16), jnp.float64)
        params = {"W_hh": W, "W_xh": jnp.zeros((16, 1)), "b": jnp.zeros(16)}
        bound = theory.gradient_bound(params, "linear", 50)
        log_sv = gradspec.product_singular_values(
            gradspec.cells.RNN("linear"), params, jnp.zeros((50, 1))
        )
        # 50 log ||W||_2: the SVD's sigma_max carries ~N eps relative rounding, 50 times
        # over (seen 144 eps); 4 x 50 N eps.
        np.testing.assert_allclose(bound.log_bound, 50 * math.log(gain), atol=4 * 50 * 16 * EPS64)
        # The product's top log singular value: 50 QR steps, each bounded by its terms.
        tol = log_product_atol(np.eye(16), np.stack([np.asarray(W).T] * 50))[-1]
        np.testing.assert_allclose(log_sv[0], bound.log_bound, rtol=0, atol=tol)


def test_gradient_bound_hand_checked():
    W = jnp.diag(jnp.array([2.0, 0.5]))
    b = theory.gradient_bound(W, "sigmoid", jnp.array([[0, 1], [2, 3]]))
    assert b.log_bound.shape == (2, 2)
    np.testing.assert_allclose(b.log_bound, np.array([[0, 1], [2, 3]]) * math.log(0.5))
    assert float(b.gamma) == 0.25 and float(b.spectral_norm) == 2.0
    assert bool(b.vanishing_guaranteed) and not bool(b.exploding_necessary)
    # gamma of callables from the dense grid: 3 tanh -> 3, sin -> 1, softplus -> 1.
    for f, gamma in [
        (lambda u: 3 * jnp.tanh(u), 3.0),
        (jnp.sin, 1.0),
        (jax.nn.softplus, 1.0),
    ]:
        assert float(theory.gradient_bound(W, f, 1).gamma) == pytest.approx(
            gamma, rel=1e-12
        )  # a maximum of f' on the grid (0 is on it): no sum, no cancellation
    assert float(theory.gradient_bound(W, jnp.sin, 1, gamma=2.0).gamma) == 2.0
    zero = theory.gradient_bound(jnp.zeros((2, 2)), "tanh", jnp.arange(3))
    np.testing.assert_array_equal(zero.log_bound, [0.0, -np.inf, -np.inf])


# -- random-matrix laws ------------------------------------------------------------


def _quarter_circle_cdf(s, g):
    s = np.clip(s, 0, 2 * g)
    return (s * np.sqrt(4 * g**2 - s**2) / 2 + 2 * g**2 * np.arcsin(s / (2 * g))) / (
        np.pi * g**2
    )


def test_densities_are_normalised():
    g = 1.7
    s = np.linspace(0, 2 * g, 2_000_001)
    p = np.asarray(theory.quarter_circle_density(jnp.asarray(s), g))
    # The sqrt edge limits the trapezoid rule to O(h^1.5) ~ 1e-9.
    assert np.trapezoid(p, s) == pytest.approx(1.0, abs=1e-7)
    cdf = np.concatenate([[0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(s))])
    np.testing.assert_allclose(cdf, _quarter_circle_cdf(s, g), atol=1e-7)
    # Polar integral of the disk law: 2 pi int r p(r) dr (the jump at r = g: O(h)).
    r = np.linspace(0, 2 * g, 2_000_001)
    pr = np.asarray(theory.circular_law_density(jnp.asarray(r + 0j), g))
    assert np.trapezoid(2 * np.pi * r * pr, r) == pytest.approx(1.0, abs=1e-5)
    assert float(theory.circular_law_density(0.3 - 0.4j, 0.5)) == pytest.approx(
        1 / (np.pi * 0.25)
    )
    assert float(theory.circular_law_density(0.3 - 0.5j, 0.5)) == 0.0
    assert float(theory.quarter_circle_density(-0.1, 1.0)) == 0.0


def _radial_cdf_and_quarter_circle_cdf(g):
    """CDFs of |eigenvalue| and singular value, integrated from the two densities."""
    grid = np.linspace(0, 2 * g, 200_001)
    p = np.asarray(theory.quarter_circle_density(jnp.asarray(grid), g))
    sv_cdf = np.concatenate([[0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(grid))])
    rp = (
        2
        * np.pi
        * grid
        * np.asarray(theory.circular_law_density(jnp.asarray(grid + 0j), g))
    )
    r_cdf = np.concatenate([[0], np.cumsum(0.5 * (rp[1:] + rp[:-1]) * np.diff(grid))])
    return grid, r_cdf, sv_cdf


def _ks(samples, grid, cdf):
    """Kolmogorov–Smirnov distance between sorted samples and a tabulated CDF."""
    n = len(samples)
    ref = np.interp(samples, grid, cdf)
    return max(
        np.max(np.abs(np.arange(1, n + 1) / n - ref)),
        np.max(np.abs(np.arange(n) / n - ref)),
    )


def test_quarter_circle_matches_sampled_singular_values(getkey):
    # N = 1000, g = 1.5. Singular values are rigid (fluctuations ~log N / N, far below
    # the iid 1/sqrt(N)): seen KS 0.002..0.004 over seeds, so 0.01.
    n, g = 1000, 1.5
    W = np.asarray(gradspec.init.gaussian(g)(getkey(), (n, n), jnp.float64))
    sv = np.sort(np.linalg.svd(W, compute_uv=False))
    grid, _, sv_cdf = _radial_cdf_and_quarter_circle_cdf(g)
    assert _ks(sv, grid, sv_cdf) < 0.01
    assert sv[-1] == pytest.approx(2 * g, rel=0.02)  # ||W||_2 -> 2g


@pytest.mark.parametrize(
    "n, tol", [(500, 0.05), pytest.param(1000, 0.035, marks=pytest.mark.slow)]
)
def test_circular_law_matches_sampled_eigenvalues(getkey, n, tol):
    # A real Ginibre matrix has ~sqrt(2N/pi) real eigenvalues (uniform on [-g, g], not
    # on the disk) and leaks O(1/sqrt(N)) of the mass past the edge r = g: seen KS
    # 0.018..0.028 at N = 500 and 0.013..0.019 at N = 1000 over seeds, so tol ~ 2x that.
    # (N = 1000 is slow only because the non-symmetric eigensolver takes ~7 s there.)
    g = 1.5
    W = np.asarray(gradspec.init.gaussian(g)(getkey(), (n, n), jnp.float64))
    radii = np.sort(np.abs(np.linalg.eigvals(W)))
    grid, r_cdf, _ = _radial_cdf_and_quarter_circle_cdf(g)
    # the jump of the density at r = g costs the trapezoid rule O(h) = 1e-5.
    np.testing.assert_allclose(r_cdf, (grid / g).clip(max=1) ** 2, atol=2e-5)
    assert _ks(radii, grid, r_cdf) < tol
    assert radii[-1] == pytest.approx(g, rel=0.06)  # rho(W) -> g, edge correction


# -- transient growth --------------------------------------------------------------


def test_transient_growth_matches_matrix_power():
    W = np.array([[0.9, 10.0], [0.0, 0.9]])
    tg = theory.transient_growth(jnp.asarray(W), max_power=60)
    ref = np.array(
        [np.linalg.norm(np.linalg.matrix_power(W, k), 2) for k in range(1, 61)]
    )
    # log ||W^k|| falls back to 0.18 at k = 60 (a ratio near 1): the bound is the rounding
    # of each step's products and of the running log sum, not a fraction of the log.
    tol = log_product_atol(np.eye(2), np.stack([W.T] * 60))[1:]
    assert_within(tg.log_norms, np.log(ref), tol)
    assert int(tg.peak_power) == int(np.argmax(ref)) + 1
    # exp of the log-norm at k = 9, whose error is <= tol[8] = 1.7e-13: rtol 1e-12 holds.
    np.testing.assert_allclose(tg.max_growth, ref.max(), rtol=1e-12)
    assert float(tg.max_growth) > 30  # transient growth >> 1 ...
    # W is triangular: LAPACK reads the (defective) eigenvalue 0.9 off the diagonal exactly.
    np.testing.assert_allclose(
        tg.log_spectral_radius, math.log(0.9), rtol=1e-12
    )  # ... yet rho < 1


def test_transient_growth_random_and_log_domain(getkey):
    W = np.asarray(jr.normal(getkey(), (10, 10), jnp.float64)) * 0.3 + np.triu(
        np.ones((10, 10)), 1
    )
    tg = theory.transient_growth(jnp.asarray(W), max_power=30)
    ref = [np.linalg.norm(np.linalg.matrix_power(W, k), 2) for k in range(1, 31)]
    # Mixed signs: each step's products can cancel; the bound follows their sizes.
    assert_within(tg.log_norms, np.log(ref), log_product_atol(np.eye(10), np.stack([W.T] * 30))[1:])
    # LAPACK's geev on the same W both ways; log rho = 0.88 is not near 0 (seen equal).
    np.testing.assert_allclose(
        tg.log_spectral_radius, np.log(np.abs(np.linalg.eigvals(W)).max()), rtol=1e-10
    )
    # ||(10 I)^400|| = 1e400 overflows even float64; the log form is exact in float32.
    big = theory.transient_growth(10 * jnp.eye(3, dtype=jnp.float32), max_power=400)
    assert big.log_norms.dtype == jnp.float32
    # A float32 running sum of k terms log 10: it rounds by <= u per partial sum, so by
    # <= eps32 sum_j<=k |l_j| (relative to the terms summed, 0.022 at k = 400; seen 0.004).
    ref = np.arange(1, 401) * np.log(10)
    assert_within(big.log_norms, ref, EPS32 * np.cumsum(np.abs(ref)))
    nil = theory.transient_growth(jnp.array([[0.0, 1.0], [0.0, 0.0]]), max_power=3)
    np.testing.assert_array_equal(nil.log_norms, [0.0, -np.inf, -np.inf])


# -- jit, vmap, dtypes, errors -----------------------------------------------------


@pytest.mark.parametrize("nonlinearity", ["tanh", "sigmoid", "relu", jnp.sin])
def test_mean_field_jit_and_vmap_match_loop(nonlinearity):
    grid = jnp.array([0.3, 0.9, 1.0, 1.4, 2.5])
    batched = jax.vmap(lambda s: theory.mean_field(nonlinearity, s, sigma_b=0.2))(grid)
    jitted = jax.jit(lambda s: theory.mean_field(nonlinearity, s, sigma_b=0.2))
    for i, s in enumerate(grid):
        eager = theory.mean_field(nonlinearity, float(s), sigma_b=0.2)
        # vmap/jit reorder the quadrature sums (chi: <= 1000 eps relative); lambda, xi and
        # the timescale are compared on the log scale (lambda ~ 0 near criticality).
        assert_mean_field_close(jax.tree.map(lambda x, i=i: x[i], batched), eager, 1e-12)
        assert_mean_field_close(jitted(s), eager, 1e-12)
    assert list(batched.regime) == [
        theory.mean_field(nonlinearity, float(s), sigma_b=0.2).regime for s in grid
    ]
    sb_grid = jnp.array([0.0, 0.5, 1.0])
    line = jax.vmap(lambda b: theory.critical_gain(nonlinearity, sigma_b=b))(sb_grid)
    loop = [theory.critical_gain(nonlinearity, sigma_b=float(b)) for b in sb_grid]
    # Bisected to an ulp on chi = 1; chi's rounding (<= 1000 eps) moves the root by about
    # half that relative (dlog chi / dlog g ~ 2).
    np.testing.assert_allclose(line, loop, rtol=1e-12)


def test_other_functions_jit_and_vmap_match_loop(getkey):
    Ws = jr.normal(getkey(), (3, 5, 5), jnp.float64)
    lags = jnp.arange(4)
    bounds = jax.vmap(lambda W: theory.gradient_bound(W, "tanh", lags))(Ws)
    growth = jax.vmap(lambda W: theory.transient_growth(W, max_power=7))(Ws)
    # rtol 1e-12 below: the same programs batched (seen bitwise equal); every log here is
    # >= 0.47 (norms of N(0, 1) 5x5 matrices and their powers) or exactly 0 at lag 0.
    for i in range(3):
        assert tree_allclose(
            jax.tree.map(lambda x, i=i: x[i], bounds),
            theory.gradient_bound(Ws[i], "tanh", lags),
            rtol=1e-12,
        )
        assert tree_allclose(
            jax.tree.map(lambda x, i=i: x[i], growth),
            theory.transient_growth(Ws[i], max_power=7),
            rtol=1e-12,
        )
    z = jnp.array([0.1 + 0.2j, 1.0, 2.0j])
    np.testing.assert_array_equal(
        jax.jit(theory.circular_law_density)(z, 1.5),
        theory.circular_law_density(z, 1.5),
    )
    gains = jnp.array([0.5, 1.0])
    dens = jax.vmap(lambda g: theory.quarter_circle_density(jnp.array([0.5, 1.5]), g))(
        gains
    )
    np.testing.assert_allclose(
        dens[1], theory.quarter_circle_density(jnp.array([0.5, 1.5]), 1.0)
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_follows_input(dtype):
    one = jnp.asarray(1.5, dtype)
    W = jnp.asarray([[0.9, 10.0], [0.0, 0.9]], dtype)
    complex_dtype = jnp.complex64 if dtype == jnp.float32 else jnp.complex128
    results = [
        theory.mean_field("tanh", one),
        theory.mean_field("relu", one, sigma_b=jnp.asarray(0.1, dtype)),
        theory.mean_field(jnp.sin, one),
        theory.critical_gain("tanh", sigma_b=jnp.asarray(0.5, dtype)),
        theory.critical_gain("relu", sigma_x=jnp.asarray(0.0, dtype)),
        theory.gradient_bound(W, "sigmoid", jnp.arange(3)),
        theory.circular_law_density(jnp.asarray([0.5j], complex_dtype), 1.0),
        theory.quarter_circle_density(jnp.asarray([0.5], dtype), 1.0),
        theory.transient_growth(W, max_power=5),
    ]
    for leaf in jax.tree_util.tree_leaves(results):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            assert leaf.dtype == dtype
    f32 = theory.mean_field("tanh", jnp.float32(1.5))
    # float32: 1000 positive quadrature terms (no cancellation; XLA's vectorised partial
    # sums round by ~sqrt(1000) u32 ~ 2e-6) and q* bisected in float32: 83 eps32 (seen 1).
    np.testing.assert_allclose(f32.chi, theory.mean_field("tanh", 1.5).chi, rtol=1e-5)


def test_regime_vocabulary():
    assert theory.mean_field("tanh", 0.5).regime == "vanishing"
    assert theory.mean_field("tanh", 1.0).regime == "critical"
    assert theory.mean_field("tanh", 1.5).regime == "exploding"
    # |lambda_max| <= REGIME_TOL = 1e-3 is critical: tanh has lambda_max = 9.4e-4 at
    # sigma_w = 1.04 and 1.4e-3 at 1.05.
    assert theory.mean_field("tanh", 1.04).regime == "critical"
    assert theory.mean_field("tanh", 1.05).regime == "exploding"
    assert theory.REGIMES == ("vanishing", "critical", "exploding")


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="nonlinearity.*'softsign'"):
        theory.mean_field("softsign", 1.0)
    with pytest.raises(TypeError, match="nonlinearity"):
        theory.mean_field(3, 1.0)
    with pytest.raises(ValueError, match="nonlinearity.*elementwise"):
        theory.mean_field(jnp.sum, 1.0)
    with pytest.raises(ValueError, match="sigma_w.*>= 0.*-1"):
        theory.mean_field("tanh", -1.0)
    with pytest.raises(ValueError, match="sigma_b.*finite"):
        theory.mean_field("tanh", 1.0, sigma_b=float("nan"))
    with pytest.raises(ValueError, match="sigma_w.*scalar.*vmap.*\\(3,\\)"):
        theory.mean_field("tanh", jnp.ones(3))
    with pytest.raises(TypeError, match="sigma_x"):
        theory.mean_field("tanh", 1.0, sigma_x=True)
    with pytest.raises(TypeError, match="positional"):
        theory.mean_field("tanh", 1.0, 0.5)  # options are keyword-only
    with pytest.raises(ValueError, match="sigma_b"):
        theory.critical_gain("tanh", sigma_b=-0.1)
    with pytest.raises(ValueError, match="nonlinearity"):
        theory.critical_gain("elu")
    W = jnp.eye(3)
    with pytest.raises(ValueError, match="W_hh.*square.*\\(3, 4\\)"):
        theory.gradient_bound(jnp.ones((3, 4)), "tanh", 1)
    with pytest.raises(ValueError, match="params.*W_hh"):
        theory.gradient_bound({"W": W}, "tanh", 1)
    with pytest.raises(TypeError, match="W_hh.*floating"):
        theory.gradient_bound(jnp.eye(3, dtype=jnp.int32), "tanh", 1)
    with pytest.raises(ValueError, match="k.*>= 0"):
        theory.gradient_bound(W, "tanh", jnp.array([1, -2]))
    with pytest.raises(TypeError, match="`k`"):
        theory.gradient_bound(W, "tanh", "3")
    with pytest.raises(ValueError, match="gamma.*> 0"):
        theory.gradient_bound(W, "tanh", 1, gamma=0.0)
    with pytest.raises(ValueError, match="gain.*> 0"):
        theory.circular_law_density(jnp.zeros(2), 0.0)
    with pytest.raises(TypeError, match="`s`.*real"):
        theory.quarter_circle_density(jnp.zeros(2, jnp.complex128), 1.0)
    with pytest.raises(ValueError, match="W.*square"):
        theory.transient_growth(jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="W.*finite"):
        theory.transient_growth(jnp.array([[jnp.nan]]))
    with pytest.raises(ValueError, match="max_power"):
        theory.transient_growth(W, max_power=0)
