r"""Publication figures of gradient flow, from plain results.

Every ``plot_*`` function takes results as plain data (arrays, lists of dicts, the
NamedTuples of :mod:`gradspec`), an optional matplotlib ``ax`` to draw into, and returns
the :class:`~matplotlib.figure.Figure`. It draws inside :func:`gradspec.style.context`,
so the house style applies to what it draws and never leaks into a user's own defaults.
Nothing is computed behind the user's back: the few results a figure needs that
:mod:`gradspec` does not already return are public helpers here, each usable alone:

- :func:`log_jacobian_norms`: :math:`\log\|\partial h_t/\partial h_s\|` for all
  :math:`s \le t`, from :func:`gradspec.step_jacobians`;
- :func:`mean_field_grid`, :func:`critical_line`: the mean-field phase diagram and its
  :math:`\chi = 1` line, vmapped over :math:`(\sigma_w, \sigma_b)`;
- :func:`agreement_counts`: counts of predicted regime vs the training outcome (or
  the gradient regime observed in training), e.g. from :func:`gradspec.verify`;
- :func:`runs_from_train`: a :class:`gradspec.train.TrainResult` as plain run dicts.

Log-norms in gradspec are natural logs. Figures show them in decades: the data are
plotted as :math:`\log_{10}` values on a linear axis whose tick labels read
:math:`10^n` (a true log axis would underflow: :math:`10^{-300}` is routine here).

Examples:
    >>> import jax, gradspec, gradspec.plots as gp
    >>> W = gradspec.init.gaussian(1.5)(jax.random.key(0), (64, 64))
    >>> fig = gp.plot_eigenvalues(gradspec.weight_spectrum(W), gain=1.5)
    >>> len(fig.axes[0].collections[0].get_offsets())
    64
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from jax import lax
from matplotlib import colors as mcolors
from matplotlib import patches as mpatches
from matplotlib import ticker as mticker
from matplotlib.lines import Line2D

from . import style as _style
from .. import theory as _theory
from .._precision import full_precision

__all__ = [
    "OUTCOME_ORDER",
    "REGIME_ORDER",
    "agreement_counts",
    "critical_line",
    "log_jacobian_norms",
    "mean_field_grid",
    "plot_agreement",
    "plot_eigenvalues",
    "plot_gradient_profiles",
    "plot_jacobian_heatmap",
    "plot_lyapunov_spectra",
    "plot_phase_diagram",
    "plot_singular_values",
    "plot_training_curves",
    "runs_from_train",
]

LN10 = math.log(10.0)
#: Rows of the agreement matrix: the regime vocabulary of :mod:`gradspec.theory`.
REGIME_ORDER = ("vanishing", "critical", "exploding")
#: Columns of the agreement matrix, ordered so that the diagonal is what each regime
#: predicts: vanishing -> stalled, critical -> solved, exploding -> diverged.
OUTCOME_ORDER = ("stalled", "solved", "diverged")
_DIVERGING = "RdBu_r"  # blue = vanishing (< 0), red = exploding (> 0); CVD-safe


# -- helpers ---------------------------------------------------------------------------


def _axes(ax, size, **kwargs):
    """(figure, ax): a new figure in the house style when ``ax`` is None."""
    if ax is None:
        fig, ax = plt.subplots(figsize=size, **kwargs)
        return fig, ax
    return ax.get_figure(root=True), ax


def _decades(values) -> np.ndarray:
    """Natural-log values as log10 values, float64, with +-inf as NaN (not drawable)."""
    v = np.asarray(values, dtype=np.float64) / LN10
    return np.where(np.isfinite(v), v, np.nan)


def _pow10(value, _pos=None) -> str:
    n = round(value)
    # \mathdefault: upright digits in the text font, as matplotlib's own log ticks.
    return f"$\\mathdefault{{10^{{{n}}}}}$" if abs(value - n) < 1e-6 else ""


def _decade_axis(axis) -> None:
    """Integer ticks on a log10-valued axis, labelled 10^n."""
    axis.set_major_locator(mticker.MaxNLocator(nbins=6, integer=True))
    axis.set_major_formatter(mticker.FuncFormatter(_pow10))


def _field(row: Any, names: Sequence[str], what: str):
    """The first of ``names`` present in a dict-like or attribute row."""
    for name in names:
        if isinstance(row, Mapping):
            if name in row:
                return row[name]
        elif hasattr(row, name):
            return getattr(row, name)
    raise ValueError(
        f"`rows` entries must carry the {what} as one of {list(names)}; got {row!r}."
    )


def _check_vector(name: str, x, *, ndim: int = 1) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != ndim:
        raise ValueError(
            f"`{name}` must have {ndim} dimension(s); got shape {a.shape}."
        )
    return a


# -- data helpers ----------------------------------------------------------------------


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
    :func:`gradspec.verify.verify` rows.

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
        Integer array (3, 3): ``[i, j]`` counts rows predicted ``REGIME_ORDER[i]`` with
        observed column j; the diagonal is the expected pairing (vanishing -> stalled,
        critical -> solved, exploding -> diverged; or equal regimes). Rows observed as
        ``"undefined"`` (no finite rate) are left out.

    Raises:
        ValueError: a row without the keys, a value outside the vocabulary, or an
            unknown ``observed``.

    Examples:
        >>> import gradspec.plots as gp
        >>> rows = [{"predicted_regime": "vanishing", "outcome": "stalled"},
        ...         {"predicted_regime": "exploding", "outcome": "solved"}]
        >>> gp.agreement_counts(rows).tolist()
        [[1, 0, 0], [0, 0, 0], [0, 1, 0]]
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
    """A :class:`gradspec.train.TrainResult` as plain run dicts for
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


