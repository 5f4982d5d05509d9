r"""The paper's figure set, regenerated from scratch: ``gradspec figures``.

Every figure is two steps, both public:

1. ``compute(name, settings)`` runs gradspec on the fly (spectra, profiles, Lyapunov
   exponents, mean-field theory, training) and returns plain NumPy data;
2. ``draw(name, data)`` turns that data into a Figure with :mod:`gradspec.plots`.

:func:`generate` does both for every figure and writes ``DIR/<name>.{png,pdf,svg}``.
The data of each figure is cached in ``DIR/cache/<name>.npz`` together with the
settings that produced it (and gradspec's version): a rerun with the same settings
only redraws, and changed settings recompute that figure alone. ``--force``
recomputes everything. ``--quick`` uses small sizes (N, T, grids, training steps), for a
full set in under two minutes on two CPU cores (about 75 s of CPU time).

The training-curve figure needs :mod:`gradspec.train`, the agreement figure
:mod:`gradspec.verify`; without them those figures are skipped with a note.

Examples:
    From the shell::

        gradspec figures --out figures            # the paper's sizes
        gradspec figures --quick --out /tmp/figs  # small sizes, < 2 minutes
        gradspec figures --only phase_diagram gradient_vs_lag

    From Python::

        >>> from gradspec import figures
        >>> cfg = figures.settings("singular_values", quick=True)
        >>> data = figures.compute("singular_values", cfg)
        >>> sorted(data)
        ['gain', 'singular_values']
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FIGURES",
    "add_parser",
    "compute",
    "draw",
    "generate",
    "lyapunov_points",
    "main",
    "run",
    "settings",
]

#: Bumped when a compute function changes what it returns (invalidates caches).
DATA_VERSION = 2


@dataclasses.dataclass(frozen=True)
class _Figure:
    compute: Callable[[dict], dict]
    draw: Callable[[dict], Any]
    full: dict
    quick: dict
    requires: str | None = None  # a gradspec module the figure needs
    description: str = ""


# -- settings --------------------------------------------------------------------------

_PROFILE_CONFIGS = [
    # label, cell, nonlinearity, init, gain
    ["tanh, $g = 0.8$", "rnn", "tanh", "gaussian", 0.8],
    ["sigmoid, $g = 4$", "rnn", "sigmoid", "gaussian", 4.0],
    ["tanh, critical $g^*$", "rnn", "tanh", "critical", 1.0],
    ["tanh, $g = 2$", "rnn", "tanh", "gaussian", 2.0],
    ["LSTM, PyTorch init", "lstm", "tanh", "default", 1.0],
]

_TRAIN_CONFIGS = [
    # label, TrainConfig fields
    ["tanh, orthogonal(1), Adam", {"init": "orthogonal", "gain": 1.0}],
    [
        "sigmoid, gaussian(0.5), Adam",
        {"nonlinearity": "sigmoid", "init": "gaussian", "gain": 0.5},
    ],
    [
        "tanh, gaussian(3), SGD",
        {"init": "gaussian", "gain": 3.0, "optimizer": "sgd", "learning_rate": 1.0},
    ],
    [
        "tanh, gaussian(3), SGD + clip 1",
        {
            "init": "gaussian",
            "gain": 3.0,
            "optimizer": "sgd",
            "learning_rate": 1.0,
            "clip_norm": 1.0,
        },
    ],
    ["LSTM, PyTorch init, Adam", {"cell": "lstm", "init": "default"}],
]


_VERIFY_CONFIGS = [
    {"init": "gaussian", "gain": 0.5},
    {"init": "gaussian", "gain": 1.0},
    {"init": "gaussian", "gain": 3.0},
    {"init": "orthogonal", "gain": 1.0},
    {"init": "critical"},
    {"init": "gaussian", "gain": 3.0, "optimizer": "sgd", "learning_rate": 1.0},
]


def settings(name: str, quick: bool = False) -> dict:
    """The JSON-able settings of figure ``name`` (full or quick sizes)."""
    fig = _get(name)
    return json.loads(json.dumps(fig.quick if quick else fig.full))


def _get(name: str) -> _Figure:
    if name not in FIGURES:
        raise ValueError(f"`name` must be one of {list(FIGURES)}; got {name!r}.")
    return FIGURES[name]


# -- compute: gradspec on the fly ------------------------------------------------------


def _key(seed: int):
    import jax.random as jr

    return jr.key(seed)


def _compute_eigenvalues(cfg: dict) -> dict:
    import jax.random as jr

    import gradspec

    keys = jr.split(_key(cfg["seed"]), len(cfg["gains"]))
    eig = [
        np.asarray(
            gradspec.weight_spectrum(
                gradspec.init.gaussian(g)(k, (cfg["N"], cfg["N"]))
            ).eigenvalues
        )
        for g, k in zip(cfg["gains"], keys)
    ]
    return {"eigenvalues": np.stack(eig), "gains": np.asarray(cfg["gains"], np.float64)}


def _compute_singular_values(cfg: dict) -> dict:
    import gradspec

    W = gradspec.init.gaussian(cfg["gain"])(_key(cfg["seed"]), (cfg["N"], cfg["N"]))
    sv = np.asarray(gradspec.weight_spectrum(W).singular_values)
    return {"singular_values": sv, "gain": np.asarray(cfg["gain"], np.float64)}


def _make_cell(cell: str, nonlinearity: str):
    from gradspec import cells

    return cells.RNN(nonlinearity) if cell == "rnn" else getattr(cells, cell.upper())()


def _recurrent_init(init: str, gain: float, nonlinearity: str, sigma_x: float):
    from gradspec import init as gs_init

    if init == "default":
        return None
    if init == "critical":
        return gs_init.critical(nonlinearity, sigma_x=sigma_x)
    return getattr(gs_init, init)(gain)


def _driven_rnn(cfg: dict, cell_name: str, nonlinearity: str, init: str, gain: float):
    """Cell, params, the measured inputs (T, 1), the state after ``cfg["warmup"]``
    steps and all inputs (warmup + T, 1); sizes and seed from ``cfg``."""
    import jax.random as jr

    import gradspec

    cell = _make_cell(cell_name, nonlinearity)
    k_p, k_x = jr.split(_key(cfg["seed"]))
    scale, warmup = cfg["input_scale"], cfg["warmup"]
    # W_xh ~ N(0, 1/D) with D = 1: each unit's drive has std `scale`, the sigma_x of
    # mean-field theory.
    params = cell.init(
        k_p,
        cfg["N"],
        1,
        recurrent_init=_recurrent_init(init, gain, nonlinearity, scale),
    )
    xs = scale * jr.normal(k_x, (warmup + cfg["T"], 1))
    h0 = gradspec.trajectory(cell, params, xs[:warmup])[-1]
    return cell, params, xs[warmup:], h0, xs


def _compute_gradient_vs_lag(cfg: dict) -> dict:
    import gradspec

    profiles, predicted, regimes, labels = [], [], [], []
    for label, cell_name, nl, init, gain in cfg["configs"]:
        cell, params, xs, h0, all_xs = _driven_rnn(cfg, cell_name, nl, init, gain)
        profiles.append(np.asarray(gradspec.gradient_profile(cell, params, xs, h0)))
        pred = gradspec.predict(cell, params, cfg["T"], inputs=all_xs)
        predicted.append(pred.lyapunov)
        regimes.append(pred.regime)
        labels.append(label)
    return {
        "log_norms": np.stack(profiles),
        "lambda_max": np.asarray(predicted),
        "regimes": np.asarray(regimes),
        "labels": np.asarray(labels),
    }


def _compute_jacobian_heatmap(cfg: dict) -> dict:
    import gradspec
    from gradspec import plots

    mats = []
    for gain in cfg["gains"]:
        cell, params, xs, h0, _ = _driven_rnn(cfg, "rnn", "tanh", "gaussian", gain)
        J = gradspec.step_jacobians(cell, params, xs, h0)
        mats.append(np.asarray(plots.log_jacobian_norms(J)))
    return {"log_norms": np.stack(mats), "gains": np.asarray(cfg["gains"], np.float64)}


def _compute_lyapunov_spectrum(cfg: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    import gradspec
    from gradspec.sweep import random_rnn

    N, T = cfg["N"], cfg["T"]
    gains = jnp.asarray(cfg["gains"])

    def one(gain, key):
        # One autonomous network from a random state: W_hh ~ N(0, g^2/N), no bias,
        # h0 ~ N(0, I), zero input (a sweep point's network, random_rnn).
        cell, params, xs, h0 = random_rnn(gain, 0.0, 0.0, key, N=N, T=T)
        return gradspec.lyapunov_spectrum(cell, params, xs, h0, warmup=cfg["warmup"])

    # Mean field averages over W: so does the figure, over `draws` networks per gain,
    # all (gain, draw) pairs in one nested jax.vmap. A single finite-N draw near the
    # transition may sit on a stable fixed point or a limit cycle instead of the
    # chaotic attractor.
    keys = jr.split(_key(cfg["seed"]), cfg["draws"])
    exps = np.asarray(
        jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(gains, keys)
    )  # (G, draws, N)
    predicted = jax.vmap(lambda g: gradspec.theory.mean_field("tanh", g).lambda_max)
    return {
        "exponents": exps.mean(1),  # (G, N) mean over draws
        "top_exponents": exps[:, :, 0],  # (G, draws)
        "lambda_max": np.asarray(predicted(gains), np.float64),
        "gains": np.asarray(cfg["gains"], np.float64),
    }


def lyapunov_points(
    nonlinearity: str, sigma_w, sigma_b, *, N: int, T: int, warmup: int, key
) -> np.ndarray:
    r"""Top Lyapunov exponent of one random autonomous vanilla RNN per point.

    Point i is the autonomous network of a sweep point
    (:func:`gradspec.sweep.random_rnn` with ``sigma_x = 0``):
    :math:`W_{hh} \sim \mathcal N(0, \sigma_{w,i}^2/N)`, bias
    :math:`b \sim \mathcal N(0, \sigma_{b,i}^2)`, zero input and a random
    :math:`h_0 \sim \mathcal N(0, I)`; its exponent is
    :func:`gradspec.lyapunov_spectrum` with ``k=1`` after ``warmup`` steps, all points
    in one ``jax.vmap``.

    Args:
        nonlinearity: the RNN's f.
        sigma_w, sigma_b: shape (P,) each, the points.
        N, T, warmup: hidden units, steps, steps discarded.
        key: PRNG key (point i uses ``fold_in(key, i)``).

    Returns:
        Shape (P,), natural log per step.
    """
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    import gradspec
    from gradspec.sweep import random_rnn

    sigma_w, sigma_b = jnp.asarray(sigma_w), jnp.asarray(sigma_b)
    if sigma_w.shape != sigma_b.shape or sigma_w.ndim != 1:
        raise ValueError(
            f"`sigma_w` and `sigma_b` must be (P,) each; got {sigma_w.shape} "
            f"and {sigma_b.shape}."
        )

    def one(i, sw, sb):
        cell, params, xs, h0 = random_rnn(
            sw, sb, 0.0, jr.fold_in(key, i), N=N, T=T, nonlinearity=nonlinearity
        )
        return gradspec.lyapunov_spectrum(cell, params, xs, h0, k=1, warmup=warmup)[0]

    index = jnp.arange(sigma_w.shape[0])
    return np.asarray(jax.vmap(one)(index, sigma_w, sigma_b))


def _compute_phase_diagram(cfg: dict) -> dict:
    import jax.numpy as jnp

    from gradspec import plots

    nl = cfg["nonlinearity"]
    sw = np.linspace(*cfg["sigma_w"][:2], cfg["sigma_w"][2])
    sb = np.linspace(*cfg["sigma_b"][:2], cfg["sigma_b"][2])
    lam = np.asarray(
        plots.mean_field_grid(nl, jnp.asarray(sw), jnp.asarray(sb)).lambda_max
    )
    line_b = np.linspace(sb.min(), sb.max(), 4 * sb.size)
    line_w = np.asarray(plots.critical_line(nl, jnp.asarray(line_b)))
    m = cfg["measured"]
    mw, mb = np.meshgrid(
        np.linspace(*m["sigma_w"]), np.linspace(*m["sigma_b"]), indexing="ij"
    )
    mw, mb = mw.ravel(), mb.ravel()
    ml = lyapunov_points(
        nl, mw, mb, N=m["N"], T=m["T"], warmup=m["warmup"], key=_key(cfg["seed"])
    )
    return {
        "sigma_w": sw,
        "sigma_b": sb,
        "lambda_max": lam,
        "critical_sigma_w": line_w,
        "critical_sigma_b": line_b,
        "measured_sigma_w": mw,
        "measured_sigma_b": mb,
        "measured_lambda_max": ml,
    }


def _compute_training_curves(cfg: dict) -> dict:
    from gradspec import plots

    # By module path: ``gradspec.train`` is also the package's re-exported function,
    # which shadows the module as an attribute.
    gs_train = importlib.import_module("gradspec.train")

    runs = []
    for label, fields in cfg["configs"]:
        config = gs_train.TrainConfig(**{**cfg["common"], **fields})
        result = gs_train.train(config, progress=False)
        runs += plots.runs_from_train(result, label)
    return {
        "labels": np.asarray([r["label"] for r in runs]),
        "loss": np.stack([np.asarray(r["loss"], np.float64) for r in runs]),
        "grad_norm": np.stack([np.asarray(r["grad_norm"], np.float64) for r in runs]),
        "outcomes": np.asarray([r["outcome"] for r in runs]),
        "baseline": np.asarray([r["baseline"] for r in runs], np.float64),
        "solved_below": np.asarray(
            [r["solved_below"] or np.nan for r in runs], np.float64
        ),
    }


def _compute_agreement(cfg: dict) -> dict:
    # By module path, as above (``gradspec.verify`` is also a function).
    gs_train = importlib.import_module("gradspec.train")
    gs_verify = importlib.import_module("gradspec.verify")

    grid = [
        gs_train.TrainConfig(**{**cfg["common"], **fields}) for fields in cfg["configs"]
    ]
    rows = gs_verify.verify(grid)
    column = lambda key, dtype=None: np.asarray([r[key] for r in rows], dtype)
    return {
        "labels": column("config"),
        "predicted_regime": column("predicted_regime"),
        "predicted_lambda": column("predicted_lambda", np.float64),
        "observed_regime": column("observed_regime"),
        "observed_rate": column("observed_rate", np.float64),
        "outcome": column("outcome"),
        "agree": column("agree", bool),
    }


# -- draw: data -> Figure --------------------------------------------------------------


def _panel_title(ax, letter: str, title: str = "") -> None:
    # One left-aligned title holding the bold panel letter: constrained layout reserves
    # its room, and nothing else sits there to overlap.
    ax.set_title(rf"$\mathbf{{{letter}}}$   {title}", loc="left")


def _draw_eigenvalues(data: dict):
    import matplotlib.pyplot as plt
    from matplotlib import patches as mpatches
    from matplotlib.lines import Line2D

    from gradspec import plots, style

    gains = data["gains"]
    with style.context():
        fig, axes = plt.subplots(1, len(gains), figsize=style.figsize("two", 0.5))
        axes = np.atleast_1d(axes)
        for i, (ax, g, eig) in enumerate(zip(axes, gains, data["eigenvalues"])):
            plots.plot_eigenvalues(eig, gain=float(g), ax=ax)
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


def _draw_singular_values(data: dict):
    from gradspec import plots

    return plots.plot_singular_values(data["singular_values"], gain=float(data["gain"]))


def _rate_label(lam: float) -> str:
    return f"$\\hat\\lambda = {lam:+.3f}$"


def _draw_gradient_vs_lag(data: dict):
    import matplotlib.pyplot as plt

    from gradspec import plots, style

    profiles = [
        {
            "label": f"{label}  ({_rate_label(float(lam))})",
            "log_norms": prof,
            "lambda_max": float(lam),
        }
        for label, prof, lam in zip(
            data["labels"], data["log_norms"], data["lambda_max"]
        )
    ]
    with style.context():
        _, ax = plt.subplots(figsize=style.figsize("one", 0.95))
    return plots.plot_gradient_profiles(profiles, ax=ax)


def _draw_jacobian_heatmap(data: dict):
    import matplotlib.pyplot as plt

    from gradspec import plots, style

    with style.context():
        fig, axes = plt.subplots(
            1, len(data["gains"]), figsize=style.figsize("two", 0.42)
        )
        axes = np.atleast_1d(axes)
        for i, (ax, g, M) in enumerate(zip(axes, data["gains"], data["log_norms"])):
            plots.plot_jacobian_heatmap(M, ax=ax)
            _panel_title(ax, "abcdefgh"[i], rf"tanh RNN, $g = {g:g}$")
    return fig


def _draw_lyapunov_spectrum(data: dict):
    import matplotlib.pyplot as plt

    from gradspec import plots, style

    spectra = [
        {"label": f"$g = {g:g}$", "exponents": e, "lambda_max": float(p)}
        for g, e, p in zip(data["gains"], data["exponents"], data["lambda_max"])
    ]
    with style.context():
        _, ax = plt.subplots(figsize=style.figsize("one", 0.95))
    fig = plots.plot_lyapunov_spectra(spectra, ax=ax, inset=4)
    draws = data["top_exponents"].shape[1]
    ax.set_xlabel(rf"index $i$ (mean over {draws} networks per gain)")
    return fig


def _draw_phase_diagram(data: dict):
    from gradspec import plots

    return plots.plot_phase_diagram(
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


def _draw_training_curves(data: dict):
    from gradspec import plots

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
    return plots.plot_training_curves(runs, smooth=max(1, data["loss"].shape[1] // 40))


def _draw_agreement(data: dict):
    import matplotlib.pyplot as plt

    from gradspec import plots, style

    rows = [
        {"predicted_regime": str(p), "observed_regime": str(r), "outcome": str(o)}
        for p, r, o in zip(
            data["predicted_regime"], data["observed_regime"], data["outcome"]
        )
    ]
    with style.context():
        fig, axes = plt.subplots(1, 2, figsize=style.figsize("two", 0.42))
        plots.plot_agreement(rows, observed="regime", ax=axes[0])
        plots.plot_agreement(rows, observed="outcome", ax=axes[1])
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


FIGURES: dict[str, _Figure] = {
    "eigenvalues": _Figure(
        _compute_eigenvalues,
        _draw_eigenvalues,
        full={"N": 500, "gains": [0.8, 1.5], "seed": 0},
        quick={"N": 200, "gains": [0.8, 1.5], "seed": 0},
        description="eigenvalues of W_hh, circular-law disk and unit circle",
    ),
    "singular_values": _Figure(
        _compute_singular_values,
        _draw_singular_values,
        full={"N": 1000, "gain": 1.0, "seed": 0},
        quick={"N": 300, "gain": 1.0, "seed": 0},
        description="singular values of W_hh vs the quarter-circle law",
    ),
    "gradient_vs_lag": _Figure(
        _compute_gradient_vs_lag,
        _draw_gradient_vs_lag,
        full={
            "N": 256,
            "T": 150,
            "warmup": 100,
            "input_scale": 0.1,
            "seed": 0,
            "configs": _PROFILE_CONFIGS,
        },
        quick={
            "N": 64,
            "T": 100,
            "warmup": 50,
            "input_scale": 0.1,
            "seed": 0,
            "configs": _PROFILE_CONFIGS,
        },
        description="gradient norm vs lag with the predicted slopes",
    ),
    "jacobian_heatmap": _Figure(
        _compute_jacobian_heatmap,
        _draw_jacobian_heatmap,
        full={
            "N": 64,
            "T": 80,
            "warmup": 100,
            "input_scale": 0.1,
            "gains": [0.8, 2.0],
            "seed": 0,
        },
        quick={
            "N": 32,
            "T": 40,
            "warmup": 50,
            "input_scale": 0.1,
            "gains": [0.8, 2.0],
            "seed": 0,
        },
        description="log ||dh_t/dh_s|| over (t, s)",
    ),
    "lyapunov_spectrum": _Figure(
        _compute_lyapunov_spectrum,
        _draw_lyapunov_spectrum,
        # The cost grows like draws * N^3 * T (a QR of the whole frame per step).
        full={
            "N": 96,
            "T": 1000,
            "warmup": 300,
            "draws": 4,
            "gains": [0.5, 1.0, 1.5, 2.0, 3.0],
            "seed": 0,
        },
        quick={
            "N": 32,
            "T": 500,
            "warmup": 150,
            "draws": 4,
            "gains": [0.5, 1.0, 1.5, 2.0, 3.0],
            "seed": 0,
        },
        description="Lyapunov spectra of tanh RNNs for several gains",
    ),
    "phase_diagram": _Figure(
        _compute_phase_diagram,
        _draw_phase_diagram,
        full={
            "nonlinearity": "tanh",
            "sigma_w": [0.05, 3.0, 120],
            "sigma_b": [0.0, 1.0, 80],
            "seed": 0,
            "measured": {
                "sigma_w": [0.25, 2.75, 11],
                "sigma_b": [0.0, 1.0, 6],
                "N": 256,
                "T": 1500,
                "warmup": 500,
            },
        },
        quick={
            "nonlinearity": "tanh",
            "sigma_w": [0.05, 3.0, 60],
            "sigma_b": [0.0, 1.0, 40],
            "seed": 0,
            "measured": {
                "sigma_w": [0.25, 2.75, 6],
                "sigma_b": [0.0, 1.0, 3],
                "N": 64,
                "T": 400,
                "warmup": 100,
            },
        },
        description="mean-field lambda_max over (sigma_w, sigma_b), chi = 1, measured",
    ),
    "training_curves": _Figure(
        _compute_training_curves,
        _draw_training_curves,
        full={
            "common": {
                "task": "adding",
                "T": 30,
                "hidden": 64,
                "batch": 64,
                "steps": 2000,
                "learning_rate": 1e-2,
                "seed": 0,
            },
            "configs": _TRAIN_CONFIGS,
        },
        quick={
            "common": {
                "task": "adding",
                "T": 10,
                "hidden": 32,
                "batch": 32,
                "steps": 300,
                "learning_rate": 1e-2,
                "seed": 0,
            },
            "configs": _TRAIN_CONFIGS,
        },
        requires="gradspec.train",
        description="training curves coloured by outcome",
    ),
    "agreement": _Figure(
        _compute_agreement,
        _draw_agreement,
        full={
            "common": {
                "task": "adding",
                "T": 50,
                "hidden": 64,
                "batch": 64,
                "steps": 2000,
                "learning_rate": 1e-2,
                "seed": 0,
            },
            "configs": _VERIFY_CONFIGS
            + [
                {"cell": "lstm", "init": "default"},
                {"nonlinearity": "sigmoid", "init": "gaussian", "gain": 1.0},
            ],
        },
        # hidden >= 32: below that predict does not trust W_hh to look i.i.d. and falls
        # back to sampled exponents, whose spread at N = 16 reads as "critical".
        quick={
            "common": {
                "task": "adding",
                "T": 20,
                "hidden": 32,
                "batch": 32,
                "steps": 300,
                "learning_rate": 1e-2,
                "seed": 0,
            },
            "configs": _VERIFY_CONFIGS,
        },
        requires="gradspec.verify",
        description="predicted regime vs observed training outcome",
    ),
}


def compute(name: str, settings: Mapping) -> dict:
    """Compute figure ``name``'s data from ``settings`` (see :func:`settings`).

    Returns:
        A dict of NumPy arrays (what the cache stores and :func:`draw` takes).
    """
    return _get(name).compute(json.loads(json.dumps(settings)))


def draw(name: str, data: Mapping):
    """Draw figure ``name`` from its data; returns the Figure."""
    return _get(name).draw(dict(data))


# -- cache and driver ------------------------------------------------------------------


def _cache_key(name: str, cfg: dict) -> str:
    import jax

    import gradspec

    return json.dumps(
        {
            "figure": name,
            "settings": cfg,
            "gradspec": gradspec.__version__,
            "data_version": DATA_VERSION,
            "x64": bool(jax.config.jax_enable_x64),
        },
        sort_keys=True,
    )


def _load_cache(path: Path, key: str) -> dict | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["__key__"]) != key:
                return None
            return {k: npz[k] for k in npz.files if k != "__key__"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a truncated or foreign file: recompute


def _save_cache(path: Path, key: str, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(
        tmp, __key__=np.asarray(key), **{k: np.asarray(v) for k, v in data.items()}
    )
    tmp.replace(path)  # atomic: an interrupted run never leaves a half-written cache


def _available(module: str | None) -> bool:
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def generate(
    out: str | Path = "figures",
    *,
    quick: bool = False,
    only: Sequence[str] | None = None,
    force: bool = False,
    formats: Sequence[str] = ("png", "pdf", "svg"),
    dpi: int = 300,
    log: Callable[[str], None] = print,
) -> dict:
    """Compute (or load from the cache) and save every figure.

    Args:
        out: output directory; the cache goes to ``out/cache``.
        quick: small sizes.
        only: figure names to make (default all of :data:`FIGURES`).
        force: recompute even when the cache matches.
        formats, dpi: as in :func:`gradspec.style.save`.
        log: where progress lines go.

    Returns:
        ``{name: [written paths]}``; a skipped figure maps to ``None``.
    """
    import matplotlib.pyplot as plt

    from gradspec import style

    names = list(FIGURES) if not only else list(only)
    for name in names:
        _get(name)
    out = Path(out)
    written = {}
    for name in names:
        fig_spec = FIGURES[name]
        if not _available(fig_spec.requires):
            log(f"[skip] {name}: needs {fig_spec.requires}, which is not installed")
            written[name] = None
            continue
        cfg = settings(name, quick)
        key = _cache_key(name, cfg)
        cache = out / "cache" / f"{name}.npz"
        start = time.perf_counter()
        data = None if force else _load_cache(cache, key)
        source = "cache"
        if data is None:
            source = "computed"
            try:
                data = compute(name, cfg)
            except Exception as err:
                # Only figures built on a colleague module (train, verify) are skipped;
                # a failure of gradspec's core is a bug and propagates.
                if fig_spec.requires:
                    kind = type(err).__name__
                    log(f"[skip] {name}: {fig_spec.requires} failed ({kind}: {err})")
                    written[name] = None
                    continue
                raise
            _save_cache(cache, key, data)
        fig = draw(name, data)
        paths = style.save(fig, out / name, formats=formats, dpi=dpi)
        plt.close(fig)
        log(
            f"[{source}] {name}: {time.perf_counter() - start:.1f}s -> "
            + ", ".join(p.name for p in paths)
        )
        written[name] = paths
    return written


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "--out",
        default="figures",
        metavar="DIR",
        help="output directory (cache in DIR/cache; default: figures)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: the whole set in under 2 minutes on 2 CPU cores",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=list(FIGURES),
        metavar="NAME",
        help=f"make only these figures: {', '.join(FIGURES)}",
    )
    p.add_argument("--force", action="store_true", help="recompute, ignoring the cache")
    p.add_argument(
        "--formats",
        nargs="+",
        default=["png", "pdf", "svg"],
        choices=["png", "pdf", "svg"],
        help="output formats",
    )
    p.add_argument("--dpi", type=int, default=300, help="PNG resolution (default 300)")
    p.set_defaults(run=run)
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``figures`` subcommand to ``gradspec``'s subparsers
    (``set_defaults(run=run)``: ``args.run(args)`` runs it, returns the exit code)."""
    p = subparsers.add_parser(
        "figures",
        help="regenerate the paper's figure set (cached per figure)",
        description=__doc__.splitlines()[0],
    )
    return _configure(p)


def run(args: argparse.Namespace) -> int:
    """Run ``gradspec figures`` from parsed arguments; returns the exit code."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo"):
        matplotlib.use("Agg")  # a command writes files; never open windows
    start = time.perf_counter()
    written = generate(
        args.out,
        quick=args.quick,
        only=args.only,
        force=args.force,
        formats=tuple(args.formats),
        dpi=args.dpi,
    )
    made = sum(v is not None for v in written.values())
    print(
        f"{made} of {len(written)} figures in {args.out} "
        f"({time.perf_counter() - start:.1f}s)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``gradspec figures`` on its own: ``main(["--quick", "--out", "/tmp/figs"])``."""
    parser = _configure(
        argparse.ArgumentParser(
            prog="gradspec figures", description=__doc__.splitlines()[0]
        )
    )
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
