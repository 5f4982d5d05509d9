"""The figure set's data: gradspec run on the fly, returned as plain NumPy arrays.

One ``compute_<figure>(cfg)`` per figure of :data:`gradspec.plots.figures.FIGURES`
(``cfg`` is that figure's settings), and :func:`lyapunov_points`, the measured points
of the phase diagram, public as ``gradspec.figures.lyapunov_points``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import cells, theory
from .. import init as gs_init
from ..measure import (
    gradient_profile,
    lyapunov_spectrum,
    step_jacobians,
    trajectory,
    weight_spectrum,
)
from ..sweep import random_rnn
from ..training import TrainConfig, train, verify
from ..verdicts import predict
from .data import critical_line, log_jacobian_norms, mean_field_grid, runs_from_train


def _key(seed: int):
    return jr.key(seed)


def compute_eigenvalues(cfg: dict) -> dict:
    keys = jr.split(_key(cfg["seed"]), len(cfg["gains"]))
    eig = [
        np.asarray(
            weight_spectrum(gs_init.gaussian(g)(k, (cfg["N"], cfg["N"]))).eigenvalues
        )
        for g, k in zip(cfg["gains"], keys)
    ]
    return {"eigenvalues": np.stack(eig), "gains": np.asarray(cfg["gains"], np.float64)}


def compute_singular_values(cfg: dict) -> dict:
    W = gs_init.gaussian(cfg["gain"])(_key(cfg["seed"]), (cfg["N"], cfg["N"]))
    sv = np.asarray(weight_spectrum(W).singular_values)
    return {"singular_values": sv, "gain": np.asarray(cfg["gain"], np.float64)}


def _make_cell(cell: str, nonlinearity: str):
    return cells.RNN(nonlinearity) if cell == "rnn" else getattr(cells, cell.upper())()


def _recurrent_init(init: str, gain: float, nonlinearity: str, sigma_x: float):
    if init == "default":
        return None
    if init == "critical":
        return gs_init.critical(nonlinearity, sigma_x=sigma_x)
    return getattr(gs_init, init)(gain)


def _driven_rnn(cfg: dict, cell_name: str, nonlinearity: str, init: str, gain: float):
    """Cell, params, the measured inputs (T, 1), the state after ``cfg["warmup"]``
    steps and all inputs (warmup + T, 1); sizes and seed from ``cfg``."""
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
    h0 = trajectory(cell, params, xs[:warmup])[-1]
    return cell, params, xs[warmup:], h0, xs


def compute_gradient_vs_lag(cfg: dict) -> dict:
    profiles, predicted, se, regimes, labels = [], [], [], [], []
    for label, cell_name, nl, init, gain in cfg["configs"]:
        cell, params, xs, h0, all_xs = _driven_rnn(cfg, cell_name, nl, init, gain)
        profiles.append(np.asarray(gradient_profile(cell, params, xs, h0)))
        pred = predict(cell, params, cfg["T"], inputs=all_xs)
        predicted.append(pred.lyapunov)
        se.append(pred.uncertainty)  # s.e. over sampled trajectories
        regimes.append(pred.regime)
        labels.append(label)
    return {
        "log_norms": np.stack(profiles),
        "lambda_max": np.asarray(predicted),
        "lambda_se": np.asarray(se, np.float64),
        "regimes": np.asarray(regimes),
        "labels": np.asarray(labels),
    }


def compute_jacobian_heatmap(cfg: dict) -> dict:
    mats = []
    for gain in cfg["gains"]:
        cell, params, xs, h0, _ = _driven_rnn(cfg, "rnn", "tanh", "gaussian", gain)
        J = step_jacobians(cell, params, xs, h0)
        mats.append(np.asarray(log_jacobian_norms(J)))
    return {"log_norms": np.stack(mats), "gains": np.asarray(cfg["gains"], np.float64)}


def compute_lyapunov_spectrum(cfg: dict) -> dict:
    N, T = cfg["N"], cfg["T"]
    gains = jnp.asarray(cfg["gains"])

    def one(gain, key):
        # One autonomous network from a random state: W_hh ~ N(0, g^2/N), no bias,
        # h0 ~ N(0, I), zero input (a sweep point's network, random_rnn).
        cell, params, xs, h0 = random_rnn(gain, 0.0, 0.0, key, N=N, T=T)
        return lyapunov_spectrum(cell, params, xs, h0, warmup=cfg["warmup"])

    # Mean field averages over W: so does the figure, over `draws` networks per gain,
    # all (gain, draw) pairs in one nested jax.vmap. A single finite-N draw near the
    # transition may sit on a stable fixed point or a limit cycle instead of the
    # chaotic attractor.
    keys = jr.split(_key(cfg["seed"]), cfg["draws"])
    exps = np.asarray(
        jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(gains, keys)
    )  # (G, draws, N)
    predicted = jax.vmap(lambda g: theory.mean_field("tanh", g).lambda_max)
    return {
        "exponents": exps,  # (G, draws, N)
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
        return lyapunov_spectrum(cell, params, xs, h0, k=1, warmup=warmup)[0]

    index = jnp.arange(sigma_w.shape[0])
    return np.asarray(jax.vmap(one)(index, sigma_w, sigma_b))


def compute_phase_diagram(cfg: dict) -> dict:
    nl = cfg["nonlinearity"]
    sw = np.linspace(*cfg["sigma_w"][:2], cfg["sigma_w"][2])
    sb = np.linspace(*cfg["sigma_b"][:2], cfg["sigma_b"][2])
    lam = np.asarray(mean_field_grid(nl, jnp.asarray(sw), jnp.asarray(sb)).lambda_max)
    line_b = np.linspace(sb.min(), sb.max(), 4 * sb.size)
    line_w = np.asarray(critical_line(nl, jnp.asarray(line_b)))
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


def compute_training_curves(cfg: dict) -> dict:
    runs = []
    for label, fields in cfg["configs"]:
        config = TrainConfig(**{**cfg["common"], **fields})
        result = train(config, progress=False)
        runs += runs_from_train(result, label)
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


def compute_agreement(cfg: dict) -> dict:
    grid = [TrainConfig(**{**cfg["common"], **fields}) for fields in cfg["configs"]]
    rows = verify(grid)
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