# -- spectra of W_hh -------------------------------------------------------------------


def plot_eigenvalues(
    spectrum,
    *,
    gain: float | None = None,
    ax=None,
    label: str | None = None,
    color: str | None = None,
):
    r"""Eigenvalues of :math:`W_{hh}` in the complex plane, with the circular law's
    disk of radius ``gain`` (:func:`gradspec.theory.circular_law_density`) and the unit
    circle (outside it a linear RNN explodes, inside it vanishes).

    Args:
        spectrum: a :class:`gradspec.WeightSpectrum` or the eigenvalues, shape (N,).
        gain: radius g of the circular-law disk (``gaussian(g)`` init); no disk if None.
        ax: axes to draw into; a new one-column figure if None.
        label: legend label of the eigenvalues.
        color: colour of the points (default: the first of the palette).

    Returns:
        The Figure. The scatter (gid ``"eigenvalues"``) holds one point per eigenvalue
        at (Re, Im).
    """
    eig = np.asarray(getattr(spectrum, "eigenvalues", spectrum))
    eig = _check_vector("spectrum", eig).astype(np.complex128)
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.62))
        color = color or _style.CYCLE[0]
        if gain is not None:
            disk = mpatches.Circle(
                (0, 0),
                gain,
                facecolor=_style.OKABE_ITO["sky_blue"],
                alpha=0.18,
                edgecolor="none",
                zorder=0,
                label=rf"circular law, $g = {gain:g}$",
            )
            disk.set_gid("circular-law")
            edge = mpatches.Circle(
                (0, 0),
                gain,
                fill=False,
                linestyle="--",
                linewidth=0.8,
                edgecolor=_style.OKABE_ITO["blue"],
                zorder=1,
            )
            ax.add_patch(disk)
            ax.add_patch(edge)
        unit = mpatches.Circle(
            (0, 0),
            1.0,
            fill=False,
            linewidth=0.8,
            edgecolor="black",
            zorder=1,
            label="unit circle",
        )
        unit.set_gid("unit-circle")
        ax.add_patch(unit)
        rho = float(np.max(np.abs(eig))) if eig.size else 0.0
        sc = ax.scatter(
            eig.real,
            eig.imag,
            s=3,
            color=color,
            linewidths=0,
            zorder=2,
            label=label or rf"eigenvalues, $\rho = {rho:.2f}$",
        )
        sc.set_gid("eigenvalues")
        lim = 1.12 * max(1.0, gain or 0.0, rho)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="0.7", linewidth=0.4, zorder=0)
        ax.axvline(0, color="0.7", linewidth=0.4, zorder=0)
        ax.set_xlabel(r"$\mathrm{Re}\,\lambda$")
        ax.set_ylabel(r"$\mathrm{Im}\,\lambda$")
        # Outside the disk's square: the points fill the whole plotting area.
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=6,
            handlelength=1.0,
            markerscale=2,
        )
    return fig


