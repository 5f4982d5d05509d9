r"""Mean-field theory of random gated cells (LSTM, GRU): annealed and quenched.

- :func:`gated_mean_field`: the top exponent :math:`\lambda_{max}`, :math:`\chi`,
  :math:`\xi` and the state's mean squares of a random LSTM or GRU, in either theory.
- :func:`gated_mean_field_along`: the annealed theory along a given input sequence.
- :func:`gated_critical`: gate hyperparameters whose quenched :math:`\lambda_{max}`
  is 0, ready for ``LSTM().init(..., gates=...)``.

The model, per gate k (LSTM i, f, g, o; GRU r, z, n, PyTorch's order): recurrent block
:math:`W^k_{hh} \sim \mathcal N(0, \sigma_k^2/N)`, input block
:math:`W^k_{ih} \sim \mathcal N(0, \nu_k^2/D)`, bias :math:`b_k \sim
\mathcal N(\mu_k, \rho_k^2)` (``bias_ih + bias_hh``; the GRU's ``b_hn``, inside the
reset product, is 0), so across units

.. math::
    z_k \sim \mathcal N(\mu_k, \Sigma_k), \qquad
    \Sigma_k = \sigma_k^2 Q_h + \nu_k^2 R + \rho_k^2, \qquad
    Q_h = \mathrm{mean}_j\, h_j^2, \quad R = |x|^2 / D = \sigma_x^2 .

The two theories (:mod:`gradspec.theory._gated_theory` holds the derivations):

- **annealed** (Chen, Pennington & Schoenholz 2018; Gilboa et al. 2019): the weights
  are redrawn every step, so the gates are independent of the memory. A perturbation's
  per-unit mean squares :math:`(q_h, q_c)` then move by a 2x2 map M (GRU: a scalar),
  :math:`\chi = \rho(M)`. Exact for a network whose weights are redrawn every step
  (within 0.003 at N = 512); for a real network it is far off (below).
- **quenched**: one fixed network at zero (or frozen) input relaxes to a fixed point,
  and the top exponent is the log of its Jacobian's spectral radius, :math:`J = A + B W`
  with a diagonal memory part A: :math:`\chi = r^{*2}`, :math:`r^*` the largest root of
  the edge equation :math:`\mathrm{mean}[b^2 \sigma^2 / (r - a)^2] = 1`. Tied weights
  give :math:`r^* = a + b\sigma` where the annealed theory gives
  :math:`\sqrt{a^2 + b^2\sigma^2}`: a real LSTM (N = 512, all :math:`\sigma = 1`,
  :math:`\mu_f = 1`, :math:`\rho_g = 0.5`) measures :math:`\lambda_1 = -0.089 \pm
  0.008`; quenched says -0.088, annealed -0.277.

References:
    Chen, Pennington, Schoenholz (2018), "Dynamical isometry and a mean field theory
    of RNNs: gating enables signal propagation in recurrent neural networks",
    arXiv:1806.05394.
    Gilboa, Chang, Chen, Pennington, Schoenholz, Chen (2019), "Dynamical isometry and
    a mean field theory of LSTMs and GRUs", arXiv:1901.08987.
"""

from __future__ import annotations

import functools
import math
from typing import Literal, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import check_choice, check_finite, check_floating, check_int, is_concrete
from . import _gated_theory as _theory
from ._common import _check_scale, _float_dtype
from .meanfield import MeanField

__all__ = [
    "GATES",
    "GatedMeanField",
    "gated_mean_field",
    "GatedMeanFieldPath",
    "gated_mean_field_along",
    "gated_critical",
]

Kind = Literal["lstm", "gru"]
Mode = Literal["quenched", "annealed"]

#: Gate names per cell, in PyTorch's order (the keys of the per-gate dicts).
GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}
#: The hyperparameters of a gate and their defaults (``nu = 1``: the cells' own
#: :math:`W_{ih} \sim \mathcal N(0, 1/D)`).
_DEFAULTS = {"sigma": 1.0, "mu": 0.0, "rho": 0.0, "nu": 1.0}
#: The network size the quenched theory assumes when none is given.
DEFAULT_HIDDEN = 512


