r"""Gradient flossing: push the top Lyapunov exponents towards zero by gradient descent.

Engelken (NeurIPS 2023) trains a recurrent network's own forward dynamics towards the
edge of stability before (and during) task training: the top k Lyapunov exponents of a
short driven trajectory, measured by Benettin's QR sweep, are differentiated through
the QR decompositions and pulled to a target (zero). Exponents near zero mean Jacobian
products that neither vanish nor explode over long horizons, so the task's gradient
reaches back far enough to learn long delays (delayed XOR at d = 20: chance level
without flossing, learnt with pre- and inter-flossing; ``examples/flossing.py``).

.. math::
    \mathcal L_{\mathrm{floss}}(\theta) = \frac1k \sum_{i=1}^{k}
        \big(\lambda_i(\theta) - \lambda^*\big)^2, \qquad
    \lambda_i(\theta) = \frac{1}{T - w} \sum_{t > w} \log |(R_t)_{ii}|, \qquad
    J_t Q_{t-1} = Q_t R_t,

with :math:`J_t = \partial h_t / \partial h_{t-1}` the cell's own step Jacobian
(:math:`\mathrm{diag}(f'(a_t))\, W_{hh}` for the vanilla RNN), T the horizon, w the
warm-up and :math:`\lambda^*` the target. Engelken's code writes the network in its
pre-activations, :math:`x_t = W \phi(x_{t-1}) + \dots`, with Jacobians
:math:`W\,\mathrm{diag}(\phi'(x_{t-1}))` and takes :math:`\mathrm{diag}(\phi'(x_t))\,W`
(the Jacobian of :math:`\phi(x_t)` on :math:`\phi(x_{t-1})`), exactly gradspec's
:math:`J_t`; the two products are conjugate, so their exponents agree. A Jacobian in the
post-activation *state* :math:`\mathrm{diag}(1 - h_t^2)` evaluated at the wrong step
is not; here :math:`\lambda_i` is :func:`gradspec.lyapunov_spectrum` itself.

- :func:`flossing_loss`: :math:`\mathcal L_{\mathrm{floss}}` of given params and drive.
- :func:`floss`: an optax transformation adding ``weight`` times its gradient to the
  task gradient (chain it before clipping and the optimizer).
- :class:`FlossConfig`: pre-flossing, inter-flossing and flossing during training as a
  field of :class:`gradspec.training.TrainConfig`; :func:`gradspec.train` runs them in
  its compiled scan. ``TrainConfig(lyapunov_every=n)`` records the exponents through
  training on the fixed drive :func:`lyapunov_drive`.

References:
    Engelken, R. (2023). Gradient Flossing: Improving Gradient Descent through Dynamic
    Control of Jacobians. NeurIPS 36, arXiv:2312.17306; code:
    github.com/RainerEngelken/GradientFlossing.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jax import lax

from .._checks import check_int
from ..cells import as_cell
from ..measure import lyapunov_spectrum
from ..measure._inputs import check_trajectory_inputs
from . import tasks as _tasks

__all__ = [
    "FlossConfig",
    "FlossState",
    "flossing_loss",
    "floss",
    "task_inputs",
    "lyapunov_drive",
]

#: Seed of :func:`floss`'s default PRNG key (the stream its drives are drawn from).
FLOSS_SEED = 0
#: Seed of the fixed drive of the exponents recorded through training.
LYAPUNOV_SEED = 0
#: Recorded exponents average after the first ``L // LYAPUNOV_WARMUP_DIVISOR`` steps.
LYAPUNOV_WARMUP_DIVISOR = 10
_PHASE_SALT = 0xF1055  # folded into a run's data key: the pre/inter-flossing drives


def _check_real(name: str, value, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"`{name}` must be a number; got {type(value).__name__}.")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"`{name}` must be finite{' and > 0' if positive else ''}; "
                         f"got {value}.")
    return value


def _check_horizon(k: int, T: int, warmup: int) -> tuple[int, int, int]:
    k, T = check_int("k", k, 1), check_int("T", T, 1)
    return k, T, check_int("warmup", warmup, 0, T - 1)


# -- the loss -------------------------------------------------------------------------


def flossing_loss(cell, params, xs, h0=None, *, k: int, warmup: int = 0,
                  target: float = 0.0, key=None) -> jax.Array:
    r"""The flossing loss :math:`\frac1k \sum_{i \le k} (\lambda_i - \lambda^*)^2`.

    :math:`\lambda_1 \ge \dots \ge \lambda_k` are :func:`gradspec.lyapunov_spectrum`
    of ``params`` along ``xs`` (``k`` exponents, the first ``warmup`` steps left out of
    the average); differentiable in ``params`` (reverse mode through the QR sweep).

    Args:
        cell, params: the network (``params``: the cell's own, no readout).
        xs: the drive, (T, D).
        h0: start state (S,); default :func:`gradspec.start_state` of ``params``
            (relaxed from a random state), treated as data: no gradient flows through
            it, as in Engelken's code (a fixed relaxed state). Pass it explicitly to
            differentiate at a fixed start.
        k: exponents flossed, 1 <= k <= S.
        warmup: leading steps left out of the average, 0 <= warmup < T.
        target: :math:`\lambda^*` (0: the edge of stability).
        key: PRNG key of the random orthonormal start frame (the default frame when
            None, as every gradspec measurement).

    Returns:
        Scalar, the params' dtype.

    Examples:
        >>> import jax, jax.numpy as jnp, gradspec
        >>> from gradspec.training.flossing import flossing_loss
        >>> cell = gradspec.cells.RNN("linear")
        >>> params = {"W_hh": 0.5 * jnp.eye(3), "W_xh": jnp.zeros((3, 1)),
        ...           "b": jnp.zeros(3)}
        >>> loss = flossing_loss(cell, params, jnp.zeros((20, 1)), k=2)
        >>> round(float(loss), 4)  # (log 0.5)^2
        0.4805
        >>> xs = jnp.zeros((20, 1))
        >>> g = jax.grad(flossing_loss, argnums=1)(cell, params, xs, k=2)
        >>> round(float(jnp.trace(g["W_hh"])), 3)  # d/dc (log c)^2 = 2 log(c)/c at 0.5
        -2.773
    """
    cell = as_cell(cell)
    if h0 is None:  # the default start, of params held fixed
        _, _, h0 = check_trajectory_inputs(cell, lax.stop_gradient(params), xs, None)
    lam = lyapunov_spectrum(cell, params, xs, h0, k=k, warmup=warmup, key=key)
    return jnp.mean((lam - target) ** 2)


# -- the optax transformation ---------------------------------------------------------


class FlossState(NamedTuple):
    """State of :func:`floss`."""

    count: jax.Array  # () int32, updates seen
    key: jax.Array  # (2,) uint32, raw PRNG key data of the next drive
    loss: jax.Array  # () the flossing loss at the last flossing update; NaN before


def _key_data(key) -> jax.Array:
    if jnp.issubdtype(jnp.result_type(key), jax.dtypes.prng_key):
        return jr.key_data(key)
    return jnp.asarray(key, jnp.uint32)


def _part(params, part):
    if part is None:
        return params
    if not isinstance(params, dict) or part not in params:
        keys = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"`params` must be a dict holding the cell's params under "
                         f"{part!r} (part={part!r}); got {keys}. Pass part=None when "
                         "the params are the cell's own.")
    return params[part]


def floss(
    cell,
    sample_inputs: Callable[[jax.Array, int], jax.Array],
    *,
    k: int,
    T: int,
    warmup: int,
    target: float = 0.0,
    weight: float = 1.0,
    every: int = 1,
    part: str | None = "cell",
    key=None,
) -> optax.GradientTransformationExtraArgs:
    r"""Gradient flossing as an optax transformation: adds
    :math:`w \nabla_\theta \mathcal L_{\mathrm{floss}}` to the incoming (task) gradient.

    .. math::
        g \leftarrow g + w\, \nabla_\theta\, \frac1k \sum_{i=1}^{k}
            \big(\lambda_i(\theta; x_{1:T}) - \lambda^*\big)^2
        \quad \text{on updates } n \equiv 0 \pmod{\texttt{every}},

    with a fresh drive :math:`x_{1:T}` = ``sample_inputs(key_n, T)`` per flossing update
    (its PRNG key lives in the optax state), :math:`\lambda_i` as in
    :func:`flossing_loss` (start state relaxed from the params, the default frame),
    w = ``weight``, :math:`\lambda^*` = ``target``. Only the cell's params (``part``)
    get a flossing gradient; every other leaf (the readout) gets exactly zero. Chain it
    first: ``optax.chain(floss(...), optax.clip_by_global_norm(1.0), optax.adam(1e-3))``
    (the clip then sees the sum); alone before an optimizer, with zero task gradients,
    it is Engelken's pre-flossing.

    A flossing gradient that is not finite (a frame image of rank < k: more than
    S - k units saturated to slope exactly 0 along the drive) is skipped (zero); its
    loss stays in the state (``inf``). ``update`` needs ``params``. With
    ``every > 1`` under ``jax.vmap`` over optimizer states the update counter is
    batched, so ``lax.cond`` becomes a select and the flossing gradient is computed
    at every update (and used every ``every``).

    Args:
        cell: the recurrent cell.
        sample_inputs: ``(key, T) -> xs`` (T, D), the drive; :func:`task_inputs` makes
            one from a task.
        k, T, warmup, target: as in :func:`flossing_loss` (T: the horizon).
        weight: w, the flossing gradient's scale.
        every: floss on every ``every``-th update (>= 1).
        part: the key of the cell's params in the params dict (``"cell"``, the layout
            of :func:`gradspec.train`); None when the params are the cell's own.
        key: PRNG key of the drives; ``key(FLOSS_SEED)`` when None.

    Returns:
        An ``optax.GradientTransformationExtraArgs``, state :class:`FlossState`.

    Raises:
        TypeError: ``sample_inputs`` not callable, non-int sizes.
        ValueError: sizes out of range; at ``update``: no ``params``, or ``params``
            without ``part``.

    Examples:
        >>> import jax, jax.numpy as jnp, optax, gradspec
        >>> from gradspec.training.flossing import floss, task_inputs
        >>> cell = gradspec.cells.RNN("tanh")
        >>> params = {"cell": cell.init(jax.random.key(0), 8, 1)}
        >>> opt = optax.chain(floss(cell, task_inputs("delayed_xor", 10, delay=2), k=2,
        ...                         T=30, warmup=5), optax.adam(1e-2))
        >>> state = opt.init(params)
        >>> zero = jax.tree.map(jnp.zeros_like, params)
        >>> updates, state = opt.update(zero, state, params)
        >>> bool(state[0].loss > 0), updates["cell"]["W_hh"].shape
        (True, (8, 8))
    """
    cell = as_cell(cell)
    if not callable(sample_inputs):
        raise TypeError("`sample_inputs` must be a function (key, T) -> xs (T, D); got "
                        f"{type(sample_inputs).__name__}.")
    k, T, warmup = _check_horizon(k, T, warmup)
    target, weight = _check_real("target", target), _check_real("weight", weight)
    every = check_int("every", every, 1)
    key0 = _key_data(jr.key(FLOSS_SEED) if key is None else key)

    def loss_and_grad(cell_params, state_key):
        xs = sample_inputs(jr.wrap_key_data(state_key), T)
        loss, g = jax.value_and_grad(flossing_loss, argnums=1)(
            cell, cell_params, xs, k=k, warmup=warmup, target=target)
        # A frame image of rank < k (more than S - k units saturated to slope exactly
        # 0) has log|R_ii| = -inf and a NaN derivative: skip that step, keep its loss.
        finite = jnp.isfinite(loss) & jnp.all(jnp.asarray(
            [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(g)]))
        return loss, jax.tree_util.tree_map(lambda x: jnp.where(finite, x, 0), g)

    def init_fn(params):
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(_part(params, part)))
        return FlossState(jnp.zeros((), jnp.int32), key0, jnp.asarray(jnp.nan, dtype))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("`params` is required: floss differentiates the network "
                             "itself; call update(grads, state, params).")
        cell_params = _part(params, part)
        next_key, this_key = jr.split(jr.wrap_key_data(state.key))
        if every == 1:
            loss, g = loss_and_grad(cell_params, jr.key_data(this_key))
        else:
            loss, g = lax.cond(
                state.count % every == 0, loss_and_grad,
                lambda p, _: (state.loss, jax.tree_util.tree_map(jnp.zeros_like, p)),
                cell_params, jr.key_data(this_key))
        if part is not None:  # exactly zero on everything but the cell
            zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
            g = {**zeros, part: g}
        updates = jax.tree_util.tree_map(lambda u, d: u + weight * d, updates, g)
        return updates, FlossState(state.count + 1, jr.key_data(next_key), loss)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def task_inputs(task: str, T: int, *, dtype=None, **options) -> Callable:
    """The drive of a task as :func:`floss`'s ``sample_inputs``: any horizon H from
    ceil(H / L) independent sequences of the task (length L each) laid end to end and
    cut to H steps; for i.i.d.-bit tasks such as delayed XOR that is the task itself at
    length H.

    Args:
        task, T, **options: as :func:`gradspec.tasks.generate` takes them.
        dtype: the drive's dtype (float32, or float64 under x64, when None).

    Returns:
        ``sample_inputs(key, H) -> xs`` (H, D).

    Examples:
        >>> import jax
        >>> from gradspec.training.flossing import task_inputs
        >>> task_inputs("adding", 10)(jax.random.key(0), 25).shape
        (25, 2)
    """
    spec = _tasks.describe(task, T, **options)

    def sample(key, horizon: int) -> jax.Array:
        n = -(-horizon // spec.length)
        xs = _tasks.generate(task, key, n, T, dtype=dtype, **options).inputs
        return xs.reshape(n * spec.length, spec.inputs)[:horizon]

    return sample


# -- in training ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class FlossConfig:
    r"""Gradient flossing in :func:`gradspec.train` (``TrainConfig(flossing=...)``).

    Hashable plain data. Three schedules, in any combination (Engelken 2023, Sec. 4):

    - **pre-flossing**: ``pre_steps`` flossing steps before the first training step;
    - **inter-flossing**: ``during_steps`` flossing steps before each training step in
      ``during`` (steps the run never reaches are ignored);
    - **flossing during training**: every ``every`` steps, ``weight`` times the
      flossing gradient joins the task gradient (:func:`floss` chained before the
      clipping and the optimizer).

    A flossing step draws a fresh drive of T steps from the task
    (:func:`task_inputs`) and takes one step of the run's optimizer (its own state, no
    clipping, as in Engelken's code) on :math:`\nabla \mathcal L_{\mathrm{floss}}`
    of the cell's params; the readout is never flossed. Each seed draws its own
    phase drives; flossing during training draws its drives from ``floss``'s default
    key, the same stream for every seed.

    Attributes:
        k: exponents flossed, 1 <= k <= state size.
        T: horizon of the flossing sweep.
        warmup: leading steps of the horizon left out of the average.
        target: :math:`\lambda^*`.
        pre_steps: E_p >= 0.
        during: training steps (>= 0) before which inter-flossing runs.
        during_steps: E_i >= 1 when ``during`` is given.
        every: 0 (off) or the interval of flossing during training.
        weight: the flossing gradient's scale during training (> 0).
        learning_rate: the phases' learning rate; None: the run's (as Engelken's
            code). On delayed XOR with 0/1 bits (N = 64, k = 32, horizon 150,
            ``examples/flossing.py``) 300 Adam steps at 1e-3 take lambda_1 from -0.34
            to -0.007 (mean lambda_i^2 of the 32: 0.0016); at 1e-2 the flossing loss
            first falls, then diverges (lambda_32 ~ -4 after 200 steps).

    Examples:
        >>> from gradspec.training import FlossConfig
        >>> FlossConfig(k=32, T=150, warmup=20, pre_steps=300).during
        ()
    """

    k: int = 1
    T: int = 100
    warmup: int = 10
    target: float = 0.0
    pre_steps: int = 0
    during: Sequence[int] = ()
    during_steps: int = 0
    every: int = 0
    weight: float = 1.0
    learning_rate: float | None = None

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        k, T, warmup = _check_horizon(self.k, self.T, self.warmup)
        set_("k", k), set_("T", T), set_("warmup", warmup)
        set_("target", _check_real("target", self.target))
        set_("pre_steps", check_int("pre_steps", self.pre_steps, 0))
        during = self.during
        if isinstance(during, (str, bytes)) or not isinstance(during, Sequence):
            raise TypeError(f"`during` must be a sequence of steps; got {during!r}.")
        set_("during", tuple(sorted({check_int(f"during[{i}]", s, 0)
                                     for i, s in enumerate(self.during)})))
        set_("during_steps", check_int("during_steps", self.during_steps, 0))
        if self.during and not self.during_steps:
            raise ValueError("`during_steps` must be >= 1 when `during` is given; "
                             "got 0.")
        set_("every", check_int("every", self.every, 0))
        set_("weight", _check_real("weight", self.weight, positive=True))
        if self.learning_rate is not None:
            set_("learning_rate", _check_real("learning_rate", self.learning_rate,
                                              positive=True))

    @property
    def phases(self) -> bool:
        """Whether pre- or inter-flossing runs."""
        return bool(self.pre_steps or self.during)


def _sampler(config) -> Callable:
    return task_inputs(config.task, config.T, dtype=config.dtype,
                       **dict(config.task_options))


def during_training(config) -> optax.GradientTransformation | None:
    """The :func:`floss` of ``config.flossing.every``, or None (``config``: a
    :class:`TrainConfig`)."""
    fc = config.flossing
    if fc is None or not fc.every:
        return None
    return floss(config.make_cell(), _sampler(config), k=fc.k, T=fc.T, warmup=fc.warmup,
                 target=fc.target, weight=fc.weight, every=fc.every)


def _phase_optimizer(config, key=None) -> optax.GradientTransformation:
    """Flossing alone on the cell's params: :func:`floss` then the run's optimizer."""
    fc = config.flossing
    rate = fc.learning_rate or config.learning_rate
    step = getattr(optax, config.optimizer)(rate, **dict(config.optimizer_options))
    flossed = floss(config.make_cell(), _sampler(config), k=fc.k, T=fc.T,
                    warmup=fc.warmup, target=fc.target, part=None, key=key)
    return optax.chain(flossed, step)


def init_phases(config, cell_params, k_data) -> Any:
    """The pre/inter-flossing optimizer state of one run, () without phases."""
    if config.flossing is None or not config.flossing.phases:
        return ()
    return _phase_optimizer(config, jr.fold_in(k_data, _PHASE_SALT)).init(cell_params)


def run_phases(config, params, state, step):
    """(params, state) after the flossing phase scheduled before training ``step``
    (``step`` is the scan's unbatched counter, so under the seeds' vmap this stays a
    branch: the other steps pay nothing)."""
    fc = config.flossing
    if fc is None or not fc.phases:
        return params, state
    optimizer = _phase_optimizer(config)

    def run(n, carry):
        def body(carry, _):
            p, s = carry
            zeros = jax.tree_util.tree_map(jnp.zeros_like, p)  # flossing alone
            # optax mixes Python floats with int32 counts, which strict promotion
            # rejects (as in the training step; params keep their dtype).
            with jax.numpy_dtype_promotion("standard"):
                updates, s = optimizer.update(zeros, s, p)
            return (optax.apply_updates(p, updates), s), None

        return lax.scan(body, carry, None, length=n)[0]

    carry = params["cell"], state
    if fc.pre_steps:
        carry = lax.cond(step == 0, lambda c: run(fc.pre_steps, c), lambda c: c, carry)
    if fc.during:
        now = jnp.any(step == jnp.asarray(fc.during))
        carry = lax.cond(now, lambda c: run(fc.during_steps, c), lambda c: c, carry)
    return dict(params, cell=carry[0]), carry[1]


def lyapunov_drive(config) -> jax.Array:
    """The fixed drive (L, D) of the exponents :func:`gradspec.train` records
    (``TrainConfig(lyapunov_every=n)``): the first sequence of the task's batch drawn
    with ``key(LYAPUNOV_SEED)``. A record is ``gradspec.lyapunov_spectrum(cell,
    params["cell"], lyapunov_drive(config), k=config.lyapunov_k, warmup=L // 10)``.

    Examples:
        >>> from gradspec.training import TrainConfig, lyapunov_drive
        >>> lyapunov_drive(TrainConfig(task="adding", T=20)).shape
        (20, 2)
    """
    batch = _tasks.generate(config.task, jr.key(LYAPUNOV_SEED), 1, config.T,
                            dtype=config.dtype, **dict(config.task_options))
    return batch.inputs[0]


def record_lyapunov(config, cell_params, step) -> jax.Array:
    """The top ``config.lyapunov_k`` exponents on :func:`lyapunov_drive` at steps
    0, n, 2n, ... (n = ``config.lyapunov_every``), NaN (k,) at the others."""
    xs = lyapunov_drive(config)
    k, warmup = config.lyapunov_k, xs.shape[0] // LYAPUNOV_WARMUP_DIVISOR

    def measure():
        return lyapunov_spectrum(config.make_cell(), cell_params, xs, k=k, warmup=warmup)

    return lax.cond(step % config.lyapunov_every == 0, measure,
                    lambda: jnp.full((k,), jnp.nan, xs.dtype))


def lyapunov_records(config, record: dict, seeds) -> tuple[jax.Array, tuple]:
    """(exponents (..., n_records, k), the steps they were taken at) out of the
    per-step records of a run (``record["lyapunov"]``, (..., steps, k), if recorded)."""
    n = config.lyapunov_every
    steps = tuple(range(0, config.steps, n)) if n else ()
    if n:
        return record.pop("lyapunov")[..., ::n, :], steps
    lead = () if seeds is None else (len(seeds),)
    dtype = record["loss"].dtype
    return jnp.zeros((*lead, 0, config.lyapunov_k), dtype), steps