def plot_singular_values(
    spectrum,
    *,
    gain: float | None = None,
    ax=None,
    bins: Any = None,
    color: str | None = None,
):
    r"""Histogram of the singular values of :math:`W_{hh}` against the quarter-circle
    law :math:`p(\sigma) = \sqrt{4g^2 - \sigma^2}/(\pi g^2)`
    (:func:`gradspec.theory.quarter_circle_density`), whose edge :math:`2g` is the limit
    of :math:`\|W_{hh}\|_2`.

    Args:
        spectrum: a :class:`gradspec.WeightSpectrum` or the singular values, shape (N,).
        gain: g of the law; default :math:`\sqrt{\overline{\sigma^2}}`, which equals g
            in expectation for :math:`W \sim \mathcal N(0, g^2/N)`.
        ax: axes to draw into; a new one-column figure if None.
        bins: as in ``numpy.histogram``; default :math:`\lceil 1.5\sqrt N\,\rceil`
            (at least 10) equal bins.
        color: colour of the histogram.

    Returns:
        The Figure. The law's curve has gid ``"quarter-circle"``; the histogram bars
        are normalised to unit area (``density=True``).
    """
    sv = np.asarray(getattr(spectrum, "singular_values", spectrum), dtype=np.float64)
    sv = _check_vector("spectrum", sv)
    fitted = gain is None
    if fitted:
        gain = float(np.sqrt(np.mean(sv**2)))
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.7))
        color = color or _style.OKABE_ITO["sky_blue"]
        if bins is None:
            bins = max(10, math.ceil(1.5 * math.sqrt(sv.size)))
        heights, _, _ = ax.hist(
            sv,
            bins=bins,
            density=True,
            color=color,
            edgecolor="white",
            linewidth=0.3,
            label=f"$W_{{hh}}$, $N = {sv.size}$",
        )
        x = jnp.linspace(0.0, 2.0 * gain, 401)
        y = _theory.quarter_circle_density(x, gain)
        (line,) = ax.plot(
            np.asarray(x),
            np.asarray(y),
            color=_style.OKABE_ITO["vermillion"],
            label=rf"quarter circle, $g = {gain:.3g}$" + (" (fit)" if fitted else ""),
        )
        line.set_gid("quarter-circle")
        ax.axvline(
            2 * gain,
            color="black",
            linestyle=":",
            linewidth=0.8,
            label=rf"edge $2g$; $\|W\|_2 = {sv.max():.2f}$",
        )
        ax.set_xlim(0, max(2.0 * gain, float(sv.max())) * 1.05)
        # Head room above the law's peak 2/(pi g) for the legend.
        ax.set_ylim(0, 1.5 * max(float(np.max(heights)), 2 / (math.pi * gain)))
        ax.set_xlabel(r"singular value $\sigma$")
        ax.set_ylabel("density")
        ax.legend(loc="upper left", fontsize=6, ncols=2)
    return fig


# -- gradient flow ---------------------------------------------------------------------


def plot_gradient_profiles(
    profiles: Sequence[Mapping], *, ax=None, slopes: bool = True
):
    r"""Gradient norm :math:`\|\partial L/\partial h_{T-k}\|` against the lag k, with
    each curve's predicted slope :math:`\lambda_{max}` as a dashed line.

    The y-axis is in decades (log10 values, ticks labelled :math:`10^n`); the dashed
    line of a profile :math:`\ell` is :math:`(\ell_0 + \lambda_{max} k)/\ln 10`.

    Args:
        profiles: one dict per curve with ``"log_norms"`` (K + 1,) natural log, as
            :func:`gradspec.gradient_profile` returns, and optionally ``"label"``,
            ``"lambda_max"`` (the predicted rate, natural log per step, e.g.
            ``gradspec.predict(...).lyapunov``), ``"lags"`` (K + 1,) when the entries
            are not at lags 0..K, and ``"color"``.
        ax: axes to draw into; a new one-column figure if None.
        slopes: draw the predicted slopes.

    Returns:
        The Figure; each profile's line has gid ``"profile:<label>"``, its slope line
        ``"slope:<label>"``.
    """
    if isinstance(profiles, Mapping):
        raise TypeError(
            "`profiles` must be a list of dicts (one per curve); got a dict."
        )
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.8))
        any_slope = False
        for i, prof in enumerate(profiles):
            log_norms = _check_vector("profiles[i]['log_norms']", prof["log_norms"])
            lags = np.asarray(
                prof.get("lags", np.arange(log_norms.size)), dtype=np.float64
            )
            label = str(prof.get("label", f"profile {i}"))
            color = prof.get("color") or _style.CYCLE[i % len(_style.CYCLE)]
            (line,) = ax.plot(lags, _decades(log_norms), color=color, label=label)
            line.set_gid(f"profile:{label}")
            lam = prof.get("lambda_max")
            if slopes and lam is not None and math.isfinite(float(lam)):
                start = float(log_norms[0]) if np.isfinite(log_norms[0]) else 0.0
                y = (start + float(lam) * lags) / LN10
                (sl,) = ax.plot(
                    lags, y, color=color, linestyle="--", linewidth=0.8, alpha=0.9
                )
                sl.set_gid(f"slope:{label}")
                any_slope = True
        ax.axhline(0, color="0.6", linewidth=0.4, zorder=0)
        _decade_axis(ax.yaxis)
        ax.set_xlabel(r"lag $k$ (steps)")
        ax.set_ylabel(r"$\|\partial L / \partial h_{T-k}\|$")
        handles, labels = ax.get_legend_handles_labels()
        if any_slope:
            handles.append(Line2D([], [], color="0.3", linestyle="--", linewidth=0.8))
            labels.append(r"predicted slope $\lambda_{max}$")
        ax.legend(handles, labels, fontsize=6, loc="best")
        ax.set_xlim(left=0)
    return fig


