"""predict / diagnose and the `gradspec diagnose` command."""

import json
import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import cells, cli
from gradspec.verdicts import Diagnosis, Prediction, classify


def _rnn(nonlinearity, init, n, key, dtype=jnp.float64):
    cell = cells.RNN(nonlinearity)
    return cell, cell.init(key, n, 1, recurrent_init=init, dtype=dtype)


def test_classify_thresholds():
    assert classify(-0.01, 1e-3) == "vanishing"
    assert classify(0.0005, 1e-3) == "critical"
    assert classify(0.01, 1e-3) == "exploding"
    assert classify(math.inf, 1e-3) == "exploding"
    assert classify(-math.inf, 1e-3) == "vanishing"


def _reports_its_network(p):
    """The contract: the reported exponent is the network's own within its uncertainty
    (the fixed point is exact at this N; its samples carry a finite-time transient)."""
    if p.source == "fixed-point":
        return abs(p.lyapunov - p.measured_lyapunov) < 3e-3
    return abs(p.lyapunov - p.measured_lyapunov) <= 2 * p.uncertainty


def test_chaotic_gaussian_tanh_reports_the_network_and_keeps_mean_field(getkey):
    cell, params = _rnn("tanh", gradspec.init.gaussian(1.5), 256, getkey())
    p = gradspec.predict(cell, params, T=500, key=getkey())
    assert p.regime == "exploding" and _reports_its_network(p)
    mf = gradspec.theory.mean_field("tanh", 1.5)
    # Mean field at the empirical sigma_w (within sampling of W) stays in the record.
    assert p.mean_field["lambda_max"] == pytest.approx(float(mf.lambda_max), abs=0.02)
    if p.source == "lyapunov":  # N = 256 missed mean field: the reason says why
        assert any("finite N = 256" in r for r in p.reasons)
    # Against an independent measurement through the public Lyapunov function: one
    # autonomous run from a random state, first 200 steps discarded (finite-time spread
    # of one 800-step run ~0.01).
    h0 = 0.5 * jr.normal(getkey(), (256,), jnp.float64)
    lam = gradspec.lyapunov_spectrum(cell, params, jnp.zeros((1000, 1)), h0, k=1, warmup=200)
    assert abs(p.lyapunov - float(lam[0])) < 0.02
    assert p.timescale == pytest.approx(1 / abs(p.lyapunov))
    assert p.log_gradient_ratio == pytest.approx(500 * p.lyapunov)
    assert 0 < p.uncertainty < 0.01
    assert p.threshold == pytest.approx(math.log(10) / 500 + 2 * p.uncertainty)


@pytest.mark.parametrize(
    "nonlinearity, gain, n, seed",
    [("relu", math.sqrt(2), 64, 0), ("relu", math.sqrt(2), 64, 1),
     ("tanh", 1.5, 64, 1), ("tanh", 1.2, 128, 3)])
def test_the_network_decides_where_mean_field_misses(nonlinearity, gain, n, seed):
    # relu at its mean-field critical gain sqrt(2), N = 64: mean field -0.004 and
    # +0.015, the networks themselves -0.051 and -0.010 (measured here); tanh 1.5 at
    # N = 64 seed 1 settles on a non-chaotic orbit (-0.000) where mean field says +0.069.
    cell, params = _rnn(nonlinearity, gradspec.init.gaussian(gain), n, jr.key(seed))
    p = gradspec.predict(cell, params, T=500)
    assert _reports_its_network(p)
    if p.source == "lyapunov" and p.mean_field is not None:
        word = "quenched" if nonlinearity == "relu" else f"finite N = {n}"
        assert any(word in r and "follows the network" in r for r in p.reasons)
    # Independently: Benettin in float64 numpy from a random state, 2000 steps.
    W = np.asarray(params["W_hh"], np.float64)
    f, df = {"relu": (lambda a: np.maximum(a, 0), lambda a: (a > 0) * 1.0),
             "tanh": (np.tanh, lambda a: 1 - np.tanh(a) ** 2)}[nonlinearity]
    rng = np.random.default_rng(seed)
    h, q, logs = 0.5 * rng.standard_normal(n), rng.standard_normal(n), []
    for t in range(2000):
        a = W @ h
        h, q = f(a), df(a) * (W @ q)
        norm = np.linalg.norm(q)
        q /= norm
        if t >= 500:
            logs.append(np.log(norm))
    # One 1500-step run vs 8 x 384 sampled steps: both finite-time estimates (spread
    # of single runs measured here <= 0.02).
    assert abs(p.lyapunov - np.mean(logs)) < 0.03


