r"""The data a figure needs that :mod:`gradspec` does not already return.

Each is public and usable alone: :func:`log_jacobian_norms`, :func:`mean_field_grid`,
:func:`critical_line`, :func:`agreement_counts` and :func:`runs_from_train`, with the
vocabularies of the agreement matrix, :data:`REGIME_ORDER` and :data:`OUTCOME_ORDER`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import theory as _theory
from .._precision import full_precision
from ._common import _check_vector, _field

#: Rows of the agreement matrix: the regime vocabulary of :mod:`gradspec.theory`.
REGIME_ORDER = ("vanishing", "critical", "exploding")
#: Columns of the agreement matrix, ordered so that the diagonal is what each regime
#: predicts: vanishing -> stalled, critical -> solved, exploding -> diverged; a run
#: still improving when its budget ran out sits between stalled and solved.
OUTCOME_ORDER = ("stalled", "improving", "solved", "diverged")


@functools.partial(jax.jit, static_argnames="ord")
@full_precision
def _log_jacobian_norms(jacobians, ord):
    T, S, _ = jacobians.shape
    dtype = jacobians.dtype
    s_idx = jnp.arange(T + 1)
    tiny = jnp.finfo(dtype).tiny
    nan = jnp.asarray(jnp.nan, dtype)

    def norms(P):
        if ord == 2:
            return jnp.linalg.norm(P, ord=2, axis=(-2, -1))
        return jnp.sqrt(jnp.sum(P * P, axis=(-2, -1)))

    def body(carry, inputs):
        # P[s] = exp(-log_scale[s]) * dh_t/dh_s for every start s at once: one batched
        # product per step, so the loop is over t only (a scan), never over (t, s).
        P, log_scale = carry
        t, J_t = inputs  # J_t = dh_t / dh_{t-1}
        P = jnp.where((s_idx < t)[:, None, None], jnp.einsum("ij,sjk->sik", J_t, P), P)
        # Renormalise every step, keeping the scale as a log: no under/overflow.
        n = jnp.sqrt(jnp.sum(P * P, axis=(-2, -1)))
        P = P / jnp.where(n > tiny, n, 1)[:, None, None]
        log_scale = log_scale + jnp.log(n)
        row = jnp.where(s_idx <= t, jnp.log(norms(P)) + log_scale, nan)
        return (P, log_scale), row

    eye = jnp.broadcast_to(jnp.eye(S, dtype=dtype), (T + 1, S, S))
    init = (eye, jnp.zeros((T + 1,), dtype))
    _, rows = lax.scan(body, init, (jnp.arange(1, T + 1), jacobians))
    row0 = jnp.where(s_idx == 0, jnp.zeros((), dtype), nan)
    return jnp.concatenate([row0[None], rows])


def log_jacobian_norms(jacobians, *, ord: int | str = 2) -> jax.Array:
    r"""Log norms of every Jacobian product :math:`\partial h_t / \partial h_s`.

    .. math::
        M_{ts} = \log \Big\| \frac{\partial h_t}{\partial h_s} \Big\|
               = \log \| J_t J_{t-1} \cdots J_{s+1} \|, \qquad 0 \le s \le t \le T,

    with :math:`J_t` = ``jacobians[t - 1]`` (as :func:`gradspec.step_jacobians`
    returns them) and :math:`M_{tt} = 0`. One ``lax.scan`` over t carries the products
    for all start steps s at once, each renormalised every step with its scale kept as
    a log, so any T is finite in float32.

    Cost: :math:`O(T^2 S^3)` time and :math:`O(T S^2)` memory (plus
    :math:`O(T^2)` SVDs of (S, S) for ``ord=2``): a figure-sized helper, for T and S
    in the hundreds at most.

    Args:
        jacobians: step Jacobians, shape (T, S, S).
        ord: ``2`` (spectral norm) or ``"fro"`` (Frobenius).

    Returns:
        Shape (T + 1, T + 1), natural log, in the Jacobians' dtype; entry ``[t, s]`` is
        :math:`M_{ts}`; NaN above the diagonal (s > t: h_t does not depend on h_s);
        ``-inf`` for an exactly zero product (dead ReLUs).

    Raises:
        ValueError: ``jacobians`` not of shape (T, S, S) or an unknown ``ord``.

    Examples:
        >>> import jax.numpy as jnp, gradspec.plots as gp
        >>> J = jnp.stack([0.5 * jnp.eye(2)] * 3)
        >>> M = gp.log_jacobian_norms(J)
        >>> [round(float(v), 4) for v in M[3, :]]  # (3 - s) log 0.5
        [-2.0794, -1.3863, -0.6931, 0.0]
    """
    shape = np.shape(jacobians)
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] < 1:
        raise ValueError(
            f"`jacobians` must have shape (T, S, S) with T >= 1; got {shape}."
        )
    if ord not in (2, "fro"):
        raise ValueError(f"`ord` must be 2 or 'fro'; got {ord!r}.")
    jacobians = jnp.asarray(jacobians)
    if not jnp.issubdtype(jacobians.dtype, jnp.floating):
        raise TypeError(f"`jacobians` must be floating; got {jacobians.dtype}.")
    return _log_jacobian_norms(jacobians, ord)


def mean_field_grid(
    nonlinearity, sigma_w, sigma_b, *, sigma_x=0.0
) -> _theory.MeanField:
    r"""Mean-field theory (:func:`gradspec.theory.mean_field`) on a
    :math:`(\sigma_w, \sigma_b)` grid: one ``jax.vmap`` over each axis, no loop.

    Args:
        nonlinearity: as in :func:`gradspec.theory.mean_field`.
        sigma_w: weight scales, shape (W,), >= 0.
        sigma_b: bias scales, shape (B,), >= 0.
        sigma_x: input-drive scale, a scalar >= 0.

    Returns:
        A :class:`gradspec.theory.MeanField` whose fields have shape (W, B);
        ``lambda_max[i, j]`` belongs to ``sigma_w[i], sigma_b[j]`` (the layout of
        ``gradspec.sweep.to_grid(records, "lambda_max")``).

    Examples:
        >>> import jax.numpy as jnp, gradspec.plots as gp
        >>> sigma_w, sigma_b = jnp.array([0.5, 1.0, 2.0]), jnp.array([0.0, 0.3])
        >>> mf = gp.mean_field_grid("tanh", sigma_w, sigma_b)
        >>> mf.lambda_max.shape, round(float(mf.lambda_max[0, 0]), 4)  # log 0.5
        ((3, 2), -0.6931)
    """
    sigma_w = jnp.asarray(_check_vector("sigma_w", sigma_w))
    sigma_b = jnp.asarray(_check_vector("sigma_b", sigma_b))

    def one(w, b):
        return _theory.mean_field(nonlinearity, w, sigma_b=b, sigma_x=sigma_x)

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(
        sigma_w, sigma_b
    )


def critical_line(nonlinearity, sigma_b, *, sigma_x=0.0) -> jax.Array:
    r"""The order–chaos line :math:`\chi(\sigma_w^*, \sigma_b) = 1`: the critical gain
    :func:`gradspec.theory.critical_gain` at every ``sigma_b``, vmapped.

    Args:
        nonlinearity: as in :func:`gradspec.theory.critical_gain`.
        sigma_b: bias scales, shape (B,), >= 0.
        sigma_x: input-drive scale, a scalar >= 0.

    Returns:
        :math:`\sigma_w^*`, shape (B,) (NaN where no gain reaches :math:`\chi = 1`).

    Examples:
        >>> import jax.numpy as jnp, gradspec.plots as gp
        >>> line = gp.critical_line("tanh", jnp.array([0.0, 0.5]))
        >>> [round(float(v), 4) for v in line]
        [1.0, 1.5497]
    """
    sigma_b = jnp.asarray(_check_vector("sigma_b", sigma_b))
    gain = lambda b: _theory.critical_gain(nonlinearity, sigma_b=b, sigma_x=sigma_x)
    return jax.vmap(gain)(sigma_b)


_OBSERVED = {
    # observed: (column vocabulary, default keys of the observed value)
    "outcome": (OUTCOME_ORDER, ("observed_outcome", "outcome", "observed")),
    "regime": (REGIME_ORDER, ("observed_regime",)),
}


def agreement_counts(
    rows: Sequence[Any],
    *,
    observed: str = "outcome",
    predicted_key: str | None = None,
    observed_key: str | None = None,
) -> np.ndarray:
    """Counts of (predicted regime, observed) pairs, e.g. from
    :func:`gradspec.verify` rows.

    Args:
        rows: dicts (or objects with attributes) holding a predicted regime (one of
            :data:`REGIME_ORDER`) and what was observed.
        observed: ``"outcome"``: the training outcome (columns :data:`OUTCOME_ORDER`);
            ``"regime"``: the regime of the gradient observed in training (columns
            :data:`REGIME_ORDER`, e.g. verify's ``observed_regime``).
        predicted_key: the regime's key; default the first present of
            ``"predicted_regime"``, ``"predicted"``, ``"regime"``.
        observed_key: the observed value's key; default the first present of
            ``"observed_outcome"``, ``"outcome"``, ``"observed"`` (outcome) or
            ``"observed_regime"`` (regime).

    Returns:
        Integer array (3, C), C the observed vocabulary's size: ``[i, j]`` counts rows
        predicted ``REGIME_ORDER[i]`` with observed column j; the expected pairing is
        vanishing -> stalled, critical -> solved, exploding -> diverged (or equal
        regimes). Rows observed as
        ``"undefined"`` (no finite rate) are left out.

    Raises:
        ValueError: a row without the keys, a value outside the vocabulary, or an
            unknown ``observed``.

    Examples:
        >>> import gradspec.plots as gp
        >>> rows = [{"predicted_regime": "vanishing", "outcome": "stalled"},
        ...         {"predicted_regime": "exploding", "outcome": "solved"}]
        >>> gp.agreement_counts(rows).tolist()
        [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]
    """
    if observed not in _OBSERVED:
        raise ValueError(
            f"`observed` must be one of {list(_OBSERVED)}; got {observed!r}."
        )
    columns, default_keys = _OBSERVED[observed]
    pred_names = (
        (predicted_key,)
        if predicted_key
        else ("predicted_regime", "predicted", "regime")
    )
    obs_names = (observed_key,) if observed_key else default_keys
    counts = np.zeros((len(REGIME_ORDER), len(columns)), dtype=np.int64)
    for row in rows:
        regime = str(_field(row, pred_names, "predicted regime"))
        seen = str(_field(row, obs_names, f"observed {observed}"))
        if regime not in REGIME_ORDER:
            raise ValueError(
                f"predicted regime must be one of {REGIME_ORDER}; got {regime!r}."
            )
        if seen == "undefined":
            continue
        if seen not in columns:
            raise ValueError(
                f"observed {observed} must be one of {columns}; got {seen!r}."
            )
        counts[REGIME_ORDER.index(regime), columns.index(seen)] += 1
    return counts


def runs_from_train(result, label: str | None = None) -> list[dict]:
    """A :class:`gradspec.TrainResult` as plain run dicts for
    :func:`plot_training_curves`, one per seed.

    Args:
        result: a ``TrainResult`` (or anything with its ``loss``, ``grad_norm``,
            ``outcome``, ``baseline`` and ``seeds`` attributes).
        label: the runs' label; default a summary of the config (cell, init, gain).

    Returns:
        A list of dicts with ``label``, ``loss`` (steps,), ``grad_norm`` (steps,),
        ``outcome``, ``baseline`` and ``solved_below`` (when the config has it).
    """
    config = getattr(result, "config", None)
    if label is None:
        label = _config_label(config) if config is not None else "run"
    solved_below = getattr(config, "solved_below", None)
    loss, grad = np.asarray(result.loss), np.asarray(result.grad_norm)
    seeds = getattr(result, "seeds", None)
    if seeds is None:
        loss, grad, outcomes, names = loss[None], grad[None], [result.outcome], [label]
    else:
        outcomes = list(result.outcome)
        names = [f"{label} (seed {s})" for s in seeds]
    return [
        {
            "label": name,
            "loss": l,
            "grad_norm": g,
            "outcome": str(o),
            "baseline": float(result.baseline),
            "solved_below": solved_below,
        }
        for name, l, g, o in zip(names, loss, grad, outcomes)
    ]


def _config_label(config) -> str:
    cell = getattr(config, "cell", "rnn")
    name = (
        f"{getattr(config, 'nonlinearity', 'tanh')} RNN"
        if cell == "rnn"
        else cell.upper()
    )
    init = getattr(config, "init", "")
    gain = getattr(config, "gain", 1.0)
    text = f"{name}, {init}" + (
        "" if init in ("default", "critical") else f"({gain:g})"
    )
    if getattr(config, "clip_norm", None):
        text += f", clip {config.clip_norm:g}"
    return text
