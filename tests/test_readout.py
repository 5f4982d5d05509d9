"""The rate the loss sees: readouts on the visible output, matrices, batches."""

import json
import re

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec
from gradspec import cells, cli


def _explicit_log_norms(J, rows):
    """log ||R J_T ... J_{T-k+1}||_F for k = 0..T by explicit float64 products."""
    g = np.asarray(rows, np.float64)
    out = [np.log(np.linalg.norm(g))]
    for Jt in np.asarray(J, np.float64)[::-1]:
        g = g @ Jt
        out.append(np.log(np.linalg.norm(g)))
    return np.array(out)


def test_matrix_readout_on_the_visible_output_is_the_frobenius_profile(getkey):
    cell = cells.LSTM()
    params = cell.init(getkey(), 8, 3, dtype=jnp.float64)
    xs = jr.normal(getkey(), (40, 3), jnp.float64)
    R = jr.normal(getkey(), (5, 8), jnp.float64)  # (M, N_out): h only, not c
    ref = _explicit_log_norms(gradspec.step_jacobians(cell, params, xs),
                              np.concatenate([R, np.zeros((5, 8))], axis=1))
    got = gradspec.gradient_profile(cell, params, xs, readout=R)
    # 40 renormalised steps of O(S) terms each: float64 rounding ~1e-14 per step.
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-11)
    one = gradspec.gradient_profile(cell, params, xs, readout=R[0])  # (N_out,) vector
    np.testing.assert_allclose(one, _explicit_log_norms(
        gradspec.step_jacobians(cell, params, xs), np.concatenate([R[0], np.zeros(8)])),
        rtol=0, atol=1e-11)
    with pytest.raises(ValueError, match="`readout` must have shape"):
        gradspec.gradient_profile(cell, params, xs, readout=jnp.ones(7))


def _lstm_with_silent_memory(key, n=16, silent=4):
    """An LSTM whose first `silent` units keep their memory (forget gate ~1) but never
    show it (output gate ~0) and get no input (input gate ~0): the top exponent is
    theirs, ~log f ~ 0, while the loss, read from h, never sees them."""
    cell = cells.LSTM()
    params = cell.init(key, n, 2, dtype=jnp.float64)
    b = np.zeros(4 * n)
    i, f, g, o = (slice(k * n, k * n + silent) for k in range(4))
    b[i], b[f], b[o] = -30.0, 30.0, -30.0
    W = np.asarray(params["weight_hh"]).copy()
    for block in range(4):  # the silent units neither read nor are read
        W[block * n: block * n + silent, :] *= 0
    params = dict(params, bias_ih=jnp.asarray(b), bias_hh=jnp.zeros(4 * n),
                  weight_hh=jnp.asarray(W))
    return cell, params


def test_loss_rate_follows_the_readout_not_the_worst_direction(getkey):
    cell, params = _lstm_with_silent_memory(getkey())
    xs = jr.normal(getkey(), (3, 120, 2), jnp.float64)
    R = jr.normal(getkey(), (2, 16), jnp.float64)
    d = gradspec.diagnose(cell, params, xs, readout=R)
    assert d.batch == 3 and d.loss_rate is not None
    # The worst direction: the silent memory, decaying by sigmoid(30) ~ 1 - 1e-13.
    assert abs(d.lyapunov) < 1e-6
    # The loss's rate by explicit products per sequence (least squares over all lags).
    rates = []
    for x in xs:
        logs = _explicit_log_norms(gradspec.step_jacobians(cell, params, x),
                                   np.concatenate([R, np.zeros((2, 16))], axis=1))
        rates.append(np.polyfit(np.arange(len(logs)), logs, 1)[0])
    assert d.loss_rate == pytest.approx(np.mean(rates), abs=1e-10)
    assert d.loss_rate < -0.1 and d.regime == "vanishing"
    assert d.loss_rate_se == pytest.approx(np.std(rates, ddof=1) / np.sqrt(3), abs=1e-10)
    # Without a readout the verdict is the top exponent's: critical over T = 120.
    assert gradspec.diagnose(cell, params, xs).regime == "critical"


def test_invisible_units_are_the_silent_memory(getkey):
    cell, params = _lstm_with_silent_memory(getkey())
    xs = jr.normal(getkey(), (2, 100, 2), jnp.float64)
    d = gradspec.diagnose(cell, params, xs, readout=jr.normal(getkey(), (2, 16), jnp.float64))
    # lambda_1 (~0) lives on the memory cells c[0..3] of the silent units (state entries
    # 16..19), which the readout never reaches.
    assert d.invisible_units is not None and set(d.invisible_units) <= {16, 17, 18, 19}
    assert len(d.invisible_units) >= 1
    text = " ".join(d.why)
    assert "c[0]" in text or "c[1]" in text or "c[2]" in text or "c[3]" in text
    assert "forget gate 1 [1, 1]" in text  # sigmoid(+30)
    assert re.search(r"output gate 9\.\d+e-14", text)  # sigmoid(-30 + small input drive)


