r"""Long-range-dependency tasks with a known chance-level loss.

Each generator draws a whole batch from one PRNG key (same key, same batch) and returns
a :class:`Task`: inputs, per-step targets, a loss mask, the chance-level ``baseline``
loss and the loss ``kind``. The baseline is what a model that ignores the long-range
dependency scores; training outcomes (``solved`` / ``stalled``) are judged against it.

- :func:`adding`: the adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton
  2015, arXiv:1504.00941). Baseline MSE :math:`1/6`.
- :func:`copy`: the copy-memory problem (Arjovsky, Shah & Bengio 2016,
  arXiv:1511.06464). Baseline cross-entropy :math:`m \ln A / (T + 2m)`.
- :func:`delayed_xor`: random bits s_t; for t > 2d the target is the XOR of the bits
  d and 2d steps back (a fixed-lag XOR problem, cf. Martens & Sutskever 2011).
  Baseline cross-entropy :math:`\ln 2`.
- :func:`digits`: pixel-by-pixel classification of scikit-learn's 8x8 digits, plain or
  permuted, with a held-out split (pixel MNIST in small: Le, Jaitly & Hinton 2015,
  arXiv:1504.00941). Baseline :math:`\ln 10`. Needs ``pip install 'gradspec[data]'``.

Generators are pure ``jax.random`` code: jit-able with ``batch``, ``T`` and the options
static, and vmap-able over keys. Every task's loss counts at its last position (training
records that position's gradient). :func:`accuracy` scores the "xent" tasks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._checks import check_choice, check_floating, check_int
from ..cells import _default_dtype

LossKind = Literal["mse", "xent"]

__all__ = [
    "Task",
    "TaskSpec",
    "TASKS",
    "adding",
    "copy",
    "delayed_xor",
    "digits",
    "DIGITS_PERMUTATION",
    "generate",
    "describe",
    "loss",
    "position_loss",
    "accuracy",
]


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["inputs", "targets", "mask", "baseline"],
    meta_fields=["kind"],
)
@dataclasses.dataclass(frozen=True)
class Task:
    """One batch of a task. A pytree: ``kind`` is static metadata, the rest are leaves.

    (A frozen dataclass rather than a NamedTuple so that the string ``kind`` is not a
    leaf: a ``Task`` passes through ``jax.jit`` and ``jax.vmap`` as is.)
    """

    inputs: jax.Array  # (B, L, D) float, L = sequence length
    targets: jax.Array  # (B, L, K) float: values ("mse") or one-hot classes ("xent")
    mask: jax.Array  # (B, L) float, 1 where the position's loss counts, else 0
    baseline: jax.Array  # () float, chance-level loss (see each generator)
    kind: str = "mse"  # "mse" or "xent", which :func:`loss` applies


class TaskSpec(NamedTuple):
    """Static description of a task: sizes and baseline, without drawing a batch."""

    length: int  # L, steps per sequence
    inputs: int  # D, input channels
    outputs: int  # K, readout outputs
    baseline: float  # chance-level loss
    kind: str  # "mse" or "xent"
    input_power: float  # E ||x_t||^2 averaged over the L steps (input drive scale)


def _dtype(dtype) -> jnp.dtype:
    # Dtype follows the user: float32 by default, float64 when x64 is on (as the cells).
    dtype = _default_dtype(dtype)
    check_floating("dtype", dtype)
    return dtype


def _adding_spec(T: int) -> TaskSpec:
    T = check_int("T", T, 2)
    # E u^2 = 1/3 on channel 0; two markers in T steps on channel 1.
    return TaskSpec(T, 2, 1, baseline=1.0 / 6.0, kind="mse", input_power=1 / 3 + 2 / T)


def _copy_spec(T: int, alphabet: int, length: int) -> TaskSpec:
    T = check_int("T", T, 1)
    alphabet = check_int("alphabet", alphabet, 1)
    length = check_int("length", length, 1)
    total, classes = T + 2 * length, alphabet + 2
    baseline = length * math.log(alphabet) / total  # input: one-hot at every step
    return TaskSpec(total, classes, classes, baseline, kind="xent", input_power=1.0)


def adding(key, batch: int, T: int, *, dtype=None) -> Task:
    r"""The adding problem: add the two marked numbers of a length-T sequence.

    Channel 0 holds :math:`u_t \sim U[0, 1)` (24 random bits in float32, 32 in
    float64); channel 1 is a 0/1 marker set at one step
    :math:`i_1` drawn uniformly from the first half ``[0, T//2)`` and one step
    :math:`i_2` from the second half ``[T//2, T)``. The target, read at the last step
    only, is :math:`y = u_{i_1} + u_{i_2}`. Predicting the mean :math:`E[y] = 1` scores

    .. math::
        \mathrm{MSE}_{\text{chance}} = \mathrm{Var}(u_{i_1} + u_{i_2})
            = 2 \cdot \tfrac{1}{12} = \tfrac16,

    the ``baseline``. A model must carry both values across up to T - 1 steps to beat
    it.

    Args:
        key: PRNG key.
        batch: number of sequences B >= 1.
        T: sequence length, >= 2.
        dtype: float dtype of inputs/targets/mask; default float32 (float64 under x64).

    Returns:
        A :class:`Task` with ``inputs`` (B, T, 2), ``targets`` (B, T, 1) (zero except
        the last step), ``mask`` (B, T) (one at the last step), ``baseline`` 1/6,
        ``kind="mse"``.

    Raises:
        ValueError: ``batch < 1`` or ``T < 2``.
        TypeError: non-float ``dtype``.

    Examples:
        >>> import jax, gradspec.tasks as tasks
        >>> task = tasks.adding(jax.random.key(0), 4, 10)
        >>> task.inputs.shape, task.targets.shape, round(float(task.baseline), 4)
        ((4, 10, 2), (4, 10, 1), 0.1667)
        >>> [int(n) for n in task.inputs[..., 1].sum(axis=1)]  # two markers each
        [2, 2, 2, 2]

    References:
        Hochreiter & Schmidhuber (1997), Long short-term memory. Le, Jaitly & Hinton
        (2015), arXiv:1504.00941.
    """
    batch = check_int("batch", batch, 1)
    _adding_spec(T)
    return _adding(key, batch, T, _dtype(dtype))


def _uniform(bits, dtype):
    """U[0, 1) from uint32 bits, exact in ``dtype``: the top 24 bits for float32, all
    32 for float64 (resolution 2^-24 / 2^-32)."""
    keep = min(32, jnp.finfo(dtype).nmant + 1)
    return (bits >> (32 - keep)).astype(dtype) * 2.0**-keep


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _adding(key, batch, T, dtype):
    # Compiled once per (batch, T, dtype), and all randomness comes from ONE jr.bits
    # call: every threefry instance costs ~0.4 s of XLA compile time on a CPU.
    spec = _adding_spec(T)
    half = T // 2
    bits = jr.bits(key, (batch, T + 2), jnp.uint32)
    u = _uniform(bits[:, :T], dtype)
    # Marker positions; the modulo bias is below n / 2^32.
    i1 = (bits[:, T : T + 1] % half).astype(jnp.int32)  # (B, 1) in [0, T//2)
    i2 = (half + bits[:, T + 1 :] % (T - half)).astype(jnp.int32)  # in [T//2, T)
    steps = jnp.arange(T, dtype=jnp.int32)[None, :]
    marker = ((steps == i1) | (steps == i2)).astype(dtype)  # (B, T)
    y = jnp.sum(u * marker, axis=1)  # (B,)
    targets = jnp.zeros((batch, T, 1), dtype).at[:, -1, 0].set(y)
    mask = jnp.zeros((batch, T), dtype).at[:, -1].set(1.0)
    inputs = jnp.stack([u, marker], axis=-1)
    return Task(inputs, targets, mask, jnp.asarray(spec.baseline, dtype), spec.kind)


def copy(
    key, batch: int, T: int, *, alphabet: int = 8, length: int = 10, dtype=None
) -> Task:
    r"""The copy-memory problem: reproduce ``length`` symbols after a delay of T steps.

    Symbols are one-hot over ``alphabet + 2`` classes: 0 is the blank,
    ``1..alphabet`` the data symbols :math:`a_1..a_A`, ``alphabet + 1`` the delimiter.
    Following Arjovsky et al. (2016), a sequence of length :math:`L = T + 2m`
    (``m = length``) is: m random data symbols, T - 1 blanks, the delimiter, m blanks.
    The target is blank for the first T + m steps and the m data symbols for the last
    m. The loss is the cross-entropy averaged over all L positions (the mask is all
    ones).

    The memoryless strategy (blank for the first T + m steps, uniform over the A data
    symbols for the last m) scores the ``baseline``

    .. math::
        \mathrm{CE}_{\text{chance}} = \frac{m \ln A}{T + 2m},

    i.e. ``10 ln 8 / (T + 20)`` for the standard A = 8, m = 10.

    Args:
        key: PRNG key.
        batch: number of sequences B >= 1.
        T: delay, >= 1 (blanks plus delimiter between input and recall).
        alphabet: number of data symbols A >= 1.
        length: number of symbols to memorise m >= 1.
        dtype: float dtype of inputs/targets/mask; default float32 (float64 under x64).

    Returns:
        A :class:`Task` with ``inputs`` and ``targets`` (B, T + 2m, A + 2), ``mask``
        (B, T + 2m) of ones, ``baseline`` as above, ``kind="xent"``.

    Raises:
        ValueError: ``batch``, ``T``, ``alphabet`` or ``length`` below 1.
        TypeError: non-float ``dtype``.

    Examples:
        >>> import jax, gradspec.tasks as tasks
        >>> task = tasks.copy(jax.random.key(0), 2, 5, alphabet=4, length=3)
        >>> task.inputs.shape, task.targets.shape
        ((2, 11, 6), (2, 11, 6))
        >>> round(float(task.baseline), 4)  # 3 ln 4 / 11
        0.3781

    References:
        Arjovsky, Shah & Bengio (2016), Unitary evolution recurrent neural networks,
        arXiv:1511.06464.
    """
    batch = check_int("batch", batch, 1)
    _copy_spec(T, alphabet, length)
    return _copy(key, batch, T, alphabet, length, _dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _copy(key, batch, T, alphabet, length, dtype):
    spec = _copy_spec(T, alphabet, length)
    classes = alphabet + 2
    bits = jr.bits(key, (batch, length), jnp.uint32)  # one threefry call, as in adding
    symbols = (1 + bits % alphabet).astype(jnp.int32)  # uniform on 1..A up to A / 2^32

    def fill(n, value):
        return jnp.full((batch, n), value, symbols.dtype)

    delimiter = alphabet + 1
    in_ids = jnp.concatenate(
        [symbols, fill(T - 1, 0), fill(1, delimiter), fill(length, 0)], axis=1
    )
    out_ids = jnp.concatenate([fill(T + length, 0), symbols], axis=1)
    inputs = jax.nn.one_hot(in_ids, classes, dtype=dtype)
    targets = jax.nn.one_hot(out_ids, classes, dtype=dtype)
    mask = jnp.ones((batch, spec.length), dtype)
    return Task(inputs, targets, mask, jnp.asarray(spec.baseline, dtype), spec.kind)


def _delayed_xor_spec(T: int, delay: int | None, encoding: str = "sign") -> TaskSpec:
    check_choice("encoding", encoding, ("sign", "binary"))
    T = check_int("T", T, 3)
    if delay is None:
        raise ValueError("`delay` is required for task 'delayed_xor': pass delay=d "
                         "(task_options={'delay': d}) with 1 <= d and 2 * d < T.")
    delay = check_int("delay", delay, 1)
    if 2 * delay >= T:
        raise ValueError(f"`delay` must satisfy 2 * delay < T (the first target reads "
                         f"the bit 2d steps back); got delay={delay} with T={T}.")
    return TaskSpec(T, 1, 2, math.log(2.0), "xent", 1.0 if encoding == "sign" else 0.5)


def delayed_xor(key, batch: int, T: int, *, delay: int, encoding: str = "sign",
                dtype=None) -> Task:
    r"""Delayed XOR: at every step t > 2d, the XOR of the bits d and 2d steps back.

    I.i.d. fair bits :math:`s_t`, t = 1..T, are fed on one input channel as
    :math:`x_t = 2 s_t - 1 \in \{-1, +1\}` (``encoding="sign"``: zero mean, power 1)
    or :math:`x_t = s_t \in \{0, 1\}` (``"binary"``: power 1/2, Engelken's code). For
    :math:`t > 2d` (d = ``delay``) the target is the class :math:`y_t = s_{t-d} \oplus
    s_{t-2d}`, one-hot over K = 2, and the mask is 1; before (0-based steps < 2d) the
    mask and the target rows are 0. Given all the bits but one of :math:`s_{t-d},
    s_{t-2d}`, :math:`y_t` is still a fair coin, so a model that does not hold *both*
    scores at best the uniform prediction, the ``baseline`` :math:`\ln 2`.

    Args:
        key: PRNG key.
        batch: number of sequences B >= 1.
        T: sequence length, >= 3.
        delay: the lag d >= 1 with 2d < T (so at least the last step has a target).
        encoding: ``"sign"`` (+-1) or ``"binary"`` (0/1, same bits); else ValueError.
        dtype: float dtype of inputs/targets/mask; default float32 (float64 under x64).

    Returns:
        A :class:`Task` with ``inputs`` (B, T, 1) of +-1 (or 0/1), ``targets``
        (B, T, 2), ``mask`` (B, T), ``baseline`` ln 2, ``kind="xent"``.

    Raises:
        ValueError: ``batch < 1``, ``T < 3``, ``delay`` missing, < 1 or >= T / 2.
        TypeError: non-int ``T``/``delay``, non-float ``dtype``.

    Examples:
        >>> import jax, gradspec.tasks as tasks
        >>> task = tasks.delayed_xor(jax.random.key(0), 2, 8, delay=3)
        >>> task.inputs.shape, task.targets.shape, round(float(task.baseline), 4)
        ((2, 8, 1), (2, 8, 2), 0.6931)
        >>> [int(m) for m in task.mask[0]]  # targets from step 2d + 1 = 7 on
        [0, 0, 0, 0, 0, 0, 1, 1]

    References:
        Martens & Sutskever (2011), Learning recurrent neural networks with
        Hessian-free optimization (ICML): the XOR problem, there over two *marked* bits
        of a long sequence; here the bits sit at the fixed lags d and 2d.
    """
    batch = check_int("batch", batch, 1)
    _delayed_xor_spec(T, delay, encoding)
    return _delayed_xor(key, batch, T, delay, encoding, _dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _delayed_xor(key, batch, T, delay, encoding, dtype):
    spec = _delayed_xor_spec(T, delay, encoding)
    bits = jr.bits(key, (batch, T), jnp.uint32)  # one threefry call, as in adding
    s = (bits >> 31).astype(jnp.int32)  # the top bit: a fair coin, 0/1
    y = s[:, delay : T - delay] ^ s[:, : T - 2 * delay]  # 0-based i >= 2d: i-d, i-2d
    none = jnp.zeros((batch, 2 * delay, 2), dtype)
    targets = jnp.concatenate([none, jax.nn.one_hot(y, 2, dtype=dtype)], axis=1)
    mask = jnp.broadcast_to(jnp.arange(T) >= 2 * delay, (batch, T)).astype(dtype)
    inputs = (2 * s - 1 if encoding == "sign" else s).astype(dtype)[..., None]
    return Task(inputs, targets, mask, jnp.asarray(spec.baseline, dtype), spec.kind)


#: The fixed pixel order of ``digits(..., permuted=True)``: step t reads pixel
#: ``DIGITS_PERMUTATION[t]`` of the row-major 8x8 image. Drawn once as
#: ``numpy.random.default_rng(0).permutation(64)`` and written out here, so that it
#: cannot drift with NumPy versions.
DIGITS_PERMUTATION = np.array(
    [16, 36, 27, 8, 44, 23, 53, 4, 58, 50, 10, 2, 42, 34, 19, 47,
     11, 57, 37, 20, 18, 61, 3, 1, 30, 24, 17, 46, 21, 35, 28, 43,
     0, 6, 22, 26, 51, 48, 62, 32, 25, 55, 9, 38, 59, 52, 40, 13,
     12, 7, 45, 39, 63, 5, 49, 14, 54, 29, 41, 60, 56, 33, 15, 31],
    dtype=np.int32,
)  # fmt: skip
DIGITS_PERMUTATION.setflags(write=False)
#: The first 1437 of the 1797 images (80%) and the last 360 (33 to 37 per class).
_DIGITS_SPLITS = {"train": slice(0, 1437), "test": slice(1437, 1797)}


@functools.lru_cache(maxsize=None)
def _digits_data(split: str, permuted: bool) -> tuple[jax.Array, jax.Array, float]:
    """Pixels (n, 64) uint8 in 0..16 in step order, labels (n,) int32, and the input
    power mean((pixel / 16)^2) of a split; loaded once (failed imports not cached)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            "gradspec.tasks.digits needs scikit-learn: pip install 'gradspec[data]'"
        ) from e
    data = load_digits()
    pixels = data.images.reshape(-1, 64).astype(np.uint8)[_DIGITS_SPLITS[split]]
    labels = data.target.astype(np.int32)[_DIGITS_SPLITS[split]]
    if permuted:
        pixels = pixels[:, DIGITS_PERMUTATION]
    power = float(np.mean((pixels / 16.0) ** 2))
    with jax.ensure_compile_time_eval():  # concrete arrays even if first used in a jit
        return jnp.asarray(pixels), jnp.asarray(labels), power


def _digits_spec(T: int, permuted: bool = False, split: str = "train") -> TaskSpec:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T != 64:
        raise ValueError(f"`T` must be 64 for task 'digits' (one step per pixel of an "
                         f"8x8 image); got {T!r}.")
    if not isinstance(permuted, (bool, np.bool_)):
        raise TypeError(f"`permuted` must be a bool; got {type(permuted).__name__}.")
    check_choice("split", split, _DIGITS_SPLITS)
    power = _digits_data(split, bool(permuted))[2]
    return TaskSpec(64, 1, 10, baseline=math.log(10), kind="xent", input_power=power)


def digits(
    key, batch: int, *, permuted: bool = False, split: str = "train", dtype=None
) -> Task:
    r"""Pixel-by-pixel digits: classify an 8x8 handwritten digit read one pixel a step.

    The images are scikit-learn's bundled ``load_digits()`` (1797 images, pixels in
    0..16, 10 classes; no download). A sequence is one image as 64 steps of one pixel
    scaled to [0, 1] (``pixel / 16``), in row-major order, or with ``permuted=True`` in
    the fixed order :data:`DIGITS_PERMUTATION` (the same every call). The target is the
    class, one-hot over 10, at the last step only (the mask is 1 there, else 0, where
    the target rows are 0). ``split="train"`` is the first 1437 images (80%),
    ``split="test"`` the last 360: fixed, disjoint, together all 1797. Each call draws
    ``batch`` images uniformly *with replacement* from the split with ``key``. The
    images are read once and cached; the sampling is pure JAX.

    The ``baseline`` is the cross-entropy of the uniform prediction, :math:`\ln 10`
    (the class prior's entropy is 2.3025 against ln 10 = 2.3026: balanced classes).
    Through :func:`generate`, :func:`describe` and ``TrainConfig``, T must be 64 and
    ``permuted``/``split`` go in ``task_options``.

    Args:
        key: PRNG key.
        batch: number of sequences B >= 1.
        permuted: read the pixels in the order :data:`DIGITS_PERMUTATION`.
        split: ``"train"`` or ``"test"`` (the held-out images).
        dtype: float dtype of inputs/targets/mask; default float32 (float64 under x64).

    Returns:
        A :class:`Task` with ``inputs`` (B, 64, 1), ``targets`` (B, 64, 10), ``mask``
        (B, 64), ``baseline`` ln 10, ``kind="xent"``.

    Raises:
        ImportError: scikit-learn is missing (``pip install 'gradspec[data]'``).
        ValueError: ``batch < 1``, unknown ``split``.
        TypeError: non-bool ``permuted``, non-float ``dtype``.

    Examples:
        >>> import jax, gradspec.tasks as tasks
        >>> task = tasks.digits(jax.random.key(0), 3, split="test")
        >>> task.inputs.shape, task.targets.shape, round(float(task.baseline), 4)
        ((3, 64, 1), (3, 64, 10), 2.3026)

    References:
        Le, Jaitly & Hinton (2015), A simple way to initialize recurrent networks of
        rectified linear units, arXiv:1504.00941 (pixel-by-pixel and permuted MNIST).
    """
    options = {"permuted": permuted, "split": split}
    return _digits_generator(key, batch, 64, dtype=dtype, **options)


def _digits_generator(key, batch, T, *, dtype=None, permuted=False, split="train"):
    batch = check_int("batch", batch, 1)
    _digits_spec(T, permuted, split)  # generate()'s T: it must be 64
    pixels, labels, _ = _digits_data(split, bool(permuted))
    return _digits(key, pixels, labels, batch, _dtype(dtype))


@functools.partial(jax.jit, static_argnums=(3, 4))
def _digits(key, pixels, labels, batch, dtype):
    # One threefry call; the modulo bias is below n / 2^32.
    index = (jr.bits(key, (batch,), jnp.uint32) % pixels.shape[0]).astype(jnp.int32)
    inputs = (pixels[index].astype(dtype) / 16)[..., None]  # exact: 16 = 2^4
    last = jax.nn.one_hot(labels[index], 10, dtype=dtype)
    targets = jnp.zeros((batch, 64, 10), dtype).at[:, -1].set(last)
    mask = jnp.zeros((batch, 64), dtype).at[:, -1].set(1.0)
    return Task(inputs, targets, mask, jnp.asarray(math.log(10), dtype), "xent")


#: The built-in tasks by name, with their keyword options and defaults (``None``:
#: required), and their generators and specs.
_REGISTRY = {
    "adding": ({}, adding, _adding_spec),
    "copy": ({"alphabet": 8, "length": 10}, copy, _copy_spec),
    "delayed_xor": (
        {"delay": None, "encoding": "sign"}, delayed_xor, _delayed_xor_spec),
    "digits": ({"permuted": False, "split": "train"}, _digits_generator, _digits_spec),
}
TASKS = {name: entry[0] for name, entry in _REGISTRY.items()}
_GENERATORS = {name: entry[1] for name, entry in _REGISTRY.items()}
_SPECS = {name: entry[2] for name, entry in _REGISTRY.items()}


def _check_options(name: str, options: dict) -> dict:
    check_choice("task", name, TASKS)
    unknown = sorted(set(options) - set(TASKS[name]))
    if unknown:
        raise ValueError(
            f"`task_options` for task {name!r} accepts {sorted(TASKS[name])}; "
            f"got unknown {unknown}."
        )
    return {**TASKS[name], **options}


def describe(name: str, T: int, **options) -> TaskSpec:
    """Sizes and baseline of a task without drawing a batch (all checks included).

    Args:
        name: a key of :data:`TASKS`: ``"adding"``, ``"copy"``, ``"delayed_xor"`` or
            ``"digits"``.
        T: the task's T (see each generator; ``"digits"`` requires T = 64).
        **options: the generator's keyword options (``alphabet``, ``length``: copy;
            ``delay``, ``encoding``: delayed_xor; ``permuted``, ``split``: digits).

    Returns:
        A :class:`TaskSpec` of Python numbers.

    Raises:
        ValueError: unknown name or option, missing ``delay``, or an out-of-range size.
        ImportError: ``"digits"`` without scikit-learn (its ``input_power`` is measured
            on the images).

    Examples:
        >>> import gradspec.tasks as tasks
        >>> tasks.describe("copy", 100).length  # T + 2 * 10
        120
    """
    options = _check_options(name, options)  # checks `name` before the lookup
    return _SPECS[name](T, **options)


def generate(name: str, key, batch: int, T: int, *, dtype=None, **options) -> Task:
    """Draw a batch of the task called ``name``; ``generate("adding", ...)`` equals
    ``adding(...)``.

    ``"digits"`` has no T of its own: T must be 64 (its length) and is then dropped,
    ``generate("digits", key, B, 64, **options)`` equals ``digits(key, B, **options)``.

    Examples:
        >>> import jax, gradspec.tasks as tasks
        >>> tasks.generate("adding", jax.random.key(0), 3, 8).kind
        'mse'
    """
    options = _check_options(name, options)
    return _GENERATORS[name](key, batch, T, dtype=dtype, **options)


def loss(task: Task, outputs: jax.Array, *, per_example: bool = False) -> jax.Array:
    r"""The task's loss of model ``outputs``, averaged over the masked positions.

    With mask :math:`m_{bt}` and per-position loss :math:`p_{bt}`

    .. math::
        p_{bt} = \sum_k (y_{btk} - t_{btk})^2 \;(\text{mse}), \qquad
        p_{bt} = -\sum_k t_{btk} \log \mathrm{softmax}(y_{bt})_k \;(\text{xent}),
        \qquad L = \frac{\sum_{bt} m_{bt}\, p_{bt}}{\sum_{bt} m_{bt}}.

    Args:
        task: a :class:`Task` batch.
        outputs: model outputs (B, L, K), same shape as ``task.targets`` (logits for
            ``"xent"``).
        per_example: return :math:`\ell_b = B \sum_t m_{bt} p_{bt} / \sum m`, shape
            (B,), whose mean is L.

    Returns:
        Scalar L (or (B,) per example).

    Examples:
        >>> import jax, jax.numpy as jnp, gradspec.tasks as tasks
        >>> task = tasks.adding(jax.random.key(0), 100_000, 10)
        >>> round(float(tasks.loss(task, jnp.ones_like(task.targets))), 2)  # ~ 1/6
        0.17
    """
    _check_outputs(task, outputs)
    return _loss(task, outputs, per_example)


def _check_outputs(task: Task, outputs) -> None:
    if jnp.shape(outputs) != jnp.shape(task.targets):
        raise ValueError(
            "`outputs` must have the targets' shape "
            f"{jnp.shape(task.targets)} (B, L, K); got {jnp.shape(outputs)}."
        )


def position_loss(kind: str, outputs: jax.Array, targets: jax.Array) -> jax.Array:
    r"""The loss :math:`p` of each position: outputs and targets (..., K) -> (...).

    ``"mse"``: :math:`\sum_k (y_k - t_k)^2`; ``"xent"``: :math:`-\sum_k t_k \log
    \mathrm{softmax}(y)_k` (targets one-hot, outputs logits)."""
    if kind == "mse":
        return jnp.sum((outputs - targets) ** 2, axis=-1)
    return -jnp.sum(targets * jax.nn.log_softmax(outputs, axis=-1), axis=-1)


@functools.partial(jax.jit, static_argnums=2)
def _loss(task, outputs, per_example):
    per_position = position_loss(task.kind, outputs, task.targets)
    weighted = task.mask * per_position
    total = jnp.sum(task.mask)
    if per_example:
        return np.shape(task.mask)[0] * jnp.sum(weighted, axis=1) / total
    return jnp.sum(weighted) / total


def accuracy(task: Task, outputs: jax.Array) -> jax.Array:
    r"""Fraction of the masked positions whose ``argmax(outputs)`` is the target class,
    :math:`\sum_{bt} m_{bt} [\arg\max_k y_{btk} = \arg\max_k t_{btk}] / \sum_{bt}
    m_{bt}`, of the mask's dtype; for the classification ("xent") tasks only (ties go to
    the lowest class, as ``jnp.argmax``). Raises ``ValueError`` for an "mse" ``task``
    or ``outputs`` (logits) not of the targets' shape (B, L, K).

    Examples:
        >>> import jax, gradspec.tasks as tasks
        >>> task = tasks.delayed_xor(jax.random.key(0), 4, 10, delay=2)
        >>> float(tasks.accuracy(task, 5 * task.targets))  # the targets themselves
        1.0
        >>> float(tasks.accuracy(task, -task.targets))  # always the other class
        0.0
    """
    if task.kind != "xent":
        raise ValueError(f"`task` must be a classification ('xent') task for accuracy; "
                         f"got kind={task.kind!r}.")
    _check_outputs(task, outputs)
    return _accuracy(task, outputs)


@jax.jit
def _accuracy(task, outputs):
    hit = jnp.argmax(outputs, axis=-1) == jnp.argmax(task.targets, axis=-1)
    return jnp.sum(task.mask * hit.astype(task.mask.dtype)) / jnp.sum(task.mask)
