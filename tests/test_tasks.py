"""Tests of gradspec.tasks: shapes, structure, baselines, determinism, errors."""

import math
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gradspec.tasks as tasks

DTYPES = ["float32", "float64"]

try:
    import sklearn  # noqa: F401  (the optional `data` extra: the digits task)

    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False
needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="needs gradspec[data]")

#: One valid (T, options) per task, for the tests that run over every task.
CASES = {
    "adding": (12, {}),
    "copy": (12, {}),
    "delayed_xor": (12, {"delay": 4}),
    "digits": (64, {}),
}
ALL_TASKS = [
    pytest.param(name, marks=needs_sklearn) if name == "digits" else name
    for name in tasks.TASKS
]


def test_cases_cover_every_task():
    assert set(CASES) == set(tasks.TASKS)


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
    # Two orders of summing the same B L positive terms: n eps relative at worst.
    np.testing.assert_allclose(jnp.mean(per), tasks.loss(task, outputs),
                               rtol=task.mask.size * np.finfo(np.float64).eps)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_deterministic_per_key_and_different_across_keys(name):
    T, options = CASES[name]
    a = tasks.generate(name, jr.key(1), 16, T, **options)
    b = tasks.generate(name, jr.key(1), 16, T, **options)
    c = tasks.generate(name, jr.key(2), 16, T, **options)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.inputs, c.inputs)
    assert not np.array_equal(a.targets, c.targets)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_vmap_over_keys_agrees_with_single_calls(name):
    # The generators are jit-compiled already; vmap must batch them per key.
    T, options = CASES[name]
    keys = jr.split(jr.key(3), 3)

    def gen(k):
        return tasks.generate(name, k, 4, T, **options)

    stacked = jax.vmap(gen)(keys)
    for i in range(3):
        single = gen(keys[i])
        np.testing.assert_array_equal(stacked.inputs[i], single.inputs)
        np.testing.assert_array_equal(stacked.targets[i], single.targets)
        np.testing.assert_array_equal(stacked.mask[i], single.mask)
    assert stacked.kind == tasks.describe(name, T, **options).kind


@pytest.mark.parametrize("name", ALL_TASKS)
def test_describe_matches_generated_batch_and_loss_reaches_last_step(getkey, name):
    T, options = CASES[name]
    if name == "copy":
        options = {"alphabet": 4, "length": 3}
    spec = tasks.describe(name, T, **options)
    task = tasks.generate(name, getkey(), 2, T, **options)
    assert task.inputs.shape == (2, spec.length, spec.inputs)
    assert task.targets.shape == (2, spec.length, spec.outputs)
    assert task.kind == spec.kind
    assert float(task.baseline) == pytest.approx(spec.baseline)
    # Training records the gradient of the LAST position's loss: it must count.
    np.testing.assert_array_equal(task.mask[:, -1], 1)


@pytest.mark.parametrize("name", ALL_TASKS)
def test_train_config_accepts_every_task(name):
    from gradspec.training import TrainConfig

    T, options = CASES[name]
    config = TrainConfig(task=name, T=T, task_options=options, hidden=4)
    assert config.spec == tasks.describe(name, T, **options)
    assert max(config.lags) == config.spec.length


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
        (lambda k: tasks.delayed_xor(k, 4, 10, delay=0), ValueError, "`delay`"),
        (lambda k: tasks.delayed_xor(k, 4, 10, delay=5), ValueError, "`delay`"),
        (lambda k: tasks.delayed_xor(k, 4, 10, delay=2.0), TypeError, "`delay`"),
        (lambda k: tasks.delayed_xor(k, 4, 2, delay=1), ValueError, "`T`"),
        (lambda k: tasks.delayed_xor(k, 0, 10, delay=1), ValueError, "`batch`"),
        (lambda k: tasks.generate("delayed_xor", k, 4, 10), ValueError, "`delay`"),
        (lambda k: tasks.describe("delayed_xor", 9, delay=None), ValueError, "`delay`"),
        (lambda k: tasks.describe("delayed_xor", 9, delay=5), ValueError, "`delay`"),
        (
            lambda k: tasks.delayed_xor(k, 4, 10, delay=2, encoding="pm1"),
            ValueError,
            "`encoding`",
        ),
        (
            lambda k: tasks.delayed_xor(k, 4, 10, delay=2, dtype="int32"),
            TypeError,
            "`dtype`",
        ),
        (lambda k: tasks.generate("digits", k, 4, 63), ValueError, "`T`"),
        (lambda k: tasks.describe("digits", 64.0), ValueError, "`T`"),
        (lambda k: tasks.digits(k, 4, split="val"), ValueError, "`split`"),
        (lambda k: tasks.describe("digits", 64, split="val"), ValueError, "`split`"),
        (lambda k: tasks.digits(k, 4, permuted="yes"), TypeError, "`permuted`"),
        (lambda k: tasks.digits(k, 0), ValueError, "`batch`"),
        (
            lambda k: tasks.generate("digits", k, 4, 64, delay=3),
            ValueError,
            "task_options",
        ),
    ],
)
def test_errors(getkey, call, error, match):
    with pytest.raises(error, match=match):
        call(getkey())