@pytest.mark.slow
def test_gate_statistics_of_a_silent_layer_inside_a_stack(getkey):
    """Silent memory in the top layer of a 2-layer LSTM Stack: the why names its units
    (layer1.c[...]) and their gates along the run, layer 1 fed layer 0's outputs; the
    input gate's mean is checked against a plain numpy run of the two layers."""
    top, p1 = _lstm_with_silent_memory(getkey())
    cell = cells.Stack((cells.LSTM(), cells.LSTM()))
    p0 = cells.LSTM().init(getkey(), 16, 2, dtype=jnp.float64)
    p1 = dict(p1, weight_ih=cells.LSTM().init(getkey(), 16, 16, dtype=jnp.float64)["weight_ih"])
    params = {"layer0": p0, "layer1": p1}
    xs = jr.normal(getkey(), (2, 80, 2), jnp.float64)
    d = gradspec.diagnose(cell, params, xs, readout=jr.normal(getkey(), (3, 16), jnp.float64))
    # state (h1, c1, h0, c0): layer 1's silent memory cells are entries 16..19
    assert d.invisible_units and set(d.invisible_units) <= {16, 17, 18, 19}
    units = sorted(i - 16 for i in d.invisible_units)
    text = " ".join(d.why)
    assert f"layer1.gates of units {units}" in text and "forget gate 1 [1, 1]" in text

    def sig(z):
        return 1 / (1 + np.exp(-z))

    def run(p, xs, h0):  # numpy LSTM, PyTorch gate order; returns outputs and input gates
        n = p["weight_hh"].shape[1]
        h, c = np.asarray(h0[:n]), np.asarray(h0[n:])
        W, U = np.asarray(p["weight_ih"]), np.asarray(p["weight_hh"])
        b = np.asarray(p["bias_ih"]) + np.asarray(p["bias_hh"])
        hs, gates = [], []
        for x in xs:
            i, f, g, o = np.split(W @ x + U @ h + b, 4)
            gates.append(sig(i))
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
            hs.append(h)
        return np.array(hs), np.array(gates)

    h0 = gradspec.start_state(cell, params, 2)
    means = []
    for x in np.asarray(xs):
        out0, _ = run(p0, x, h0[32:])
        _, gates1 = run(p1, out0, h0[:32])
        means.append(gates1[:, units].mean())
    assert f"input gate {np.mean(means):.3g}" in text


@pytest.mark.slow
def test_cli_takes_a_whole_torch_stack_with_your_inputs_and_readout(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    torch.save(torch.nn.LSTM(3, 8, num_layers=2).state_dict(), tmp_path / "lstm.pt")
    xs = np.random.default_rng(0).standard_normal((2, 40, 3))
    np.save(tmp_path / "x.npy", xs)
    np.save(tmp_path / "W.npy", np.random.default_rng(1).standard_normal((4, 8)))
    args = ["diagnose", "--torch", str(tmp_path / "lstm.pt"), "--inputs", str(tmp_path / "x.npy"),
            "--readout", str(tmp_path / "W.npy"), "--dtype", "float64", "--json"]
    assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)["measurement"]
    assert out["T"] == 40 and out["batch"] == 2 and out["loss_rate"] is not None
    # The same numbers through the API.
    cell, params = gradspec.interop.from_torch(torch.load(tmp_path / "lstm.pt"), dtype="float64")
    d = gradspec.diagnose(cell, params, xs, readout=np.load(tmp_path / "W.npy"))
    assert out["loss_rate"] == pytest.approx(d.loss_rate, abs=1e-12)
    np.save(tmp_path / "bad.npy", np.ones((4, 7)))
    args[6] = str(tmp_path / "bad.npy")
    assert cli.main(args) == 2
    assert "`readout` must have shape" in capsys.readouterr().err


def test_cli_runs_token_ids_through_a_whole_models_embedding(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"embed": torch.nn.Embedding(20, 3),
                                 "rnn": torch.nn.LSTM(3, 8, num_layers=2),
                                 "head": torch.nn.Linear(8, 5)})
    torch.save(model, tmp_path / "model.pt")
    ids = np.random.default_rng(0).integers(0, 20, (2, 30))
    np.save(tmp_path / "ids.npy", ids)
    args = ["diagnose", "--torch", str(tmp_path / "model.pt"), "--inputs",
            str(tmp_path / "ids.npy"), "--dtype", "float64", "--json"]
    assert cli.main(args) == 2  # a pickled model runs code: only when asked
    assert "--allow-pickle" in capsys.readouterr().err
    assert cli.main(args + ["--allow-pickle"]) == 0
    out = json.loads(capsys.readouterr().out)["measurement"]
    # The same numbers by hand: the embedding's rows, the stack, the head's weight.
    cell, params = gradspec.interop.from_torch(model["rnn"], dtype="float64")
    xs = model["embed"].weight.detach().numpy().astype(np.float64)[ids]
    d = gradspec.diagnose(cell, params, xs, readout=model["head"].weight.detach().numpy())
    assert out["T"] == 30 and out["batch"] == 2
    assert out["loss_rate"] == pytest.approx(d.loss_rate, abs=1e-12)
    # Token ids without an embedding: an error that says what to pass.
    torch.save(model["rnn"].state_dict(), tmp_path / "rnn.pt")
    args[2] = str(tmp_path / "rnn.pt")
    assert cli.main(args) == 2
    assert "token ids, which need the model's own embedding" in capsys.readouterr().err


