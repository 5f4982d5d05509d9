"""Tests of gradspec.train (gradspec.training): observed vs measured gradient decay, outcomes, remedies,
vmap over seeds, truncated BPTT, JSON round trip and config errors.

Each distinct TrainConfig compiles its own step (a few seconds on a CPU), so runs that
several tests look at are shared module fixtures, and configs are reused where they can
be (seed, steps and the outcome threshold do not trigger a recompile).
"""

import dataclasses
import json
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradspec
import gradspec.tasks as tasks
from gradspec.training import (
    TrainConfig,
    TrainResult,
    apply,
    init_params,
    task_batch,
    train,
)

# Float64 runs compare two exact computations of the same derivative (autodiff of the
# training graph vs the reverse scan of gradient_profile): only rounding separates them.
ATOL_LOG64 = 1e-9
# vmapped vs separate runs: batched matmuls may sum in another order, then 30 optimizer
# steps amplify the rounding a little.
RTOL_VMAP64 = 1e-8


def _assert_results_close(a, b, *, rtol):
    """All arrays of two TrainResults: floats to ``rtol`` (NaN == NaN), others equal."""
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-300)
        else:
            np.testing.assert_array_equal(x, y)


def _profile_config(cell, nonlinearity, init, gain, **kw):
    return TrainConfig(
        cell=cell,
        nonlinearity=nonlinearity,
        hidden=8,
        init=init,
        gain=gain,
        task="adding",
        T=12,
        batch=4,
        steps=1,
        lags=range(13),
        dtype="float64",
        **kw,
    )


PROFILE_CASES = [
    ("rnn", "tanh", "gaussian", 1.3),
    ("rnn", "relu", "identity", 1.0),
    ("lstm", "tanh", "orthogonal", 1.0),
]  # GRU: see the seed tests below, which train one


def _measured_profiles(config):
    """gradspec.gradient_profile of each example at step 0, readout = d l_b / d h_L."""
    params, batch = init_params(config), task_batch(config, step=0)
    cell = config.make_cell()
    n_out = cell.output_size(cell.state_size(config.hidden))
    W, b = params["readout"]["W"], params["readout"]["b"]

    h0 = jnp.zeros(cell.state_size(config.hidden), W.dtype)  # training starts at h0 = 0

    def profile(xs, target):
        h_last = gradspec.trajectory(cell, params["cell"], xs, h0)[-1]

        def example_loss(h):
            return jnp.sum((W @ h[:n_out] + b - target) ** 2)

        readout = jax.grad(example_loss)(h_last)
        return gradspec.gradient_profile(cell, params["cell"], xs, h0, readout=readout)

    return jax.vmap(profile)(batch.inputs, batch.targets[:, -1])  # (B, L + 1), lag k


