"""diagnose(): the regime measured along given inputs, and the rate the loss sees."""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import lax

from .._precision import full_precision
from ..cells import LSTM, RNN, check_trajectory_inputs
from ..measure.jacobians import _states, gradient_profile, profile_rate, state_readout
from ..measure.spectra import _frame_sweeps, lyapunov_spectrum, weight_spectrum
from ._regime import CRITICAL_FACTOR, Diagnosis, _mean_se, classify, regime_threshold

def diagnose(cell, params, xs, h0=None, *, readout=None,
             factor: float = CRITICAL_FACTOR) -> Diagnosis:
    r"""Measure the regime along an input sequence ``xs`` (T, D), or a batch (B, T, D).

    Uses :func:`gradspec.lyapunov_spectrum` (top exponent, warm-up T//10),
    :func:`gradspec.gradient_profile` and :func:`gradspec.profile_rate`; the regime
    threshold is ln(F)/T with F = ``factor`` (module doc). A batch reports the mean
    over its sequences and the standard error.

    With ``readout`` (the model's own readout: a vector or an (M, N_out) matrix such
    as a trained linear layer's weight, see :func:`gradspec.gradient_profile`) the
    verdict is about the loss the model has: ``loss_rate`` is the slope in k of
    :math:`\log \| R\, P\, J_T \cdots J_{T-k+1} \|_F`, the gradient transported from
    the readout back through the recurrence, and the regime follows it. The top
    exponent stays beside it: it is the worst direction, which the readout may never
    see (saturated memory units whose output gate or tanh'(c) is ~0).

    Examples:
        >>> import jax, jax.numpy as jnp, gradspec
        >>> cell = gradspec.cells.RNN("linear")
        >>> params = {"W_hh": 0.9 * jnp.eye(3), "W_xh": jnp.zeros((3, 1)), "b": jnp.zeros(3)}
        >>> d = gradspec.diagnose(cell, params, jnp.zeros((200, 1)))
        >>> d.regime, round(d.profile_rate, 4)  # log 0.9
        ('vanishing', -0.1054)
    """
    batch = np.ndim(xs) == 3
    seqs = xs if batch else [xs]
    cell, _, h0 = check_trajectory_inputs(cell, params, seqs[0], h0)
    seqs = jnp.asarray(seqs, h0.dtype)
    T = seqs.shape[1]

    def profiles(r):
        return jax.vmap(lambda x: gradient_profile(cell, params, x, h0, readout=r))(seqs)

    lam = jax.vmap(lambda x: lyapunov_spectrum(cell, params, x, h0, k=1, warmup=T // 10,
                                               key=jr.key(0)))(seqs)
    lam, prof = np.asarray(lam[:, 0], np.float64), profiles(None)
    rates = np.asarray(jax.vmap(profile_rate)(prof))
    loss_rate = loss_se = None
    rate = _mean_se(lam)
    if readout is not None:
        loss_prof = profiles(readout)
        loss_rate, loss_se = _mean_se(np.asarray(jax.vmap(profile_rate)(loss_prof), np.float64))
        rate = (loss_rate, loss_se)
        lam_se = _mean_se(lam)[1] or 0.0
        if abs(float(np.mean(lam)) - loss_rate) > 2 * (lam_se + (loss_se or 0.0)) + 1e-3:
            invisible, why = _invisible_units(cell, params, seqs, h0, readout, lam, loss_rate)
        else:
            invisible, why = (), (f"lambda_1 = {float(np.mean(lam)):+.4f} and the loss's rate "
                                  f"{loss_rate:+.4f} agree: the readout sees the worst direction",)
    why = why if readout is not None else ()
    stuck = _unstable_fixed_point(cell, params, seqs, h0, float(np.mean(lam)))
    if stuck:
        warnings.warn(stuck, stacklevel=2)
        why = why + (stuck,)
    radius = norm = None
    if isinstance(cell, RNN):
        spec = weight_spectrum(params["W_hh"])
        radius, norm = float(spec.spectral_radius), float(spec.spectral_norm)
    se = rate[1] or 0.0
    return Diagnosis(
        regime=classify(rate[0], regime_threshold(T, se, factor)),
        lyapunov=_mean_se(lam)[0],
        profile_rate=float(np.mean(rates)),
        log_gradient_ratio=float(np.mean(np.asarray(prof[:, -1] - prof[:, 0], np.float64))),
        T=T,
        spectral_radius=radius,
        spectral_norm=norm,
        batch=seqs.shape[0],
        lyapunov_se=_mean_se(lam)[1],
        loss_rate=loss_rate,
        loss_rate_se=loss_se,
        invisible_units=invisible if readout is not None else None,
        why=why,
    )


#: A state entry is invisible to the readout below this share of its gradient.
INVISIBLE_SHARE = 1e-3
#: The units that carry lambda_1: the fewest holding this much of its direction.
CARRIER_MASS = 0.9


