r"""What a training run did: :class:`TrainResult`, plain data, and its outcome rule."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, Literal

import jax
import numpy as np

from .._json import decode_value, nonfinite_to_str
from .config import TrainConfig

Outcome = Literal["solved", "improving", "stalled", "diverged"]
OUTCOMES = ("solved", "improving", "stalled", "diverged")
#: "improving": not solved, but the mean loss of the last tenth of the steps is at least
#: this fraction below that of the tenth before it (the budget, not the gradients,
#: decided the outcome so far).
IMPROVING_DROP = 0.05

_ARRAY_FIELDS = (
    "loss",
    "grad_norm",
    "log_grad_h0",
    "log_grad_lags",
    "log_transported",
    "accuracy",
    "finite",
    "final_loss",
    "diverged_at",
    "heldout_accuracy",
    "lyapunov",
)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[*_ARRAY_FIELDS, "params"],
    meta_fields=["config", "lags", "baseline", "outcome", "seeds", "lyapunov_steps"],
)
@dataclasses.dataclass(frozen=True)
class TrainResult:
    r"""What a training run did. A pytree (the non-array fields are static metadata).

    Shapes have a leading seed axis ``(n_seeds, ...)`` when :func:`train` got ``seeds``;
    ``steps`` is ``config.steps``. Per-example gradients are those of the example's own
    loss :math:`\ell_b` (whose batch mean is the loss), so they do not shrink with B.
    """

    loss: (
        jax.Array
    )  # (steps,) batch loss before the step's update; NaN after divergence
    grad_norm: (
        jax.Array
    )  # (steps,) global L2 norm of the param gradient, before clipping
    log_grad_h0: jax.Array  # (steps,) mean_b log ||d l_b / d h_0||, natural log
    log_grad_lags: (
        jax.Array
    )  # (steps, n_lags) mean_b log ||d l_b / d h_{L-k}||, k = lags
    log_transported: jax.Array  # (steps, n_lags) mean_b log ||d p_{b,L} / d h_{L-k}|| over
    #   the examples where it is nonzero (-inf: exactly zero for every example)
    #   through the recurrence alone (NaN on steps not recorded, see record_every)
    accuracy: jax.Array  # (steps,) training-batch accuracy (classification tasks; else NaN)
    finite: jax.Array  # (steps,) bool: this step and all before it were finite
    final_loss: jax.Array  # () mean loss over the last ceil(steps / 10) steps
    diverged_at: jax.Array  # () int, first non-finite step, -1 if none
    heldout_accuracy: jax.Array  # () final params on the held-out split (digits), else NaN
    lyapunov: jax.Array  # (n_records, k) top-k Lyapunov exponents (natural log per step)
    #   of the network at the steps ``lyapunov_steps`` (config.lyapunov_every; NaN after
    #   divergence): gradspec.lyapunov_spectrum on training.lyapunov_drive(config)
    params: Any  # final params (the last finite ones if the run diverged)
    config: TrainConfig  # the run's config (``seed`` is the seed of a single run)
    lags: tuple  # the lags k of ``log_grad_lags``' last axis
    baseline: float  # the task's chance-level loss
    outcome: Any  # "solved" | "improving" | "stalled" | "diverged", a tuple per seed
    seeds: tuple | None  # the seeds of the leading axis, or None for a single run
    lyapunov_steps: tuple = ()  # the steps of ``lyapunov``'s records: 0, n, 2n, ...

    def to_dict(self) -> dict:
        """Plain JSON-able data (no pickle): arrays become ``{"dtype", "shape",
        "data"}`` with NaN/inf written as the strings ``"nan"``, ``"inf"``, ``"-inf"``,
        so ``json.dumps(..., allow_nan=False)`` accepts it."""
        return {
            "config": self.config.to_dict(),
            "lags": list(self.lags),
            "baseline": self.baseline,
            "outcome": self.outcome
            if isinstance(self.outcome, str)
            else list(self.outcome),
            "seeds": None if self.seeds is None else list(self.seeds),
            "lyapunov_steps": list(self.lyapunov_steps),
            "arrays": {name: _encode(getattr(self, name)) for name in _ARRAY_FIELDS},
            "params": jax.tree_util.tree_map(_encode, self.params),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> TrainResult:
        """Inverse of :meth:`to_dict`. Arrays come back as NumPy arrays with their
        original dtype (float64 survives even with x64 off)."""
        outcome, config = data["outcome"], TrainConfig.from_dict(data["config"])
        arrays = dict(data["arrays"])
        if "lyapunov" not in arrays:  # written before the exponents were recorded
            lead = [] if data["seeds"] is None else [len(data["seeds"])]
            arrays["lyapunov"] = _encode(np.zeros(
                (*lead, 0, config.lyapunov_k), arrays["loss"]["dtype"]))
        return cls(
            **{name: _decode(arrays[name]) for name in _ARRAY_FIELDS},
            params=jax.tree_util.tree_map(_decode, data["params"], is_leaf=_is_encoded),
            config=config,
            lags=tuple(data["lags"]),
            baseline=float(data["baseline"]),
            outcome=outcome if isinstance(outcome, str) else tuple(outcome),
            seeds=None if data["seeds"] is None else tuple(data["seeds"]),
            lyapunov_steps=tuple(data.get("lyapunov_steps", ())),
        )


def _encode(x) -> dict:
    a = np.asarray(x)
    flat = nonfinite_to_str(a.ravel().tolist())  # "nan", "inf", "-inf"
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": flat}


def _is_encoded(x) -> bool:
    return isinstance(x, Mapping) and set(x) == {"dtype", "shape", "data"}


def _decode(d) -> np.ndarray:
    return np.asarray(decode_value(d["data"], d["dtype"])).reshape(d["shape"])


def _outcome(
    loss: np.ndarray, finite: np.ndarray, baseline: float, solved_below: float
):
    tail = max(1, math.ceil(loss.shape[-1] / 10))
    final = float(np.mean(loss[-tail:]))
    if not finite.all():
        return final, int(np.argmin(finite)), "diverged"
    if final < solved_below * baseline:
        return final, -1, "solved"
    before = loss[-2 * tail:-tail]
    improving = before.size > 0 and final < (1 - IMPROVING_DROP) * float(np.mean(before))
    return final, -1, "improving" if improving else "stalled"
