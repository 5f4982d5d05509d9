r"""The dynamics behind the gradient: Lyapunov spectra with confidence bands, the
convergence of the running estimates :math:`\lambda_i(t)`, and the distribution of the
local (finite-time) exponents (:mod:`gradspec.measure.dynamics`).

Exponents are natural logs per step; ``time_step`` :math:`\Delta t` turns a flow's
per-step exponents into rates per unit time (:math:`\lambda / \Delta t`) and steps into
time (:math:`t\,\Delta t`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import style as _style
from ._common import _axes, _finite_mean_se

_UNIT = {True: "per step", False: "per unit time"}


def _scale(time_step) -> float:
    time_step = float(time_step)
    if not time_step > 0:
        raise ValueError(f"`time_step` must be > 0; got {time_step!r}.")
    return time_step


def _check_z(z) -> float:
    z = float(z)
    if not z >= 0:
        raise ValueError(f"`z` must be >= 0 (standard errors each side); got {z!r}.")
    return z


def _mean_se(spec: Mapping, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, se) of one curve: from ``mean``/``se``, or a batch (B, k) of exponents."""
    if "mean" in spec:
        mean = np.asarray(spec["mean"], np.float64)
        se = np.asarray(spec.get("se", np.full(mean.shape, np.nan)), np.float64)
        if mean.ndim != 1 or se.shape != mean.shape:
            raise ValueError(f"`spectra[{i}]['mean']` and `['se']` must both be (k,); got "
                             f"{mean.shape} and {se.shape}.")
        return mean, se
    lam = np.asarray(spec["exponents"], np.float64)
    if lam.ndim == 1:
        return lam, np.full(lam.shape, np.nan)
    if lam.ndim == 2:
        mean, se, _ = _finite_mean_se(lam)
        return mean, se
    raise ValueError(f"`spectra[{i}]['exponents']` must be (k,) or (B, k); got shape "
                     f"{lam.shape}.")


def plot_exponent_spectrum(
    spectra: Sequence[Mapping],
    *,
    z: float = 2.0,
    time_step: float = 1.0,
    ax=None,
):
    r"""Lyapunov exponents :math:`\lambda_i` against their index, each with a band of
    :math:`\pm z` standard errors.

    A batch of B spectra (sequences, start states or networks) is drawn as the mean of
    each exponent over the finite values, with
    :math:`\mathrm{se}_i = \mathrm{sd}_b(\lambda_i^{(b)}) / \sqrt{B}`; ``z = 2`` is an
    approximate 95% interval for that mean. Where the band crosses zero the sign of
    that exponent (vanishing vs exploding along it) is not resolved by the batch.

    Args:
        spectra: one dict per curve with ``"exponents"`` (k,) or (B, k), or ``"mean"``
            and ``"se"`` (k,) (e.g. the last row of a
            :class:`gradspec.LyapunovConvergence`); optional ``"label"``, ``"color"``.
        z: half-width of the band in standard errors (no band where se is NaN: one run).
        time_step: :math:`\Delta t`; exponents are drawn as :math:`\lambda / \Delta t`.
        ax: axes to draw into; a new one-column figure if None.

    Returns:
        The Figure; each curve has gid ``"spectrum:<label>"`` (x: 1..k, y: the mean
        divided by ``time_step``), each band ``"band:<label>"``.

    Raises:
        TypeError: ``spectra`` is a single dict.
        ValueError: a curve's arrays of the wrong shape; ``z`` < 0; ``time_step`` <= 0.

    Examples:
        >>> import numpy as np, gradspec.plots as gp
        >>> batch = np.array([[0.42, -1.62], [0.41, -1.61], [0.43, -1.63]])
        >>> fig = gp.plot_exponent_spectrum([{"label": "Henon", "exponents": batch}])
        >>> fig.axes[0].lines[0].get_ydata().round(2).tolist()
        [0.42, -1.62]
    """
    if isinstance(spectra, Mapping):
        raise TypeError("`spectra` must be a list of dicts (one per curve); got a dict.")
    z, dt = _check_z(z), _scale(time_step)
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.8))
        for i, spec in enumerate(spectra):
            mean, se = _mean_se(spec, i)
            mean, se = mean / dt, se / dt
            label = str(spec.get("label", f"spectrum {i}"))
            color = spec.get("color") or _style.CYCLE[i % len(_style.CYCLE)]
            index = np.arange(1, mean.size + 1)
            y = np.where(np.isfinite(mean), mean, np.nan)
            (line,) = ax.plot(index, y, color=color, marker="o" if mean.size <= 64 else None,
                              markersize=2.5, linewidth=0.9, label=label)
            line.set_gid(f"spectrum:{label}")
            if np.isfinite(se).any():
                band = ax.fill_between(index, y - z * se, y + z * se, color=color,
                                       alpha=0.25, linewidth=0)
                band.set_gid(f"band:{label}")
        ax.axhline(0, color="0.4", linewidth=0.6, zorder=0)
        ax.set_xlabel(r"index $i$")
        ax.set_ylabel(rf"Lyapunov exponent $\lambda_i$ ({_UNIT[dt == 1.0]})")
        ax.legend(fontsize=_style.LEGEND_SIZE, loc="best")
    return fig