def plot_jacobian_heatmap(
    log_norms,
    *,
    ax=None,
    vmax: float | None = None,
    colorbar: bool = True,
    cmap: str = _DIVERGING,
):
    r"""Heat map of :math:`\log_{10}\|\partial h_t / \partial h_s\|` over (s, t).

    Args:
        log_norms: (T + 1, T + 1) natural log, NaN above the diagonal, as
            :func:`log_jacobian_norms` returns.
        ax: axes to draw into; a new one-column figure if None.
        vmax: colour limit in decades; the map is centred at 0 (norm 1) and spans
            [-vmax, vmax]; default the largest finite magnitude.
        colorbar: add a colour bar.
        cmap: a diverging colormap (blue: shrinking, red: growing).

    Returns:
        The Figure. The image (gid ``"heatmap"``) holds ``log_norms / ln 10``, masked
        where not finite; row t, column s.
    """
    M = _check_vector("log_norms", log_norms, ndim=2)
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"`log_norms` must be square (T + 1, T + 1); got {M.shape}.")
    Z = np.ma.masked_invalid(np.asarray(M, dtype=np.float64) / LN10)
    T = M.shape[0] - 1
    if vmax is None:
        vmax = float(np.abs(Z).max()) if Z.count() else 1.0
        vmax = vmax if vmax > 0 else 1.0
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.85))
        # Undefined cells (s > t) in light grey, apart from the white of norm 1.
        cmap_obj = plt.get_cmap(cmap).with_extremes(bad="0.88")
        im = ax.imshow(
            Z,
            origin="lower",
            cmap=cmap_obj,
            vmin=-vmax,
            vmax=vmax,
            extent=(-0.5, T + 0.5, -0.5, T + 0.5),
            interpolation="nearest",
            aspect="equal",
        )
        im.set_gid("heatmap")
        ax.set_xlabel(r"source step $s$")
        ax.set_ylabel(r"target step $t$")
        ax.spines[["top", "right"]].set_visible(True)
        if colorbar:
            cb = fig.colorbar(im, ax=ax, shrink=0.9, pad=0.02)
            cb.set_label(r"$\|\partial h_t / \partial h_s\|_2$")
            _decade_axis(cb.ax.yaxis)
            cb.ax.tick_params(labelsize=6)
    return fig


