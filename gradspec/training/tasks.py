r"""Long-range-dependency tasks with a known chance-level loss.

Each generator draws a whole batch from one PRNG key (same key, same batch) and returns
a :class:`Task`: inputs, per-step targets, a loss mask, the chance-level ``baseline``
loss and the loss ``kind``. The baseline is what a model that ignores the long-range
dependency scores; training outcomes (``solved`` / ``stalled``) are judged against it.

- :func:`adding`: the adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton
  2015, arXiv:1504.00941). Baseline MSE :math:`1/6`.
- :func:`copy`: the copy-memory problem (Arjovsky, Shah & Bengio 2016,
  arXiv:1511.06464). Baseline cross-entropy :math:`m \ln A / (T + 2m)`.

Generators are pure ``jax.random`` code: jit-able with ``batch``, ``T`` and the options
static, and vmap-able over keys.
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
    "generate",
    "describe",
    "loss",
    "position_loss",
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
    return TaskSpec(
        length=T,
        inputs=2,
        outputs=1,
        baseline=1.0 / 6.0,
        kind="mse",
        input_power=1 / 3 + 2 / T,
    )


def _copy_spec(T: int, alphabet: int, length: int) -> TaskSpec:
    T = check_int("T", T, 1)
    alphabet = check_int("alphabet", alphabet, 1)
    length = check_int("length", length, 1)
    total = T + 2 * length
    return TaskSpec(
        length=total,
        inputs=alphabet + 2,
        outputs=alphabet + 2,
        baseline=length * math.log(alphabet) / total,
        kind="xent",
        input_power=1.0,  # one-hot at every step
    )


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


#: The built-in tasks by name, with their keyword options and defaults.
TASKS = {"adding": {}, "copy": {"alphabet": 8, "length": 10}}
_GENERATORS = {"adding": adding, "copy": copy}
_SPECS = {"adding": _adding_spec, "copy": _copy_spec}


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
        name: ``"adding"`` or ``"copy"``.
        T: the task's T (see each generator).
        **options: the generator's keyword options (``alphabet``, ``length`` for copy).

    Returns:
        A :class:`TaskSpec` of Python numbers.

    Raises:
        ValueError: unknown name or option, or an out-of-range size.

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
    if jnp.shape(outputs) != jnp.shape(task.targets):
        raise ValueError(
            "`outputs` must have the targets' shape "
            f"{jnp.shape(task.targets)} (B, L, K); got {jnp.shape(outputs)}."
        )
    return _loss(task, outputs, per_example)


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
