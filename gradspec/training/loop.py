r"""Training on long-range tasks: does the predicted vanishing or explosion show up?

:func:`train` fits a cell plus a linear readout to a task from :mod:`gradspec.tasks`
with an optax optimizer, and reports, per step, the loss, the global gradient norm and
the *observed* gradient profile: the norm of :math:`\partial \ell_b / \partial h_{L-k}`
at a few lags k, the same quantity :func:`gradspec.gradient_profile` measures from the
Jacobian product. The run ends ``solved``, ``stalled`` or ``diverged`` relative to the
task's chance-level loss.

How the observed profile is free: every state gets an additive perturbation
:math:`\varepsilon_t = 0`, :math:`h_t = F(h_{t-1}, x_t) + \varepsilon_t`, so the
gradient w.r.t. :math:`\varepsilon_t` *is* :math:`\partial L / \partial h_t` (the
total derivative through all later steps). Reverse mode computes those cotangents
anyway to get the parameter gradient, so one ``jax.value_and_grad`` yields both.

Speed: one ``jax.jit``-compiled step, ``jax.lax.scan`` over steps (in chunks, so a
progress bar can move between them), ``jax.vmap`` over seeds. RNN and LSTM batches run
through :mod:`gradspec.training.recurrence` (input projection hoisted out of the time
scan, a hand-written reverse pass whose weight gradient is one product after it, as
PyTorch does); other cells through autodiff of their per-example scan. Remedies are
options of :class:`TrainConfig`: gradient clipping, truncated BPTT, LSTM/GRU cells,
orthogonal / identity / critical initialization, ReLU.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jax import lax

from .._checks import check_int
from ..cells import _default_dtype
from . import flossing as _flossing
from . import recurrence as _recurrence
from . import tasks as _tasks
from .config import _MAX_SEED, TrainConfig, _check_ints, _make_optimizer
from .result import TrainResult, _outcome
from .start import check_given, starting_params

__all__ = ["train", "init_params", "task_batch", "apply"]


def _optax_promotion():
    # optax mixes Python floats with int32 step counts (``decay ** count``), which
    # jax_numpy_dtype_promotion="strict" rejects; the optimizer runs under standard
    # promotion (params keep their dtype either way: the float64 scalars are weak).
    return jax.numpy_dtype_promotion("standard")


def _resolve(config: TrainConfig) -> tuple[TrainConfig, TrainConfig]:
    """Check ``config`` at the boundary; return the two configs the compiled functions
    are keyed on, each with the fields it ignores fixed so that runs differing only
    there share one compile: (init: params and optimizer state; step: the training
    step). Seed, steps and the outcome threshold matter to neither."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"`config` must be a TrainConfig; got {type(config).__name__}.")
    dtype = _default_dtype(config.dtype).name
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "`dtype`='float64' needs `jax.config.update('jax_enable_x64', True)`; "
            "it is off."
        )
    common = dataclasses.replace(config, seed=0, steps=1, solved_below=0.1, dtype=dtype)
    for_init = dataclasses.replace(common, batch=1, tbptt=0, lags=(0,), lyapunov_every=0,
                                   lyapunov_k=1)
    for_step = dataclasses.replace(common, init="default", gain=1.0, gates=(), forget_bias=0.0)
    return for_init, for_step


# -- the model ------------------------------------------------------------------------


def _readout(config: TrainConfig, params, hs):
    """Outputs (..., K) of states hs (..., S): the readout reads the visible part."""
    cell = config.make_cell()
    n_out = cell.output_size(cell.state_size(config.hidden))
    b = params["readout"]["b"]
    return hs[..., :n_out] @ params["readout"]["W"].T + b.reshape((1,) * (hs.ndim - 1) + b.shape)