class GatedMeanField(NamedTuple):
    """Mean-field prediction for a random gated cell (all fields shape (), or the batch
    shape under ``jax.vmap``)."""

    q_h: jax.Array  # mean h^2 over units: at the fixed point (quenched) or stationary
    q_c: jax.Array  # mean c^2 over units (LSTM); nan for the GRU, which has no cell
    chi: jax.Array  # per-step growth factor of a perturbation's squared norm
    lambda_max: jax.Array  # 0.5 * log(chi): the top exponent per step
    xi: jax.Array  # -1 / log(chi): > 0 vanishing, < 0 exploding
    timescale: jax.Array  # 1 / |lambda_max|: steps per factor e in the norm
    fixed_point_stable: jax.Array  # bool: chi < 1 (quenched: the fixed point is stable)
    annealed: jax.Array  # bool: which theory (see ``mode``)

    regime = MeanField.regime

    @property
    def mode(self):
        """``"annealed"`` or ``"quenched"`` (host-side; an array when batched)."""
        names = np.where(np.asarray(self.annealed), "annealed", "quenched")
        return str(names) if names.ndim == 0 else names


class GatedMeanFieldPath(NamedTuple):
    """Annealed mean field along one input sequence (arrays (L,); lambda_max ())."""

    q_h: jax.Array  # mean h^2 after each step
    q_c: jax.Array  # mean c^2 after each step (LSTM); nan for the GRU
    chi: jax.Array  # growth of a perturbation's squared norm (|dh|^2 + |dc|^2) per step
    lambda_max: jax.Array  # 0.5 * mean of log chi over the steps after warmup


# -- input checks ------------------------------------------------------------------


def _check_kind(kind) -> str:
    check_choice("kind", kind, tuple(GATES))
    return kind


def _check_mean(name: str, value, dtype) -> jax.Array:
    """A scalar bias mean: any finite real number."""
    if np.ndim(value) != 0:
        raise ValueError(f"`{name}` must be a scalar (use jax.vmap over a grid); "
                         f"got shape {np.shape(value)}.")
    if is_concrete(value) and not math.isfinite(float(value)):
        raise ValueError(f"`{name}` must be a finite number; got {value!r}.")
    return jnp.asarray(value).astype(dtype)


def _flat(kind, hyper: Mapping) -> dict:
    """``{"mu['f']": 1.0, "sigma": 1.0, ...}``: every number, named as the user wrote
    it, for the dtype and the messages."""
    flat = {}
    for name, value in hyper.items():
        if isinstance(value, Mapping):
            unknown = sorted(set(map(str, value)) - set(GATES[kind]))
            if unknown:
                raise ValueError(
                    f"`{name}` has no gate {unknown[0]!r}: the {kind}'s gates are "
                    f"{', '.join(GATES[kind])}.")
            flat.update({f"{name}[{g!r}]": v for g, v in value.items()})
        else:
            flat[name] = value
    return flat


def _gate_arrays(kind, hyper: Mapping, dtype) -> dict:
    """Each of sigma, mu, rho, nu as a (G,) array in gate order."""
    arrays = {}
    for name, default in _DEFAULTS.items():
        value = hyper.get(name, default)
        check = _check_mean if name == "mu" else _check_scale
        if isinstance(value, Mapping):
            entries = [check(f"{name}[{g!r}]", value.get(g, default), dtype)
                       for g in GATES[kind]]
        else:
            entries = [check(name, value, dtype)] * len(GATES[kind])
        arrays[name] = jnp.stack(entries)
    return arrays


def _check_hyper(kind, hyper: Mapping, sigma_x):
    kind = _check_kind(kind)
    dtype = _float_dtype(**_flat(kind, hyper), sigma_x=sigma_x)
    sigma_x = _check_scale("sigma_x", sigma_x, dtype)
    return kind, _gate_arrays(kind, hyper, dtype), sigma_x


# -- the theories ------------------------------------------------------------------


def _result(q_h, q_c, chi, annealed: bool) -> GatedMeanField:
    log_chi = jnp.log(chi)
    lambda_max = 0.5 * log_chi
    inf = jnp.asarray(jnp.inf, chi.dtype)
    xi = jnp.where(log_chi == 0, inf, -1 / jnp.where(log_chi == 0, 1, log_chi))
    return GatedMeanField(q_h, q_c, chi, lambda_max, xi, 1 / jnp.abs(lambda_max),
                          chi < 1, jnp.asarray(annealed))


