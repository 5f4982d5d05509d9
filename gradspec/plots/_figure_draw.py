"""The figure set's drawings: one ``draw_<figure>(data)`` per figure of
:data:`gradspec.plots.figures.FIGURES`, from the arrays its compute function returned,
built on the figure families of :mod:`gradspec.plots` in the house style."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patches as mpatches
from matplotlib.lines import Line2D

from . import style
from .gradients import plot_gradient_profiles, plot_jacobian_heatmap
from .lyapunov import plot_lyapunov_spectra
from .phase import plot_phase_diagram
from .training import plot_agreement, plot_training_curves
from .weights import plot_eigenvalues, plot_singular_values


def _panel_title(ax, letter: str, title: str = "") -> None:
    # One left-aligned title holding the bold panel letter: constrained layout reserves
    # its room, and nothing else sits there to overlap.
    ax.set_title(rf"$\mathbf{{{letter}}}$   {title}", loc="left")


def draw_eigenvalues(data: dict):
    gains = data["gains"]
    with style.context():
        fig, axes = plt.subplots(1, len(gains), figsize=style.figsize("two", 0.5))
        axes = np.atleast_1d(axes)
        for i, (ax, g, eig) in enumerate(zip(axes, gains, data["eigenvalues"])):
            plot_eigenvalues(eig, gain=float(g), ax=ax)
            ax.get_legend().remove()
            rho = float(np.max(np.abs(eig)))
            verdict = "inside" if g < 1 else "outside"
            _panel_title(
                ax,
                "abcdefgh"[i],
                rf"$g = {g:g}$: disk {verdict} the unit circle, $\rho = {rho:.2f}$",
            )
        # One scale for both panels, so the disks compare at a glance.
        lim = max(max(abs(a.get_xlim()[0]), a.get_xlim()[1]) for a in axes)
        for ax in axes:
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        handles = [
            mpatches.Patch(
                facecolor=style.OKABE_ITO["sky_blue"],
                alpha=0.35,
                edgecolor=style.OKABE_ITO["blue"],
                linestyle="--",
                label=r"circular law: disk of radius $g$",
            ),
            Line2D([], [], color="black", linewidth=0.8, label="unit circle"),
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                markersize=3,
                color=style.CYCLE[0],
                label=rf"eigenvalues of $W_{{hh}} \sim "
                rf"\mathcal{{N}}(0, g^2/N)$, $N = {data['eigenvalues'].shape[1]}$",
            ),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=3)
    return fig


def draw_singular_values(data: dict):
    return plot_singular_values(data["singular_values"], gain=float(data["gain"]))


def draw_gradient_vs_lag(data: dict):
    profiles = [
        {
            "label": str(label),
            "log_norms": prof,
            "lambda_max": float(lam),
            "lambda_se": float(se),
        }
        for label, prof, lam, se in zip(
            data["labels"], data["log_norms"], data["lambda_max"], data["lambda_se"]
        )
    ]
    with style.context():
        _, ax = plt.subplots(figsize=style.figsize("one", 0.95))
    return plot_gradient_profiles(profiles, ax=ax)


def draw_jacobian_heatmap(data: dict):
    with style.context():
        fig, axes = plt.subplots(
            1, len(data["gains"]), figsize=style.figsize("two", 0.42)
        )
        axes = np.atleast_1d(axes)
        for i, (ax, g, M) in enumerate(zip(axes, data["gains"], data["log_norms"])):
            plot_jacobian_heatmap(M, ax=ax)
            _panel_title(ax, "abcdefgh"[i], rf"tanh RNN, $g = {g:g}$")
    return fig


def draw_lyapunov_spectrum(data: dict):
    spectra = [
        {"label": f"$g = {g:g}$", "exponents": e, "lambda_max": float(p)}
        for g, e, p in zip(data["gains"], data["exponents"], data["lambda_max"])
    ]
    with style.context():
        _, ax = plt.subplots(figsize=style.figsize("one", 0.95))
    fig = plot_lyapunov_spectra(spectra, ax=ax, inset=4)
    draws = data["exponents"].shape[1]
    ax.set_xlabel(rf"index $i$ (mean over {draws} networks per gain)")
    return fig


def draw_phase_diagram(data: dict):
    return plot_phase_diagram(
        data["sigma_w"],
        data["sigma_b"],
        data["lambda_max"],
        critical={
            "sigma_w": data["critical_sigma_w"],
            "sigma_b": data["critical_sigma_b"],
        },
        measured={
            "sigma_w": data["measured_sigma_w"],
            "sigma_b": data["measured_sigma_b"],
            "lambda_max": data["measured_lambda_max"],
        },
    )


def draw_training_curves(data: dict):
    runs = [
        {
            "label": str(l),
            "loss": loss,
            "grad_norm": g,
            "outcome": str(o),
            "baseline": float(b),
            "solved_below": None if np.isnan(s) else float(s),
        }
        for l, loss, g, o, b, s in zip(
            data["labels"],
            data["loss"],
            data["grad_norm"],
            data["outcomes"],
            data["baseline"],
            data["solved_below"],
        )
    ]
    # Each step sees a fresh batch: a running mean over 1/40 of the run shows the trend.
    return plot_training_curves(runs, smooth=max(1, data["loss"].shape[1] // 40))


def draw_agreement(data: dict):
    rows = [
        {"predicted_regime": str(p), "observed_regime": str(r), "outcome": str(o)}
        for p, r, o in zip(
            data["predicted_regime"], data["observed_regime"], data["outcome"]
        )
    ]
    with style.context():
        fig, axes = plt.subplots(1, 2, figsize=style.figsize("two", 0.42))
        plot_agreement(rows, observed="regime", ax=axes[0])
        plot_agreement(rows, observed="outcome", ax=axes[1])
        for letter, ax in zip("ab", axes):
            title = ax.get_title()
            ax.set_title("")
            _panel_title(ax, letter, title)
        agree = np.asarray(data["agree"], bool)
        fig.suptitle(
            f"gradspec.verify: prediction and training agree on {int(agree.sum())} "
            f"of {agree.size} configurations"
        )
    return fig