def plot_lyapunov_spectra(
    spectra: Sequence[Mapping],
    *,
    ax=None,
    inset: int = 0,
    inset_bounds: Sequence[float] = (0.2, 0.07, 0.5, 0.42),
):
    r"""Lyapunov exponents :math:`\lambda_i` against their index i, one curve per
    network, with the mean-field :math:`\lambda_{max}` as an open diamond at i = 1
    (a measured :math:`\lambda_1` inside its diamond is a prediction that holds).

    Args:
        spectra: one dict per curve with ``"exponents"`` (k,) descending, natural log
            per step (:func:`gradspec.lyapunov_spectrum`), and optionally ``"label"``,
            ``"lambda_max"`` (predicted top exponent) and ``"color"``.
        ax: axes to draw into; a new one-column figure if None.
        inset: if > 0, an inset zooms into the top ``inset`` exponents (where
            :math:`\lambda_1` and its prediction sit; the bottom of a spectrum
            otherwise sets the scale).
        inset_bounds: the inset's (x0, y0, width, height) in axes coordinates.

    Returns:
        The Figure; each curve has gid ``"spectrum:<label>"``, each prediction
        ``"predicted:<label>"`` (on the main axes).
    """
    if isinstance(spectra, Mapping):
        raise TypeError(
            "`spectra` must be a list of dicts (one per curve); got a dict."
        )
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.8))
        axins = ax.inset_axes(list(inset_bounds)) if inset > 0 else None
        predicted = False
        for i, spec in enumerate(spectra):
            lam = np.asarray(
                _check_vector("spectra[i]['exponents']", spec["exponents"]),
                dtype=np.float64,
            )
            lam = np.where(np.isfinite(lam), lam, np.nan)
            label = str(spec.get("label", f"spectrum {i}"))
            color = spec.get("color") or _style.CYCLE[i % len(_style.CYCLE)]
            index = np.arange(1, lam.size + 1)
            top = spec.get("lambda_max")
            has_top = top is not None and math.isfinite(float(top))
            for target in (ax, axins):
                if target is None:
                    continue
                sl = slice(None) if target is ax else slice(0, inset)
                (line,) = target.plot(
                    index[sl],
                    lam[sl],
                    color=color,
                    # dots while they stay apart; beyond 64 exponents a line reads better
                    marker="o" if target is not ax or lam.size <= 64 else None,
                    markersize=1.8 if target is ax else 2.5,
                    linewidth=0.9,
                    label=label if target is ax else None,
                )
                if has_top:
                    (mk,) = target.plot(
                        [1],
                        [float(top)],
                        linestyle="none",
                        marker="D",
                        markersize=4.5 if target is ax else 6,
                        markerfacecolor="none",
                        markeredgecolor=color,
                        markeredgewidth=1.0,
                        zorder=3,
                    )
                if target is ax:
                    line.set_gid(f"spectrum:{label}")
                    if has_top:
                        mk.set_gid(f"predicted:{label}")
            predicted = predicted or has_top
        ax.axhline(0, color="0.4", linewidth=0.6, zorder=0)
        ax.set_xlabel(r"index $i$")
        ax.set_ylabel(r"Lyapunov exponent $\lambda_i$ (per step)")
        handles, labels = ax.get_legend_handles_labels()
        if predicted:
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="D",
                    markersize=4.5,
                    markerfacecolor="none",
                    markeredgecolor="0.3",
                )
            )
            labels.append(r"mean-field $\lambda_{max}$")
        ax.set_xlim(left=0)
        if axins is not None:
            axins.axhline(0, color="0.4", linewidth=0.6, zorder=0)
            axins.set_xlim(0.5, inset + 0.5)
            axins.set_xticks(range(1, inset + 1))
            axins.tick_params(labelsize=6)
            axins.set_title(f"top {inset}", fontsize=6, pad=2)
            for side in ("top", "right"):
                axins.spines[side].set_visible(True)
            ax.indicate_inset_zoom(axins, edgecolor="0.5")
            # Legend above the axes: the inset takes the empty lower part.
            ax.legend(
                handles,
                labels,
                fontsize=6,
                loc="lower center",
                bbox_to_anchor=(0.5, 1.0),
                ncols=3,
                borderaxespad=0.2,
            )
        else:
            ax.legend(handles, labels, fontsize=6, loc="best")
    return fig