@pytest.mark.parametrize("case", PROFILE_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
def test_observed_decay_equals_gradient_profile(case):
    config = _profile_config(*case)
    result = train(config, progress=False)
    measured = _measured_profiles(config)
    # Recorded: mean_b log ||d l_b / d h_{L-k}|| at every lag k = 0..L at step 0.
    np.testing.assert_allclose(
        result.log_grad_lags[0], jnp.mean(measured, axis=0), rtol=0, atol=ATOL_LOG64
    )
    np.testing.assert_allclose(
        result.log_grad_h0[0], jnp.mean(measured[:, -1]), rtol=0, atol=ATOL_LOG64
    )
    # Hence the same decay rate (slope of the log norm in k).
    lags = np.arange(13)
    slope_observed = np.polyfit(lags, np.asarray(result.log_grad_lags[0]), 1)[0]
    slope_measured = np.polyfit(lags, np.asarray(jnp.mean(measured, axis=0)), 1)[0]
    assert slope_observed == pytest.approx(slope_measured, abs=1e-9)


def test_recorded_loss_is_apply_on_the_step_batch():
    config = _profile_config(*PROFILE_CASES[0])
    result = train(config, progress=False)
    params, batch = init_params(config), task_batch(config, step=0)
    outputs = jax.vmap(lambda xs: apply(config, params, xs))(batch.inputs)
    np.testing.assert_allclose(result.loss[0], tasks.loss(batch, outputs), rtol=1e-12)


def test_copy_task_trains_with_cross_entropy():
    config = TrainConfig(
        hidden=8,
        task="copy",
        T=4,
        task_options={"alphabet": 3, "length": 2},
        batch=8,
        steps=2,
        dtype="float64",
    )
    result = train(config, progress=False)
    assert result.log_grad_lags.shape == (2, len(config.lags)) and config.lags[-1] == 8
    assert result.baseline == pytest.approx(2 * np.log(3) / 8)
    params, batch = init_params(config), task_batch(config, step=0)
    logits = jax.vmap(lambda xs: apply(config, params, xs))(batch.inputs)
    np.testing.assert_allclose(result.loss[0], tasks.loss(batch, logits), rtol=1e-12)
    assert bool(jnp.all(result.finite)) and result.outcome == "stalled"


def test_tbptt_cuts_gradient_at_the_window():
    window = 5
    full = train(_profile_config(*PROFILE_CASES[0]), progress=False)
    cut = train(_profile_config(*PROFILE_CASES[0], tbptt=window), progress=False)
    logs = np.asarray(cut.log_grad_lags[0])  # lag k = 0..12
    # Exactly zero gradient (log = -inf) w.r.t. h_{L-k} for every k >= w ...
    assert np.all(logs[window:] == -np.inf)
    assert cut.log_grad_h0[0] == -np.inf
    # ... and inside the window the truncated graph is the full one.
    # Logs of norms of order 1 (which may sit near 0, where a relative bound means
    # nothing) after at most 5 renormalised steps: absolute, 1e-12 >> 5 steps x S eps.
    np.testing.assert_allclose(
        logs[:window], full.log_grad_lags[0, :window], rtol=0, atol=1e-12
    )
    assert np.all(np.isfinite(logs[:window]))
    assert not np.allclose(cut.grad_norm[0], full.grad_norm[0], rtol=1e-6)


def test_short_adding_problem_is_solved():
    config = TrainConfig(
        cell="rnn",
        hidden=32,
        init="orthogonal",
        task="adding",
        T=10,
        batch=64,
        steps=500,
        learning_rate=1e-2,
        dtype="float32",
    )
    result = train(config, progress=False)
    assert result.outcome == "solved", float(result.final_loss)
    assert float(result.final_loss) < 0.1 * result.baseline
    assert int(result.diverged_at) == -1 and bool(jnp.all(result.finite))


def _exploding(**kw):
    # tanh RNN, gain 3, plain SGD at lr 1: the readout's error grows geometrically and
    # overflows float32 within ~20 steps.
    return TrainConfig(
        cell="rnn",
        hidden=32,
        init="gaussian",
        gain=3.0,
        task="adding",
        T=20,
        batch=32,
        steps=60,
        optimizer="sgd",
        learning_rate=1.0,
        dtype="float32",
        **kw,
    )


@pytest.fixture(scope="module")
def diverged():
    return train(_exploding(), progress=False)


def test_exploding_run_diverges_without_crashing(diverged):
    r = diverged
    assert r.outcome == "diverged"
    d = int(r.diverged_at)
    assert 0 < d < 60
    assert np.all(np.asarray(r.finite[:d])) and not np.any(np.asarray(r.finite[d:]))
    assert np.all(np.isfinite(r.loss[:d])) and np.all(np.isnan(r.loss[d + 1 :]))
    # The params stopped at their last finite value.
    assert all(
        bool(jnp.all(jnp.isfinite(p))) for p in jax.tree_util.tree_leaves(r.params)
    )


def test_clipping_turns_the_divergence_into_a_finite_run(diverged):
    clipped = train(_exploding(clip_norm=1.0), progress=False)
    assert diverged.outcome == "diverged"
    assert clipped.outcome != "diverged" and int(clipped.diverged_at) == -1
    assert np.all(np.isfinite(clipped.loss)) and np.all(np.asarray(clipped.finite))


def test_float32_is_kept_under_x64(diverged):
    for name in ("loss", "grad_norm", "log_grad_h0", "log_grad_lags", "final_loss"):
        assert getattr(diverged, name).dtype == jnp.float32, name
    for leaf in jax.tree_util.tree_leaves(diverged.params):
        assert leaf.dtype == jnp.float32


def _small(**kw):
    defaults = dict(cell="gru", init="glorot", hidden=8, T=10, batch=16, steps=20)
    return TrainConfig(**{**defaults, "learning_rate": 1e-2, **kw})


def test_vmap_over_seeds_equals_separate_runs():
    seeds = [0, 1, 2]
    together = train(_small(dtype="float64"), seeds=seeds, progress=False)
    assert together.loss.shape == (3, 20) and together.log_grad_lags.shape == (3, 20, 5)
    assert together.seeds == tuple(seeds) and len(together.outcome) == 3
    for i, seed in enumerate(seeds):
        alone = train(_small(dtype="float64", seed=seed), progress=False)
        one = jax.tree_util.tree_map(lambda x: np.asarray(x)[i], together)
        _assert_results_close(one, alone, rtol=RTOL_VMAP64)
        assert together.outcome[i] == alone.outcome
    assert not np.allclose(together.loss[0], together.loss[1])  # seeds differ


def test_chunks_and_progress_bar_do_not_change_the_run(monkeypatch):
    updates = []

    class FakeBar:
        def __init__(self, total, **kw):
            self.total = total

        def update(self, n):
            updates.append(n)

        def set_postfix(self, **kw):
            pass

        def close(self):
            updates.append("closed")

    fake = types.ModuleType("tqdm")
    fake.auto = types.ModuleType("tqdm.auto")
    fake.auto.tqdm = FakeBar
    monkeypatch.setitem(sys.modules, "tqdm", fake)
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake.auto)

    config = _small(dtype="float64", seed=1)
    whole = train(config, progress=False)
    chunked = train(config, progress=True, chunk_size=10)
    assert updates == [10, 10, "closed"]
    _assert_results_close(whole, chunked, rtol=1e-12)


