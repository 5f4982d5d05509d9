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
from ..cells import LSTM, RNN
from ..measure._inputs import check_trajectory_inputs
from ..measure.jacobians import _states, state_readout
from ..measure.spectra import _frame_sweeps, weight_spectrum
from ..measure.summary import measurement
from ._regime import (CRITICAL_FACTOR, Diagnosis, _mean_se, _vanished_exactly, classify,
                      regime_threshold)

def diagnose(cell, params, xs, h0=None, *, readout=None,
             factor: float = CRITICAL_FACTOR) -> Diagnosis:
    r"""Measure the regime along an input sequence ``xs`` (T, D), or a batch (B, T, D).

    The words around :func:`gradspec.measurement` (top exponent with warm-up T//10,
    gradient profile and its rate; all sequences from the same start ``h0``, the
    default :func:`gradspec.start_state` when None); the regime threshold is ln(F)/T
    with F = ``factor`` (module doc). A batch reports the mean over its sequences and
    the standard error.

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
    m = measurement(cell, params, seqs, h0, readout=readout, warmup=T // 10)
    lam, prof = np.asarray(m.lyapunov, np.float64), m.profile
    rates = np.asarray(m.profile_rate)
    loss_rate = loss_se = None
    rate = _mean_se(lam)
    if readout is not None:
        loss_rate, loss_se = _mean_se(np.asarray(m.loss_rate, np.float64))
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
    log_ratio = float(np.mean(np.asarray(prof[:, -1] - prof[:, 0], np.float64)))
    why = why + tuple(filter(None, [_vanished_exactly(log_ratio)]))
    radius = norm = None
    if isinstance(cell, RNN):
        spec = weight_spectrum(params["W_hh"])
        radius, norm = float(spec.spectral_radius), float(spec.spectral_norm)
    se = rate[1] or 0.0
    return Diagnosis(
        regime=classify(rate[0], regime_threshold(T, se, factor)),
        lyapunov=_mean_se(lam)[0],
        profile_rate=float(np.mean(rates)),
        log_gradient_ratio=log_ratio,
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
    r"""Per state entry: the squared first column of the Benettin frame at the end of the
    run (the top backward Lyapunov vector), and its share of the readout's transported gradient over all lags,
    :math:`\sum_k g_k(i)^2 / \sum_k \|g_k\|^2` (:math:`g_k = R P J_T \cdots J_{T-k+1}`,
    summed in the log domain): a lag counts by its gradient's size, so a unit that only
    a vanished gradient reaches has no share."""
    _, prev = _states(cell, params, xs, h0)
    forward, _ = _frame_sweeps(cell, params, xs, prev, "auto")
    q_T, _ = forward(q0)

    def back(carry, step):  # the cotangents R P J_T ..., normalised, and their log scale
        g, log_scale = carry
        h, x = step
        g = jax.vmap(lambda r: cell.vjp(params, h, x, r))(g)
        norm = jnp.maximum(jnp.linalg.norm(g), jnp.finfo(g.dtype).tiny)
        carry = (g / norm, log_scale + jnp.log(norm))
        return carry, (jnp.sum(carry[0] ** 2, axis=0), carry[1])

    g0 = readout_rows / jnp.linalg.norm(readout_rows)
    _, (shares, log_scales) = lax.scan(back, (g0, jnp.zeros((), g0.dtype)), (prev, xs),
                                       reverse=True)
    # Each lag weighted by its squared gradient norm: the share of the whole gradient.
    weights = jnp.exp(2 * (log_scales - log_scales.max()))
    return q_T[:, 0] ** 2, weights @ shares / weights.sum()


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
        why.extend(_gate_statistics(cell, params, seqs, h0, invisible))
    return invisible, tuple(why)


def _layer_sites(cell, size: int) -> list:
    """Per layer in layer order: ``(prefix, layer cell, params key, state offset)``; a
    single cell is one layer at offset 0 (a Stack lists its last layer first)."""
    layers = getattr(cell, "layers", None)
    if layers is None:
        return [("", cell, None, 0)]
    width, end, sites = size // sum(layer.state_size(1) for layer in layers), size, []
    for l, layer in enumerate(layers):
        end -= layer.state_size(width)
        sites.append((f"layer{l}.", layer, f"layer{l}", end))
    return sites


def _gate_statistics(cell, params, seqs, h0, invisible) -> list[str]:
    """Mean gates, |c| and tanh'(c) along the sequences of the invisible units of each
    LSTM (a plain LSTM or the LSTM layers of a Stack, each fed what it reads there)."""
    sites = _layer_sites(cell, h0.shape[0])
    sentences = []
    for l, (prefix, layer, key, offset) in enumerate(sites):
        if not isinstance(layer, LSTM):
            continue
        p = params if key is None else params[key]
        n = p["weight_hh"].shape[1]
        units = sorted({(i - offset) % n for i in invisible if offset <= i < offset + 2 * n})
        if not units:
            continue
        # layer l reads layer l - 1's new output at the same step (the Stack's rule)
        below = None if l == 0 else (sites[l - 1][3], sites[l - 1][1].output_size(
            sites[l - 1][1].state_size(n)))

        def run(xs, layer=layer, p=p, offset=offset, below=below, n=n):
            hs, prev = _states(cell, params, xs, h0)
            inputs = xs if below is None else hs[:, below[0]:below[0] + below[1]]
            i, f, _, o = jax.vmap(lambda s, x: layer.gate_values(p, s, x))(
                prev[:, offset:offset + 2 * n], inputs)
            c = hs[:, offset + n:offset + 2 * n]
            return jnp.stack([i, f, o, jnp.abs(c), 1 - jnp.tanh(c) ** 2], axis=1)

        stats = np.asarray(jax.vmap(run)(seqs), np.float64).mean(axis=(0, 1))[:, units]
        names = ("input gate", "forget gate", "output gate", "|c|", "tanh'(c)")
        sentences.append(f"{prefix or 'their '}gates of units {units} (mean over the run): "
                         + ", ".join(f"{name} {np.mean(v):.3g} [{np.min(v):.3g}, {np.max(v):.3g}]"
                                     for name, v in zip(names, stats)))
    return sentences