@functools.partial(jax.jit, static_argnums=(0, 1, 7))
def _gated_mean_field(kind, mode, sigma, mu, rho, nu, sigma_x, hidden):
    dtype = sigma.dtype
    if mode == "annealed":
        drive = jnp.full((_theory.ANNEALED_STEPS,), sigma_x**2, dtype)
        q_h, q_c, _, transfer = _theory.annealed(
            kind, sigma, mu, rho, nu, drive, _theory.ANNEALED_WARMUP)
        counted = slice(_theory.ANNEALED_WARMUP, None)
        return _result(jnp.mean(q_h[counted]), jnp.mean(q_c[counted]),
                       _theory.spectral_radius(transfer), True)
    if kind == "lstm":
        q_h, q_c, edge = _theory.lstm_quenched(sigma, mu, rho, nu, sigma_x, hidden)
    else:
        q_h, edge = _theory.gru_quenched(sigma, mu, rho, nu, sigma_x, hidden)
        q_c = jnp.asarray(jnp.nan, dtype)
    return _result(q_h, q_c, edge**2, False)


def gated_mean_field(
    kind: Kind,
    *,
    sigma=1.0,
    mu=0.0,
    rho=0.0,
    nu=1.0,
    sigma_x=0.0,
    mode: Mode = "quenched",
    hidden: int = DEFAULT_HIDDEN,
) -> GatedMeanField:
    r"""Mean-field theory of a random LSTM or GRU: top exponent, :math:`\chi`, regime.

    **Quenched** (``mode="quenched"``, the default: one network, weights tied in time).
    At zero input the network relaxes to a fixed point with static gate pre-activations;
    for the LSTM

    .. math::
        c^* = \frac{\sigma(z_i)\tanh(z_g)}{1 - \sigma(z_f)}, \qquad
        h^* = \sigma(z_o)\tanh c^*, \qquad
        Q_h = \mathbb E[h^{*2}] \text{ (self-consistent through } \Sigma_k),

    (GRU: :math:`h^* = \tanh(b_n + r \odot W_n h^*)`, the update gate drops out). The
    Jacobian there is a diagonal memory part plus Gaussian blocks, and its spectral
    radius :math:`r^*` is the largest real root of the edge equation; for the LSTM in
    (h, c)

    .. math::
        \mathbb E[o^2]\,\mathrm{mean}_j\,
        \frac{\tau_j^2 \sum_{k \in i,f,g} \sigma_k^2 d_{kj}^2}{(r - f_j)^2}
        + \frac{\sigma_o^2\, \mathbb E[\sigma'(z_o)^2]\, \mathbb E[\tanh^2 c^*]}{r^2}
        = 1, \qquad r > \max_j f_j,

    with :math:`\tau = \tanh'(c^*)`, :math:`d_f = c^*\sigma'(z_f)`,
    :math:`d_i = \sigma'(z_i)\tanh z_g`, :math:`d_g = \sigma(z_i)\tanh'(z_g)`; for the
    GRU :math:`\mathrm{mean}_j (1 - u_j)^2/(r - u_j)^2 \cdot C = 1`, u the update gate
    (derivations in :func:`gradspec.theory._gated_theory.lstm_quenched`). Then
    :math:`\chi = r^{*2}`, :math:`\lambda_{max} = \log r^*`. A frozen input (constant
    x) acts as extra bias variance :math:`\nu_k^2 \sigma_x^2`.

    Finite N enters: the memory gates (f, GRU's z) reach 1 in the tail of their law,
    and a unit whose gate is nearly 1 saturates and keeps its own eigenvalue
    :math:`f_j`, so :math:`r^*` depends on the largest of the N units' gates; they are
    placed at the expected order statistics of ``hidden`` draws. The LSTM's exponent
    moves little with N (-0.0879 at N = 128, -0.0869 at 8192 in the setting above);
    a GRU whose top update gate is the edge moves more (its measured exponents spread
    by ~0.03 between draws at N = 512).

    ``fixed_point_stable`` is :math:`r^* < 1`. When it is False the network does not
    settle (chaos): ``lambda_max`` is then the fixed point's instability rate, not the
    network's exponent.

    **Annealed** (``mode="annealed"``): weights (and biases) redrawn every step, so the
    gates are independent of the state. The memory's law (not Gaussian) is carried by a
    fixed-seed population of 1024 particles over 1000 steps (400 discarded), and a
    perturbation's per-unit mean squares move by

    .. math::
        \begin{pmatrix} q_h \\ q_c \end{pmatrix}_{t+1} = M
        \begin{pmatrix} q_h \\ q_c \end{pmatrix}_t, \qquad
        \chi = \rho(M), \quad \lambda_{max} = \tfrac12 \log\chi, \quad
        \xi = -\frac1{\log\chi},

    (GRU: a scalar; see :func:`gradspec.theory._gated_theory.annealed`). Constant
    drive :math:`\sigma_x` (for a sequence use :func:`gated_mean_field_along`).
    ``fixed_point_stable`` is :math:`\chi < 1` (nearby states converge).

    Sign conventions follow :func:`gradspec.theory.mean_field`: ``xi`` signed (> 0
    vanishing), ``timescale`` = 1/|lambda_max|, ``regime`` against
    :data:`~gradspec.theory.REGIME_TOL`.

    Args:
        kind: ``"lstm"`` or ``"gru"``.
        sigma: recurrent weight scale :math:`\sigma_k` >= 0: a scalar for every gate or
            a dict by gate name (``{"f": 2.0}``; gates left out keep the default 1).
        mu: bias mean :math:`\mu_k` (any sign), scalar or dict; default 0.
        rho: bias standard deviation :math:`\rho_k` >= 0, scalar or dict; default 0.
        nu: input weight scale :math:`\nu_k` >= 0, scalar or dict; default 1.
        sigma_x: RMS of the input, :math:`|x|/\sqrt D` >= 0; default 0 (no input).
        mode: ``"quenched"`` or ``"annealed"``.
        hidden: N >= 1, the network size (quenched only; see above).

    Every number may be a traced scalar: ``jax.vmap`` over one for a phase diagram,
    ``jax.grad`` through either mode (the roots carry implicit-function gradients).

    Returns:
        A :class:`GatedMeanField` of scalars in the arguments' dtype.

    Raises:
        ValueError: unknown ``kind``, ``mode`` or gate name; a hyperparameter that is
            not a finite scalar, or negative where it must be >= 0; ``hidden`` < 1.
        TypeError: a complex or boolean hyperparameter; ``hidden`` not an int.

    Examples:
        >>> import gradspec.theory as gt
        >>> mf = gt.gated_mean_field("lstm")  # all biases 0: h* = 0, exactly
        >>> round(float(mf.lambda_max), 4)  # log(1/2 + sigma_g / 4)
        -0.2877
        >>> mf = gt.gated_mean_field("lstm", mu={"f": 1.0}, rho={"g": 0.5})
        >>> round(float(mf.lambda_max), 3), mf.regime, mf.mode
        (-0.088, 'vanishing', 'quenched')
        >>> annealed = gt.gated_mean_field("lstm", mu={"f": 1.0}, rho={"g": 0.5},
        ...                                mode="annealed")
        >>> round(float(annealed.lambda_max), 2)
        -0.28
    """
    check_choice("mode", mode, ("quenched", "annealed"))
    hidden = check_int("hidden", hidden, 1)
    kind, g, sigma_x = _check_hyper(kind, dict(sigma=sigma, mu=mu, rho=rho, nu=nu),
                                    sigma_x)
    return _gated_mean_field(kind, mode, g["sigma"], g["mu"], g["rho"], g["nu"],
                             sigma_x, hidden)


