r"""From verdict to advice: rescale a network until its own exponent is critical at T.

:func:`make_critical` changes one scalar of the given params and searches it by
bisection on the network's *own* top exponent (:func:`gradspec.verdicts.sampled_exponent`,
the measurement :func:`gradspec.predict` reports), not on a theory of it:

- vanilla RNN and GRU: the recurrent weights, :math:`W_{hh} \to s\,W_{hh}`, searched
  over :math:`\log s`; the exponent grows with s (more gain, slower forgetting) until
  the dynamics turn chaotic;
- LSTM: the forget-gate bias :math:`b_f \to b_f + \beta`, searched over
  :math:`\beta`; the memory's decay :math:`\log \sigma(b_f)` goes to 0 as
  :math:`\beta` grows (Gers et al. 2000; Jozefowicz et al. 2015).

The search walks from the given value in fixed steps (0.25 in :math:`\log s`, 0.5 in
:math:`\beta`, up to :math:`|\log s| \le 3`, :math:`|\beta| \le 20`) until the
exponent changes sign, so it finds the critical value *nearest* the given params, then
bisects that step. It stops once :math:`|\lambda| \le \ln F / (2T)` (half the critical
band of :mod:`gradspec.verdicts`, so the result is critical with room to spare) or after
40 halvings.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ._checks import check_int
from .cells import GRU, LSTM, RNN, as_cell, check_params
from .verdicts import CRITICAL_FACTOR, SAMPLES, Prediction, predict, sampled_exponent
from .verdicts._prediction import _sample_inputs

__all__ = ["CriticalResult", "make_critical"]

#: Bisection halvings of the bracket at most.
_STEPS = 40


@dataclasses.dataclass(frozen=True)
class CriticalResult:
    """What :func:`make_critical` changed and what the network says before and after."""

    params: dict  # the rescaled params (same structure and dtype)
    knob: str  # "recurrent scale" (W_hh x s) or "forget bias" (b_f + beta)
    value: float  # s or beta
    before: Prediction  # predict(...) of the given params
    after: Prediction  # predict(...) of the returned params


def _apply(cell, params, value: float) -> dict:
    if isinstance(cell, LSTM):
        n = params["weight_hh"].shape[1]
        shift = jnp.zeros_like(params["bias_hh"]).at[n:2 * n].set(value)
        return dict(params, bias_hh=params["bias_hh"] + shift)
    key = "W_hh" if isinstance(cell, RNN) else "weight_hh"
    return dict(params, **{key: params[key] * math.exp(value)})


def make_critical(cell, params, T: int, inputs=None, *, key=None,
                  factor: float = CRITICAL_FACTOR, samples: int = SAMPLES) -> CriticalResult:
    r"""Rescale ``params`` until the network's own top exponent is critical at T.

    Args:
        cell: an :class:`~gradspec.cells.RNN`, :class:`~gradspec.cells.GRU` or
            :class:`~gradspec.cells.LSTM`.
        params: its params.
        T: the horizon (>= 1) the network should carry gradients over.
        inputs: the drive, (L, D) or (B, L, D), as in :func:`gradspec.predict`
            (None: undriven).
        key: PRNG key of the sampled trajectories (fixed across the search).
        factor: F of the regime rule.
        samples: trajectories per measurement.

    Returns:
        A :class:`CriticalResult`: the params, the knob and its value, and the
        prediction before and after (``after.regime == "critical"`` unless no value in
        the searched bracket reaches it, e.g. a network chaotic at any scale; the
        returned params are then the closest found).

    Raises:
        TypeError: ``cell`` is not one of the three built-in cells.

    Examples:
        >>> import jax, gradspec
        >>> cell = gradspec.cells.RNN("tanh")
        >>> params = cell.init(jax.random.key(0), 64, 1,
        ...                    recurrent_init=gradspec.init.gaussian(0.5))
        >>> fixed = gradspec.make_critical(cell, params, T=200)
        >>> fixed.before.regime, fixed.after.regime
        ('vanishing', 'critical')
    """
    cell = as_cell(cell)
    if not isinstance(cell, (RNN, GRU, LSTM)):
        raise TypeError(f"`cell` must be a gradspec RNN, GRU or LSTM for make_critical; "
                        f"got {type(cell).__name__}.")
    dtype = check_params(cell, params)
    T = check_int("T", T, 1)
    key = jr.key(0) if key is None else key
    xs = _sample_inputs(cell, params, inputs, samples, dtype)
    target = math.log(factor) / (2 * T)

    def rate(value):
        return sampled_exponent(cell, _apply(cell, params, value), xs, key)[0]

    # Walk from the given params (value 0) in fixed steps towards zero rate until the
    # sign changes, then bisect that step: the nearest critical value, not just any
    # (the exponent is not monotone at finite N: a tanh network far above its edge of
    # chaos can sit on a stable saturated fixed point and measure a negative rate).
    step, limit = (0.5, 20.0) if isinstance(cell, LSTM) else (0.25, 3.0)
    best, best_rate = 0.0, rate(0.0)
    lo = hi = None
    direction = 1.0 if best_rate < 0 else -1.0
    prev, prev_rate = best, best_rate
    while abs(best_rate) > target and abs(prev) < limit:
        value = prev + direction * step
        value_rate = rate(value)
        if abs(value_rate) < abs(best_rate):
            best, best_rate = value, value_rate
        if not math.isfinite(value_rate) or (value_rate < 0) != (prev_rate < 0):
            lo, hi = sorted((prev, value))
            break
        prev, prev_rate = value, value_rate
    for _ in range(_STEPS if lo is not None else 0):
        if abs(best_rate) <= target:
            break
        mid = 0.5 * (lo + hi)
        rate_mid = rate(mid)
        if abs(rate_mid) < abs(best_rate):
            best, best_rate = mid, rate_mid
        if rate_mid < 0:  # an overflowing (non-finite) rate counts as exploding
            lo = mid
        else:
            hi = mid
    new = _apply(cell, params, best)
    kwargs = dict(inputs=inputs, key=key, samples=samples, factor=factor)
    return CriticalResult(
        params=new,
        knob="forget bias" if isinstance(cell, LSTM) else "recurrent scale",
        value=float(best if isinstance(cell, LSTM) else np.exp(best)),
        before=predict(cell, params, T, **kwargs),
        after=predict(cell, new, T, **kwargs),
    )
