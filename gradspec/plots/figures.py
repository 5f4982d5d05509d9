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

The compute functions live in :mod:`._figure_data`, the draw functions in
:mod:`._figure_draw`; this module holds the registry (:data:`FIGURES`), the cache and
:func:`generate`. The ``gradspec figures`` command is :mod:`gradspec.cli.figures`.

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

import dataclasses
import json
import sys
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np

from . import style
from ._figure_data import (
    compute_agreement,
    compute_eigenvalues,
    compute_gradient_vs_lag,
    compute_jacobian_heatmap,
    compute_lyapunov_spectrum,
    compute_phase_diagram,
    compute_singular_values,
    compute_training_curves,
)
from ._figure_data import lyapunov_points as lyapunov_points
from .gated import compute_gated_phase_diagram, draw_gated_phase_diagram
from ._figure_draw import (
    draw_agreement,
    draw_eigenvalues,
    draw_gradient_vs_lag,
    draw_jacobian_heatmap,
    draw_lyapunov_spectrum,
    draw_phase_diagram,
    draw_singular_values,
    draw_training_curves,
)

__all__ = [
    "FIGURES",
    "compute",
    "draw",
    "generate",
    "lyapunov_points",
    "settings",
]

#: Bumped when a compute function changes what it returns (invalidates caches).
DATA_VERSION = 3


@dataclasses.dataclass(frozen=True)
class _Figure:
    compute: Callable[[dict], dict]
    draw: Callable[[dict], Any]
    full: dict
    quick: dict
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


FIGURES: dict[str, _Figure] = {
    "eigenvalues": _Figure(
        compute_eigenvalues,
        draw_eigenvalues,
        full={"N": 500, "gains": [0.8, 1.5], "seed": 0},
        quick={"N": 200, "gains": [0.8, 1.5], "seed": 0},
        description="eigenvalues of W_hh, circular-law disk and unit circle",
    ),
    "singular_values": _Figure(
        compute_singular_values,
        draw_singular_values,
        full={"N": 1000, "gain": 1.0, "seed": 0},
        quick={"N": 300, "gain": 1.0, "seed": 0},
        description="singular values of W_hh vs the quarter-circle law",
    ),
    "gradient_vs_lag": _Figure(
        compute_gradient_vs_lag,
        draw_gradient_vs_lag,
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
        compute_jacobian_heatmap,
        draw_jacobian_heatmap,
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
        compute_lyapunov_spectrum,
        draw_lyapunov_spectrum,
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
        compute_phase_diagram,
        draw_phase_diagram,
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
    "gated_phase_diagram": _Figure(
        compute_gated_phase_diagram,
        draw_gated_phase_diagram,
        # Quenched theory at the measured networks' N; the annealed grid is coarser (a
        # particle scan per point costs several quenched solves).
        full={
            "sigma": [0.3, 2.0, 35],
            "mu_f": [-1.0, 5.0, 49],
            "rho_g": 0.5,
            "hidden": 256,
            "annealed": {"sigma": [0.3, 2.0, 18], "mu_f": [-1.0, 5.0, 25]},
            "measured": {
                "sigma": [0.5, 1.7, 3],
                "mu_f": [0.0, 3.0, 3],
                "N": 256,
                "T": 1500,
                "warmup": 500,
            },
            "seed": 0,
        },
        quick={
            "sigma": [0.3, 2.0, 12],
            "mu_f": [-1.0, 5.0, 16],
            "rho_g": 0.5,
            "hidden": 128,
            "annealed": {"sigma": [0.3, 2.0, 5], "mu_f": [-1.0, 5.0, 7]},
            "measured": {
                "sigma": [0.5, 1.7, 3],
                "mu_f": [0.0, 3.0, 3],
                "N": 128,
                "T": 600,
                "warmup": 200,
            },
            "seed": 0,
        },
        description="LSTM quenched lambda_max over (sigma, mu_f), quenched and annealed "
        "lambda = 0 lines, measured networks",
    ),
    "training_curves": _Figure(
        compute_training_curves,
        draw_training_curves,
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
        description="training curves coloured by outcome",
    ),
    "agreement": _Figure(
        compute_agreement,
        draw_agreement,
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
    # The version from the loaded package (a parent package is always loaded before
    # its modules), as the sweep store records it: no import of the top package.
    version = getattr(sys.modules.get("gradspec"), "__version__", "unknown")
    return json.dumps(
        {
            "figure": name,
            "settings": cfg,
            "gradspec": version,
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
        ``{name: [written paths]}``.
    """
    names = list(FIGURES) if not only else list(only)
    for name in names:
        _get(name)
    out = Path(out)
    written = {}
    for name in names:
        cfg = settings(name, quick)
        key = _cache_key(name, cfg)
        cache = out / "cache" / f"{name}.npz"
        start = time.perf_counter()
        data = None if force else _load_cache(cache, key)
        source = "cache"
        if data is None:
            source = "computed"
            data = compute(name, cfg)
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
