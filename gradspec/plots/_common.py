"""Helpers shared by the figure families: axes, decades, row fields, vector checks,
means over seeds with their standard errors, and the legend text of a rate.

Log-norms in gradspec are natural logs; figures show them in decades (log10 values on a
linear axis whose ticks read :math:`10^n`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker as mticker

LN10 = math.log(10.0)
_DIVERGING = "RdBu_r"  # blue = vanishing (< 0), red = exploding (> 0); CVD-safe


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


def _finite_mean_se(samples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Mean, standard error and count over axis 0 of the finite entries, float64.

    Per column j, over the :math:`n_j` finite entries :math:`x_{ij}` (``-inf`` from a
    dead unit, NaN and ``+inf`` are left out):

    .. math::
        \bar x_j = \frac{1}{n_j}\sum_i x_{ij}, \qquad
        \mathrm{se}_j = \sqrt{\frac{\sum_i (x_{ij} - \bar x_j)^2}{n_j (n_j - 1)}}.

    Args:
        samples: shape (S, ...): S samples (seeds, draws) of each column.

    Returns:
        ``(mean, se, n)``, each of shape (...,): the mean is NaN where :math:`n_j = 0`,
        the standard error where :math:`n_j < 2` (one sample has no spread).
    """
    x = np.asarray(samples, dtype=np.float64)
    finite = np.isfinite(x)
    n = finite.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, x, 0.0).sum(0) / n
        sq = np.where(finite, x - mean, 0.0) ** 2
        se = np.sqrt(sq.sum(0) / (n * (n - 1.0)))
    return mean, np.where(n >= 2, se, np.nan), n


def _finite_quantiles(samples, q: Sequence[float]) -> np.ndarray:
    """Quantiles ``q`` (in [0, 1]) over axis 0 of the finite entries, float64: shape
    ``(len(q), ...)``, NaN in a column without finite entries."""
    x = np.asarray(samples, dtype=np.float64)
    x = np.where(np.isfinite(x), x, np.nan)
    with warnings.catch_warnings():  # an all-NaN column is NaN, said in the docstring
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(x, q, axis=0)


def _rate_text(value: float, se: float | None = None, symbol: str = r"\lambda") -> str:
    r"""The mathtext ``$\lambda = -0.112 \pm 0.003$`` of a rate and its standard error.

    Three decimals; more (at most 6) when the standard error is below 0.001, so that
    its first significant digit shows, with the value given to the same digit.
    No :math:`\pm` part when ``se`` is None or not finite and positive.
    """
    digits = 3
    has_se = se is not None and math.isfinite(se) and se > 0
    if has_se:
        digits = min(6, max(3, -math.floor(math.log10(se))))
    text = f"{symbol} = {value:+.{digits}f}"
    if has_se:
        text += rf" \pm {se:.{digits}f}"
    return f"${text}$"