def plot_phase_diagram(
    sigma_w,
    sigma_b,
    lambda_max,
    *,
    critical=None,
    measured=None,
    ax=None,
    vmax: float | None = None,
    cmap: str = _DIVERGING,
    colorbar: bool = True,
    contours: Sequence[float] = (-1.0, -0.3, -0.1, 0.1, 0.3),
):
    r"""Phase diagram of :math:`\lambda_{max}` over :math:`(\sigma_w, \sigma_b)` with
    the critical line :math:`\chi = 1` and measured points.

    The colour map diverges at :math:`\lambda_{max} = 0`: blue where gradients vanish,
    red where they explode, white at the edge of chaos.

    Args:
        sigma_w: grid of weight scales, shape (W,) (x axis).
        sigma_b: grid of bias scales, shape (B,) (y axis).
        lambda_max: shape (W, B), natural log per step, e.g.
            ``mean_field_grid(...).lambda_max`` or
            ``gradspec.sweep.to_grid(records, "lambda_max").values``.
        critical: the :math:`\chi = 1` line: a dict with ``"sigma_w"`` and
            ``"sigma_b"`` arrays (e.g. :func:`critical_line` over ``sigma_b``) or a pair
            ``(sigma_w, sigma_b)``.
        measured: measured points: a dict of equal-length columns ``"sigma_w"``,
            ``"sigma_b"``, ``"lambda_max"`` (e.g. ``gradspec.sweep.table(records,
            [...])``), drawn in the same colours with a black edge.
        ax: axes to draw into; a new one-column figure if None.
        vmax: colour limit (the map spans [-vmax, vmax]); default the largest finite
            positive value (or magnitude, if none is positive); beyond it colours clip.
        cmap: a diverging colormap.
        colorbar: add a colour bar.
        contours: levels of :math:`\lambda_{max}` drawn as thin labelled lines (they
            keep the magnitude readable where the colours clip); ``()`` for none.

    Returns:
        The Figure. Artists: the mesh (gid ``"phase"``), the line (``"critical-line"``),
        the points (``"measured"``), the contours (``"contours"``).
    """
    sw = np.asarray(_check_vector("sigma_w", sigma_w), dtype=np.float64)
    sb = np.asarray(_check_vector("sigma_b", sigma_b), dtype=np.float64)
    lam = np.asarray(lambda_max, dtype=np.float64)
    if lam.shape != (sw.size, sb.size):
        raise ValueError(
            f"`lambda_max` must have shape (len(sigma_w), len(sigma_b)) = "
            f"{(sw.size, sb.size)}; got {lam.shape}."
        )
    finite = lam[np.isfinite(lam)]
    if vmax is None:
        pos = finite[finite > 0]
        vmax = (
            float(pos.max())
            if pos.size
            else (float(np.abs(finite).max()) if finite.size else 1.0)
        )
        vmax = vmax if vmax > 0 else 1.0
    norm = mcolors.Normalize(vmin=-vmax, vmax=vmax)
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.8))
        # -inf (sigma_w = 0: the Jacobian is zero) shows as the darkest blue.
        Z = np.clip(lam.T, -1e30, 1e30)
        mesh = ax.pcolormesh(
            sw,
            sb,
            np.ma.masked_invalid(Z),
            cmap=cmap,
            norm=norm,
            shading="nearest",
            rasterized=True,
        )
        mesh.set_gid("phase")
        levels = sorted(
            v for v in contours if finite.size and finite.min() < v < finite.max()
        )
        if levels and sw.size > 1 and sb.size > 1:
            cs = ax.contour(
                sw,
                sb,
                np.ma.masked_invalid(Z),
                levels=levels,
                colors="0.25",
                linewidths=0.4,
                linestyles="-",
            )
            cs.set_gid("contours")
            for text in ax.clabel(
                cs, fmt=lambda v: f"{v:g}", fontsize=5, inline_spacing=2
            ):
                # Readable on the dark and the pale ends of the colormap alike.
                text.set_bbox(
                    {
                        "facecolor": "white",
                        "alpha": 0.7,
                        "pad": 0.4,
                        "edgecolor": "none",
                    }
                )
        if critical is not None:
            if isinstance(critical, Mapping):
                cw, cb_ = critical["sigma_w"], critical["sigma_b"]
            else:
                cw, cb_ = critical
            (line,) = ax.plot(
                np.asarray(cw),
                np.asarray(cb_),
                color="black",
                linewidth=1.2,
                label=r"$\chi = 1$ (mean field)",
            )
            line.set_gid("critical-line")
        if measured is not None:
            mw = np.asarray(measured["sigma_w"], dtype=np.float64)
            mb = np.asarray(measured["sigma_b"], dtype=np.float64)
            ml = np.asarray(measured["lambda_max"], dtype=np.float64)
            pts = ax.scatter(
                mw,
                mb,
                c=np.clip(ml, -1e30, 1e30),
                cmap=cmap,
                norm=norm,
                s=16,
                edgecolors="black",
                linewidths=0.5,
                zorder=3,
                label=r"measured $\lambda_1$ (Lyapunov)",
            )
            pts.set_gid("measured")
        ax.set_xlim(sw.min() - 0.5 * _step(sw), sw.max() + 0.5 * _step(sw))
        ax.set_ylim(sb.min() - 0.5 * _step(sb), sb.max() + 0.5 * _step(sb))
        ax.set_xlabel(r"weight scale $\sigma_w$")
        ax.set_ylabel(r"bias scale $\sigma_b$")
        ax.spines[["top", "right"]].set_visible(True)
        if critical is not None or measured is not None:
            # Above the axes: inside, it would hide the grid's top row.
            leg = ax.legend(
                loc="lower center",
                bbox_to_anchor=(0.5, 1.0),
                ncols=2,
                fontsize=6,
                borderaxespad=0.2,
            )
            for handle in leg.legend_handles:
                if hasattr(
                    handle, "set_array"
                ):  # the points' colour varies: neutral key
                    handle.set_array(None)
                    handle.set_facecolor("0.75")
        if colorbar:
            cbar = fig.colorbar(mesh, ax=ax, pad=0.02, extend=_extend(finite, vmax))
            cbar.set_label(r"$\lambda_{max}$ per step")
            cbar.ax.tick_params(labelsize=6)
    return fig


def _step(x: np.ndarray) -> float:
    return float(np.min(np.diff(np.sort(x)))) if x.size > 1 else 1.0


def _extend(finite: np.ndarray, vmax: float) -> str:
    low = finite.size and finite.min() < -vmax
    high = finite.size and finite.max() > vmax
    return {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
        (bool(low), bool(high)), "neither"
    )


