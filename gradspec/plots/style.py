"""gradspec's house style for figures, applied in a context manager (never on import).

Everything here is plain matplotlib: an rc dictionary (:data:`RC`), a context manager
that applies it (:func:`context`), figure sizes for one- and two-column layouts
(:func:`figsize`) and a :func:`save` helper that writes PNG/PDF/SVG with TrueType fonts
(no Type 3 fonts in the PDF, as journals require).

Colours are the Okabe–Ito palette (Okabe & Ito 2008, "Color Universal Design"),
distinguishable under the common colour-vision deficiencies. The regime and outcome
vocabularies have fixed colours so that every figure speaks the same language:
vanishing / stalled are blue, critical / solved green, exploding / diverged vermillion.

Examples:
    >>> import matplotlib.pyplot as plt, gradspec.style as gs_style
    >>> with gs_style.context():
    ...     fig, ax = plt.subplots(figsize=gs_style.figsize("one"))
    >>> fig.get_size_inches().tolist()
    [3.25, 2.4375]
    >>> plt.close(fig)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
from cycler import cycler

__all__ = [
    "CYCLE",
    "LEGEND_SIZE",
    "OKABE_ITO",
    "ONE_COLUMN",
    "OUTCOME_COLORS",
    "RC",
    "REGIME_COLORS",
    "TWO_COLUMN",
    "context",
    "figsize",
    "save",
]

#: The eight Okabe–Ito colours by name.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

#: Line colour cycle: the palette reordered so that the first colours are the most
#: distinct from each other on white (yellow, the palest, comes last).
CYCLE: tuple[str, ...] = tuple(
    OKABE_ITO[name]
    for name in (
        "blue",
        "vermillion",
        "bluish_green",
        "orange",
        "reddish_purple",
        "sky_blue",
        "black",
        "yellow",
    )
)

#: Colour of each regime of the shared vocabulary (``gradspec.theory.REGIMES``).
REGIME_COLORS: dict[str, str] = {
    "vanishing": OKABE_ITO["blue"],
    "critical": OKABE_ITO["bluish_green"],
    "exploding": OKABE_ITO["vermillion"],
}

#: Colour of each training outcome; a stall is what vanishing gradients look like in
#: training, a divergence what exploding ones do.
OUTCOME_COLORS: dict[str, str] = {
    "stalled": OKABE_ITO["blue"],
    "improving": OKABE_ITO["sky_blue"],
    "solved": OKABE_ITO["bluish_green"],
    "diverged": OKABE_ITO["vermillion"],
}

#: Figure widths in inches: one column and the full text width of a two-column paper.
ONE_COLUMN = 3.25
TWO_COLUMN = 6.75

#: Legend text size in points: every legend of :mod:`gradspec.plots` uses it (7 pt, the
#: smallest text a journal figure should carry after scaling to the column width).
LEGEND_SIZE = 7

#: The rc settings :func:`context` applies.
RC: dict[str, object] = {
    # Layout: constrained layout keeps labels and colour bars inside the figure
    # without bbox_inches="tight", so a saved PNG has exactly figsize * dpi pixels.
    "figure.constrained_layout.use": True,
    "figure.dpi": 100,
    "figure.facecolor": "white",
    "savefig.dpi": 300,
    "savefig.facecolor": "white",
    # Fonts: 8 pt text, 7 pt ticks, the size of a journal's figure text.
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": LEGEND_SIZE,
    "legend.title_fontsize": LEGEND_SIZE,
    "figure.titlesize": 9,
    # Mathtext in the same sans-serif face as the text.
    "mathtext.fontset": "dejavusans",
    # "normal": italic letters, upright digits (as TeX); "it" would slant digits too.
    "mathtext.default": "normal",
    "axes.formatter.use_mathtext": True,
    # TrueType (Type 42) fonts in PDF/PS: editable, searchable, no Type 3 bitmaps.
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    # SVG: glyphs as paths, so the file looks the same without the font installed.
    "svg.fonttype": "path",
    # Lines and axes.
    "axes.prop_cycle": cycler(color=list(CYCLE)),
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlepad": 4.0,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "patch.linewidth": 0.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 3.0,
    "ytick.major.size": 3.0,
    "xtick.minor.size": 1.8,
    "ytick.minor.size": 1.8,
    "legend.frameon": False,
    "legend.handlelength": 1.8,
    "legend.borderaxespad": 0.3,
    "image.cmap": "viridis",
    "grid.linewidth": 0.4,
    "grid.alpha": 0.4,
}


def figsize(width: str | float = "one", aspect: float = 0.75) -> tuple[float, float]:
    """Figure size ``(width, width * aspect)`` in inches.

    Args:
        width: ``"one"`` (:data:`ONE_COLUMN`, 3.25 in), ``"two"`` (:data:`TWO_COLUMN`,
            6.75 in) or a number of inches > 0.
        aspect: height / width > 0.

    Returns:
        ``(width, height)`` in inches.

    Raises:
        ValueError: an unknown width name, or a width or aspect <= 0.

    Examples:
        >>> figsize("two", aspect=0.4)
        (6.75, 2.7)
    """
    widths = {"one": ONE_COLUMN, "two": TWO_COLUMN}
    w = widths.get(width) if isinstance(width, str) else float(width)
    if w is None or not w > 0:
        raise ValueError(f"`width` must be 'one', 'two' or inches > 0; got {width!r}.")
    if not float(aspect) > 0:
        raise ValueError(f"`aspect` must be > 0; got {aspect!r}.")
    return (w, round(w * float(aspect), 4))


@contextlib.contextmanager
def context(rc: Mapping[str, object] | None = None) -> Iterator[None]:
    """Apply the house style (:data:`RC`, updated by ``rc``) inside a ``with`` block.

    The previous rc settings come back on exit, so importing gradspec or calling a plot
    function never changes a user's own matplotlib defaults.

    Args:
        rc: extra rc settings that override :data:`RC`.

    Examples:
        >>> import matplotlib as mpl, gradspec.style as gs_style
        >>> with gs_style.context({"font.size": 10}):
        ...     inside = mpl.rcParams["font.size"], mpl.rcParams["pdf.fonttype"]
        >>> inside
        (10.0, 42)
    """
    with mpl.rc_context({**RC, **(rc or {})}):
        yield


#: Metadata that keeps repeated saves byte-identical (no creation dates).
_METADATA = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}
_FORMATS = ("png", "pdf", "svg")


def save(
    fig,
    path: str | os.PathLike,
    formats: Sequence[str] = ("png", "pdf", "svg"),
    dpi: int = 300,
) -> list[Path]:
    """Write ``fig`` to ``path.<fmt>`` for every format, in the house style.

    The style's font settings (TrueType in PDF, paths in SVG) are applied while saving,
    so this is safe to call outside :func:`context`. No ``bbox_inches="tight"``: a PNG
    is exactly ``fig.get_size_inches() * dpi`` pixels.

    Args:
        fig: a matplotlib Figure.
        path: output path without extension (a suffix in ``formats`` is dropped);
            missing parent directories are created.
        formats: any of ``"png"``, ``"pdf"``, ``"svg"``.
        dpi: resolution of the PNG (and of rasterised parts of PDF/SVG), > 0.

    Returns:
        The written paths, in the order of ``formats``.

    Raises:
        ValueError: an unknown format or ``dpi`` <= 0.

    Examples:
        >>> import tempfile, matplotlib.pyplot as plt, gradspec.style as gs_style
        >>> fig = plt.figure(figsize=(1, 1))
        >>> path = tempfile.mkdtemp() + "/f"
        >>> out = gs_style.save(fig, path, formats=("png",), dpi=50)
        >>> out[0].name
        'f.png'
        >>> plt.close(fig)
    """
    if isinstance(formats, str):
        formats = (formats,)
    for fmt in formats:
        if fmt not in _FORMATS:
            raise ValueError(f"`formats` must be drawn from {_FORMATS}; got {fmt!r}.")
    if not (isinstance(dpi, (int, float)) and dpi > 0):
        raise ValueError(f"`dpi` must be a number > 0; got {dpi!r}.")
    path = Path(path)
    if path.suffix.lstrip(".") in _FORMATS:
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with context():
        for fmt in formats:
            out = path.with_name(f"{path.name}.{fmt}")
            fig.savefig(out, format=fmt, dpi=dpi, metadata=_METADATA.get(fmt))
            written.append(out)
    return written
