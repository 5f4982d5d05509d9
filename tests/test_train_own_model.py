"""Your own model in training: cell instances, given params, and the "improving" outcome."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradspec
from gradspec import cells
from gradspec.training import TrainConfig, apply, init_params, task_batch, train, verify
from gradspec.training.result import _outcome

SMALL = dict(task="adding", T=8, hidden=6, batch=4, steps=3, dtype="float64")


def test_a_cell_instance_trains_as_its_name():
    by_name = train(TrainConfig(cell="lstm", **SMALL), progress=False)
    by_instance = train(TrainConfig(cell=cells.LSTM(), **SMALL), progress=False)
    np.testing.assert_array_equal(by_name.loss, by_instance.loss)
    assert TrainConfig(cell=cells.RNN("relu"), **SMALL).nonlinearity == "relu"
    assert TrainConfig(cell=cells.GRU(), **SMALL).to_dict()["cell"] == "GRU()"
    with pytest.raises(ValueError, match="`nonlinearity` is the cell's own"):
        TrainConfig(cell=cells.RNN("tanh"), nonlinearity="relu", **SMALL)
    with pytest.raises(TypeError, match="`cell` must be"):
        TrainConfig(cell=3, **SMALL)


def test_a_step_cell_from_given_params_equals_the_built_in_rnn():
    """A user's step function (the vanilla tanh RNN written by hand, Jacobians by
    autodiff) from the built-in RNN's params trains to the same losses: float64, a few
    steps of sums of O(1) terms, so equal to 1e-12."""
    config = TrainConfig(cell="rnn", **SMALL)
    start = init_params(config)

    def step(p, h, x):
        return jnp.tanh(p["W_hh"] @ h + p["W_xh"] @ x + p["b"])

    mine = TrainConfig(cell=cells.StepCell(step, size=6), **SMALL)
    with pytest.raises(ValueError, match="StepCell has no init: pass its params"):
        train(mine, progress=False)
    got = train(mine, params=start, progress=False)
    want = train(config, progress=False)
    np.testing.assert_allclose(got.loss, want.loss, rtol=1e-12)
    np.testing.assert_allclose(got.log_transported[0], want.log_transported[0], atol=1e-12)


def test_given_cell_params_get_a_drawn_readout_and_are_checked():
    config = TrainConfig(cell="gru", **SMALL)
    drawn = init_params(config)
    cell_only = jax.tree_util.tree_map(lambda a: 2 * a, drawn["cell"])
    start = init_params(config, params=cell_only)
    np.testing.assert_array_equal(start["cell"]["weight_hh"], cell_only["weight_hh"])
    np.testing.assert_array_equal(start["readout"]["W"], drawn["readout"]["W"])
    # The recorded first loss is the loss of those params on the first batch.
    result = train(config, params={"cell": cell_only}, progress=False)
    batch = task_batch(config, step=0)
    outputs = jax.vmap(lambda x: apply(config, start, x))(batch.inputs)
    assert float(result.loss[0]) == pytest.approx(float(gradspec.tasks.loss(batch, outputs)),
                                                  rel=1e-12)
    with pytest.raises(ValueError, match="has 6 hidden units; the config says hidden=7"):
        train(TrainConfig(cell="gru", **{**SMALL, "hidden": 7}), params=cell_only)
    with pytest.raises(ValueError, match=r"`params\['readout'\]` must be"):
        train(config, params={"cell": cell_only, "readout": {"W": jnp.zeros((2, 6)),
                                                              "b": jnp.zeros(1)}})


@pytest.mark.slow
def test_a_converted_flax_cell_trains_and_verifies():
    nn = pytest.importorskip("flax.linen")
    module = nn.OptimizedLSTMCell(6, param_dtype=jnp.float64)
    variables = module.init(jax.random.key(0), module.initialize_carry(
        jax.random.key(1), (2,)), jnp.zeros(2))
    cell, params = gradspec.interop.from_flax(module, variables, dtype="float64")
    config = TrainConfig(cell=cell, **SMALL)
    result = train(config, params=params, progress=False)
    assert np.all(np.isfinite(result.loss))
    rows = verify([config], params=[params])
    assert rows[0]["config"].startswith("LSTM() given params")
    assert rows[0]["train_config"]["cell"] == "LSTM()"


def test_improving_outcome_when_the_budget_ran_out():
    steps = np.arange(100.0)
    falling = 1.0 - 0.004 * steps  # 0.6 at the end, still falling 4% per tenth
    assert _outcome(falling, np.ones(100, bool), 1.0, 0.1)[2] == "improving"
    flat = np.full(100, 0.9)
    assert _outcome(flat, np.ones(100, bool), 1.0, 0.1)[2] == "stalled"
    assert _outcome(0.05 + 0 * steps, np.ones(100, bool), 1.0, 0.1)[2] == "solved"


def test_per_gate_init_and_forget_bias():
    gates = {"f": {"mu": 2.0, "sigma": 0.5}}
    with pytest.raises(ValueError, match="needs init='default'"):
        TrainConfig(cell="lstm", gates=gates, **SMALL)  # the default init is orthogonal
    config = TrainConfig(cell="lstm", gates=gates, init="default", **SMALL)
    params = init_params(config)["cell"]
    # Every gate Gaussian (cells.LSTM.init(gates=...)): forget bias exactly 2 (rho = 0),
    # its recurrent block's std 0.5/sqrt(6), the others' 1/sqrt(6) (loose: 36 draws).
    np.testing.assert_array_equal(params["bias_ih"][6:12], 2.0)
    W = np.asarray(params["weight_hh"])
    assert 0.25 < W[6:12].std() * np.sqrt(6) < 0.8 < W[12:18].std() * np.sqrt(6)
    assert TrainConfig.from_dict(config.to_dict()) == config
    shifted = init_params(TrainConfig(cell="lstm", forget_bias=1.0, **SMALL))["cell"]
    plain = init_params(TrainConfig(cell="lstm", **SMALL))["cell"]
    # (b + 1) - b: one rounding of a sum of order 1, so within 2 eps.
    np.testing.assert_allclose(shifted["bias_hh"] - plain["bias_hh"],
                               np.r_[np.zeros(6), np.ones(6), np.zeros(12)], rtol=0, atol=5e-16)
    with pytest.raises(ValueError, match="`forget_bias` must be finite, and nonzero only"):
        TrainConfig(cell="gru", forget_bias=1.0, **SMALL)
    with pytest.raises(ValueError, match="`gates` applies to LSTM and GRU"):
        TrainConfig(cell="rnn", gates=gates, **SMALL)
