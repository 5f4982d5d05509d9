"""Helpers shared by the figure families: axes, decades, row fields, vector checks.

Log-norms in gradspec are natural logs; figures show them in decades (log10 values on a
linear axis whose ticks read :math:`10^n`).
"""

from __future__ import annotations

import math
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