def _forward(config: TrainConfig, params, xs, eps):
    """Outputs (L, K) and states h_1..h_L (L, S) for one sequence xs (L, D); eps
    (L + 1, S) is added to h_0..h_L (zeros: its gradient is dL/dh_t)."""
    cell = config.make_cell()
    L, w = xs.shape[0], config.tbptt

    def cut(t, h):
        # Truncated BPTT: no gradient flows from the steps after t into h_t.
        if not w:
            return h
        return jnp.where((L - t) % w == 0, lax.stop_gradient(h), h)

    def body(h, inputs):
        t, x, e = inputs
        h = cell.step(params["cell"], h, x) + e  # the zero perturbation: d/de = dL/dh_t
        return cut(t, h), h

    h0 = cut(0, eps[0])  # h_0 = 0 + eps_0
    _, hs = lax.scan(body, h0, (jnp.arange(1, L + 1), xs, eps[1:]))
    return _readout(config, params, hs), hs


def _forward_batch(config: TrainConfig, params, xs, eps):
    """Outputs (B, L, K) and states h_1..h_L (L, B, S), time first, of a batch xs
    (B, L, D); eps (L + 1, B, S) as in :func:`_forward`. Cells that split their step
    (:func:`recurrence.has_fast_path`) take the hand-written reverse pass, the others
    ``jax.vmap`` of :func:`_forward`: the same numbers to rounding."""
    cell, L, w = config.make_cell(), xs.shape[1], config.tbptt
    if _recurrence.has_fast_path(cell):
        t = np.arange(L + 1)
        keep = jnp.asarray((L - t) % w != 0 if w else np.ones(L + 1, bool))  # cut()
        hs = _recurrence.hidden_states(cell, params["cell"], jnp.swapaxes(xs, 0, 1),
                                       eps, keep)
    else:
        hs = jax.vmap(lambda x, e: _forward(config, params, x, e)[1],
                      in_axes=(0, 1), out_axes=1)(xs, eps)
    return jnp.swapaxes(_readout(config, params, hs), 0, 1), hs


@functools.partial(jax.jit, static_argnums=0)
def _apply(config, params, xs, eps):
    return _forward(config, params, xs, eps)[0]


def _log_transported(config: TrainConfig, params, xs, hs, target):
    r"""log ||d p_L / d h_{L-k}|| for k = 0..K (K = max lag) of one sequence: the
    gradient of the last position's loss carried back through the recurrence alone.

    :math:`v_0 = \partial p_L / \partial h_L` through the readout, then
    :math:`v_{k+1} = v_k J_{L-k}` by the cell's own vjp along the run's states
    (no truncation: it is the network's transport, whatever ``tbptt`` cuts)."""
    cell, K, L = config.make_cell(), max(config.lags), xs.shape[0]
    kind = config.spec.kind
    v0 = jax.grad(lambda h: _tasks.position_loss(kind, _readout(config, params, h), target))(
        hs[-1])
    prev = jnp.concatenate([jnp.zeros_like(hs[:1]), hs[:-1]])  # h_{t-1} for t = 1..L

    def back(v, inputs):
        h_prev, x = inputs
        return cell.vjp(params["cell"], h_prev, x, v), _log_norm(v, -1)

    v_K, logs = lax.scan(back, v0, (prev[L - K:][::-1], xs[L - K:][::-1]))
    return jnp.concatenate([logs, _log_norm(v_K, -1)[None]])


def _keys(seed):
    k_params, k_data = jr.split(jr.key(seed))
    return k_params, k_data


def _batch(config: TrainConfig, k_data, step) -> _tasks.Task:
    return _tasks.generate(
        config.task,
        jr.fold_in(k_data, step),
        config.batch,
        config.T,
        dtype=config.dtype,
        **dict(config.task_options),
    )


@functools.partial(jax.jit, static_argnums=0)
def _task_batch(config, seed, step):
    return _batch(config, _keys(seed)[1], step)


def _log_norm(x, axis):
    """log ||x|| along ``axis``, scaled by max|x| first so tiny or huge entries do not
    under/overflow when squared; -inf for an exactly zero vector."""
    m = jnp.max(jnp.abs(x), axis=axis, keepdims=True)
    r = jnp.linalg.norm(x / jnp.where(m > 0, m, 1), axis=axis)
    return jnp.log(jnp.squeeze(m, axis)) + jnp.log(r)


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return functools.reduce(jnp.logical_and, leaves, jnp.asarray(True))