@pytest.mark.parametrize("nonlinearity", ["tanh", "linear"])
def test_ordered_phase_is_exact_at_the_fixed_point(nonlinearity, getkey):
    cell, params = _rnn(nonlinearity, gradspec.init.gaussian(0.5), 256, getkey())
    p = gradspec.predict(cell, params, T=500, key=getkey())
    assert p.source == "fixed-point" and p.regime == "vanishing"
    # log rho(W_hh) (f'(0) = 1), by numpy's eigenvalues: the finite-N truth.
    rho = np.abs(np.linalg.eigvals(np.asarray(params["W_hh"]))).max()
    assert p.lyapunov == pytest.approx(math.log(rho), abs=1e-12)
    # The samples settle at h = 0 and measure the same rate, to their finite-time
    # transient (measured <= 5e-4 over 6 networks at N = 256); the mean field's
    # log sigma_w misses it by the circular law's edge fluctuation (~1e-2 here).
    assert abs(p.lyapunov - p.measured_lyapunov) < 3e-3
    assert p.mean_field["lambda_max"] == pytest.approx(math.log(0.5), abs=0.03)
    h0 = 0.5 * jr.normal(getkey(), (256,), jnp.float64)
    lam = gradspec.lyapunov_spectrum(cell, params, jnp.zeros((1000, 1)), h0, k=1, warmup=200)
    assert abs(p.lyapunov - float(lam[0])) < 3e-3


def test_unstable_origin_at_finite_n_is_not_the_fixed_point():
    # sigma_w = 0.95 is ordered for N -> infinity, but this N = 64 draw has
    # rho(W_hh) > 1: h = 0 is unstable, so the fixed-point rate would be wrong.
    cell, params = _rnn("tanh", gradspec.init.gaussian(0.95), 64, jr.key(4))
    assert np.abs(np.linalg.eigvals(np.asarray(params["W_hh"]))).max() > 1
    p = gradspec.predict(cell, params, T=500)
    assert p.source in ("mean-field", "lyapunov") and _reports_its_network(p)


def test_orthogonal_linear_is_lyapunov_sourced_and_exact(getkey):
    cell, params = _rnn("linear", gradspec.init.orthogonal(0.95), 64, getkey())
    p = gradspec.predict(cell, params, T=100)
    assert p.source == "lyapunov" and p.regime == "vanishing"
    assert p.lyapunov == pytest.approx(math.log(0.95), abs=1e-10)


def test_identity_relu_is_critical():
    cell, params = _rnn("relu", gradspec.init.identity(1.0), 16, jr.key(0))
    params = dict(params, b=jnp.full(16, 0.1, jnp.float64))  # stays in the linear region
    p = gradspec.predict(cell, params, T=1000)
    assert p.regime == "critical" and abs(p.lyapunov) < 1e-9


def test_non_normal_is_vanishing_with_transient_growth():
    cell = cells.RNN("linear")
    params = {
        "W_hh": jnp.array([[0.9, 10.0], [0.0, 0.9]]),
        "W_xh": jnp.zeros((2, 1)),
        "b": jnp.zeros(2),
    }
    p = gradspec.predict(cell, params, T=1000)
    assert p.regime == "vanishing"
    # Asymptotic rate log 0.9 (Jordan block: the 1/T polynomial correction is the slack).
    assert p.lyapunov == pytest.approx(math.log(0.9), abs=0.02)
    assert any("transient growth" in r for r in p.reasons)
    assert any("Pascanu bound allows growth" in r for r in p.reasons)


@pytest.mark.slow
@pytest.mark.parametrize("cell", [cells.LSTM(), cells.GRU()])
def test_gated_cells_predict_from_samples(cell, getkey):
    params = cell.init(getkey(), 32, 2, dtype=jnp.float64)
    xs = jr.normal(getkey(), (4, 300, 2), jnp.float64)
    p = gradspec.predict(cell, params, T=300, inputs=xs)
    assert p.source == "lyapunov" and p.samples_finite == 8
    # Check against one direct measurement on one of the same input sequences.
    lam = gradspec.lyapunov_spectrum(cell, params, xs[0], k=1, warmup=75)[0]
    assert p.lyapunov == pytest.approx(float(lam), abs=0.05)
    if isinstance(cell, cells.LSTM):
        n = 32
        b = np.asarray(params["bias_ih"] + params["bias_hh"])[n : 2 * n]
        expected = np.log(1 / (1 + np.exp(-b))).mean()
        assert any(f"log f = {expected:+.3f}" in r for r in p.reasons)


def test_exploding_relu_overflow_is_reported_not_nan(getkey):
    cell, params = _rnn("relu", gradspec.init.orthogonal(3.0), 16, getkey(), jnp.float32)
    p = gradspec.predict(cell, params, T=1000)
    assert p.regime == "exploding"
    # Half the ReLUs are off on average, so the rate sits below Pascanu's log(3 * 1).
    assert 0.3 < p.lyapunov <= math.log(3.0)
    assert p.samples_finite < 8 and any("overflowed" in r for r in p.reasons)