# -- training --------------------------------------------------------------------------

_LINESTYLES = ("-", "--", "-.", ":")


def _running_mean(y: np.ndarray, window: int) -> np.ndarray:
    """Centred running geometric mean (a running mean of log y, for log axes), over
    the finite positive entries in each window."""
    if window <= 1:
        return y
    kernel = np.ones(window) / window
    valid = np.isfinite(y) & (y > 0)
    logs = np.log(np.where(valid, y, 1.0))
    num = np.convolve(np.where(valid, logs, 0.0), kernel, mode="same")
    den = np.convolve(valid.astype(float), kernel, mode="same")
    return np.where(valid, np.exp(num / np.where(den > 0, den, 1.0)), np.nan)


def _limits(curves: list, diverged: list, headroom: float) -> tuple | None:
    """(bottom, top) of a log panel: from the runs that did not diverge, with the top
    at ``headroom`` times their maximum, so one diverging run (1e30 and up) cannot
    flatten the others; None (automatic) when every run diverged or none did."""
    calm = [c[np.isfinite(c) & (c > 0)] for c, d in zip(curves, diverged) if not d]
    calm = [c for c in calm if c.size]
    if not calm or len(calm) == len(curves):
        return None
    return 0.5 * min(c.min() for c in calm), headroom * max(c.max() for c in calm)


def plot_training_curves(
    runs: Sequence[Mapping], *, ax=None, smooth: int = 1, headroom: float = 100.0
):
    r"""Training curves coloured by outcome: loss / baseline (left) and the global
    gradient norm (right), both on log axes.

    Colours follow :data:`gradspec.style.OUTCOME_COLORS` (solved green, stalled blue,
    diverged vermillion); runs sharing an outcome differ in line style. A diverged run
    ends in a cross at its last finite value; if that lies beyond ``headroom`` times the
    largest value of the other runs, the axis stops there and the cross sits on the
    top edge (so the other runs stay readable).

    Args:
        runs: one dict per run with ``"loss"`` (steps,), ``"grad_norm"`` (steps,),
            ``"outcome"`` (``"solved"``, ``"stalled"`` or ``"diverged"``),
            ``"baseline"`` (the task's chance-level loss) and optionally ``"label"`` and
            ``"solved_below"`` (the solved threshold, a fraction of the baseline).
            :func:`runs_from_train` makes them from a ``TrainResult``.
        ax: a pair of axes (loss, gradient norm); a new two-column figure if None.
        smooth: width of a centred running geometric mean applied, for display, to
            the curves of runs that did not diverge (1: raw).
        headroom: factor above the non-diverged runs' maximum where the axes stop.

    Returns:
        The Figure; each run's lines have gids ``"loss:<label>"`` and
        ``"grad:<label>"``, the loss line's y-values being ``loss / baseline``
        (smoothed if ``smooth > 1`` and the run did not diverge).
    """
    if isinstance(runs, Mapping):
        raise TypeError("`runs` must be a list of dicts (one per run); got a dict.")
    with _style.context():
        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=_style.figsize("two", 0.42))
        else:
            if len(ax) != 2:
                raise ValueError(
                    f"`ax` must be a pair of axes (loss, gradient norm); got {ax!r}."
                )
            axes = list(ax)
            fig = axes[0].get_figure(root=True)
        used: dict = {}
        thresholds = set()
        curves: list = [[], []]
        diverged, crosses = [], []
        for i, run in enumerate(runs):
            outcome = str(run["outcome"])
            color = _style.OUTCOME_COLORS.get(outcome, "0.4")
            style = _LINESTYLES[used.get(outcome, 0) % len(_LINESTYLES)]
            used[outcome] = used.get(outcome, 0) + 1
            label = str(run.get("label", f"run {i}"))
            loss = np.asarray(run["loss"], dtype=np.float64) / float(run["baseline"])
            grad = np.asarray(run["grad_norm"], dtype=np.float64)
            steps = np.arange(loss.size)
            for panel, (y, kind) in enumerate(((loss, "loss"), (grad, "grad"))):
                # A divergence is a steep, short climb: averaging would smear it back.
                shown = y if outcome == "diverged" else _running_mean(y, smooth)
                (line,) = axes[panel].plot(
                    steps,
                    shown,
                    color=color,
                    linestyle=style,
                    linewidth=1.0,
                    label=f"{label}: {outcome}" if panel == 0 else None,
                )
                line.set_gid(f"{kind}:{label}")
                curves[panel].append(shown)
                ok = np.flatnonzero(np.isfinite(y))
                if outcome == "diverged" and ok.size:
                    crosses.append((panel, ok[-1], y[ok[-1]], color))
            diverged.append(outcome == "diverged")
            if run.get("solved_below"):
                thresholds.add(float(run["solved_below"]))
        for panel, a in enumerate(axes):
            a.set_yscale("log")
            a.set_xlabel("training step")
            limits = _limits(curves[panel], diverged, headroom)
            if limits is not None:
                a.set_ylim(*limits)
        for panel, step, value, color in crosses:
            top = axes[panel].get_ylim()[1]
            axes[panel].plot(
                [step],
                [min(value, top)],
                marker="x",
                color=color,
                markersize=5,
                clip_on=False,
                zorder=4,
            )
        axes[0].axhline(
            1.0,
            color="0.3",
            linewidth=0.7,
            linestyle=":",
            label="baseline (chance level)",
        )
        for th in sorted(thresholds):
            axes[0].axhline(
                th,
                color=_style.OUTCOME_COLORS["solved"],
                linewidth=0.7,
                linestyle=":",
                label=f"solved below {th:g} x baseline",
            )
        axes[0].set_ylabel("loss / baseline")
        axes[1].set_ylabel(r"gradient norm $\|\nabla_\theta L\|$")
        handles, labels = axes[0].get_legend_handles_labels()
        if crosses:
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="x",
                    markersize=5,
                    color=_style.OUTCOME_COLORS["diverged"],
                )
            )
            labels.append("last finite step (top edge: off the scale)")
        if ax is None:
            fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=6)
        else:
            axes[0].legend(handles, labels, fontsize=6)
    return fig


