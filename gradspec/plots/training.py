"""Training: curves coloured by outcome, and predicted regime against what training
showed (:func:`gradspec.verify`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches as mpatches
from matplotlib.lines import Line2D

from . import style as _style
from ._common import _axes
from .data import _OBSERVED, REGIME_ORDER, agreement_counts

#: The outcome each predicted regime implies in training.
_EXPECTED = {"vanishing": "stalled", "critical": "solved", "exploding": "diverged"}

_LINESTYLES = ("-", "--", "-.", ":")


def _running_mean(y: np.ndarray, window: int) -> np.ndarray:
    """Centred running geometric mean (a running mean of log y, for log axes), over
    the finite positive entries in each window."""
    if window <= 1:
        return y
    kernel = np.ones(window) / window
    valid = np.isfinite(y) & (y > 0)
    logs = np.log(np.where(valid, y, 1.0))
    num = np.convolve(np.where(valid, logs, 0.0), kernel, mode="same")
    den = np.convolve(valid.astype(float), kernel, mode="same")
    return np.where(valid, np.exp(num / np.where(den > 0, den, 1.0)), np.nan)


def _limits(curves: list, diverged: list, headroom: float) -> tuple | None:
    """(bottom, top) of a log panel: from the runs that did not diverge, with the top
    at ``headroom`` times their maximum, so one diverging run (1e30 and up) cannot
    flatten the others; None (automatic) when every run diverged or none did."""
    calm = [c[np.isfinite(c) & (c > 0)] for c, d in zip(curves, diverged) if not d]
    calm = [c for c in calm if c.size]
    if not calm or len(calm) == len(curves):
        return None
    return 0.5 * min(c.min() for c in calm), headroom * max(c.max() for c in calm)


def plot_training_curves(
    runs: Sequence[Mapping], *, ax=None, smooth: int = 1, headroom: float = 100.0
):
    r"""Training curves coloured by outcome: loss / baseline (left) and the global
    gradient norm (right), both on log axes.

    Colours follow :data:`gradspec.style.OUTCOME_COLORS` (solved green, stalled blue,
    diverged vermillion); runs sharing an outcome differ in line style. A diverged run
    ends in a cross at its last finite value; if that lies beyond ``headroom`` times the
    largest value of the other runs, the axis stops there and the cross sits on the
    top edge (so the other runs stay readable).

    Args:
        runs: one dict per run with ``"loss"`` (steps,), ``"grad_norm"`` (steps,),
            ``"outcome"`` (``"solved"``, ``"stalled"`` or ``"diverged"``),
            ``"baseline"`` (the task's chance-level loss) and optionally ``"label"`` and
            ``"solved_below"`` (the solved threshold, a fraction of the baseline).
            :func:`runs_from_train` makes them from a ``TrainResult``.
        ax: a pair of axes (loss, gradient norm); a new two-column figure if None.
        smooth: width of a centred running geometric mean applied, for display, to
            the curves of runs that did not diverge (1: raw).
        headroom: factor above the non-diverged runs' maximum where the axes stop.

    Returns:
        The Figure; each run's lines have gids ``"loss:<label>"`` and
        ``"grad:<label>"``, the loss line's y-values being ``loss / baseline``
        (smoothed if ``smooth > 1`` and the run did not diverge).
    """
    if isinstance(runs, Mapping):
        raise TypeError("`runs` must be a list of dicts (one per run); got a dict.")
    with _style.context():
        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=_style.figsize("two", 0.42))
        else:
            if len(ax) != 2:
                raise ValueError(
                    f"`ax` must be a pair of axes (loss, gradient norm); got {ax!r}."
                )
            axes = list(ax)
            fig = axes[0].get_figure(root=True)
        used: dict = {}
        thresholds = set()
        curves: list = [[], []]
        diverged, crosses = [], []
        for i, run in enumerate(runs):
            outcome = str(run["outcome"])
            color = _style.OUTCOME_COLORS.get(outcome, "0.4")
            style = _LINESTYLES[used.get(outcome, 0) % len(_LINESTYLES)]
            used[outcome] = used.get(outcome, 0) + 1
            label = str(run.get("label", f"run {i}"))
            loss = np.asarray(run["loss"], dtype=np.float64) / float(run["baseline"])
            grad = np.asarray(run["grad_norm"], dtype=np.float64)
            steps = np.arange(loss.size)
            for panel, (y, kind) in enumerate(((loss, "loss"), (grad, "grad"))):
                # A divergence is a steep, short climb: averaging would smear it back.
                shown = y if outcome == "diverged" else _running_mean(y, smooth)
                (line,) = axes[panel].plot(
                    steps,
                    shown,
                    color=color,
                    linestyle=style,
                    linewidth=1.0,
                    label=f"{label}: {outcome}" if panel == 0 else None,
                )
                line.set_gid(f"{kind}:{label}")
                curves[panel].append(shown)
                ok = np.flatnonzero(np.isfinite(y))
                if outcome == "diverged" and ok.size:
                    crosses.append((panel, ok[-1], y[ok[-1]], color))
            diverged.append(outcome == "diverged")
            if run.get("solved_below"):
                thresholds.add(float(run["solved_below"]))
        for panel, a in enumerate(axes):
            a.set_yscale("log")
            a.set_xlabel("training step")
            limits = _limits(curves[panel], diverged, headroom)
            if limits is not None:
                a.set_ylim(*limits)
        for panel, step, value, color in crosses:
            top = axes[panel].get_ylim()[1]
            axes[panel].plot(
                [step],
                [min(value, top)],
                marker="x",
                color=color,
                markersize=5,
                clip_on=False,
                zorder=4,
            )
        axes[0].axhline(
            1.0,
            color="0.3",
            linewidth=0.7,
            linestyle=":",
            label="baseline (chance level)",
        )
        for th in sorted(thresholds):
            axes[0].axhline(
                th,
                color=_style.OUTCOME_COLORS["solved"],
                linewidth=0.7,
                linestyle=":",
                label=f"solved below {th:g} x baseline",
            )
        axes[0].set_ylabel("loss / baseline")
        axes[1].set_ylabel(r"gradient norm $\|\nabla_\theta L\|$")
        handles, labels = axes[0].get_legend_handles_labels()
        if crosses:
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker="x",
                    markersize=5,
                    color=_style.OUTCOME_COLORS["diverged"],
                )
            )
            labels.append("last finite step (top edge: off the scale)")
        if ax is None:
            fig.legend(
                handles,
                labels,
                loc="outside lower center",
                ncols=2,  # three columns of run labels at 7 pt overflow the width
                fontsize=_style.LEGEND_SIZE,
            )
        else:
            axes[0].legend(handles, labels, fontsize=_style.LEGEND_SIZE)
    return fig


def plot_agreement(
    rows,
    *,
    ax=None,
    observed: str = "outcome",
    predicted_key: str | None = None,
    observed_key: str | None = None,
    cmap: str = "Blues",
):
    """Predicted regime against what training showed, as a matrix of counts.

    Args:
        rows: :func:`gradspec.verify` rows (see :func:`agreement_counts`) or a
            (3, C) count array (C columns of the ``observed`` vocabulary).
        ax: axes to draw into; a new one-column figure if None.
        observed: ``"outcome"`` (columns stalled / improving / solved / diverged; the
            expected pairing vanishing-stalled, critical-solved, exploding-diverged is
            outlined) or ``"regime"``
            (the gradient's regime observed in training).
        predicted_key, observed_key: as in :func:`agreement_counts`.
        cmap: a sequential colormap for the counts.

    Returns:
        The Figure. The image (gid ``"agreement"``) holds the counts; each cell is
        annotated with its count; the diagonal (the expected pairing) is outlined and
        the title gives its share.
    """
    if observed not in _OBSERVED:
        raise ValueError(
            f"`observed` must be one of {list(_OBSERVED)}; got {observed!r}."
        )
    columns = _OBSERVED[observed][0]
    if isinstance(rows, np.ndarray) and rows.ndim == 2:
        counts = np.asarray(rows)
        if counts.shape != (3, len(columns)):
            raise ValueError(
                f"`rows` as counts must have shape (3, {len(columns)}) (rows {REGIME_ORDER}, "
                f"columns {columns}); got {counts.shape}."
            )
    else:
        counts = agreement_counts(
            rows,
            observed=observed,
            predicted_key=predicted_key,
            observed_key=observed_key,
        )
    total = int(counts.sum())
    # The expected pairing: vanishing -> stalled, critical -> solved, exploding -> diverged
    # (the regime's own column when observed="regime").
    expected = [columns.index(_EXPECTED.get(r, r) if observed == "outcome" else r)
                for r in REGIME_ORDER]
    diagonal = int(sum(counts[i, j] for i, j in enumerate(expected)))
    colors = _style.OUTCOME_COLORS if observed == "outcome" else _style.REGIME_COLORS
    with _style.context():
        fig, ax = _axes(ax, _style.figsize("one", 0.85))
        im = ax.imshow(
            counts, cmap=cmap, vmin=0, vmax=max(1, counts.max()), aspect="equal"
        )
        im.set_gid("agreement")
        cmap_obj = im.get_cmap()
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                r, g, b, _ = cmap_obj(im.norm(counts[i, j]))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(
                    j,
                    i,
                    str(int(counts[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
            ax.add_patch(
                mpatches.Rectangle(
                    (expected[i] - 0.5, i - 0.5),
                    1,
                    1,
                    fill=False,
                    edgecolor="black",
                    linewidth=1.2,
                )
            )
        ax.set_xticks(range(len(columns)), columns)
        ax.set_yticks(range(3), REGIME_ORDER)
        for tick, name in zip(ax.get_yticklabels(), REGIME_ORDER):
            tick.set_color(_style.REGIME_COLORS[name])
        for tick, name in zip(ax.get_xticklabels(), columns):
            tick.set_color(colors[name])
        ax.tick_params(length=0)
        ax.spines[:].set_visible(False)
        ax.set_xlabel(
            "training outcome"
            if observed == "outcome"
            else "gradient regime observed in training"
        )
        ax.set_ylabel("predicted regime (init)")
        share = f" ({100 * diagonal / total:.0f}%)" if total else ""
        ax.set_title(f"on the diagonal: {diagonal} of {total}{share}")
    return fig