@functools.partial(jax.jit, static_argnums=0)
def _gated_mean_field_along(kind, sigma, mu, rho, nu, drive, warmup):
    q_h, q_c, growth, _ = _theory.annealed(kind, sigma, mu, rho, nu, drive, warmup)
    counted = jnp.arange(drive.shape[0]) >= warmup
    return GatedMeanFieldPath(q_h, q_c, growth,
                              0.5 * jnp.mean(jnp.log(growth), where=counted))


def gated_mean_field_along(
    kind: Kind, xs, *, sigma=1.0, mu=0.0, rho=0.0, nu=1.0, warmup: int = 0
) -> GatedMeanFieldPath:
    r"""The annealed theory of :func:`gated_mean_field` along one input sequence.

    A driven network has no fixed point, so this is the annealed theory only (weights
    redrawn every step): the gates' variances follow the sequence's power,
    :math:`\Sigma_{k,t} = \sigma_k^2 Q_{h,t-1} + \nu_k^2 R_t + \rho_k^2` with
    :math:`R_t = |x_t|^2 / D`, the particle population starts from a random state, and

    .. math::
        \chi_t = \frac{q_{h,t} + q_{c,t}}{q_{h,t-1} + q_{c,t-1}}, \qquad
        \lambda_{max} = \frac{1}{2(L - w)} \sum_{t \ge w} \log \chi_t

    (GRU: :math:`q_h` alone). With a constant :math:`R_t = \sigma_x^2` and a long
    sequence it converges to ``gated_mean_field(..., mode="annealed")``. For a real,
    tied-weight network driven by inputs it is an approximation, as in the undriven
    case (see :func:`gated_mean_field`).

    Args:
        kind: ``"lstm"`` or ``"gru"``.
        xs: (L, D) input sequence.
        sigma, mu, rho, nu: as in :func:`gated_mean_field`.
        warmup: leading steps left out of the average, 0 <= warmup < L (the population
            relaxes from its random start in a few memory times).

    Returns:
        A :class:`GatedMeanFieldPath` in the dtype of ``xs``.

    Raises:
        ValueError, TypeError: as in :func:`gated_mean_field`; ``xs`` not a finite
            floating (L, D) array with L >= 1.

    Examples:
        >>> import jax.numpy as jnp, gradspec.theory as gt
        >>> xs = jnp.full((1000, 4), 0.5)  # constant drive: sigma_x = 0.5
        >>> path = gt.gated_mean_field_along("gru", xs, mu={"z": 1.0}, warmup=400)
        >>> mf = gt.gated_mean_field("gru", mu={"z": 1.0}, sigma_x=0.5, mode="annealed")
        >>> abs(float(path.lambda_max) - float(mf.lambda_max)) < 0.005
        True
    """
    check_floating("xs", xs)
    if np.ndim(xs) != 2 or np.shape(xs)[0] == 0 or np.shape(xs)[1] == 0:
        raise ValueError(f"`xs` must have shape (L, D), L, D >= 1; got {np.shape(xs)}.")
    check_finite("xs", xs)
    xs = jnp.asarray(xs)
    warmup = check_int("warmup", warmup, 0, xs.shape[0] - 1)
    kind = _check_kind(kind)
    dtype = _float_dtype(**_flat(kind, dict(sigma=sigma, mu=mu, rho=rho, nu=nu)), xs=xs)
    g = _gate_arrays(kind, dict(sigma=sigma, mu=mu, rho=rho, nu=nu), dtype)
    drive = jnp.mean(xs.astype(dtype) ** 2, axis=1)  # R_t = |x_t|^2 / D
    return _gated_mean_field_along(kind, g["sigma"], g["mu"], g["rho"], g["nu"], drive,
                                   warmup)