def plot_agreement(
    rows,
    *,
    ax=None,
    observed: str = "outcome",
    predicted_key: str | None = None,
    observed_key: str | None = None,
    cmap: str = "Blues",
):
    """Predicted regime against what training showed, as a 3x3 matrix of counts.

    Args:
        rows: :func:`gradspec.verify.verify` rows (see :func:`agreement_counts`) or a
            (3, 3) count array.
        ax: axes to draw into; a new one-column figure if None.
        observed: ``"outcome"`` (columns stalled / solved / diverged) or ``"regime"``
            (the gradient's regime observed in training).
        predicted_key, observed_key: as in :func:`agreement_counts`.
        cmap: a sequential colormap for the counts.

    Returns:
        The Figure. The image (gid ``"agreement"``) holds the counts; each cell is
        annotated with its count; the diagonal (the expected pairing) is outlined and
        the title gives its share.
    """
    if observed not in _OBSERVED:
        raise ValueError(
            f"`observed` must be one of {list(_OBSERVED)}; got {observed!r}."
        )
    columns = _OBSERVED[observed][0]
    if isinstance(rows, np.ndarray) and rows.ndim == 2:
        counts = np.asarray(rows)
        if counts.shape != (3, 3):
            raise ValueError(
                f"`rows` as counts must have shape (3, 3); got {counts.shape}."
            )
    else:
        counts = agreement_counts(
            rows,
            observed=observed,
            predicted_key=predicted_key,
            observed_key=observed_key,
        )
    total = int(counts.sum())
    diagonal = int(np.trace(counts))
    colors = _style.OUTCOME_COLORS if observed == "outcome" else _style.REGIME_COLORS
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.85))
        im = ax.imshow(
            counts, cmap=cmap, vmin=0, vmax=max(1, counts.max()), aspect="equal"
        )
        im.set_gid("agreement")
        cmap_obj = im.get_cmap()
        for i in range(3):
            for j in range(3):
                r, g, b, _ = cmap_obj(im.norm(counts[i, j]))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(
                    j,
                    i,
                    str(int(counts[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
            ax.add_patch(
                mpatches.Rectangle(
                    (i - 0.5, i - 0.5),
                    1,
                    1,
                    fill=False,
                    edgecolor="black",
                    linewidth=1.2,
                )
            )
        ax.set_xticks(range(3), columns)
        ax.set_yticks(range(3), REGIME_ORDER)
        for tick, name in zip(ax.get_yticklabels(), REGIME_ORDER):
            tick.set_color(_style.REGIME_COLORS[name])
        for tick, name in zip(ax.get_xticklabels(), columns):
            tick.set_color(colors[name])
        ax.tick_params(length=0)
        ax.spines[:].set_visible(False)
        ax.set_xlabel(
            "training outcome"
            if observed == "outcome"
            else "gradient regime observed in training"
        )
        ax.set_ylabel("predicted regime (init)")
        share = f" ({100 * diagonal / total:.0f}%)" if total else ""
        ax.set_title(f"on the diagonal: {diagonal} of {total}{share}")
    return fig