def test_loss_shape_error(getkey):
    task = tasks.adding(getkey(), 2, 5)
    with pytest.raises(ValueError, match="`outputs`"):
        tasks.loss(task, jnp.zeros((2, 5)))


# --- delayed XOR -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T, d", [(3, 1), (12, 4), (40, 7)])
def test_delayed_xor_targets_are_xor_of_the_delayed_bits(getkey, dtype, T, d):
    B = 32
    task = tasks.delayed_xor(getkey(), B, T, delay=d, dtype=dtype)
    assert task.inputs.shape == (B, T, 1) and task.targets.shape == (B, T, 2)
    assert task.mask.shape == (B, T) and task.kind == "xent"
    for leaf in (task.inputs, task.targets, task.mask, task.baseline):
        assert leaf.dtype == jnp.dtype(dtype)
    x = np.asarray(task.inputs[..., 0])
    assert set(np.unique(x)) <= {-1.0, 1.0}
    s = (x > 0).astype(int)  # the bits s_t
    # Independent recomputation, position by position (0-based i = t - 1).
    expected = np.zeros((B, T, 2))
    for i in range(2 * d, T):
        expected[np.arange(B), i, s[:, i - d] ^ s[:, i - 2 * d]] = 1.0
    np.testing.assert_array_equal(task.targets, expected)
    expected_mask = np.broadcast_to(np.arange(T) >= 2 * d, (B, T))
    np.testing.assert_array_equal(task.mask, expected_mask)
    np.testing.assert_array_equal(
        tasks.generate("delayed_xor", jr.key(5), B, T, delay=d, dtype=dtype).targets,
        tasks.delayed_xor(jr.key(5), B, T, delay=d, dtype=dtype).targets,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_delayed_xor_binary_encoding_feeds_the_same_bits_as_0_1(dtype):
    # Engelken's encoding: x_t = s_t. Same key, same bits, same targets and mask as the
    # +-1 encoding, whose x = 2 s - 1 is checked against the targets above.
    B, T, d = 64, 30, 5
    sign = tasks.delayed_xor(jr.key(2), B, T, delay=d, dtype=dtype)
    binary = tasks.generate("delayed_xor", jr.key(2), B, T, delay=d, encoding="binary",
                            dtype=dtype)
    assert binary.inputs.dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(binary.inputs, (np.asarray(sign.inputs) + 1) / 2)
    for a, b in ((binary.targets, sign.targets), (binary.mask, sign.mask)):
        np.testing.assert_array_equal(a, b)
    # input_power = E[x^2]: 1/2 for fair 0/1 bits, 1 for +-1 (exact per step).
    spec = tasks.describe("delayed_xor", T, delay=d, encoding="binary")
    assert spec.input_power == 0.5
    assert tasks.describe("delayed_xor", T, delay=d).input_power == 1.0
    # 1920 fair bits: E[x^2] = 1/2 with standard error 0.011.
    assert float(jnp.mean(binary.inputs**2)) == pytest.approx(0.5, abs=0.05)


def test_delayed_xor_bits_are_fair_and_baseline_is_ln2(getkey):
    T, d = 30, 6
    task = tasks.delayed_xor(getkey(), 4000, T, delay=d, dtype="float64")
    # 1.2e5 fair bits: mean 1/2 with standard error 1.4e-3.
    assert float(jnp.mean(task.inputs > 0)) == pytest.approx(0.5, abs=7e-3)
    assert float(task.baseline) == pytest.approx(math.log(2), rel=1e-15)
    assert tasks.describe("delayed_xor", T, delay=d).baseline == pytest.approx(
        math.log(2), rel=1e-15
    )
    # The uniform prediction scores exactly ln 2; a model that keeps only s_{t-d}
    # (predicting y_t = s_{t-d}) is right half the time, no better than chance.
    uniform = tasks.loss(task, jnp.zeros_like(task.targets))
    assert float(uniform) == pytest.approx(math.log(2), rel=1e-14)
    s = (task.inputs[..., 0] > 0).astype(jnp.int32)
    one_bit = jnp.zeros_like(s).at[:, 2 * d :].set(s[:, d : T - d])
    outputs = jax.nn.one_hot(one_bit, 2, dtype=jnp.float64)
    assert float(tasks.accuracy(task, outputs)) == pytest.approx(0.5, abs=0.01)


# --- digits ----------------------------------------------------------------------


@pytest.fixture
def sklearn_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    return d.images.reshape(-1, 64), d.target


def _image_ids(pixels, inputs):
    """Row of ``pixels`` (n, 64) equal to each sequence of ``inputs`` (B, 64, 1)."""
    x = np.asarray(inputs[..., 0]) * 16
    np.testing.assert_array_equal(x, np.round(x))  # pixel / 16, exactly
    match = (x[:, None, :] == pixels[None, :, :]).all(-1)  # (B, n)
    assert match.any(1).all(), "a sequence is not an image of the split"
    return match


@needs_sklearn
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "split, rows", [("train", slice(0, 1437)), ("test", slice(1437, None))]
)
def test_digits_pixels_and_labels_are_load_digits(
    getkey, sklearn_digits, dtype, split, rows
):
    images, labels = sklearn_digits
    B = 200
    task = tasks.digits(getkey(), B, split=split, dtype=dtype)
    assert task.inputs.shape == (B, 64, 1) and task.targets.shape == (B, 64, 10)
    assert task.mask.shape == (B, 64) and task.kind == "xent"
    for leaf in (task.inputs, task.targets, task.mask, task.baseline):
        assert leaf.dtype == jnp.dtype(dtype)
    assert float(task.inputs.min()) >= 0 and float(task.inputs.max()) <= 1
    # Every sequence is a row-major image of the split, with that image's label.
    match = _image_ids(images[rows], task.inputs)
    y = np.asarray(task.targets[:, -1].argmax(-1))
    assert all(y[b] in labels[rows][match[b]] for b in range(B))
    np.testing.assert_array_equal(task.targets[:, -1].sum(-1), 1)
    np.testing.assert_array_equal(task.targets[:, :-1], 0)
    np.testing.assert_array_equal(task.mask[:, -1], 1)
    np.testing.assert_array_equal(task.mask[:, :-1], 0)