def _indices(indices, k: int) -> list[int]:
    """1-based exponent indices to draw; the first min(k, 4) when None."""
    if indices is None:
        return list(range(1, min(k, 4) + 1))
    out = [int(i) for i in indices]
    if not out or any(not 1 <= i <= k for i in out):
        raise ValueError(f"`indices` must be 1-based exponent indices in [1, {k}]; "
                         f"got {list(indices)}.")
    return out


def plot_convergence(
    convergence,
    *,
    indices: Sequence[int] | None = None,
    reference: Sequence[float] | None = None,
    z: float = 2.0,
    time_step: float = 1.0,
    ax=None,
):
    r"""The running estimates :math:`\bar\lambda_i(t)` against t, each with a band of
    :math:`\pm z` standard errors over the batch, and optional known values.

    The estimate has converged once the curve stays inside its band's width; a band
    that still shrinks like :math:`1/\sqrt t` while the curve wanders outside the
    previous band means a slow transient (a frame or state still forgetting its start:
    raise ``warmup``).

    Args:
        convergence: a :class:`gradspec.LyapunovConvergence` (fields ``t``, ``mean``,
            ``se``).
        indices: 1-based indices of the exponents to draw; the first min(k, 4) if None.
        reference: a known value per drawn index (per unit time with ``time_step``),
            drawn as a dashed line; None for none.
        z: half-width of the bands in standard errors.
        time_step: :math:`\Delta t`: x is :math:`t\,\Delta t`, y is
            :math:`\lambda/\Delta t`.
        ax: axes to draw into; a new one-column figure if None.

    Returns:
        The Figure; gids ``"running:<i>"`` (x: t times ``time_step``, y: the mean over
        ``time_step``), ``"band:<i>"`` and ``"reference:<i>"``.

    Raises:
        ValueError: bad ``indices``, a ``reference`` of another length, ``z`` < 0,
            ``time_step`` <= 0, or fields of mismatched shapes.

    Examples:
        >>> import numpy as np, gradspec, gradspec.plots as gp
        >>> local = np.random.default_rng(0).normal(0.4, 1.0, (8, 500, 1))
        >>> c = gradspec.running_exponents(local)
        >>> fig = gp.plot_convergence(c, reference=[0.4])
        >>> len(fig.axes[0].lines)  # the running mean and the reference
        2
    """
    t = np.asarray(convergence.t, np.float64)
    mean = np.asarray(convergence.mean, np.float64)
    se = np.asarray(convergence.se, np.float64)
    if mean.ndim != 2 or se.shape != mean.shape or t.shape != mean.shape[:1]:
        raise ValueError(f"`convergence` must have t (n,), mean and se (n, k); got "
                         f"{t.shape}, {mean.shape}, {se.shape}.")
    z, dt = _check_z(z), _scale(time_step)
    chosen = _indices(indices, mean.shape[1])
    if reference is not None and len(reference) != len(chosen):
        raise ValueError(f"`reference` must give one value per drawn index ({len(chosen)});"
                         f" got {len(reference)}.")
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.8))
        x = t * dt
        for n, i in enumerate(chosen):
            color = _style.CYCLE[n % len(_style.CYCLE)]
            y, s = mean[:, i - 1] / dt, se[:, i - 1] / dt
            y = np.where(np.isfinite(y), y, np.nan)
            (line,) = ax.plot(x, y, color=color, linewidth=0.9,
                              label=rf"$\lambda_{{{i}}}(t)$")
            line.set_gid(f"running:{i}")
            if np.isfinite(s).any():
                band = ax.fill_between(x, y - z * s, y + z * s, color=color, alpha=0.25,
                                       linewidth=0)
                band.set_gid(f"band:{i}")
            if reference is not None:
                ref = ax.axhline(float(reference[n]), color=color, linestyle="--",
                                 linewidth=0.7)
                ref.set_gid(f"reference:{i}")
        ax.set_xlabel("step $t$" if dt == 1.0 else r"time $t\,\Delta t$")
        ax.set_ylabel(rf"running estimate $\lambda_i(t)$ ({_UNIT[dt == 1.0]})")
        ax.legend(fontsize=_style.LEGEND_SIZE, loc="best")
    return fig


