"""predict(): the verdict from the initialization alone (theory checked by sampling)."""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import theory
from .._checks import check_int
from ..cells import GRU, LSTM, RNN, as_cell, check_params
from ..measure._inputs import check_trajectory_inputs, start_state
from ..measure.spectra import weight_spectrum
from ..measure.summary import measurement
from ._regime import (CRITICAL_FACTOR, Prediction, _plain, _timescale, _vanished_exactly,
                      classify, regime_threshold)

#: Trajectories sampled by :func:`predict`, their length and the steps discarded first.
SAMPLES, SAMPLE_STEPS, SAMPLE_WARMUP = 8, 512, 128
#: Relative tolerance of the "looks i.i.d." test on W_hh (circular and quarter-circle
#: edges: rho ~ sigma_w, ||W||_2 ~ 2 sigma_w; finite-N edge fluctuations are
#: O(N^{-2/3}), 4% at N = 64).
IID_RTOL, IID_MIN_N = 0.15, 32
#: Powers of W_hh searched for non-normal transient growth (one SVD each: the cost
#: that keeps predict under a second at N = 256).
TRANSIENT_POWERS = 16
#: The nonlinearities with f(0) = 0 that are differentiable there: for these the ordered
#: phase's fixed point h = 0 gives the exact finite-N exponent (relu is not
#: differentiable at 0, and its exponent at 0 depends on which units are active).
SMOOTH_AT_ZERO = ("tanh", "linear")


def _iid_scale(W: np.ndarray, spectrum) -> Optional[float]:
    """sigma_w if W looks i.i.d. with variance sigma_w^2/N (circular & quarter-circle
    edges where random-matrix theory puts them), else None."""
    n = W.shape[0]
    sigma_w = float(np.sqrt(n * np.mean(W**2)))
    if n < IID_MIN_N or sigma_w == 0:
        return None
    rho, norm = float(spectrum.spectral_radius), float(spectrum.spectral_norm)
    ok = abs(rho / sigma_w - 1) < IID_RTOL and abs(norm / (2 * sigma_w) - 1) < IID_RTOL
    return sigma_w if ok else None


