"""Lyapunov spectra against their index, with the mean-field top exponent."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.lines import Line2D

from . import style as _style
from ._common import _axes, _finite_mean_se, _rate_text

_TOP = r"\lambda_1"  # the legend's symbol of the top exponent


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

    A batch of D spectra (networks drawn with different seeds) is drawn as the mean
    over draws of each exponent, over the finite values only (:math:`-\infty` from a
    dead unit is left out), and its legend entry gives the top exponent across draws,
    :math:`\lambda_1 = \bar\lambda_1 \pm \mathrm{se}` with
    :math:`\mathrm{se} = \mathrm{sd}(\lambda_1) / \sqrt{D}` (one standard error of the
    mean).

    Args:
        spectra: one dict per curve with ``"exponents"`` (k,) descending, natural log
            per step (:func:`gradspec.lyapunov_spectrum`), or (D, k) for D draws, and
            optionally ``"label"``, ``"lambda_max"`` (predicted top exponent) and
            ``"color"``.
        ax: axes to draw into; a new one-column figure if None.
        inset: if > 0, an inset zooms into the top ``inset`` exponents (where
            :math:`\lambda_1` and its prediction sit; the bottom of a spectrum
            otherwise sets the scale).
        inset_bounds: the inset's (x0, y0, width, height) in axes coordinates.

    Returns:
        The Figure; each curve has gid ``"spectrum:<label>"`` (y: the mean over draws
        for a batch), each prediction ``"predicted:<label>"`` (on the main axes).

    Raises:
        TypeError: ``spectra`` is a single dict.
        ValueError: ``exponents`` with other than 1 or 2 dimensions.

    Examples:
        >>> import numpy as np, gradspec.plots as gp
        >>> draws = np.array([[0.10, -0.5], [0.14, -0.6]])  # 2 networks, 2 exponents
        >>> fig = gp.plot_lyapunov_spectra([{"label": "g = 2", "exponents": draws}])
        >>> fig.axes[0].get_legend().get_texts()[0].get_text()
        'g = 2  ($\\lambda_1 = +0.120 \\pm 0.020$)'
    """
    if isinstance(spectra, Mapping):
        raise TypeError(
            "`spectra` must be a list of dicts (one per curve); got a dict."
        )
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.8))
        axins = ax.inset_axes(list(inset_bounds)) if inset > 0 else None
        predicted = rated = False
        for i, spec in enumerate(spectra):
            lam = np.asarray(spec["exponents"], dtype=np.float64)
            label = str(spec.get("label", f"spectrum {i}"))
            text = label
            if lam.ndim == 2:
                mean, se, _ = _finite_mean_se(lam[:, 0])
                text += f"  ({_rate_text(float(mean), float(se), _TOP)})"
                lam = _finite_mean_se(lam)[0]
                rated = True
            elif lam.ndim != 1:
                raise ValueError(
                    f"`spectra[{i}]['exponents']` must be (k,) or (D, k); got shape "
                    f"{lam.shape}."
                )
            lam = np.where(np.isfinite(lam), lam, np.nan)
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
                    label=text if target is ax else None,
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
            # Legend above the axes: the inset takes the empty lower part. Labels with
            # a rate +- s.e. are too long for three to a row in one column's width.
            ax.legend(
                handles,
                labels,
                fontsize=_style.LEGEND_SIZE,
                loc="lower center",
                bbox_to_anchor=(0.5, 1.0),
                ncols=1 if rated else 3,
                borderaxespad=0.2,
            )
        else:
            ax.legend(handles, labels, fontsize=_style.LEGEND_SIZE, loc="best")
    return fig