def _global_norm(tree):
    # Not optax.tree.norm alone: it squares the raw entries, so a float32 gradient past
    # ~1e19 (an exploding run, the case worth recording) would read inf. Scale first.
    m = optax.tree.norm(tree, ord="inf")
    s = jnp.where(m > 0, m, 1)
    return m * optax.tree.norm(jax.tree_util.tree_map(lambda x: x / s, tree))


def _batch_accuracy(config: TrainConfig, batch, outputs, alive):
    """Accuracy of a classification batch (before the step's update); NaN for MSE tasks."""
    dtype = jnp.dtype(config.dtype)
    if config.spec.kind != "xent":
        return jnp.asarray(jnp.nan, dtype)
    return jnp.where(alive, _tasks.accuracy(batch, outputs).astype(dtype), jnp.nan)


def _heldout_accuracy(config: TrainConfig, params, seeds):
    """Accuracy of the final params on one batch of the task's held-out split (tasks
    with a ``split`` option, e.g. digits; 1024 examples); NaN otherwise."""
    if "split" not in _tasks.TASKS[config.task] or config.spec.kind != "xent":
        return jnp.full(jnp.shape(seeds), jnp.nan)
    options = {**dict(config.task_options), "split": "test"}
    test = dataclasses.replace(_resolve(config)[1], task_options=options, batch=1024)
    batch = _task_batch(test, jnp.asarray(config.seed, jnp.uint32), 0)
    def one(p):
        size = config.make_cell().state_size(config.hidden)
        zeros = jnp.zeros((batch.inputs.shape[1] + 1, size), batch.inputs.dtype)
        outputs = jax.vmap(lambda xs: _apply(test, p, xs, zeros))(batch.inputs)
        return _tasks.accuracy(batch, outputs)

    return jax.vmap(one)(params) if jnp.ndim(seeds) else one(params)


def _train_step(config: TrainConfig, optimizer, carry, step):
    start, opt_state, alive, k_data, floss_state = carry
    # Scheduled pre/inter-flossing first; the exponents are recorded after it.
    params, new_floss_state = _flossing.run_phases(config, start, floss_state, step)
    if config.lyapunov_every:
        lyap = _flossing.record_lyapunov(config, params["cell"], step)
    dtype = jnp.dtype(config.dtype)
    batch = _batch(config, k_data, step)
    B, L = config.batch, config.spec.length
    cell = config.make_cell()
    eps = jnp.zeros((L + 1, B, cell.state_size(config.hidden)), dtype)

    def objective(params, eps):
        outputs, hs = _forward_batch(config, params, batch.inputs, eps)
        return _tasks.loss(batch, outputs), (outputs, hs)

    (loss, (outputs, hs)), (grads, g_eps) = jax.value_and_grad(
        objective, argnums=(0, 1), has_aux=True)(params, eps)
    # g_eps[t, b] = dL/dh_t of example b = (1/B) d l_b / d h_t, with mean_b l_b = L.
    # Only the recorded states: h_0, then h_{L-k} for k in lags.
    t = np.concatenate([[0], L - np.asarray(config.lags)])
    log_g = jnp.mean(_log_norm(g_eps[t], -1), axis=1) + math.log(B)

    def transported():
        one = functools.partial(_log_transported, config, params)
        logs = jax.vmap(one, in_axes=(0, 1, 0))(batch.inputs, hs, batch.targets[:, -1])
        logs = logs[:, np.asarray(config.lags)]
        # Examples whose gradient is exactly zero (a saturated softmax that already
        # predicts its target, dead ReLUs) carry no rate: average over the finite ones.
        finite = jnp.isfinite(logs)
        count = jnp.sum(finite, axis=0).astype(logs.dtype)
        mean = jnp.sum(jnp.where(finite, logs, 0), axis=0) / jnp.maximum(count, 1)
        return jnp.where(count > 0, mean, -jnp.inf)

    # Every record_every steps (the step counter is not batched, so under the seeds'
    # vmap this stays a branch and the other steps pay nothing).
    log_tr = lax.cond(step % config.record_every == 0, transported,
                      lambda: jnp.full(len(config.lags), jnp.nan, dtype))
    with _optax_promotion():
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    finite = jnp.isfinite(loss) & _all_finite(grads) & _all_finite(new_params)
    ok = alive & finite  # once non-finite, the params freeze at their last finite value

    def keep(new, old):
        return jnp.where(ok, new, old)

    params = jax.tree_util.tree_map(keep, new_params, start)
    opt_state = jax.tree_util.tree_map(keep, new_opt_state, opt_state)
    floss_state = jax.tree_util.tree_map(keep, new_floss_state, floss_state)
    nan = jnp.asarray(jnp.nan, dtype)
    record = {
        "loss": jnp.where(alive, loss, nan),
        "grad_norm": jnp.where(alive, _global_norm(grads), nan),
        "log_grad_h0": jnp.where(alive, log_g[0], nan),
        "log_grad_lags": jnp.where(alive, log_g[1:], nan),
        "log_transported": jnp.where(alive, log_tr, nan),
        "accuracy": _batch_accuracy(config, batch, outputs, alive),
        "finite": ok,
    }
    if config.lyapunov_every:
        record["lyapunov"] = jnp.where(alive, lyap, nan)
    return (params, opt_state, ok, k_data, floss_state), record