@needs_sklearn
def test_digits_permuted_reads_the_fixed_pixel_order(getkey):
    perm = tasks.DIGITS_PERMUTATION
    np.testing.assert_array_equal(np.sort(perm), np.arange(64))
    assert not np.array_equal(perm, np.arange(64))
    assert not perm.flags.writeable
    for _ in range(2):  # same order on every call (and every key)
        key = getkey()
        plain = tasks.digits(key, 50, split="test")
        shuffled = tasks.generate("digits", key, 50, 64, split="test", permuted=True)
        # Same key, same images: the permuted sequence is x[DIGITS_PERMUTATION].
        np.testing.assert_array_equal(shuffled.inputs, plain.inputs[:, perm])
        np.testing.assert_array_equal(shuffled.targets, plain.targets)


@needs_sklearn
def test_digits_splits_are_disjoint_and_cover_the_dataset(sklearn_digits):
    images, labels = sklearn_digits
    (x_train, y_train, _), (x_test, y_test, _) = (
        tasks._digits_data(split, False) for split in ("train", "test")
    )
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    # In order, train then test is the whole dataset: disjoint by index, covering.
    np.testing.assert_array_equal(np.concatenate([x_train, x_test]), images)
    np.testing.assert_array_equal(np.concatenate([y_train, y_test]), labels)
    # Every class is in both splits.
    assert set(np.asarray(y_train)) == set(np.asarray(y_test)) == set(range(10))


@needs_sklearn
def test_digits_sampling_is_uniform_over_the_split(getkey):
    task = tasks.digits(getkey(), 20_000, split="test", dtype="float64")
    counts = np.bincount(np.asarray(task.targets[:, -1].argmax(-1)), minlength=10)
    test_labels = np.asarray(tasks._digits_data("test", False)[1])
    expected = 20_000 * np.bincount(test_labels, minlength=10) / len(test_labels)
    # Binomial counts around ~2000: standard deviation ~42; 5 sigma.
    np.testing.assert_allclose(counts, expected, atol=5 * 45)