def test_json_round_trip(diverged):
    text = json.dumps(diverged.to_dict(), allow_nan=False)  # NaN/inf as strings
    back = TrainResult.from_dict(json.loads(text))
    assert back.config == diverged.config and back.outcome == diverged.outcome
    assert back.lags == diverged.lags and back.baseline == diverged.baseline
    assert back.seeds is None
    leaves_a = jax.tree_util.tree_leaves(diverged)
    leaves_b = jax.tree_util.tree_leaves(back)
    assert len(leaves_a) == len(leaves_b)
    for a, b in zip(leaves_a, leaves_b):
        assert np.asarray(a).dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), b)  # exact, NaN == NaN


def test_config_round_trip_and_hashable():
    config = TrainConfig(
        cell="gru",
        task="copy",
        T=5,
        task_options={"length": 3, "alphabet": 4},
        optimizer="sgd",
        optimizer_options={"momentum": 0.9},
        clip_norm=1.0,
        tbptt=4,
        lags=[3, 0, 3],
    )
    assert config.lags == (0, 3) and config.task_options == (
        ("alphabet", 4),
        ("length", 3),
    )
    assert config.spec.length == 11
    back = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config and hash(back) == hash(config)


def test_critical_init_trains():
    config = _profile_config("rnn", "tanh", "critical", 1.0)
    result = train(config, progress=False)
    assert bool(jnp.all(result.finite)) and result.params["cell"]["W_hh"].shape == (8, 8)