def test_prediction_and_diagnosis_json_round_trip(getkey):
    cell, params = _rnn("tanh", gradspec.init.gaussian(1.2), 64, getkey())
    p = gradspec.predict(cell, params, T=200)
    back = Prediction.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back.regime == p.regime and back.lyapunov == p.lyapunov
    assert tuple(back.reasons) == p.reasons and back.mean_field["chi"] == p.mean_field["chi"]
    assert back == p
    d = gradspec.diagnose(cell, params, jr.normal(getkey(), (200, 1), jnp.float64))
    assert Diagnosis.from_dict(json.loads(json.dumps(d.to_dict()))) == d


def test_diagnose_hand_checkable():
    cell = cells.RNN("linear")
    params = {"W_hh": jnp.diag(jnp.array([1.1, 0.5])), "W_xh": jnp.zeros((2, 1)), "b": jnp.zeros(2)}
    d = gradspec.diagnose(cell, params, jnp.zeros((100, 1)))  # from the relaxed start
    assert d.regime == "exploding"
    # From the fixed-key random start frame the log 0.5 direction's share decays like
    # (0.5/1.1)^t: after the 10-step warm-up it moves the mean log growth by < 1e-6.
    assert d.lyapunov == pytest.approx(math.log(1.1), abs=1e-6)
    # Default readout (1,1)/sqrt 2: ||r J^k|| = sqrt(1.21^k + 0.25^k) / sqrt 2.
    k = 100
    assert d.log_gradient_ratio == pytest.approx(0.5 * math.log((1.21**k + 0.25**k) / 2), rel=1e-12)
    assert d.spectral_radius == pytest.approx(1.1) and d.spectral_norm == pytest.approx(1.1)


def test_predict_errors(getkey):
    cell, params = _rnn("tanh", gradspec.init.gaussian(1.0), 8, getkey())
    with pytest.raises(ValueError, match="`T` must be >= 1; got 0"):
        gradspec.predict(cell, params, T=0)
    with pytest.raises(ValueError, match="inputs"):
        gradspec.predict(cell, params, T=10, inputs=jnp.zeros(5))
    with pytest.raises(ValueError, match="W_hh.*square"):
        gradspec.predict(cell, dict(params, W_hh=jnp.zeros((8, 7))), T=10)


def test_cli_diagnose_prints_verdict_and_reason(capsys):
    assert cli.main(["diagnose", "--hidden", "64", "--gain", "0.5", "--T", "200"]) == 0
    out = capsys.readouterr().out
    assert "predicted regime" in out and "vanishing" in out
    assert "Pascanu" in out and "mean-field" in out


