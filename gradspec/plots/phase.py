r"""The phase diagram of :math:`\lambda_{max}` over :math:`(\sigma_w, \sigma_b)`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colors as mcolors

from . import style as _style
from ._common import _DIVERGING, _axes, _check_vector


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
