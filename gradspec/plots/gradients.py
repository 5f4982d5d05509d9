r"""Gradient flow: the gradient norm against the lag, and the heat map of
:math:`\|\partial h_t / \partial h_s\|` over (s, t)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from . import style as _style
from ._common import LN10, _DIVERGING, _axes, _check_vector, _decade_axis, _decades


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