@pytest.mark.slow
def test_cli_diagnose_json_and_torch_state_dict(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 16)
    path = tmp_path / "lstm.pt"
    torch.save(lstm.state_dict(), path)
    assert cli.main(["diagnose", "--torch", str(path), "--T", "100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prediction"]["source"] == "lyapunov"
    assert out["prediction"]["regime"] in ("vanishing", "critical", "exploding")
    assert out["measurement"]["T"] == 100


def test_driven_network_follows_mean_field_along_its_inputs(getkey):
    # One input: the drive's variance across units is chi^2_1 over time. The prediction
    # averages (1/2) log chi_t along the sampled inputs; the constant-drive value stays in
    # p.mean_field. Over 5 networks at N = 512 (8 x 1024 steps) the first was 0.001 to
    # 0.014 from the sampled exponent (finite-N, per network), the second 0.025 to 0.040.
    cell, params = _rnn("tanh", gradspec.init.gaussian(1.5), 512, getkey())
    xs = jr.normal(getkey(), (8, 1024, 1), jnp.float64)
    p = gradspec.predict(cell, params, T=500, inputs=xs)
    assert _reports_its_network(p)
    along, constant = p.mean_field["lambda_max_along_inputs"], p.mean_field["lambda_max"]
    assert abs(along - p.measured_lyapunov) < 0.02
    assert abs(constant - p.measured_lyapunov) > 0.02
    assert p.lyapunov == (along if p.source == "mean-field" else p.measured_lyapunov)
    assert any("along the sampled inputs" in r for r in p.reasons)


def test_diagnose_warns_on_an_unstable_fixed_point():
    # tanh, gain 1.5, no input, h0 = 0: h stays at the origin, where J = W_hh and the
    # rate is log rho(W) ~ +0.4, not the chaotic exponent (~+0.06) of every other start.
    cell, params = _rnn("tanh", gradspec.init.gaussian(1.5), 64, jr.key(0))
    with pytest.warns(UserWarning, match="unstable fixed point"):
        d = gradspec.diagnose(cell, params, jnp.zeros((300, 1)), jnp.zeros(64))
    rho = np.abs(np.linalg.eigvals(np.asarray(params["W_hh"]))).max()
    assert d.lyapunov == pytest.approx(math.log(rho), abs=0.02)
    assert any("unstable fixed point" in r for r in d.why)
    # The default start (relaxed from a random state) is on the attractor, not at 0.
    default = gradspec.diagnose(cell, params, jnp.zeros((300, 1)))
    assert not default.why and default.lyapunov < math.log(rho) - 0.2


def test_an_exactly_vanished_gradient_is_said_in_words():
    """relu units all held off by a bias of -100: every step's Jacobian is exactly 0,
    so ||dL/dh_0|| = 0 and log_gradient_ratio = -inf, which why/reasons must say."""
    cell = cells.RNN("relu")
    params = {"W_hh": 0.1 * jnp.eye(4), "W_xh": jnp.ones((4, 1)), "b": -100.0 * jnp.ones(4)}
    xs = jnp.ones((20, 1))
    d = gradspec.diagnose(cell, params, xs)
    assert d.log_gradient_ratio == -math.inf
    assert any("log_gradient_ratio = -inf" in w for w in d.why)
    p = gradspec.predict(cell, params, T=20, inputs=xs)
    assert p.log_gradient_ratio == -math.inf
    assert any("log_gradient_ratio = -inf" in r for r in p.reasons)


def test_collapsed_trajectories_do_not_decide_the_rate_of_the_others():
    """An IRNN (W_hh = I, relu) from h0 = 0: a sequence of zeros keeps every unit at
    a = 0, where relu' = 0, so its Jacobians are exactly 0 (exponent -inf); a sequence
    of ones keeps every unit on, J = I, exponent exactly 0. A batch's gradient is
    carried by the second kind, so the verdict is critical (0), not -inf, and the
    collapse is said in words. (Found by `verify --study`: relu IRNNs on delayed XOR
    and digits were called vanishing at -inf while their training gradient was critical.)"""
    n, T = 8, 40
    cell = cells.RNN("relu")
    params = {"W_hh": jnp.eye(n), "W_xh": jnp.ones((n, 1)), "b": jnp.zeros(n)}
    xs = jnp.concatenate([jnp.zeros((3, T, 1)), jnp.ones((5, T, 1))])
    p = gradspec.predict(cell, params, T=T, inputs=xs, samples=8, h0=jnp.zeros(n))
    # J = I exactly; the QR of a random frame returns |R_ii| = 1 to rounding (~1e-16/step).
    assert abs(p.measured_lyapunov) < 1e-12 and p.uncertainty < 1e-12
    assert p.regime == "critical" and abs(p.log_gradient_ratio) < 1e-10
    assert any("3 of 8 sampled trajectories collapsed exactly" in r for r in p.reasons)
    # Every sequence collapsed: then, and only then, the gradient is exactly zero.
    gone = gradspec.predict(cell, params, T=T, inputs=xs[:3], samples=3, h0=jnp.zeros(n))
    assert gone.measured_lyapunov == -math.inf and gone.regime == "vanishing"
    assert any("log_gradient_ratio = -inf" in r for r in gone.reasons)


@pytest.mark.slow
def test_predict_reports_the_gated_theory_beside_the_network():
    """An LSTM drawn from the gated model (sigma = 1, mu_f = 1, rho_g = 0.5): predict
    reads the per-gate statistics back off the weights (sampling error O(N^-1/2) and
    O(N^-1)), reports the quenched and annealed theory of exactly those, and keeps the
    network's own exponent as the verdict."""
    from gradspec.verdicts._prediction import gate_statistics

    cell, n = cells.LSTM(), 256
    params = cell.init(jr.key(0), n, 2, gates={"f": {"mu": 1.0}, "g": {"rho": 0.5}},
                       dtype=jnp.float64)
    stats = gate_statistics(cell, params)
    assert stats["mu"]["f"] == pytest.approx(1.0, abs=1e-12)  # rho_f = 0: exactly mu
    assert stats["rho"]["g"] == pytest.approx(0.5, abs=4 / math.sqrt(n) * 0.5)
    for g in "ifgo":
        assert stats["sigma"][g] == pytest.approx(1.0, abs=4 / n)  # chi^2 with N^2 dof
    p = gradspec.predict(cell, params, T=100)
    want = gradspec.theory.gated_mean_field("lstm", **stats, hidden=n)
    assert p.mean_field["lambda_max_quenched"] == pytest.approx(float(want.lambda_max))
    assert p.source == "lyapunov" and p.lyapunov == p.measured_lyapunov
    assert any(r.startswith("gated mean field (LSTM") for r in p.reasons)