@pytest.mark.parametrize(
    "kw, error, match",
    [
        (dict(cell="transformer"), ValueError, "`cell`"),
        (dict(nonlinearity="softplus"), ValueError, "`nonlinearity`"),
        (dict(cell="lstm", nonlinearity="relu"), ValueError, "`nonlinearity`"),
        (dict(hidden=0), ValueError, "`hidden`"),
        (dict(hidden=8.0), TypeError, "`hidden`"),
        (dict(init="xavier"), ValueError, "`init`"),
        (dict(gain=-1.0), ValueError, "`gain`"),
        (dict(init="critical", gain=2.0), ValueError, "`gain`"),
        (dict(task="mnist"), ValueError, "`task`"),
        (dict(T=1), ValueError, "`T`"),
        (dict(task_options={"alphabet": 3}), ValueError, "task_options"),
        (dict(task="copy", task_options={"length": 0}), ValueError, "`length`"),
        (dict(batch=0), ValueError, "`batch`"),
        (dict(steps=0), ValueError, "`steps`"),
        (dict(optimizer="adamm"), ValueError, "`optimizer`"),
        (dict(learning_rate=0.0), ValueError, "`learning_rate`"),
        (
            dict(optimizer_options={"momentun": 0.9}, optimizer="sgd"),
            ValueError,
            "optimizer_options",
        ),
        (dict(clip_norm=0.0), ValueError, "`clip_norm`"),
        (dict(tbptt=-1), ValueError, "`tbptt`"),
        (dict(seed=-1), ValueError, "`seed`"),
        (dict(lags=[0, 11]), ValueError, r"`lags\[1\]`"),
        (dict(lags=[]), ValueError, "`lags`"),
        (dict(lags="012"), TypeError, "`lags`"),
        (dict(dtype="float16"), ValueError, "`dtype`"),
        (dict(solved_below=2.0), ValueError, "`solved_below`"),
    ],
)
def test_config_errors(kw, error, match):
    base = dict(T=10)
    with pytest.raises(error, match=match):
        TrainConfig(**{**base, **kw})


def test_train_argument_errors():
    config = _small()
    with pytest.raises(TypeError, match="`config`"):
        train(dataclasses.asdict(config))
    with pytest.raises(ValueError, match="`seeds`"):
        train(config, seeds=[])
    with pytest.raises(TypeError, match="`seeds`"):
        train(config, seeds=3)
    with pytest.raises(ValueError, match=r"`seeds\[1\]`"):
        train(config, seeds=[0, -3])
    with pytest.raises(ValueError, match="`chunk_size`"):
        train(config, chunk_size=0)
    with pytest.raises(ValueError, match="`xs`"):
        apply(config, init_params(config), jnp.zeros((10, 3)))


def test_norm_helpers_match_float64_numpy_without_overflow():
    # Entries whose squares overflow (1e30) or underflow (1e-30) float32: the recorded
    # norms must still equal the float64 NumPy values, and an exact zero gives -inf.
    from gradspec.training import loop as train_module
    big = {
        "a": np.array([1e30, -2e30], np.float32),
        "b": np.array([[3e30]], np.float32),
    }
    ref = np.sqrt(sum(np.sum(np.float64(x) ** 2) for x in big.values()))
    got = train_module._global_norm(jax.tree_util.tree_map(jnp.asarray, big))
    assert got.dtype == jnp.float32 and float(got) == pytest.approx(ref, rel=1e-6)
    assert float(train_module._global_norm({"z": jnp.zeros(3, jnp.float32)})) == 0.0

    x = np.array([[1e-30, -2e-30, 2e-30], [1e30, 0, 0], [0, 0, 0]], np.float32)
    with np.errstate(divide="ignore"):  # log(3e-30), log(1e30), -inf
        ref = np.log(np.linalg.norm(np.float64(x), axis=-1))
    got = np.asarray(train_module._log_norm(jnp.asarray(x), -1))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[:2], ref[:2], rtol=1e-6)
    assert got[2] == -np.inf


@pytest.mark.parametrize("cell, task", [("rnn", "copy"), ("lstm", "adding"), ("gru", "copy")])
def test_transported_gradient_is_the_profile_of_the_last_loss(cell, task):
    # An independent route: per example, gradient_profile along the run's own inputs
    # with readout = d p_L / d h_L (autodiff through the readout and the task's loss).
    options = {"length": 2} if task == "copy" else {}
    config = TrainConfig(cell=cell, task=task, T=12, hidden=6, batch=4, steps=1,
                         dtype="float64", task_options=options)
    result = train(config, progress=False)
    params, batch, net = init_params(config), task_batch(config), config.make_cell()
    logs = []
    for xs, target in zip(batch.inputs, batch.targets[:, -1]):
        h0 = jnp.zeros(net.state_size(config.hidden), jnp.float64)  # training's start
        h_last = gradspec.trajectory(net, params["cell"], xs, h0)[-1]

        def last_loss(h):
            y = h[: net.output_size(h.shape[0])] @ params["readout"]["W"].T
            return tasks.position_loss(batch.kind, y + params["readout"]["b"], target)

        profile = gradspec.gradient_profile(net, params["cell"], xs, h0,
                                            readout=jax.grad(last_loss)(h_last))
        logs.append(np.asarray(profile)[list(config.lags)])
    # Sums of O(10) log terms of order 1: float64 rounding, 1e-12 leaves 1000x room
    # (measured 2e-15).
    np.testing.assert_allclose(result.log_transported[0], np.mean(logs, axis=0),
                               rtol=0, atol=1e-12)


