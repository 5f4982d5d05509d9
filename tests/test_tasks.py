"""Tests of gradspec.tasks: shapes, structure, baselines, determinism, errors."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec.tasks as tasks

DTYPES = ["float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_adding_shapes_and_structure(getkey, dtype):
    B, T = 64, 13
    task = tasks.adding(getkey(), B, T, dtype=dtype)
    assert task.inputs.shape == (B, T, 2) and task.targets.shape == (B, T, 1)
    assert task.mask.shape == (B, T) and task.kind == "mse"
    for leaf in (task.inputs, task.targets, task.mask, task.baseline):
        assert leaf.dtype == jnp.dtype(dtype)
    u, marker = np.asarray(task.inputs[..., 0]), np.asarray(task.inputs[..., 1])
    assert ((u >= 0) & (u < 1)).all()
    # Exactly one marker in [0, T//2) and one in [T//2, T).
    np.testing.assert_array_equal(marker[:, : T // 2].sum(1), 1)
    np.testing.assert_array_equal(marker[:, T // 2 :].sum(1), 1)
    np.testing.assert_array_equal(np.unique(marker), [0, 1])
    # The target (last step only) is the sum of the two marked values.
    y = np.asarray(task.targets[..., 0])
    np.testing.assert_allclose(y[:, -1], (u * marker).sum(1), rtol=1e-6)
    np.testing.assert_array_equal(y[:, :-1], 0)
    np.testing.assert_array_equal(task.mask[:, -1], 1)
    np.testing.assert_array_equal(task.mask[:, :-1], 0)


def test_adding_baseline_is_one_sixth_by_monte_carlo(getkey):
    task = tasks.adding(getkey(), 200_000, 20, dtype="float64")
    assert float(task.baseline) == pytest.approx(1 / 6, rel=1e-15)
    assert tasks.describe("adding", 20).baseline == pytest.approx(1 / 6)
    # Predicting the mean E[y] = 1: MSE = Var(u1 + u2) = 1/6. The estimator's standard
    # error is sqrt((1/15 - 1/36) / 2e5) ~ 4.4e-4, so 3e-3 is ~7 standard errors.
    mse = float(tasks.loss(task, jnp.ones_like(task.targets)))
    assert mse == pytest.approx(1 / 6, abs=3e-3)
    # ... and the mean is the best constant (Var <= E(y - c)^2 for c = 0.9, 1.1).
    for c in (0.9, 1.1):
        assert float(tasks.loss(task, jnp.full_like(task.targets, c))) > mse


@pytest.mark.parametrize("dtype", DTYPES)
def test_copy_shapes_and_structure(getkey, dtype):
    B, T, A, m = 8, 7, 5, 3
    task = tasks.copy(getkey(), B, T, alphabet=A, length=m, dtype=dtype)
    L = T + 2 * m
    assert task.inputs.shape == task.targets.shape == (B, L, A + 2)
    assert task.mask.shape == (B, L) and task.kind == "xent"
    assert task.inputs.dtype == task.targets.dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(task.inputs.sum(-1), 1)  # one-hot everywhere
    np.testing.assert_array_equal(task.targets.sum(-1), 1)
    np.testing.assert_array_equal(task.mask, 1)
    x, y = np.asarray(task.inputs.argmax(-1)), np.asarray(task.targets.argmax(-1))
    symbols = x[:, :m]
    assert ((symbols >= 1) & (symbols <= A)).all()
    np.testing.assert_array_equal(x[:, m : m + T - 1], 0)  # T - 1 blanks
    np.testing.assert_array_equal(x[:, m + T - 1], A + 1)  # the delimiter
    np.testing.assert_array_equal(x[:, m + T :], 0)  # blanks while recalling
    np.testing.assert_array_equal(y[:, : T + m], 0)
    np.testing.assert_array_equal(y[:, T + m :], symbols)


@pytest.mark.parametrize("T", [1, 100])
def test_copy_baseline_formula_and_strategy(getkey, T):
    task = tasks.copy(getkey(), 4, T, dtype="float64")
    # The formula for the standard variant: 10 ln 8 / (T + 20).
    assert float(task.baseline) == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-14)
    assert tasks.describe("copy", T).baseline == pytest.approx(float(task.baseline))
    # The memoryless strategy scores exactly the baseline: blank (class 0) for the first
    # T + 10 steps, uniform over the 8 data symbols for the last 10. -1e4 logits give
    # probabilities exp(-1e4) = 0 exactly, with finite log-probabilities.
    L, C = T + 20, 10
    logits = np.full((L, C), -1e4)
    logits[: T + 10, 0] = 0.0
    logits[T + 10 :, 1:9] = 0.0
    outputs = jnp.broadcast_to(jnp.asarray(logits), task.targets.shape)
    assert float(tasks.loss(task, outputs)) == pytest.approx(
        float(task.baseline), rel=1e-12
    )


def test_loss_per_example_mean_is_loss(getkey):
    task = tasks.copy(getkey(), 5, 6, alphabet=3, length=2, dtype="float64")
    outputs = jr.normal(getkey(), task.targets.shape, jnp.float64)
    per = tasks.loss(task, outputs, per_example=True)
    assert per.shape == (5,)
    np.testing.assert_allclose(jnp.mean(per), tasks.loss(task, outputs), rtol=1e-14)


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_deterministic_per_key_and_different_across_keys(name):
    a = tasks.generate(name, jr.key(1), 16, 12)
    b = tasks.generate(name, jr.key(1), 16, 12)
    c = tasks.generate(name, jr.key(2), 16, 12)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.inputs, c.inputs)
    assert not np.array_equal(a.targets, c.targets)


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_vmap_over_keys_agrees_with_single_calls(name):
    # The generators are jit-compiled already; vmap must batch them per key.
    keys = jr.split(jr.key(3), 3)

    def gen(k):
        return tasks.generate(name, k, 4, 9)

    stacked = jax.vmap(gen)(keys)
    for i in range(3):
        single = gen(keys[i])
        np.testing.assert_array_equal(stacked.inputs[i], single.inputs)
        np.testing.assert_array_equal(stacked.targets[i], single.targets)
    assert stacked.kind == tasks.describe(name, 9).kind


def test_describe_matches_generated_batch(getkey):
    for name, options in [("adding", {}), ("copy", {"alphabet": 4, "length": 3})]:
        spec = tasks.describe(name, 10, **options)
        task = tasks.generate(name, getkey(), 2, 10, **options)
        assert task.inputs.shape == (2, spec.length, spec.inputs)
        assert task.targets.shape == (2, spec.length, spec.outputs)
        assert task.kind == spec.kind


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda k: tasks.adding(k, 4, 1), ValueError, "`T`"),
        (lambda k: tasks.adding(k, 0, 10), ValueError, "`batch`"),
        (lambda k: tasks.adding(k, 4, 10.0), TypeError, "`T`"),
        (lambda k: tasks.adding(k, 4, 10, dtype="int32"), TypeError, "`dtype`"),
        (lambda k: tasks.copy(k, 4, 0), ValueError, "`T`"),
        (lambda k: tasks.copy(k, 4, 5, alphabet=0), ValueError, "`alphabet`"),
        (lambda k: tasks.copy(k, 4, 5, length=0), ValueError, "`length`"),
        (lambda k: tasks.generate("mnist", k, 4, 5), ValueError, "`task`"),
        (
            lambda k: tasks.generate("adding", k, 4, 5, length=3),
            ValueError,
            "task_options",
        ),
        (lambda k: tasks.describe("copy", 5, alphabet=-1), ValueError, "`alphabet`"),
    ],
)
def test_errors(getkey, call, error, match):
    with pytest.raises(error, match=match):
        call(getkey())


def test_loss_shape_error(getkey):
    task = tasks.adding(getkey(), 2, 5)
    with pytest.raises(ValueError, match="`outputs`"):
        tasks.loss(task, jnp.zeros((2, 5)))
