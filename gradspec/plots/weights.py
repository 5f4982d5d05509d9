r"""Spectra of :math:`W_{hh}`: eigenvalues against the circular law, singular values
against the quarter-circle law."""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np
from matplotlib import patches as mpatches

from .. import theory as _theory
from . import style as _style
from ._common import _axes, _check_vector


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
        fig, ax = _axes(ax, _style.figsize("one", 0.58))
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
            fontsize=_style.LEGEND_SIZE,
            handlelength=0.8,
            handletextpad=0.4,
            borderaxespad=0.2,
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
        # One column: a second one at 7 pt would reach the edge line at 2g.
        ax.legend(loc="upper left", fontsize=_style.LEGEND_SIZE)
    return fig
