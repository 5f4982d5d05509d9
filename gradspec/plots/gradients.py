r"""Gradient flow: the gradient norm against the lag, and the heat map of
:math:`\|\partial h_t / \partial h_s\|` over (s, t)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from ..measure import profile_rate
from . import style as _style
from ._common import (
    LN10,
    _DIVERGING,
    _axes,
    _check_vector,
    _decade_axis,
    _decades,
    _finite_mean_se,
    _finite_quantiles,
    _rate_text,
)

#: The band's quantiles across seeds for ``band="quantile"``.
QUANTILE_BAND = (0.1, 0.9)
_BANDS = ("se", "quantile", None)


def plot_gradient_profiles(
    profiles: Sequence[Mapping],
    *,
    ax=None,
    slopes: bool = True,
    band: Literal["se", "quantile"] | None = "se",
):
    r"""Gradient norm :math:`\|\partial L/\partial h_{T-k}\|` against the lag k, with
    each curve's predicted slope :math:`\lambda_{max}` as a dashed line.

    The y-axis is in decades (log10 values, ticks labelled :math:`10^n`); the dashed
    line of a profile :math:`\ell` is :math:`(\ell_0 + \lambda_{max} k)/\ln 10`.

    A batch of S profiles (seeds) is drawn as the mean over seeds of the log norms,
    i.e. the geometric mean of the norms, with a shaded band. At each lag k only the
    :math:`n_k` seeds whose :math:`\ell_{s,k}` is finite count (``-inf`` where a dead
    unit zeroes the gradient):

    .. math::
        \bar\ell_k = \frac{1}{n_k} \sum_{s:\, \ell_{s,k}\ \mathrm{finite}}
            \ell_{s,k}, \qquad
        \mathrm{se}_k = \sqrt{\frac{\sum_s (\ell_{s,k} - \bar\ell_k)^2}
            {n_k (n_k - 1)}}.

    A lag with :math:`n_k = 0` is not drawn, and the band needs :math:`n_k \ge 2`.

    Each legend entry carries the curve's rate: ``label  (λ = -0.112 ± 0.003)``, from
    ``"lambda_max"`` and ``"lambda_se"`` when given (no ± part without an s.e.). For a
    batch without ``"lambda_max"`` it is the fitted rate :math:`\hat\lambda`: the
    mean ± s.e. over seeds of each seed's least-squares slope over its finite lags
    (:func:`gradspec.profile_rate`, natural log per step). A fitted rate only labels
    the data: dashed slope lines are drawn for given ``"lambda_max"`` values alone,
    predictions that the data can be held against.

    Args:
        profiles: one dict per curve with ``"log_norms"``, natural log: (K + 1,) as
            :func:`gradspec.gradient_profile` returns, or (S, K + 1), S profiles
            (seeds) at the same lags; and optionally ``"label"``, ``"lambda_max"``
            (the predicted rate, natural log per step, e.g.
            ``gradspec.predict(...).lyapunov``), ``"lambda_se"`` (its standard error),
            ``"lags"`` (K + 1,) when the entries are not at lags 0..K, and ``"color"``.
        ax: axes to draw into; a new one-column figure if None.
        slopes: draw the predicted slopes.
        band: the shaded band of a batch: ``"se"`` :math:`\bar\ell_k \pm
            \mathrm{se}_k` (one standard error of the mean), ``"quantile"`` the
            10–90% range across seeds (:data:`QUANTILE_BAND`), None for no band.

    Returns:
        The Figure; each profile's line has gid ``"profile:<label>"`` (y: the mean in
        decades for a batch), its band ``"band:<label>"``, its slope line
        ``"slope:<label>"``.

    Raises:
        TypeError: ``profiles`` is a single dict.
        ValueError: ``log_norms`` with other than 1 or 2 dimensions, or an unknown
            ``band``.

    Examples:
        >>> import numpy as np, gradspec.plots as gp
        >>> k = np.arange(6)
        >>> batch = np.stack([-0.1 * k, -0.12 * k, -0.14 * k])  # 3 seeds
        >>> fig = gp.plot_gradient_profiles([{"label": "tanh", "log_norms": batch}])
        >>> fig.axes[0].get_legend().get_texts()[0].get_text()
        'tanh  ($\\hat\\lambda = -0.120 \\pm 0.012$)'
    """
    if isinstance(profiles, Mapping):
        raise TypeError(
            "`profiles` must be a list of dicts (one per curve); got a dict."
        )
    if band not in _BANDS:
        raise ValueError(f"`band` must be one of {_BANDS}; got {band!r}.")
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.8))
        any_slope = False
        for i, prof in enumerate(profiles):
            log_norms = np.asarray(prof["log_norms"], dtype=np.float64)
            if log_norms.ndim not in (1, 2):
                raise ValueError(
                    f"`profiles[{i}]['log_norms']` must be (K + 1,) or (S, K + 1); "
                    f"got shape {log_norms.shape}."
                )
            lags = np.asarray(
                prof.get("lags", np.arange(log_norms.shape[-1])), dtype=np.float64
            )
            label = str(prof.get("label", f"profile {i}"))
            color = prof.get("color") or _style.CYCLE[i % len(_style.CYCLE)]
            center, lam, lam_se, fitted = _curve(prof, log_norms, lags)
            text = label
            if math.isfinite(lam):
                symbol = r"\hat\lambda" if fitted else r"\lambda"
                text += f"  ({_rate_text(lam, lam_se, symbol)})"
            (line,) = ax.plot(lags, _decades(center), color=color, label=text)
            line.set_gid(f"profile:{label}")
            if log_norms.ndim == 2 and band is not None:
                lo, hi = _band(log_norms, band)
                shade = ax.fill_between(
                    lags, _decades(lo), _decades(hi), color=color, alpha=0.25, lw=0
                )
                shade.set_gid(f"band:{label}")
            if slopes and not fitted and math.isfinite(lam):
                start = float(center[0]) if np.isfinite(center[0]) else 0.0
                y = (start + lam * lags) / LN10
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
        ax.legend(handles, labels, fontsize=_style.LEGEND_SIZE, loc="best")
        ax.set_xlim(left=0)
    return fig


def _curve(prof: Mapping, log_norms: np.ndarray, lags: np.ndarray):
    """(drawn log norms (K + 1,), rate, its s.e. or None, fitted) of one curve: the
    given ``lambda_max``, else a batch's fitted rate (``fitted`` True), else a NaN
    rate (none to show)."""
    lam, lam_se = prof.get("lambda_max"), prof.get("lambda_se")
    center = log_norms if log_norms.ndim == 1 else _finite_mean_se(log_norms)[0]
    if lam is not None:
        return center, float(lam), None if lam_se is None else float(lam_se), False
    if log_norms.ndim == 1:
        return center, math.nan, None, False
    rates = profile_rate(jnp.asarray(log_norms), jnp.asarray(lags))
    mean, se, _ = _finite_mean_se(np.asarray(rates, dtype=np.float64))
    return center, float(mean), float(se), True


def _band(log_norms: np.ndarray, band: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edge (K + 1,) of a batch's band, natural log; NaN (not drawn)
    at lags with fewer than two finite seeds."""
    if band == "se":
        mean, se, n = _finite_mean_se(log_norms)
        lo, hi = mean - se, mean + se
    else:
        lo, hi = _finite_quantiles(log_norms, QUANTILE_BAND)
        n = np.isfinite(log_norms).sum(0)
    few = n < 2
    return np.where(few, np.nan, lo), np.where(few, np.nan, hi)


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