# -- critical hyperparameters ------------------------------------------------------

#: What gated_critical solves for, and where it searches: the LSTM's forget-gate bias
#: (the classic knob, Gers et al. 2000; Jozefowicz et al. 2015), and the GRU's
#: candidate weight scale, since the GRU's update gate cannot set the edge: its edge
#: equation at r = 1 reads C = 1, free of the update gate.
_SOLVED = {"lstm": ("mu", "f", -8.0, 8.0), "gru": ("sigma", "n", 0.0, 16.0)}
# Illinois false position: superlinear (~15 solves); it stops when the bracket is a few
# rounding units wide, or after 60 solves.
_CRITICAL_STEPS = 60


@functools.partial(jax.jit, static_argnums=(0, 5))
def _critical(kind, sigma, mu, rho, nu, hidden, sigma_x):
    name, gate, lo, hi = _SOLVED[kind]
    index = GATES[kind].index(gate)
    dtype = sigma.dtype
    g = dict(sigma=sigma, mu=mu, rho=rho, nu=nu)

    def lam(x):
        h = dict(g, **{name: g[name].at[index].set(x)})
        return _gated_mean_field(kind, "quenched", h["sigma"], h["mu"], h["rho"],
                                 h["nu"], sigma_x, hidden).lambda_max

    lo, hi = jnp.asarray(lo, dtype), jnp.asarray(hi, dtype)
    f_lo, f_hi = lam(lo), lam(hi)

    def step(c):
        lo, hi, f_lo, f_hi, side, k, _, _ = c
        x = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        fx = lam(x)
        left = fx < 0  # the root is right of x: x becomes lo
        # Illinois: halve the kept end's value when the same end is kept twice.
        f_hi = jnp.where(left & (side == 1), 0.5 * f_hi, f_hi)
        f_lo = jnp.where(~left & (side == -1), 0.5 * f_lo, f_lo)
        return (jnp.where(left, x, lo), jnp.where(left, hi, x),
                jnp.where(left, fx, f_lo), jnp.where(left, f_hi, fx),
                jnp.where(left, 1, -1).astype(side.dtype), k + 1, x, jnp.abs(fx))

    def cond(c):  # on the bracket, not on |lambda|: lambda can be flat on one side
        width = c[1] - c[0]
        return (c[5] < _CRITICAL_STEPS) & (c[7] > 0) & (
            width > 8 * jnp.finfo(dtype).eps * (1 + jnp.abs(c[0]) + jnp.abs(c[1])))

    zero, inf = jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, dtype)
    c = lax.while_loop(cond, step, (lo, hi, f_lo, f_hi, zero, zero, lo, inf))
    return jnp.where((f_lo < 0) & (f_hi > 0), c[6], jnp.nan)