def test_predict_with_a_readout_follows_the_loss(getkey):
    cell, params = _lstm_with_silent_memory(getkey())
    xs = jr.normal(getkey(), (8, 200, 2), jnp.float64)
    R = jr.normal(getkey(), (2, 16), jnp.float64)
    p = gradspec.predict(cell, params, T=200, inputs=xs, readout=R)
    assert abs(p.lyapunov) < 1e-6 and p.loss_rate < -0.1 and p.regime == "vanishing"
    # The same fit (every lag) as diagnose's, from random states instead of zero: the
    # start states change the slope by the transient's share, O(1/T).
    d = gradspec.diagnose(cell, params, xs, readout=R)
    assert p.loss_rate == pytest.approx(d.loss_rate, abs=0.02)
    assert p.timescale == pytest.approx(1 / abs(p.loss_rate))
    assert any("the verdict follows the loss" in r for r in p.reasons)


def test_loss_profile_equals_torch_autograd_through_a_two_layer_lstm():
    """The loss's profile log ||R P J_T ... J_{T-k+1}||_F of a 2-layer torch LSTM whose
    layers forget at different rates (layer 0: forget bias +4, slow memory; layer 1:
    -1, fast), against torch.autograd through the whole model from h0 = 0: the
    Jacobian of y_T = R h1_T with respect to every earlier state (h, c of both layers),
    Frobenius norm per lag, in float64. Both sum the same products in other orders:
    1e-9 in log covers 30 lags of terms of order one."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    n, d, T = 6, 3, 30
    lstm = torch.nn.LSTM(d, n, num_layers=2).double()
    with torch.no_grad():
        lstm.bias_hh_l0[n:2 * n] += 4.0
        lstm.bias_hh_l1[n:2 * n] -= 1.0
    R = torch.randn(2, n, dtype=torch.float64)
    xs = torch.randn(T, d, dtype=torch.float64)
    # torch: the carried state s_t = (h0, c0, h1, c1) plus a zero perturbation e_t added
    # after the whole step (layer 1 has read layer 0's h already): dL/de_t is the
    # gradient with respect to the state carried into step t + 1, as gradspec defines it.
    eps = [[torch.zeros(n, dtype=torch.float64, requires_grad=True) for _ in range(4)]
           for _ in range(T + 1)]
    h0, c0, h1, c1 = eps[0]
    for t in range(T):
        z = lstm.weight_ih_l0 @ xs[t] + lstm.bias_ih_l0 + lstm.weight_hh_l0 @ h0 + lstm.bias_hh_l0
        i, f, g, o = z.split(n)
        c0 = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
        h0 = torch.sigmoid(o) * torch.tanh(c0)
        z = lstm.weight_ih_l1 @ h0 + lstm.bias_ih_l1 + lstm.weight_hh_l1 @ h1 + lstm.bias_hh_l1
        i, f, g, o = z.split(n)
        c1 = torch.sigmoid(f) * c1 + torch.sigmoid(i) * torch.tanh(g)
        h1 = torch.sigmoid(o) * torch.tanh(c1)
        h0, c0, h1, c1 = (s + e for s, e in zip((h0, c0, h1, c1), eps[t + 1]))
    y = R @ h1
    sq = np.zeros(T + 1)
    for m in range(2):
        grads = torch.autograd.grad(y[m], [e for step in eps for e in step], retain_graph=True,
                                    allow_unused=True)  # y_T reads only h1 of the last state
        for j in range(T + 1):  # the state after step j: lag k = T - j
            sq[T - j] += sum(float((g ** 2).sum()) for g in grads[4 * j: 4 * j + 4]
                             if g is not None)
    want = 0.5 * np.log(sq)
    cell, params = gradspec.interop.from_torch(lstm, dtype="float64")
    got = gradspec.gradient_profile(cell, params, xs.numpy(), jnp.zeros(4 * n, jnp.float64),
                                    readout=R.numpy())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    d = gradspec.diagnose(cell, params, xs.numpy(), jnp.zeros(4 * n, jnp.float64),
                          readout=R.numpy())
    assert d.loss_rate == pytest.approx(np.polyfit(np.arange(T + 1), want, 1)[0], abs=1e-9)
