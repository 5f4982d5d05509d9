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
        critical: the :math:`\chi = 1` line, in one of three forms:
            an array (B,) of :math:`\sigma_w^*` at each of ``sigma_b``, as
            ``critical_line(nonlinearity, sigma_b)`` returns; a dict with
            ``"sigma_w"`` and ``"sigma_b"`` arrays of one length; or a pair
            ``(sigma_w, sigma_b)`` of such arrays (e.g. ``critical_line`` over a finer
            ``sigma_b`` than the grid's).
        measured: measured points, drawn in the same colours with a black edge: a
            :class:`gradspec.sweep.GridTable` over the axes ``("sigma_w",
            "sigma_b")`` in either order, as ``gradspec.sweep.to_grid(records,
            "lambda_max")`` returns (a point per cell that holds a record; NaN cells
            are skipped), or a dict of equal-length columns ``"sigma_w"``,
            ``"sigma_b"``, ``"lambda_max"`` (e.g. ``gradspec.sweep.table(records,
            [...])``).
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

    Raises:
        TypeError: ``critical`` or ``measured`` of none of the forms above.
        ValueError: ``lambda_max`` not (W, B); a ``critical`` array not (B,) or its
            pair of unequal lengths; a ``measured`` grid over other axes, or columns
            missing or of unequal lengths.

    Examples:
        >>> import jax.numpy as jnp, gradspec.plots as gp
        >>> sw, sb = jnp.linspace(0.5, 2.0, 4), jnp.linspace(0.0, 1.0, 3)
        >>> lam = gp.mean_field_grid("tanh", sw, sb).lambda_max
        >>> fig = gp.plot_phase_diagram(sw, sb, lam,
        ...                             critical=gp.critical_line("tanh", sb))
        >>> line = [l for l in fig.axes[0].lines if l.get_gid() == "critical-line"][0]
        >>> line.get_ydata().tolist()
        [0.0, 0.5, 1.0]
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
            cw, cb_ = _critical_line(critical, sb)
            (line,) = ax.plot(
                cw,
                cb_,
                color="black",
                linewidth=1.2,
                label=r"$\chi = 1$ (mean field)",
            )
            line.set_gid("critical-line")
        if measured is not None:
            mw, mb, ml = _measured_points(measured)
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
                ncols=1,  # two entries side by side at 7 pt overflow the axes
                fontsize=_style.LEGEND_SIZE,
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


def _critical_line(critical, sigma_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sigma_w*, sigma_b), float64 (n,) each, from any form ``critical`` may take."""
    if isinstance(critical, Mapping):
        if not {"sigma_w", "sigma_b"} <= critical.keys():
            raise ValueError(
                "`critical` as a dict needs the keys 'sigma_w' and 'sigma_b'; got "
                f"{sorted(critical)}."
            )
        pair = critical["sigma_w"], critical["sigma_b"]
    elif (
        isinstance(critical, (tuple, list))
        and len(critical) == 2
        and all(np.ndim(c) == 1 for c in critical)
    ):
        pair = tuple(critical)
    else:
        try:
            line = np.asarray(critical, dtype=np.float64)
        except (TypeError, ValueError):
            line = None
        if line is None or line.ndim not in (1, 2):
            raise TypeError(
                "`critical` must be an array (B,) of sigma_w* at each `sigma_b` (as "
                "critical_line(nonlinearity, sigma_b) returns), a dict with "
                "'sigma_w' and 'sigma_b', or a pair (sigma_w, sigma_b); got "
                f"{type(critical).__name__}."
            )
        if line.ndim == 1 and line.shape != sigma_b.shape:
            raise ValueError(
                f"`critical` as an array holds sigma_w* at each `sigma_b`: expected "
                f"shape {sigma_b.shape}, got {line.shape}; for another sigma_b, pass "
                "the pair (critical_line(nonlinearity, sigma_b), sigma_b)."
            )
        if line.ndim == 2 and line.shape[0] != 2:
            raise ValueError(
                f"`critical` as a 2-D array is the pair (sigma_w, sigma_b): expected "
                f"shape (2, n), got {line.shape}."
            )
        pair = (line, sigma_b) if line.ndim == 1 else (line[0], line[1])
    cw, cb = (np.asarray(c, dtype=np.float64) for c in pair)
    if cw.shape != cb.shape or cw.ndim != 1:
        raise ValueError(
            "`critical`'s sigma_w and sigma_b must be 1-D of one length; got shapes "
            f"{cw.shape} and {cb.shape}."
        )
    return cw, cb


def _measured_points(measured) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sigma_w, sigma_b, lambda), float64 (n,) each, from a column dict or a grid
    (duck-typed as ``gradspec.sweep.GridTable``: ``axes``, ``coords``, ``values``)."""
    if isinstance(measured, Mapping):
        keys = ("sigma_w", "sigma_b", "lambda_max")
        if not set(keys) <= measured.keys():
            raise ValueError(
                f"`measured` as a dict needs the columns {list(keys)}; got "
                f"{sorted(measured)}."
            )
        cols = [np.asarray(measured[k], dtype=np.float64).ravel() for k in keys]
        if len({c.size for c in cols}) != 1:
            raise ValueError(
                f"`measured`'s columns {list(keys)} must be of one length; got "
                f"{[c.size for c in cols]}."
            )
        return tuple(cols)
    if not all(hasattr(measured, a) for a in ("axes", "coords", "values")):
        raise TypeError(
            "`measured` must be a grid as gradspec.sweep.to_grid(records, "
            "'lambda_max') returns, or a dict of columns 'sigma_w', 'sigma_b', "
            f"'lambda_max'; got {type(measured).__name__}."
        )
    axes = tuple(measured.axes)
    if sorted(axes) != ["sigma_b", "sigma_w"]:
        raise ValueError(
            "`measured` must be a grid over the axes ('sigma_w', 'sigma_b'); got "
            f"{axes}: to_grid(records, 'lambda_max', axes=('sigma_w', 'sigma_b'))."
        )
    values = np.asarray(measured.values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(
            f"`measured` must hold one value per cell, shape (n_0, n_1); got "
            f"{values.shape}."
        )
    grid = np.meshgrid(*measured.coords, indexing="ij")
    by_axis = dict(zip(axes, grid))
    has = ~np.isnan(values)  # NaN: no record there; -inf (sigma_w = 0) is a value
    return (
        np.asarray(by_axis["sigma_w"], dtype=np.float64)[has],
        np.asarray(by_axis["sigma_b"], dtype=np.float64)[has],
        values[has],
    )


def _step(x: np.ndarray) -> float:
    return float(np.min(np.diff(np.sort(x)))) if x.size > 1 else 1.0


def _extend(finite: np.ndarray, vmax: float) -> str:
    low = finite.size and finite.min() < -vmax
    high = finite.size and finite.max() > vmax
    return {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
        (bool(low), bool(high)), "neither"
    )