def test_transported_gradient_every_n_steps_and_accuracy():
    config = TrainConfig(task="delayed_xor", T=12, task_options={"delay": 3}, hidden=8,
                         batch=8, steps=7, record_every=3)
    result = train(config, progress=False)
    recorded = np.isfinite(np.asarray(result.log_transported)).all(axis=1)
    assert recorded.tolist() == [True, False, False, True, False, False, True]
    acc = np.asarray(result.accuracy)
    assert ((acc >= 0) & (acc <= 1)).all() and np.isnan(float(result.heldout_accuracy))
    assert np.isnan(np.asarray(train(_small(), progress=False).accuracy)).all()  # MSE task


# The fast path (gradspec.training.recurrence: hoisted input projection, hand-written
# reverse pass, weight gradient as one product) against the generic path (autodiff of
# the per-example scan) on the same network: the cell wrapped as a StepCell has no
# fast path. Float64; the two sum the same terms in another order, so they differ by
# rounding only, amplified a little by 6 Adam steps: 1e-9 relative.
RTOL_FAST64 = 1e-9


@pytest.mark.parametrize("cell,tbptt,task", [
    ("rnn", 0, "copy"), ("lstm", 5, "adding"),
    pytest.param("rnn", 5, "adding", marks=pytest.mark.slow),
    pytest.param("lstm", 0, "copy", marks=pytest.mark.slow)])
def test_fast_recurrence_equals_the_generic_step(cell, tbptt, task):
    options = {"alphabet": 4, "length": 3} if task == "copy" else {}
    T = 12 if task == "adding" else 6  # copy: sequences of T + 2 * 3 = 12
    config = TrainConfig(cell=cell, hidden=6, T=T, batch=5, steps=6, tbptt=tbptt,
                         task=task, task_options=options, record_every=2,
                         lags=(0, 1, 3, 5), dtype="float64")
    net = config.make_cell()
    # The same cell without the split: trained by autodiff of the per-example scan.
    hidden = type("Generic" + type(net).__name__, (type(net),), {"drive": None})
    generic = dataclasses.replace(config, cell=hidden(
        **{f.name: getattr(net, f.name) for f in dataclasses.fields(net)}))
    assert gradspec.training.recurrence.has_fast_path(net)
    assert not gradspec.training.recurrence.has_fast_path(generic.make_cell())
    # A subclass with its own step runs that step, not the parent's split.
    own = type("Own", (type(net),), {"step": lambda self, p, s, x: net.step(p, s, x)})
    assert not gradspec.training.recurrence.has_fast_path(own())
    params = init_params(config)
    fast = train(config, params=params, progress=False)
    slow = train(generic, params=params, progress=False)
    for name in ("loss", "grad_norm", "log_grad_h0", "log_grad_lags", "log_transported"):
        x, y = np.asarray(getattr(fast, name)), np.asarray(getattr(slow, name))
        np.testing.assert_array_equal(np.isfinite(x), np.isfinite(y))  # -inf where cut
        np.testing.assert_allclose(x[np.isfinite(x)], y[np.isfinite(y)], rtol=RTOL_FAST64)
    for x, y in zip(jax.tree_util.tree_leaves(fast.params),
                    jax.tree_util.tree_leaves(slow.params)):
        np.testing.assert_allclose(x, y, rtol=RTOL_FAST64, atol=1e-15)
    assert np.all(np.isfinite(fast.loss)) and fast.loss[0] != fast.loss[-1]  # it trained