@functools.partial(jax.jit, static_argnames=("config", "vmapped"))
def _init_carry(config, seeds, vmapped, given):
    def one(seed):
        k_params, k_data = _keys(seed)
        params = starting_params(config, k_params, given)
        with _optax_promotion():
            opt_state = _make_optimizer(config).init(params)
            floss_state = _flossing.init_phases(config, params["cell"], k_data)
        return params, opt_state, jnp.asarray(True), k_data, floss_state

    return (jax.vmap(one) if vmapped else one)(seeds)


@functools.partial(jax.jit, static_argnames=("config", "length", "vmapped"))
def _run_chunk(config, carry, start, length, vmapped):
    body = functools.partial(_train_step, config, _make_optimizer(config))
    steps = start + jnp.arange(length)

    def run(carry):
        return lax.scan(body, carry, steps)

    return (jax.vmap(run) if vmapped else run)(carry)


def _progress_bar(progress: bool, total: int):
    if not progress:
        return None
    try:  # tqdm is optional: no bar without it
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="train", unit="step")


# -- public API -----------------------------------------------------------------------


def train(
    config: TrainConfig,
    *,
    params=None,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
) -> TrainResult:
    r"""Train ``config``'s cell + linear readout on its task; report what gradients did.

    Each step draws a fresh batch, computes the task loss of the readout
    :math:`y_t = W h_t + b` (h: the cell's visible output), takes one optax step and
    records the loss, the global gradient norm and two gradient profiles over the lags
    k in ``config.lags`` (B = ``config.batch``, L = sequence length):

    .. math::
        \log \tau_k = \frac1B \sum_b \log \Big\|
            \frac{\partial p_{b,L}}{\partial h_{b,L}}\, J_{b,L} \cdots J_{b,L-k+1}
            \Big\| \quad (\texttt{log\_transported}), \qquad
        \log g_k = \frac1B \sum_b \log \Big\|
            \frac{\partial \ell_b}{\partial h_{b,L-k}} \Big\|
            \quad (\texttt{log\_grad\_lags}).

    :math:`\tau_k` is the *transported* gradient: the loss :math:`p_{b,L}` of the last
    position (every task puts loss there) carried back through the recurrence alone
    (the mean runs over the examples where it is nonzero: a softmax saturated on its
    target gives an exactly zero gradient, which has no rate);
    it is the batch mean of :func:`gradspec.gradient_profile` at lag k with
    ``readout`` :math:`= \partial p_{b,L} / \partial h_L`, and the quantity that
    decides whether a dependency k steps long can be learned (:func:`gradspec.verify`
    reads its rate). :math:`g_k` is the total derivative of the example's whole loss
    :math:`\ell_b`; where the loss has many positions (copy) the local terms dominate
    it at every lag, so its slope says little about memory. For the adding task (loss
    at the last step only) the two coincide up to the constant factor of the mean.

    Outcomes, judged against the task's chance-level loss ``baseline``:

    - ``"diverged"``: some step had a non-finite loss, gradient or updated parameter.
      Detected inside the compiled step; from then on the params stay at their last
      finite value and the recorded metrics are NaN. Never raises.
    - ``"solved"``: no divergence and final loss (mean over the last
      ceil(steps/10) steps) < ``config.solved_below`` x baseline (default 0.1: adding
      MSE < 1/60; copy cross-entropy < 0.1 m ln A / (T + 2m)).
    - ``"improving"``: not solved, but still learning at the end: the mean loss of
      the last tenth of the steps is at least 5% below that of the tenth before
      (``result.IMPROVING_DROP``); a longer run may solve it.
    - ``"stalled"``: anything else, including exploded-but-finite losses.

    Gradient flossing (``config.flossing``, :class:`FlossConfig`) runs inside the same
    compiled scan: pre-/inter-flossing phases before their steps, flossing during
    training in the optimizer chain. ``config.lyapunov_every`` records the top
    exponents (:attr:`TrainResult.lyapunov`, at :attr:`TrainResult.lyapunov_steps`).

    Args:
        config: a :class:`TrainConfig`.
        params: the params to start from instead of the config's init: ``{"cell":
            ..., "readout": {"W", "b"}}`` as :func:`init_params` returns, or the cell's
            params alone (``{"cell": ...}`` or the bare dict), when the readout is drawn
            as usual. Every seed starts from them (the seeds' data streams differ).
        seeds: ``None`` trains ``config.seed``; a sequence of seeds trains them all at
            once with ``jax.vmap`` (each its own params and data stream) and gives every
            array a leading seed axis. Seed s gives the same run as
            ``train(replace(config, seed=s))``.
        progress: show a tqdm bar if tqdm is installed (updated between chunks).
        chunk_size: steps per compiled ``lax.scan`` chunk; default all steps at once
            without a bar, about 1/20 of them with one. Results do not depend on it.

    Returns:
        A :class:`TrainResult`.

    Raises:
        TypeError: ``config`` is not a :class:`TrainConfig`, or a seed is not an int.
        ValueError: empty or out-of-range ``seeds``, ``chunk_size < 1``, float64
            without x64.

    Examples:
        >>> from gradspec.training import TrainConfig, train
        >>> config = TrainConfig(hidden=8, T=10, batch=16, steps=20)
        >>> result = train(config, seeds=[0, 1], progress=False)
        >>> result.loss.shape, result.log_grad_lags.shape, len(result.outcome)
        ((2, 20), (2, 20, 5), 2)
    """
    for_init, for_step = _resolve(config)
    given = check_given(config, params)
    if seeds is None:
        seed_array, vmapped = jnp.asarray(config.seed, jnp.uint32), False
    else:
        seeds = _check_ints("seeds", seeds, 0, _MAX_SEED)
        seed_array, vmapped = jnp.asarray(seeds, jnp.uint32), True
    bar = _progress_bar(progress, config.steps)
    if chunk_size is None:
        chunk_size = (
            config.steps if bar is None else max(1, math.ceil(config.steps / 20))
        )
    chunk_size = check_int("chunk_size", chunk_size, 1)

    carry = _init_carry(for_init, seed_array, vmapped, given)
    records, start = [], 0
    while start < config.steps:  # a loop over chunks of steps, not over time
        length = min(chunk_size, config.steps - start)
        carry, record = _run_chunk(for_step, carry, start, length, vmapped)
        records.append(record)
        start += length
        if bar is not None:
            bar.update(length)
            bar.set_postfix(loss=float(np.nanmean(np.asarray(record["loss"])[..., -1])))
    if bar is not None:
        bar.close()
    axis = 1 if vmapped else 0
    record = {
        k: jnp.concatenate([r[k] for r in records], axis=axis) for k in records[0]
    }
    lyapunov, lyapunov_steps = _flossing.lyapunov_records(config, record, seeds)

    baseline = config.spec.baseline
    loss, finite = np.asarray(record["loss"]), np.asarray(record["finite"])
    runs = zip(loss.reshape(-1, config.steps), finite.reshape(-1, config.steps))
    final, diverged_at, outcome = zip(
        *(_outcome(lo, fi, baseline, config.solved_below) for lo, fi in runs)
    )
    if not vmapped:  # one run: scalars, not a seed axis
        final, diverged_at, outcome = final[0], diverged_at[0], outcome[0]
    return TrainResult(
        **record,
        heldout_accuracy=jnp.asarray(_heldout_accuracy(config, carry[0], seed_array), loss.dtype),
        final_loss=jnp.asarray(final, loss.dtype),
        diverged_at=jnp.asarray(diverged_at, jnp.int32),
        params=carry[0],
        lyapunov=lyapunov,
        lyapunov_steps=lyapunov_steps,
        config=config,
        lags=config.lags,
        baseline=baseline,
        outcome=outcome,
        seeds=seeds,
    )