def sampled_exponent(cell, params, xs, key, readout=None, h0=None):
    """The network's own top exponent: mean and standard error over trajectories.

    One trajectory per input sequence of ``xs`` (B, L, D), each from its own start by
    the default start rule (:func:`gradspec.start_state` with a key drawn from ``key``)
    with a random start frame, the first min(128, L/4) steps discarded
    (:func:`gradspec.measurement`); ``h0`` (S,), when given, starts every one. Returns
    ``(mean, standard error, finite, measurement)``, ``finite`` (B,) bool: whether each
    trajectory stayed finite (an overflowing one counts up to its overflow).

    A trajectory whose exponent is exactly -inf collapsed (every path passes
    a zero derivative at some step, e.g. all relu units off): its gradient past that
    step is exactly zero and adds nothing to a batch's gradient, which the other
    sequences carry. So the mean is over the others, as a training run's recorded
    gradient averages the finite log-norms of its batch; it is -inf only
    when every trajectory collapsed.
    """
    k_h, k_q = jr.split(key)
    if h0 is None:
        h0 = start_state(cell, params, xs.shape[2], xs.dtype, key=jr.split(k_h, xs.shape[0]))
    m = measurement(cell, params, xs, h0, readout=readout,
                    warmup=min(SAMPLE_WARMUP, xs.shape[1] // 4), key=k_q)
    lam, counted = np.asarray(m.lyapunov, np.float64), np.asarray(m.steps)
    collapsed = lam == -math.inf
    valid = (counted > 0) & ~collapsed
    if valid.any():
        measured = float(lam[valid].mean())
        spread = (float(lam[valid].std(ddof=1) / math.sqrt(valid.sum())) if valid.sum() > 1
                  else math.inf)
    else:  # every trajectory collapsed exactly (-inf, no spread), or none was counted
        measured, spread = (-math.inf, 0.0) if collapsed.any() else (math.nan, math.inf)
    return measured, spread, np.asarray(m.finite), m


def predict(cell, params, T: int, key=None, inputs=None, *, samples: int = SAMPLES,
            factor: float = CRITICAL_FACTOR, readout=None, h0=None) -> Prediction:
    r"""Predict, before training, whether gradients vanish or explode over T steps.

    Two sources, chosen automatically:

    - ``"mean-field"``: a vanilla RNN whose :math:`W_{hh}` looks i.i.d. (its spectral
      radius near :math:`\sigma_w` and norm near :math:`2\sigma_w`, as the circular and
      quarter-circle laws require). Then
      :math:`\lambda_{max} = \tfrac12 \log \chi`, :math:`\chi = \sigma_w^2\,
      \mathbb E[f'(\sqrt{q^*} z)^2]` (:func:`gradspec.theory.mean_field`), exact as
      N grows; with inputs, the average of :math:`\tfrac12 \log \chi_t` along the
      sampled sequences (:func:`gradspec.theory.mean_field_along`), since the drive's
      variance changes from step to step.
    - ``"fixed-point"``: the same network in its ordered phase with no bias and no
      input (mean-field :math:`q^* = 0`), f smooth at 0 with f(0) = 0 (tanh, linear)
      and h = 0 stable at this N (:math:`f'(0)\rho(W_{hh}) < 1`): every trajectory
      settles at h = 0, so exactly
      :math:`\lambda_{max} = \log(f'(0)\,\rho(W_{hh}))` at this N (the mean field's
      :math:`\log \sigma_w` is its N -> infinity limit).
    - ``"lyapunov"``: everything else (LSTM, GRU, orthogonal/identity inits, trained
      weights): the top Lyapunov exponent measured on ``samples`` trajectories from
      random initial states (and random start frames), driven by ``inputs``.

    The sampled exponent is computed in every case; its spread gives ``uncertainty``.
    Mean field is an N -> infinity, annealed theory: where the network's own sampled
    exponent misses it by more than two standard errors (finite N, relu's quenched
    active set), the measurement decides (source ``"lyapunov"``) and ``reasons``
    says which assumption broke; mean field's value stays in ``mean_field``.

    Args:
        cell: a :class:`gradspec.cells.Cell`.
        params: the cell's params.
        T: horizon in steps (>= 1) the verdict is for.
        key: PRNG key for the sampled initial states and frames; ``key(0)`` if None.
        inputs: drive for the sampled trajectories, (L, D) or (B, L, D); the
            autonomous system (zero input) when None, matching mean field with
            :math:`\sigma_x = 0`. With inputs, :math:`\sigma_x^2` is the mean of
            :math:`(W_{xh} x)_i^2`.
        samples: number of sampled trajectories.
        factor: F of the regime rule (module doc): "critical" when the gradient
            changes by less than F over T.
        readout: the model's readout on the visible output, (N_out,) or (M, N_out), as
            in :func:`gradspec.diagnose`: then ``loss_rate`` is the slope of the
            readout's transported gradient along the sampled trajectories (every lag,
            as in diagnose), and the verdict follows it; ``lyapunov`` stays the worst direction.
        h0: one start state (S,) for every sampled trajectory, e.g. ``zeros`` where a
            training run starts (over a horizon of a few dozen steps the start matters);
            None: each from its own relaxed random state (:func:`gradspec.start_state`).

    Returns:
        A :class:`Prediction`; ``reasons`` states the argument in words.

    Examples:
        >>> import jax, gradspec
        >>> cell = gradspec.cells.RNN("tanh")
        >>> params = cell.init(jax.random.key(0), 256, 1,
        ...                    recurrent_init=gradspec.init.gaussian(0.5))
        >>> p = gradspec.predict(cell, params, T=100)
        >>> p.regime, p.source, round(p.mean_field["lambda_max"], 2)  # log sigma_w
        ('vanishing', 'fixed-point', -0.69)
        >>> round(p.lyapunov, 3), round(p.measured_lyapunov, 3)  # log rho(W_hh), exact
        (-0.699, -0.699)
    """
    cell = as_cell(cell)
    dtype = check_params(cell, params)
    T = check_int("T", T, 1)
    samples = check_int("samples", samples, 2)
    key = jr.key(0) if key is None else key
    xs = _sample_inputs(cell, params, inputs, samples, dtype)
    start = check_trajectory_inputs(cell, params, xs[0], h0)[2]  # shape checks, one sample
    h0 = None if h0 is None else start
    warmup = min(SAMPLE_WARMUP, xs.shape[1] // 4)
    measured, spread, finite, m = sampled_exponent(cell, params, xs, key, readout, h0)

    if inputs is None:
        reasons, mf = ["undriven: zero input (pass inputs= for the network's own drive)"], None
    else:
        power = float(jnp.mean(jnp.asarray(xs, jnp.float32) ** 2))
        given = 1 if np.ndim(inputs) == 2 else np.shape(inputs)[0]
        reasons, mf = [f"driven by the given inputs: {given} sequence(s) of {xs.shape[1]} "
                       f"steps, mean x^2 = {power:.3g}"], None
    lyapunov, source = measured, "lyapunov"
    if isinstance(cell, RNN):
        reasons += _weight_reasons(cell, params, T)
        W = np.asarray(params["W_hh"], np.float64)
        spectrum = weight_spectrum(W)
        sigma_w = _iid_scale(W, spectrum)
        if sigma_w is not None:
            sigma_b = float(np.sqrt(np.mean(np.asarray(params["b"], np.float64) ** 2)))
            drive = np.einsum("nd,bld->bln", np.asarray(params["W_xh"], np.float64), np.asarray(xs))
            sigma_x = float(np.sqrt(np.mean(drive**2)))
            mf_result = theory.mean_field(cell.nonlinearity, sigma_w, sigma_b=sigma_b, sigma_x=sigma_x)
            mf = {k: _plain(v) for k, v in mf_result._asdict().items()}
            lyapunov, source = float(mf_result.lambda_max), "mean-field"
            reasons.append(
                f"W_hh looks i.i.d. with sigma_w = {sigma_w:.3f} (sigma_b = {sigma_b:.3f}, "
                f"sigma_x = {sigma_x:.3f}): mean-field chi = {float(mf_result.chi):.4f}, "
                f"lambda_max = (1/2) log chi = {lyapunov:+.4f} per step"
            )
            if sigma_x > 0:
                # The drive's variance changes from step to step (for few inputs, a lot):
                # the theory along the sampled sequences, not at their mean variance.
                s2 = jnp.asarray(np.mean(drive**2, axis=2), dtype)  # (samples, L)
                along = jax.vmap(
                    lambda v: theory.mean_field_along(
                        cell.nonlinearity, sigma_w, v, sigma_b=sigma_b, warmup=warmup
                    ).lambda_max
                )(s2)
                lyapunov = float(np.mean(np.asarray(along, np.float64)))
                mf["lambda_max_along_inputs"] = lyapunov
                reasons.append(
                    f"the drive's variance varies over time (s_t^2 from {float(s2.min()):.3f} "
                    f"to {float(s2.max()):.3f}): mean field along the sampled inputs, "
                    f"lambda_max = mean_t (1/2) log chi_t = {lyapunov:+.4f} per step"
                )
            at_zero = float(mf_result.q_star) == 0.0 and cell.nonlinearity in SMOOTH_AT_ZERO
            rate0 = float(cell.slope(jnp.zeros(()))) * float(spectrum.spectral_radius)
            if at_zero and rate0 < 1.0:
                # Ordered phase with no bias and no input, and h = 0 stable at this N:
                # every trajectory settles there, where J = f'(0) W_hh. Its top exponent
                # is the finite-N answer the N -> infinity theory approximates (rho(W)
                # scatters O(N^-1/2) around sigma_w: 11% at N = 64 for one seed).
                lyapunov, source = math.log(rate0), "fixed-point"
                reasons.append(
                    f"ordered phase, no bias or input: trajectories settle at h = 0, where "
                    f"J = f'(0) W_hh, so exactly lambda_max = log(f'(0) rho(W_hh)) = "
                    f"{lyapunov:+.4f} at this N"
                )
            if source == "mean-field" and abs(lyapunov - measured) > 2 * spread:
                reasons.append(_theory_missed(cell, lyapunov, measured, spread, W.shape[0],
                                              float(spectrum.spectral_radius), sigma_w))
                lyapunov, source = measured, "lyapunov"
        else:
            reasons.append("W_hh is not i.i.d.-like (orthogonal, identity, structured or "
                           "trained): lambda_max measured on sampled trajectories")
    else:
        reasons.append(f"{type(cell).__name__}: lambda_max measured on {samples} sampled trajectories")
        if isinstance(cell, LSTM):
            reasons.append(_forget_gate_reason(params))
        if isinstance(cell, (LSTM, GRU)):
            mf, why = _gated_theory(cell, params, None if inputs is None else xs, measured, spread)
            reasons.append(why)
    n_collapsed = int(np.sum(np.asarray(m.lyapunov) == -np.inf))
    if 0 < n_collapsed < samples:
        reasons.append(f"{n_collapsed} of {samples} sampled trajectories collapsed exactly "
                       "(every path through the recurrence passes a zero derivative at some "
                       "step): their gradient past it is exactly zero and adds nothing to a "
                       "batch's; lambda_max is the others' mean")
    n_finite = int(np.asarray(finite).sum())
    if n_finite < samples:
        reasons.append(f"{samples - n_finite} of {samples} sampled trajectories overflowed "
                       "(unbounded dynamics); their rate is measured up to the overflow")
    if math.isnan(lyapunov):  # every sampled trajectory overflowed at once
        lyapunov = math.inf
    reasons.append(f"sampled trajectories ({'from the given h0' if h0 is not None else 'from relaxed random states'}): "
                   f"lambda_max = {measured:+.4f} +- {spread:.4f}")
    rate, rate_se, loss_rate, loss_se = lyapunov, spread, None, None
    if readout is not None:
        loss_rate, loss_se = _mean_se_finite(np.asarray(m.loss_rate, np.float64))
        rate, rate_se = loss_rate, loss_se
        reasons.append(f"with the readout: the loss sees {loss_rate:+.4f} +- {loss_se:.4f} per "
                       f"step (lambda_max, the worst direction, is {lyapunov:+.4f}); the "
                       "verdict follows the loss")
    tol = regime_threshold(T, rate_se, factor)
    regime = classify(rate, tol)
    reasons.append(_verdict(regime, rate, T, tol))
    reasons.extend(filter(None, [_vanished_exactly(rate * T)]))
    if regime != "critical" and isinstance(cell, (RNN, GRU, LSTM)) and math.isfinite(lyapunov):
        knob = "forget-gate bias" if isinstance(cell, LSTM) else "recurrent weights"
        reasons.append(f"to make it critical at T = {T}: gradspec.make_critical(cell, params, "
                       f"T={T}) rescales the {knob} by bisection on this exponent")
    return Prediction(
        regime=regime,
        lyapunov=lyapunov,
        uncertainty=spread,
        threshold=tol,
        timescale=_timescale(rate),
        T=T,
        log_gradient_ratio=rate * T,
        source=source,
        measured_lyapunov=measured,
        samples_finite=n_finite,
        reasons=tuple(reasons),
        mean_field=mf,
        loss_rate=loss_rate,
        loss_rate_se=loss_se,
    )


def _mean_se_finite(rates: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the finite rates (the loss's profile slopes, fitted
    over every lag as :func:`gradspec.diagnose` fits them)."""
    rates = rates[np.isfinite(rates)]
    if len(rates) < 2:
        return (float(rates.mean()) if len(rates) else math.nan), math.inf
    return float(rates.mean()), float(rates.std(ddof=1) / math.sqrt(len(rates)))


def _theory_missed(cell, theory_value, measured, spread, n, rho, sigma_w) -> str:
    """Why mean field's value is not this network's, in words."""
    head = (f"mean field gives {theory_value:+.4f}, this network's own exponent is "
            f"{measured:+.4f} +- {spread:.4f}: ")
    if cell.nonlinearity == "relu":
        why = ("relu's active units persist from step to step in a fixed network "
               "(quenched), while mean field redraws the weights every step (annealed) "
               "and averages f'^2 = 1/2 over units")
    else:
        why = (f"finite N = {n}: rho(W_hh) = {rho:.3f} scatters O(N^-1/2) around the "
               f"mean-field sigma_w = {sigma_w:.3f}, and the weights are fixed (quenched) "
               "where mean field redraws them (annealed)")
    return head + why + "; the verdict follows the network's own exponent"


def _sample_inputs(cell, params, inputs, samples, dtype):
    """(samples, L, D) inputs: zeros (autonomous) when None, else ``inputs`` cycled."""
    if inputs is None:
        d = cell.input_size(params) or 1
        return jnp.zeros((samples, SAMPLE_STEPS, d), dtype)
    inputs = jnp.asarray(inputs)
    if inputs.ndim == 2:
        inputs = inputs[None]
    if inputs.ndim != 3:
        raise ValueError(f"`inputs` must have shape (L, D) or (B, L, D); got {inputs.shape}.")
    return jnp.asarray(inputs[jnp.arange(samples) % inputs.shape[0]], dtype)


def _weight_reasons(cell: RNN, params, T: int) -> list:
    """Pascanu's bound and non-normal transient growth, in words."""
    bound = theory.gradient_bound(params, cell.nonlinearity, 1)
    factor = math.exp(float(bound.log_rate))
    if bool(bound.vanishing_guaranteed):
        out = [f"sigma_max(W_hh) * gamma = {factor:.3f} < 1: vanishing guaranteed "
               f"(Pascanu bound: ||dL/dh_0|| / ||dL/dh_T|| <= {factor:.3f}^T)"]
    else:
        out = [f"sigma_max(W_hh) * gamma = {factor:.3f} >= 1: the Pascanu bound allows "
               "growth (exploding possible, not implied)"]
    if float(bound.spectral_norm) <= 1.0:  # ||W^k|| <= ||W||^k <= 1: no growth possible
        return out
    growth = theory.transient_growth(np.asarray(params["W_hh"], np.float64), max_power=min(T, TRANSIENT_POWERS))
    peak, rate = math.exp(float(growth.log_max_growth)), float(growth.log_spectral_radius)
    if peak > 1.0 + 1e-6 and rate < 0:
        out.append(f"W_hh is non-normal: ||W^k|| grows to {peak:.3g} at k = {int(growth.peak_power)} "
                   f"before decaying at log rho = {rate:+.4f} per step (transient growth)")
    return out


def gate_statistics(cell, params) -> dict:
    r"""The per-gate hyperparameters of :func:`gradspec.theory.gated_mean_field` read
    off a gated cell's weights: :math:`\sigma_k = \sqrt{N\,\overline{(W^k_{hh})^2}}`,
    :math:`\nu_k = \sqrt{D\,\overline{(W^k_{ih})^2}}`, and the mean :math:`\mu_k` and
    std :math:`\rho_k` of the bias :math:`b^k_{ih} + b^k_{hh}` (the GRU's candidate gate:
    :math:`b_{in}` only, as the theory keeps :math:`b_{hn}` inside the reset product)."""
    names = "ifgo" if isinstance(cell, LSTM) else "rzn"
    n, d = params["weight_hh"].shape[1], params["weight_ih"].shape[1]
    blocks = {k: np.split(np.asarray(params[k], np.float64), len(names))
              for k in ("weight_hh", "weight_ih", "bias_ih", "bias_hh")}
    out = {key: {} for key in ("sigma", "nu", "mu", "rho")}
    for j, g in enumerate(names):
        bias = blocks["bias_ih"][j] + (0 if g == "n" else blocks["bias_hh"][j])
        out["sigma"][g] = float(np.sqrt(n * np.mean(blocks["weight_hh"][j] ** 2)))
        out["nu"][g] = float(np.sqrt(d * np.mean(blocks["weight_ih"][j] ** 2)))
        out["mu"][g], out["rho"][g] = float(bias.mean()), float(bias.std())
    return out


def _gated_theory(cell, params, xs, measured: float, spread: float) -> tuple[dict, str]:
    """The gated mean-field theory (quenched at this N; with inputs, the input's power
    as frozen extra bias variance) beside the network's own exponent, in words."""
    kind = "lstm" if isinstance(cell, LSTM) else "gru"
    hyper = gate_statistics(cell, params)
    sigma_x = 0.0 if xs is None else float(np.sqrt(np.mean(np.asarray(xs, np.float64) ** 2)))
    n = params["weight_hh"].shape[1]
    q = theory.gated_mean_field(kind, **hyper, sigma_x=sigma_x, hidden=n)
    a = theory.gated_mean_field(kind, **hyper, sigma_x=sigma_x, mode="annealed", hidden=n)
    mf = {"gates": hyper, "lambda_max_quenched": float(q.lambda_max),
          "lambda_max_annealed": float(a.lambda_max), "sigma_x": sigma_x}
    head = (f"gated mean field ({kind.upper()}, weights' statistics per gate, N = {n}"
            f"{', inputs as frozen bias variance' if xs is not None else ', undriven'}): "
            f"quenched lambda_max = {float(q.lambda_max):+.4f}, annealed "
            f"{float(a.lambda_max):+.4f}; ")
    gap = abs(float(q.lambda_max) - measured)
    if math.isfinite(measured) and gap <= max(2 * spread, 0.02):
        return mf, head + f"the network's own {measured:+.4f} agrees with the quenched theory"
    return mf, head + (f"the network's own {measured:+.4f} +- {spread:.4f} differs by "
                       f"{gap:.3f}: the theory assumes a stable fixed point at zero input "
                       "(or a frozen drive) and Gaussian, independent weights; the verdict "
                       "follows the network")


def _forget_gate_reason(params) -> str:
    """The LSTM memory's own decay: c_t = f_t c_{t-1} + ..., so with the input and
    recurrent drive off the cell state shrinks by the forget gate each step."""
    n = params["weight_hh"].shape[1]
    bias = np.asarray(params["bias_ih"], np.float64) + np.asarray(params["bias_hh"], np.float64)
    f = 1 / (1 + np.exp(-bias[n : 2 * n]))  # PyTorch gate order i, f, g, o
    return (f"forget gates at zero drive: sigmoid(b_f) averages {f.mean():.3f}, so the "
            f"memory c decays by log f = {np.log(f).mean():+.3f} per step; a forget-gate "
            "bias of +1 to +3 (Gers et al. 2000; Jozefowicz et al. 2015) slows it")


def _verdict(regime: str, lam: float, T: int, tol: float) -> str:
    if regime == "critical":
        change = math.exp(min(abs(lam) * T, 700.0)) if math.isfinite(lam) else math.inf
        return (f"|lambda_max| <= tau = {tol:.2g}: the gradient changes by a factor "
                f"{change:.3g} over T = {T} steps (critical)")
    if not math.isfinite(lam):
        return f"{regime}: the state itself diverges"
    decades = abs(lam) * T / math.log(10)
    steps_1e6 = math.log(1e6) / abs(lam)
    word = "shrinks" if lam < 0 else "grows"
    return (f"{regime}: the gradient {word} by e every {1 / abs(lam):.1f} steps, "
            f"10^{decades:.1f} over T = {T}; a factor 10^6 after {steps_1e6:.0f} steps")
