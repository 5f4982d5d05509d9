r"""Close the loop: predict each configuration's regime, train it, and compare.

For every :class:`gradspec.TrainConfig` in a grid, :func:`verify`

1. predicts from the initial params alone (:func:`gradspec.predict`, driven by a
   sample of the task's own inputs, so the input drive enters the mean field);
2. trains it (:func:`gradspec.train`) and reads the *transported* gradient that training
   itself observed at step 0, :math:`\log \tau_k = \log\|\partial p_L/\partial
   h_{L-k}\|`: the loss of the last position carried back k steps through the
   recurrence alone (:attr:`gradspec.TrainResult.log_transported`), the gradient that
   decides whether a dependency k steps long can be learned. (The total derivative of
   the whole loss is not it: where the loss sits at many positions, as in the copy
   task, local terms dominate it at every lag.)
3. fits the observed per-step rate :math:`\hat\lambda` (least squares of
   :math:`\log \tau_k` on k over the recorded lags) and checks agreement.

Agreement rule (both must hold):

- **rate**: the observed regime, ``classify(rate, tol)`` with ``rate`` the
  :func:`gradspec.profile_rate` of the step-0 profile over the recorded lags and the
  prediction's own threshold :math:`\tau = \ln F / T + 2\delta\lambda`, equals the predicted regime;
- **outcome**: ``vanishing`` and ``exploding`` predictions are not ``solved`` within the
  run's budget (the long-range signal is lost or the run is unstable), a ``critical``
  prediction is not ``diverged``.

A row that fails either rule carries a ``note`` that says which and the likely reason.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from typing import Iterable

import jax.numpy as jnp

from ..measure import profile_rate
from ..verdicts import classify, predict
from .config import TrainConfig
from .loop import init_params, task_batch, train

__all__ = ["verify", "format_table", "demo_grid", "study_grid", "read_grid", "agreement"]

#: Sequences of the task used to drive the prediction's sampled trajectories.
PREDICT_INPUTS = 8


#: What init="default" draws, named in every row (one meaning of "default": the cell's).
DEFAULT_INIT_NAMES = {"rnn": "gaussian(1)", "lstm": "torch-uniform", "gru": "torch-uniform"}


def _label(c: TrainConfig, given: bool = False) -> str:
    cell = f"rnn/{c.nonlinearity}" if c.cell == "rnn" else (
        c.cell if isinstance(c.cell, str) else repr(c.cell))
    if given:
        init = "given params"
    elif c.init == "default":
        init = DEFAULT_INIT_NAMES.get(c.cell, "the cell's own init")
    else:
        init = "critical" if c.init == "critical" else f"{c.init}({c.gain:g})"
    options = dict(c.task_options)
    task = c.task + ("/permuted" if options.get("permuted") else "")
    extras = "".join(
        [f" clip={c.clip_norm:g}" if c.clip_norm else "", f" tbptt={c.tbptt}" if c.tbptt else ""]
    )
    return f"{cell} {init} {task} T={c.spec.length}{extras}"


def _check(pred_regime: str, observed_regime: str, outcome: str, *,
           rate_why: str = "", outcome_why: str = "") -> tuple[bool, str]:
    """Agreement by the module's rule; the note says which part failed and, where the
    caller measured it, why."""
    notes = []
    if observed_regime != pred_regime:
        notes.append(
            f"rate: predicted {pred_regime}, the gradient in training was {observed_regime}"
            + (f" ({rate_why})" if rate_why else "")
        )
    if pred_regime in ("vanishing", "exploding") and outcome == "solved":
        notes.append(
            f"outcome: solved despite a {pred_regime} init"
            + (f" ({outcome_why})" if outcome_why else "")
        )
    if pred_regime == "critical" and outcome == "diverged":
        notes.append("outcome: diverged from a critical init"
                     + (f" ({outcome_why})" if outcome_why else ""))
    return not notes, "; ".join(notes)


def _rate_why(pred, rate: float, length: int) -> str:
    """Why the step-0 gradient's rate and the network's exponent differ, measured."""
    if abs(rate - pred.lyapunov) <= pred.threshold:
        return (f"rate {rate:+.4f} vs lambda {pred.lyapunov:+.4f}: the same number within the "
                f"band tau = {pred.threshold:.3g}; they fall on either side of its edge")
    return (f"the run's gradient starts at h_0 = 0 and is fitted over {length} steps; the "
            f"exponent is the rate after a warm-up from random states ({pred.lyapunov:+.4f}): "
            "a transient from the start state, or a readout that sees another direction")


def _outcome_why(config: TrainConfig, result, before) -> str:
    """Where training took the network: its own exponent at the end of the run."""
    params = result.params["cell"]
    inputs = task_batch(dataclasses.replace(config, batch=PREDICT_INPUTS)).inputs
    cell = config.make_cell()
    after = predict(cell, params, inputs.shape[1], inputs=inputs,
                    h0=jnp.zeros(cell.state_size(config.hidden), inputs.dtype))
    if after.regime != before.regime:
        return (f"training moved the network from {before.regime} ({before.lyapunov:+.4f}) "
                f"to {after.regime} ({after.lyapunov:+.4f}) per step")
    return (f"still {after.regime} after training ({after.lyapunov:+.4f} per step): "
            f"the loss was reached within the time scale {after.timescale:.0f} steps "
            f"(the task's length is {config.spec.length})")


def _one(config: TrainConfig, given, *, progress: bool) -> dict:
    params = init_params(config, params=given)
    inputs = task_batch(dataclasses.replace(config, batch=PREDICT_INPUTS)).inputs
    cell = config.make_cell()
    start = jnp.zeros(cell.state_size(config.hidden), inputs.dtype)  # where training starts
    pred = predict(cell, params["cell"], inputs.shape[1], inputs=inputs, h0=start)
    result = train(config, params=params, progress=progress)
    # The slope of the transported gradient the run observed at step 0, over its lags.
    log_g0 = result.log_transported[0]
    rate = float(profile_rate(log_g0, jnp.asarray(result.lags)))
    observed = classify(rate, pred.threshold) if math.isfinite(rate) else "undefined"
    agree, _ = _check(pred.regime, observed, result.outcome)
    note = ""
    if not agree:  # say why, from measurements
        _, note = _check(pred.regime, observed, result.outcome,
                         rate_why=_rate_why(pred, rate, inputs.shape[1]),
                         outcome_why=_outcome_why(config, result, pred))
    return {
        "config": _label(config, given is not None),
        "predicted_regime": pred.regime,
        "predicted_lambda": pred.lyapunov,
        "network_lambda": pred.measured_lyapunov,
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


def verify(grid: Iterable[TrainConfig], *, params=None, progress: bool = False) -> list[dict]:
    """Predict, train and compare every configuration of ``grid`` (module doc).

    Args:
        grid: TrainConfigs (a config's ``cell`` may be any gradspec Cell instance).
        params: None (each config's own init), or one entry per configuration: the
            params it starts from (as :func:`gradspec.train`'s ``params=``) or None.
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
    params = [None] * len(grid) if params is None else list(params)
    if len(params) != len(grid):
        raise ValueError(f"`params` must hold one entry per configuration ({len(grid)}); "
                         f"got {len(params)}.")
    return [_one(config, given, progress=progress) for config, given in zip(grid, params)]


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


#: The study's networks: the vanilla RNN at several gains and inits, and gated cells.
STUDY_MODELS = (
    dict(cell="rnn", nonlinearity="tanh", init="gaussian", gain=0.5),
    dict(cell="rnn", nonlinearity="tanh", init="gaussian", gain=1.0),
    dict(cell="rnn", nonlinearity="tanh", init="gaussian", gain=2.5),
    dict(cell="rnn", nonlinearity="relu", init="gaussian", gain=1.4),
    dict(cell="rnn", nonlinearity="relu", init="identity", gain=1.0),
    dict(cell="rnn", nonlinearity="sigmoid", init="gaussian", gain=1.0),
    dict(cell="rnn", nonlinearity="tanh", init="orthogonal", gain=1.0),
    dict(cell="rnn", nonlinearity="tanh", init="critical"),
    dict(cell="gru", init="default"),
    dict(cell="lstm", init="default"),
)
#: The study's tasks, each at two lengths (digits: plain and permuted pixel order).
STUDY_TASKS = (
    dict(task="adding", T=20), dict(task="adding", T=100),
    dict(task="copy", T=10), dict(task="copy", T=40),
    dict(task="delayed_xor", T=20, task_options={"delay": 5}),
    dict(task="delayed_xor", T=60, task_options={"delay": 15}),
    dict(task="digits", T=64), dict(task="digits", T=64, task_options={"permuted": True}),
)


def study_grid(*, steps: int = 300, hidden: int = 64, quick: bool = False) -> list[TrainConfig]:
    """The agreement study: every model of :data:`STUDY_MODELS` on three of the eight
    task/length pairs of :data:`STUDY_TASKS` (model i on pairs i, i + 3, i + 6 mod 8, so
    every pair meets three or four models): 30 configurations. ``quick``: three small
    ones (tanh, relu, GRU; adding and delayed XOR) for a test suite."""
    common = dict(steps=steps, hidden=hidden, batch=32, learning_rate=1e-3)
    if quick:
        common.update(steps=min(steps, 40), hidden=min(hidden, 16))
        picks = [(STUDY_MODELS[1], STUDY_TASKS[0]), (STUDY_MODELS[3], STUDY_TASKS[4]),
                 (STUDY_MODELS[8], STUDY_TASKS[0])]
    else:
        n = len(STUDY_TASKS)
        picks = [(m, STUDY_TASKS[(i + 3 * j) % n])
                 for i, m in enumerate(STUDY_MODELS) for j in range(3)]
    return [TrainConfig(**common, **model, **task) for model, task in picks]


def read_grid(path) -> list[TrainConfig]:
    """TrainConfigs from a TOML file: optional ``[defaults]`` (fields every config
    shares) and one ``[[config]]`` table per configuration (its own fields win).

    Raises:
        ValueError: no ``[[config]]`` table, unknown keys or bad field values (the
            message names the table).
    """
    with open(path, "rb") as f:
        data = tomllib.load(f)
    unknown = sorted(set(data) - {"defaults", "config"})
    if unknown or not data.get("config"):
        raise ValueError(f"{str(path)!r} must hold [[config]] tables (and optionally "
                         f"[defaults]); got keys {sorted(data)}.")
    defaults = data.get("defaults", {})
    grid = []
    for i, table in enumerate(data["config"]):
        try:
            grid.append(TrainConfig.from_dict({**defaults, **table}))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{str(path)!r}, [[config]] number {i + 1}: {err}") from None
    return grid


def agreement(rows: list[dict]) -> tuple[int, int]:
    """(agreeing rows, all rows)."""
    return sum(bool(r["agree"]) for r in rows), len(rows)


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of :func:`verify` rows, notes below."""
    head = ("config", "predicted", "lambda", "network", "observed", "rate", "outcome",
            "loss/base", "agree")
    body = [
        (
            r["config"],
            r["predicted_regime"],
            f"{r['predicted_lambda']:+.4f}",
            f"{r['network_lambda']:+.4f}",
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
    agreed, total = agreement(rows)
    summary = [f"agreement: {agreed} of {total} ({100 * agreed / max(total, 1):.0f}%)"]
    return "\n".join(out + ["", *summary] + (["", "disagreements:"] + notes if notes else []))
