r"""Close the loop: predict each configuration's regime, train it, and compare.

For every :class:`gradspec.TrainConfig` in a grid, :func:`verify`

1. predicts from the initial params alone (:func:`gradspec.predict`, driven by a
   sample of the task's own inputs, so the input drive enters the mean field);
2. trains it (:func:`gradspec.train`) and reads the gradient profile that training
   itself observed at step 0, :math:`\log g_k = \log\|\partial \ell/\partial h_{L-k}\|`;
3. fits the observed per-step rate :math:`\hat\lambda` (least squares of
   :math:`\log g_k` on k over the recorded lags) and checks agreement.

Agreement rule (both must hold):

- **rate**: the observed regime, ``classify(rate, tol)`` with ``rate`` the
  :func:`gradspec.profile_rate` of the step-0 profile over the recorded lags and the
  prediction's own threshold :math:`\tau = \max(1/T, 2\delta\lambda)`, equals the predicted regime;
- **outcome**: ``vanishing`` and ``exploding`` predictions are not ``solved`` within the
  run's budget (the long-range signal is lost or the run is unstable), a ``critical``
  prediction is not ``diverged``.

A row that fails either rule carries a ``note`` that says which and the likely reason.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import jax.numpy as jnp

from ..measure import profile_rate
from ..verdicts import classify, predict
from .loop import TrainConfig, init_params, task_batch, train

__all__ = ["verify", "format_table", "demo_grid"]

#: Sequences of the task used to drive the prediction's sampled trajectories.
PREDICT_INPUTS = 8


def _label(c: TrainConfig) -> str:
    cell = f"rnn/{c.nonlinearity}" if c.cell == "rnn" else c.cell
    init = c.init if c.init in ("default", "critical") else f"{c.init}({c.gain:g})"
    extras = "".join(
        [f" clip={c.clip_norm:g}" if c.clip_norm else "", f" tbptt={c.tbptt}" if c.tbptt else ""]
    )
    return f"{cell} {init}{extras}"


def _check(pred_regime: str, observed_regime: str, outcome: str) -> tuple[bool, str]:
    notes = []
    if observed_regime != pred_regime:
        notes.append(
            f"rate: predicted {pred_regime}, the gradient in training was {observed_regime}"
        )
    if pred_regime in ("vanishing", "exploding") and outcome == "solved":
        notes.append(
            f"outcome: solved despite a {pred_regime} init (training moved the weights "
            "out of that regime, or the dependency fits within the time scale)"
        )
    if pred_regime == "critical" and outcome == "diverged":
        notes.append("outcome: diverged from a critical init (learning rate too high?)")
    return not notes, "; ".join(notes)


def _one(config: TrainConfig, *, progress: bool) -> dict:
    params = init_params(config)
    inputs = task_batch(dataclasses.replace(config, batch=PREDICT_INPUTS)).inputs
    pred = predict(config.make_cell(), params["cell"], inputs.shape[1], inputs=inputs)
    result = train(config, progress=progress)
    # The slope of the gradient the run observed at step 0, over its recorded lags.
    log_g0 = result.log_grad_lags[0]
    rate = float(profile_rate(log_g0, jnp.asarray(result.lags)))
    observed = classify(rate, pred.threshold) if math.isfinite(rate) else "undefined"
    agree, note = _check(pred.regime, observed, result.outcome)
    return {
        "config": _label(config),
        "predicted_regime": pred.regime,
        "predicted_lambda": pred.lyapunov,
        "uncertainty": pred.uncertainty,
        "source": pred.source,
        "observed_rate": rate,
        "observed_regime": observed,
        "log_gradient_ratio": float(log_g0[-1] - log_g0[0]),
        "outcome": result.outcome,
        "final_loss_over_baseline": float(result.final_loss) / result.baseline,
        "agree": agree,
        "note": note,
        "train_config": config.to_dict(),
    }


def verify(grid: Iterable[TrainConfig], *, progress: bool = False) -> list[dict]:
    """Predict, train and compare every configuration of ``grid`` (module doc).

    Args:
        grid: TrainConfigs.
        progress: show the training progress bars (needs tqdm).

    Returns:
        One JSON-serialisable dict per configuration: ``config`` (label),
        ``predicted_regime``, ``predicted_lambda``, ``uncertainty``, ``source``,
        ``observed_rate``, ``observed_regime``, ``log_gradient_ratio`` (observed at
        step 0, lag L vs lag 0), ``outcome``, ``final_loss_over_baseline``, ``agree``,
        ``note`` and ``train_config``.

    Raises:
        TypeError: if an element of ``grid`` is not a TrainConfig.
    """
    grid = list(grid)
    for i, config in enumerate(grid):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"`grid[{i}]` must be a TrainConfig; got {type(config).__name__}.")
    return [_one(config, progress=progress) for config in grid]


def demo_grid(*, T: int = 100, steps: int = 600, hidden: int = 64) -> list[TrainConfig]:
    """The issue's demo: tanh RNN with Gaussian gains 0.5, 1.0, 2.5, an orthogonal tanh
    RNN and an LSTM on the adding problem."""
    common = dict(task="adding", T=T, hidden=hidden, steps=steps, batch=32, learning_rate=1e-3)
    return [
        TrainConfig(cell="rnn", init="gaussian", gain=0.5, **common),
        TrainConfig(cell="rnn", init="gaussian", gain=1.0, **common),
        TrainConfig(cell="rnn", init="gaussian", gain=2.5, **common),
        TrainConfig(cell="rnn", init="orthogonal", gain=1.0, **common),
        TrainConfig(cell="lstm", init="default", **common),
    ]


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of :func:`verify` rows, notes below."""
    head = ("config", "predicted", "lambda", "observed", "rate", "outcome", "loss/base", "agree")
    body = [
        (
            r["config"],
            r["predicted_regime"],
            f"{r['predicted_lambda']:+.4f}",
            r["observed_regime"],
            f"{r['observed_rate']:+.4f}",
            r["outcome"],
            f"{r['final_loss_over_baseline']:.3f}",
            "yes" if r["agree"] else "NO",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]
    notes = [f"  {r['config']}: {r['note']}" for r in rows if r["note"]]
    return "\n".join(out + (["", "disagreements:"] + notes if notes else []))