def plot_local_exponents(
    local,
    *,
    indices: Sequence[int] | None = None,
    bins: int = 60,
    time_step: float = 1.0,
    ax=None,
):
    r"""Histogram (density) of the local exponents :math:`\log|(R_t)_{ii}|` of each
    drawn index, pooled over steps and batch members, with their mean (the exponent)
    as a dashed vertical line.

    A narrow peak: the gradient changes by the same factor every step. A wide one,
    with mass on both sides of 0 around a mean near 0: a gradient critical on average
    but intermittent, exploding and vanishing in bursts.

    Args:
        local: shape (T, k) or (B, T, k) (:func:`gradspec.local_exponents`, or
            ``jax.vmap`` of it); non-finite values (a dead direction's ``-inf``) are
            left out.
        indices: 1-based indices of the exponents to draw; the first min(k, 4) if None.
        bins: number of bins, shared by all drawn indices (edges over their pooled
            range).
        time_step: :math:`\Delta t`: values are drawn as :math:`\ell / \Delta t`.
        ax: axes to draw into; a new one-column figure if None.

    Returns:
        The Figure; gids ``"local:<i>"`` (a step patch whose ``get_data()`` are the
        densities and the bin edges, as ``np.histogram(..., density=True)`` gives)
        and ``"mean:<i>"``.

    Raises:
        ValueError: ``local`` not (T, k) or (B, T, k); bad ``indices`` or ``bins``.

    Examples:
        >>> import numpy as np, gradspec.plots as gp
        >>> local = np.random.default_rng(0).normal(0.4, 1.0, (1000, 2))
        >>> fig = gp.plot_local_exponents(local, bins=20)
        >>> [len(p.get_data().values) for p in fig.axes[0].patches]  # 20 bins each
        [20, 20]
    """
    a = np.asarray(local, np.float64)
    if a.ndim not in (2, 3) or 0 in a.shape:
        raise ValueError(f"`local` must have shape (T, k) or (B, T, k); got {a.shape}.")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"`bins` must be an int >= 1; got {bins!r}.")
    dt = _scale(time_step)
    values = a.reshape(-1, a.shape[-1]) / dt
    chosen = _indices(indices, values.shape[1])
    pooled = values[:, [i - 1 for i in chosen]]
    pooled = pooled[np.isfinite(pooled)]
    edges = np.histogram_bin_edges(pooled if pooled.size else [0.0, 1.0], bins=int(bins))
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.8))
        for n, i in enumerate(chosen):
            color = _style.CYCLE[n % len(_style.CYCLE)]
            v = values[:, i - 1]
            v = v[np.isfinite(v)]
            density, _ = np.histogram(v, bins=edges, density=True)
            patch = ax.stairs(density, edges, fill=True, color=color, alpha=0.35,
                              label=rf"$\log|(R_t)_{{{i}{i}}}|$")
            patch.set_gid(f"local:{i}")
            if v.size:
                mark = ax.axvline(float(v.mean()), color=color, linestyle="--",
                                  linewidth=0.8)
                mark.set_gid(f"mean:{i}")
        ax.axvline(0, color="0.4", linewidth=0.6, zorder=0)
        ax.set_xlabel(rf"local exponent ({_UNIT[dt == 1.0]})")
        ax.set_ylabel("density")
        ax.legend(fontsize=_style.LEGEND_SIZE, loc="best")
    return fig