def init_params(config: TrainConfig, *, seed: int | None = None, params=None) -> dict:
    """The params a run of ``config`` starts from: ``{"cell", "readout": {"W", "b"}}``.

    ``W`` is (K, N_out) with K the task's outputs and N_out the cell's visible output
    size (N), ``b`` is (K,). ``seed`` defaults to ``config.seed``. ``params``: the
    given starting params of :func:`train` (completed with a drawn readout when they
    hold the cell's alone), so ``init_params(config, params=p)`` is where
    ``train(config, params=p)`` starts.

    Examples:
        >>> from gradspec.training import TrainConfig, init_params
        >>> params = init_params(TrainConfig(hidden=8, T=10))
        >>> params["cell"]["W_hh"].shape, params["readout"]["W"].shape
        ((8, 8), (1, 8))
    """
    for_init, _ = _resolve(config)
    given = check_given(config, params)
    seed = config.seed if seed is None else check_int("seed", seed, 0, _MAX_SEED)
    return _init_carry(for_init, jnp.asarray(seed, jnp.uint32), False, given)[0]


def task_batch(
    config: TrainConfig, *, step: int = 0, seed: int | None = None
) -> _tasks.Task:
    """The batch a run of ``config`` trains on at ``step`` (0-based).

    Examples:
        >>> from gradspec.training import TrainConfig, task_batch
        >>> task_batch(TrainConfig(T=10, batch=4), step=3).inputs.shape
        (4, 10, 2)
    """
    _, for_step = _resolve(config)
    seed = config.seed if seed is None else check_int("seed", seed, 0, _MAX_SEED)
    step = check_int("step", step, 0)
    return _task_batch(for_step, jnp.asarray(seed, jnp.uint32), step)


def apply(config: TrainConfig, params, xs) -> jax.Array:
    """Model outputs (L, K) for one input sequence ``xs`` (L, D): readout of the cell's
    states (logits for the copy task). Use ``jax.vmap`` for a batch.

    Examples:
        >>> import jax.numpy as jnp
        >>> from gradspec.training import TrainConfig, apply, init_params
        >>> config = TrainConfig(hidden=8, T=10)
        >>> apply(config, init_params(config), jnp.zeros((10, 2))).shape
        (10, 1)
    """
    _, for_step = _resolve(config)
    spec = config.spec
    if np.ndim(xs) != 2 or np.shape(xs)[1] != spec.inputs:
        raise ValueError(
            f"`xs` must have shape (L, {spec.inputs}) for task {config.task!r}; "
            f"got {np.shape(xs)}."
        )
    xs = jnp.asarray(xs, for_step.dtype)
    size = config.make_cell().state_size(config.hidden)
    eps = jnp.zeros((xs.shape[0] + 1, size), for_step.dtype)
    return _apply(dataclasses.replace(for_step, tbptt=0), params, xs, eps)
