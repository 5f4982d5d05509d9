"""The regime vocabulary and the plain-data records shared by predict and diagnose."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
import numpy as np

#: F: "critical" means the gradient changes by less than this factor over the horizon T.
CRITICAL_FACTOR = 10.0

def classify(lambda_max: float, tol: float) -> str:
    """The regime of a top Lyapunov exponent given the threshold ``tol`` (module doc)."""
    if not math.isfinite(lambda_max):
        return "exploding" if lambda_max > 0 or math.isnan(lambda_max) else "vanishing"
    if lambda_max < -tol:
        return "vanishing"
    return "exploding" if lambda_max > tol else "critical"


def regime_threshold(T: int, uncertainty: float = 0.0, factor: float = CRITICAL_FACTOR) -> float:
    r"""The critical band's half-width :math:`	au = \ln F / T + 2\,\delta\lambda`.

    Examples:
        >>> from gradspec.verdicts import regime_threshold
        >>> round(regime_threshold(100), 5)  # ln 10 / 100: a factor 10 over 100 steps
        0.02303
    """
    if not (isinstance(factor, (int, float)) and factor > 1):
        raise ValueError(f"`factor` must be a number > 1; got {factor!r}.")
    widen = 2 * uncertainty if math.isfinite(uncertainty) else 0.0
    return math.log(factor) / T + widen


def _vanished_exactly(log_ratio: float) -> str:
    """The sentence ``why``/``reasons`` carry whenever ``log_gradient_ratio`` is -inf
    (empty otherwise): the gradient is exactly zero, not just small."""
    if log_ratio != -math.inf:
        return ""
    return ("log_gradient_ratio = -inf: the gradient is exactly zero at the longest lag "
            "(every path through the recurrence passes a zero derivative, e.g. relu units "
            "that are all inactive at some step, or a saturated gate to rounding), not "
            "merely small; no rate of decay is defined past that step")


def _timescale(lam: float) -> float:
    return math.inf if lam == 0 else 1.0 / abs(lam)


class _Record:
    """Plain-data helpers shared by the result dataclasses."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict):
        # JSON has no tuples: restore them, so the round trip gives an equal record.
        value = lambda v: tuple(v) if isinstance(v, list) else v
        return cls(**{f.name: value(data[f.name]) for f in dataclasses.fields(cls)})


def _plain(v):
    if isinstance(v, (jax.Array, np.ndarray, np.generic)):
        v = np.asarray(v)
        return v.item() if v.ndim == 0 else v.tolist()
    if isinstance(v, tuple):
        return list(v)
    return v


@dataclasses.dataclass(frozen=True)
class Prediction(_Record):
    """What :func:`predict` says. All rates are natural log per step."""

    regime: str  # "vanishing" | "critical" | "exploding"
    lyapunov: float  # lambda_max, the predicted top Lyapunov exponent
    uncertainty: float  # standard error of lambda_max over sampled trajectories
    threshold: float  # tau = ln(F)/T + 2 uncertainty: |lambda_max| <= tau is "critical"
    timescale: float  # 1 / |lambda_max| steps (inf when lambda_max = 0)
    T: int  # horizon the verdict is for
    log_gradient_ratio: float  # predicted log ||dL/dh_0|| / ||dL/dh_T|| = T lambda_max
    source: str  # "fixed-point", "mean-field" or "lyapunov"
    measured_lyapunov: float  # mean top exponent over the sampled trajectories
    samples_finite: int  # sampled trajectories whose states stayed finite
    reasons: tuple  # the argument in words, one sentence each
    mean_field: Optional[dict] = None  # theory.mean_field(...) fields (i.i.d.-like W_hh)
    loss_rate: Optional[float] = None  # with a readout: the rate the loss sees (sampled)
    loss_rate_se: Optional[float] = None  # its standard error over the samples


@dataclasses.dataclass(frozen=True)
class Diagnosis(_Record):
    """What :func:`diagnose` measured along one input sequence."""

    regime: str  # classify(rate, ln(F)/T); rate = loss_rate with a readout, else lyapunov
    lyapunov: float  # top Lyapunov exponent along xs (warm-up T//10 discarded), batch mean
    profile_rate: float  # slope of log||dL/dh_{T-k}|| in k (default readout), batch mean
    log_gradient_ratio: float  # log ||dL/dh_0|| / ||dL/dh_T||, batch mean
    T: int
    spectral_radius: Optional[float] = None  # rho(W_hh), vanilla RNN only
    spectral_norm: Optional[float] = None  # ||W_hh||_2, vanilla RNN only
    batch: int = 1  # sequences measured (xs (B, T, D))
    lyapunov_se: Optional[float] = None  # standard error over the batch (None for one)
    loss_rate: Optional[float] = None  # slope of log||R P J_T...J_{T-k+1}|| (readout R)
    loss_rate_se: Optional[float] = None  # its standard error over the batch
    invisible_units: Optional[tuple] = None  # state entries carrying lambda_1 unseen by R
    why: tuple = ()  # the measurements in words (where lambda_1 and loss_rate differ)


def _mean_se(values: np.ndarray) -> tuple[float, Optional[float]]:
    """Mean and standard error over a batch (None for one value; 0 when a value is
    -inf, an exactly vanished gradient, which has no spread)."""
    n, mean = len(values), float(np.mean(values))
    if n < 2:
        return mean, None
    if mean == -math.inf:
        return mean, 0.0
    return mean, float(np.std(values, ddof=1) / math.sqrt(n))