@functools.partial(jax.jit, static_argnames="cell")
@full_precision
def _unit_weights(cell, params, xs, h0, q0, readout_rows):
    """Per state entry: the squared top forward Lyapunov vector at the end of the run,
    and the mean share of the readout's transported gradient over all lags."""
    _, prev = _states(cell, params, xs, h0)
    forward, _ = _frame_sweeps(cell, params, xs, prev, "auto")
    q_T, _ = forward(q0)

    def back(g, step):  # the normalised cotangents R P J_T ... of every row
        h, x = step
        g = jax.vmap(lambda r: cell.vjp(params, h, x, r))(g)
        g = g / jnp.maximum(jnp.linalg.norm(g), jnp.finfo(g.dtype).tiny)
        return g, jnp.sum(g**2, axis=0)

    g0 = readout_rows / jnp.linalg.norm(readout_rows)
    _, shares = lax.scan(back, g0, (prev, xs), reverse=True)
    return q_T[:, 0] ** 2, jnp.mean(shares, axis=0)


def _unstable_fixed_point(cell, params, seqs, h0, lam: float) -> str:
    """A sentence when every trajectory stays at its start state although that state
    is unstable (lambda_1 > 0): the measurement is then about the fixed point, not the
    dynamics from any other state. Empty otherwise."""
    if lam <= 0:
        return ""
    states = jax.vmap(lambda x: _states(cell, params, x, h0)[0])(seqs)
    if not bool(jnp.all(states == h0[None, None, :])):
        return ""
    return (f"the trajectory sits on the unstable fixed point h = h0 (lambda_1 = {lam:+.4f} "
            "there): from any other state the dynamics differ; pass another h0 or "
            "drive the network, or ask gradspec.predict (random start states)")


def _state_labels(cell, size: int) -> list[str]:
    """A name per state entry: h[i] / c[i] (an LSTM's memory), layer-prefixed in a Stack
    (whose state lists the last layer first)."""
    layers = getattr(cell, "layers", None)
    if layers is None:
        n = cell.output_size(size)
        return [f"h[{i}]" if i < n else f"c[{i - n}]" for i in range(size)]
    width = size // sum(layer.state_size(1) for layer in layers)
    return [f"layer{l}.{name}" for l in reversed(range(len(layers)))
            for name in _state_labels(layers[l], layers[l].state_size(width))]


def _invisible_units(cell, params, seqs, h0, readout, lam, loss_rate):
    """The state entries that carry lambda_1 but hold < INVISIBLE_SHARE of the readout's
    gradient, and the sentences that say so (with an LSTM's gate statistics)."""
    size = h0.shape[0]
    rows = jnp.atleast_2d(state_readout(cell, readout, size, h0.dtype))
    q0 = jr.normal(jr.key(0), (size, 1), jnp.float32).astype(h0.dtype)
    q0 = q0 / jnp.linalg.norm(q0)
    carry, share = jax.vmap(_unit_weights, in_axes=(None, None, 0, None, None, None))(
        cell, params, seqs, h0, q0, rows)
    carry, share = np.asarray(carry, np.float64).mean(0), np.asarray(share, np.float64).mean(0)
    order = np.argsort(-carry)
    carriers = order[: int(np.searchsorted(np.cumsum(carry[order]), CARRIER_MASS)) + 1]
    invisible = tuple(int(i) for i in sorted(carriers) if share[i] < INVISIBLE_SHARE)
    lam1 = float(np.mean(lam))
    why = [f"lambda_1 = {lam1:+.4f} per step is the worst direction; the loss, through the "
           f"readout, sees {loss_rate:+.4f}: the verdict follows the loss"]
    if invisible:
        labels = _state_labels(cell, size)
        names = [labels[i] for i in invisible]
        why.append(f"lambda_1 lives on {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}"
                   f" ({len(invisible)} state {'entry' if len(invisible) == 1 else 'entries'}), which hold < {INVISIBLE_SHARE:g} of "
                   "the readout's gradient: nothing leaves them towards the loss")
        if isinstance(cell, LSTM):
            n = cell.output_size(size)
            why.append(_gate_statistics(cell, params, seqs, h0, sorted({i % n for i in invisible})))
    return invisible, tuple(why)


def _gate_statistics(cell, params, seqs, h0, units) -> str:
    """Mean gates, |c| and tanh'(c) of an LSTM's units along the sequences."""
    n = params["weight_hh"].shape[1]

    def body(state, x):
        i, f, _, o = cell.gate_values(params, state, x)
        state = cell.step(params, state, x)
        c = state[n:]
        return state, jnp.stack([i, f, o, jnp.abs(c), 1 - jnp.tanh(c) ** 2])

    runs = jax.vmap(lambda xs: lax.scan(body, h0, xs)[1])(seqs)
    stats = np.asarray(runs, np.float64).mean(axis=(0, 1))[:, units]  # (5, units)
    names = ("input gate", "forget gate", "output gate", "|c|", "tanh'(c)")
    return ("their gates (mean over the run): " + ", ".join(
        f"{name} {np.mean(v):.3g} [{np.min(v):.3g}, {np.max(v):.3g}]"
        for name, v in zip(names, stats)))