def gated_critical(kind: Kind, **fixed) -> dict[str, dict[str, jax.Array]]:
    r"""Gate hyperparameters that put the quenched :math:`\lambda_{max}` at 0.

    The LSTM's forget-gate bias :math:`\mu_f` is solved for (in [-8, 8]) with every
    other hyperparameter fixed: raising it opens the forget gates, the memory's
    :math:`1/(r - f)^2` term grows, and at :math:`\mu_f^*` the spectral edge of the
    fixed point's Jacobian reaches 1. Past it the fixed point is unstable and the
    network chaotic. Without biases but :math:`\mu_f` the fixed point is the origin,
    where :math:`r^* = \sigma(\mu_f) + \sigma_g/4`: :math:`\mu_f^* = \log 3` at
    :math:`\sigma_g = 1`; with :math:`\rho_g = 0.5`, 2.023.

    The GRU's update gate cannot do this (its edge equation at r = 1 reads C = 1
    whatever the update gate), so for the GRU the candidate's weight scale
    :math:`\sigma_n` is solved for (in [0, 16]; :math:`\sigma_n^* = 2` with no bias).

    Args:
        kind: ``"lstm"`` or ``"gru"``.
        **fixed: ``sigma``, ``mu``, ``rho``, ``nu`` (scalars or per-gate dicts, as in
            :func:`gated_mean_field`, leaving out the solved entry), ``sigma_x`` and
            ``hidden``.

    Returns:
        ``{gate: {"sigma": ., "mu": ., "rho": ., "nu": .}}`` for every gate, scalars in
        the arguments' dtype: pass it as ``cell.init(..., gates=...)``. The solved
        entry is ``nan`` if :math:`\lambda_{max}` does not change sign in the range.

    Raises:
        ValueError, TypeError: as in :func:`gated_mean_field`; a keyword other than the
            above, or the solved entry given.

    Examples:
        >>> import gradspec.theory as gt
        >>> gates = gt.gated_critical("lstm", sigma=1.0)
        >>> round(float(gates["f"]["mu"]), 4)  # log 3
        1.0986
        >>> mf = gt.gated_mean_field("lstm", mu={"f": gates["f"]["mu"]})
        >>> abs(float(mf.lambda_max)) < 1e-5
        True
    """
    kind = _check_kind(kind)
    allowed = (*_DEFAULTS, "sigma_x", "hidden")
    for key in fixed:
        if key not in allowed:
            raise ValueError(f"`{key}` is not a gate hyperparameter; gated_critical "
                             f"takes {', '.join(allowed)}.")
    name, gate, _, _ = _SOLVED[kind]
    given = fixed.get(name)
    if isinstance(given, Mapping) and gate in given:
        raise ValueError(f"`{name}[{gate!r}]` is what gated_critical solves for; "
                         "leave it out.")
    hidden = check_int("hidden", fixed.pop("hidden", DEFAULT_HIDDEN), 1)
    sigma_x = fixed.pop("sigma_x", 0.0)
    kind, g, sigma_x = _check_hyper(kind, fixed, sigma_x)
    solved = _critical(kind, g["sigma"], g["mu"], g["rho"], g["nu"], hidden, sigma_x)
    g[name] = g[name].at[GATES[kind].index(gate)].set(solved)
    return {gate: {k: g[k][j] for k in _DEFAULTS} for j, gate in enumerate(GATES[kind])}