@needs_sklearn
def test_digits_baseline_is_ln10(getkey):
    task = tasks.digits(getkey(), 64, dtype="float64")
    assert float(task.baseline) == pytest.approx(math.log(10), rel=1e-15)
    spec = tasks.describe("digits", 64, split="test", permuted=True)
    assert spec.baseline == pytest.approx(math.log(10), rel=1e-15)
    assert (spec.length, spec.inputs, spec.outputs, spec.kind) == (64, 1, 10, "xent")
    assert 0 < spec.input_power < 1
    uniform = tasks.loss(task, jnp.zeros_like(task.targets))
    assert float(uniform) == pytest.approx(math.log(10), rel=1e-14)


@needs_sklearn
def test_digits_first_load_inside_jit_leaks_no_tracer(getkey):
    tasks._digits_data.cache_clear()
    key = getkey()
    inside = jax.jit(lambda k: tasks.digits(k, 5, split="test"))(key)
    outside = tasks.digits(key, 5, split="test")  # reuses the cache: concrete arrays
    np.testing.assert_array_equal(inside.inputs, outside.inputs)


def test_digits_without_sklearn_names_the_extra(getkey, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` fails
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    tasks._digits_data.cache_clear()
    try:
        message = (
            "gradspec.tasks.digits needs scikit-learn: pip install 'gradspec[data]'"
        )
        for call in (
            lambda: tasks.digits(getkey(), 2),
            lambda: tasks.generate("digits", getkey(), 2, 64),
            lambda: tasks.describe("digits", 64),
        ):
            with pytest.raises(ImportError, match=re.escape(message)):
                call()
    finally:
        tasks._digits_data.cache_clear()  # nothing cached from the failed loads


def test_import_gradspec_does_not_import_sklearn():
    code = (
        "import sys, gradspec, gradspec.tasks, gradspec.training; "
        "assert not [m for m in sys.modules if m.startswith('sklearn')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- accuracy --------------------------------------------------------------------


def _hand_task(targets, mask, kind="xent"):
    targets = jnp.asarray(targets, jnp.float64)
    B, L, _ = targets.shape
    mask = jnp.asarray(mask, jnp.float64)
    return tasks.Task(jnp.zeros((B, L, 1)), targets, mask, jnp.asarray(0.0), kind)


def test_accuracy_counts_masked_argmax_hits():
    eye = np.eye(3)
    # Targets classes [[0, 1, 2], [2, 2, 1]]; mask leaves out position (0, 0).
    task = _hand_task(eye[[[0, 1, 2], [2, 2, 1]]], [[0, 1, 1], [1, 1, 1]])
    outputs = jnp.asarray(
        [
            [[0.0, 5, 0], [0, 5, 0], [1, 0, 0]],  # (0,0) wrong but unmasked; hit; miss
            [[0, 0, 2], [0, 3, 1], [0, 1, 1]],  # hit; miss; tie 1/2 -> class 1: hit
        ]
    )
    assert float(tasks.accuracy(task, outputs)) == pytest.approx(3 / 5, rel=1e-15)
    assert float(jax.jit(tasks.accuracy)(task, outputs)) == pytest.approx(3 / 5)
    assert tasks.accuracy(task, outputs).dtype == jnp.float64
    # Perfect and all-wrong outputs.
    assert float(tasks.accuracy(task, task.targets)) == 1.0
    assert float(tasks.accuracy(task, -task.targets)) == 0.0


@needs_sklearn
def test_accuracy_of_a_constant_guess_is_the_class_frequency(getkey):
    task = tasks.digits(getkey(), 500, dtype="float64")
    guess = jnp.zeros_like(task.targets).at[..., 3].set(1.0)  # always "3"
    share = np.mean(np.asarray(task.targets[:, -1].argmax(-1)) == 3)
    assert float(tasks.accuracy(task, guess)) == pytest.approx(share, rel=1e-15)


def test_accuracy_errors(getkey):
    task = tasks.adding(getkey(), 2, 5)
    with pytest.raises(ValueError, match="`task`.*'mse'"):
        tasks.accuracy(task, jnp.zeros_like(task.targets))
    xor = tasks.delayed_xor(getkey(), 2, 5, delay=2)
    with pytest.raises(ValueError, match="`outputs`"):
        tasks.accuracy(xor, jnp.zeros((2, 5)))
