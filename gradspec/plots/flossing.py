r"""Gradient flossing: Lyapunov exponents through training beside the loss.

A run that learns a long dependency needs :math:`\lambda_1 \approx 0` while it
learns; flossing (:class:`gradspec.training.FlossConfig`) puts it there first. The
figure shows both runs on shared step axes: the loss (relative to chance) on the left,
the exponents recorded every ``lyapunov_every`` steps on the right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import style as _style
from .training import _LINESTYLES, _running_mean


def exponent_runs(result, label: str | None = None) -> list[dict]:
    """A :class:`gradspec.TrainResult` recorded with ``lyapunov_every`` as plain run
    dicts for :func:`plot_flossing`, one per seed.

    Args:
        result: a ``TrainResult`` (anything with its ``loss``, ``accuracy``,
            ``lyapunov``, ``lyapunov_steps``, ``baseline``, ``outcome``, ``seeds``).
        label: the runs' label; default ``"flossed"`` when the config flossed, else
            ``"not flossed"``.

    Returns:
        A list of dicts with ``label``, ``loss`` (steps,), ``accuracy`` (steps,),
        ``baseline``, ``outcome``, ``lyapunov`` (n_records, k) and ``lyapunov_steps``
        (n_records,).

    Examples:
        >>> from gradspec.training import TrainConfig, train
        >>> from gradspec.plots import exponent_runs
        >>> r = train(TrainConfig(hidden=8, T=10, steps=4, lyapunov_every=2),
        ...           progress=False)
        >>> [run["lyapunov"].shape for run in exponent_runs(r)]
        [(2, 1)]
    """
    if label is None:
        flossing = getattr(getattr(result, "config", None), "flossing", None)
        label = "not flossed" if flossing is None else "flossed"
    loss, acc = np.asarray(result.loss), np.asarray(result.accuracy)
    lam = np.asarray(result.lyapunov)
    seeds = getattr(result, "seeds", None)
    if seeds is None:
        loss, acc, lam, outcomes, names = (loss[None], acc[None], lam[None],
                                           [result.outcome], [label])
    else:
        outcomes = list(result.outcome)
        names = [f"{label} (seed {s})" for s in seeds]
    steps = np.asarray(result.lyapunov_steps, dtype=np.int64)
    return [
        {"label": name, "loss": lo, "accuracy": ac, "lyapunov": la,
         "lyapunov_steps": steps, "baseline": float(result.baseline), "outcome": str(o)}
        for name, lo, ac, la, o in zip(names, loss, acc, lam, outcomes)
    ]


def plot_flossing(runs: Sequence[Mapping], *, ax=None, smooth: int = 1,
                  exponents: int = 1):
    r"""Loss / chance level (left, log axis) and the top Lyapunov exponents (right)
    against the training step, for flossed and unflossed runs on one figure.

    Runs sharing a label up to its `` (seed s)`` suffix share a colour (the flossed
    ones, say) and differ in line style. On the right, :math:`\lambda_1` is the solid
    line with dots at the recorded steps; :math:`\lambda_2, \dots` (``exponents`` > 1)
    are thinner; the dotted line is :math:`\lambda = 0`, the edge of stability
    flossing aims at.

    Args:
        runs: one dict per run with ``"loss"`` (steps,), ``"baseline"``, ``"lyapunov"``
            (n_records, k), ``"lyapunov_steps"`` (n_records,) and optionally ``"label"``
            and ``"color"``; :func:`exponent_runs` makes them from a ``TrainResult``.
        ax: a pair of axes (loss, exponents); a new two-column figure if None.
        smooth: width of a centred running geometric mean of the loss, for display.
        exponents: how many of the recorded exponents to draw (>= 1).

    Returns:
        The Figure; each run's loss line has gid ``"loss:<label>"``, its exponent
        lines ``"lambda<i>:<label>"`` (i = 1, 2, ...; y: the recorded values).

    Raises:
        TypeError: ``runs`` is a single dict.
        ValueError: ``ax`` not a pair, ``exponents < 1``, or ``lyapunov`` not
            (n_records, k) matching ``lyapunov_steps``.

    Examples:
        >>> import numpy as np, gradspec.plots as gp
        >>> run = {"label": "flossed", "loss": np.full(10, 0.7), "baseline": 0.69,
        ...        "lyapunov": np.array([[-0.01], [-0.05]]), "lyapunov_steps": [0, 5]}
        >>> fig = gp.plot_flossing([run])
        >>> [line.get_gid() for line in fig.axes[1].lines][:1]
        ['lambda1:flossed']
    """
    if isinstance(runs, Mapping):
        raise TypeError("`runs` must be a list of dicts (one per run); got a dict.")
    if isinstance(exponents, bool) or not isinstance(exponents, int) or exponents < 1:
        raise ValueError(f"`exponents` must be an int >= 1; got {exponents!r}.")
    with _style.context():
        if ax is None:
            fig, axes = plt.subplots(1, 2, figsize=_style.figsize("two", 0.38))
        else:
            if len(ax) != 2:
                raise ValueError(
                    f"`ax` must be a pair of axes (loss, exponents); got {ax!r}.")
            axes = list(ax)
            fig = axes[0].get_figure(root=True)
        colors: dict = {}
        used: dict = {}
        for i, run in enumerate(runs):
            label = str(run.get("label", f"run {i}"))
            group = label.split(" (seed ")[0]
            color = run.get("color") or colors.setdefault(
                group, _style.CYCLE[len(colors) % len(_style.CYCLE)])
            style = _LINESTYLES[used.get(group, 0) % len(_LINESTYLES)]
            used[group] = used.get(group, 0) + 1
            loss = np.asarray(run["loss"], dtype=np.float64) / float(run["baseline"])
            (line,) = axes[0].plot(np.arange(loss.size), _running_mean(loss, smooth),
                                   color=color, linestyle=style, linewidth=1.0,
                                   label=label)
            line.set_gid(f"loss:{label}")
            lam = np.asarray(run["lyapunov"], dtype=np.float64)
            steps = np.asarray(run["lyapunov_steps"], dtype=np.float64)
            if lam.ndim != 2 or lam.shape[0] != steps.size:
                raise ValueError(
                    f"`runs[{i}]['lyapunov']` must be (n_records, k) with n_records = "
                    f"len(lyapunov_steps) = {steps.size}; got shape {lam.shape}.")
            for j in range(min(exponents, lam.shape[1])):
                (line,) = axes[1].plot(
                    steps, lam[:, j], color=color, linestyle=style,
                    linewidth=1.0 if j == 0 else 0.6, alpha=1.0 if j == 0 else 0.6,
                    marker="o" if j == 0 else None, markersize=2.0)
                line.set_gid(f"lambda{j + 1}:{label}")
        axes[0].axhline(1.0, color="0.3", linewidth=0.7, linestyle=":",
                        label="chance level")
        axes[0].set_yscale("log")
        axes[0].set_ylabel("loss / chance level")
        axes[1].axhline(0.0, color="0.3", linewidth=0.7, linestyle=":")
        symbol = r"\lambda_1"
        if exponents > 1:
            symbol += rf" \dots \lambda_{{{exponents}}}"
        axes[1].set_ylabel(rf"Lyapunov exponents ${symbol}$ (per step)")
        for a in axes:
            a.set_xlabel("training step")
        axes[0].legend(fontsize=_style.LEGEND_SIZE, loc="best")
    return fig
