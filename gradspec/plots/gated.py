r"""The LSTM phase diagram over :math:`(\sigma, \mu_f)`: quenched and annealed mean-field
theory and measured networks (figure ``"gated_phase_diagram"`` of
:data:`gradspec.plots.figures.FIGURES`).

- :func:`compute_gated_phase_diagram`: the quenched :math:`\lambda_{max}` on a grid
  (:func:`gradspec.theory.gated_mean_field` in one compiled ``lax.map``), the annealed
  one on a coarser grid (a particle scan per point, several times dearer), the
  :math:`\lambda = 0` line of each read off its grid (:func:`lambda_zero_line`), and
  the top Lyapunov exponent of random LSTMs at a few points (the ``"gated_lyapunov"``
  sweep measurement).
- :func:`draw_gated_phase_diagram`: the heat map of :func:`plot_phase_diagram` with
  the quenched line solid, the annealed line dashed and the measured points on the
  same colour scale.

Every gate has recurrent weight scale :math:`\sigma` and input scale 1; the forget
gate's bias mean is :math:`\mu_f`, the candidate's bias spread :math:`\rho_g` (the
settings' ``rho_g``); other biases are 0; zero input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.lines import Line2D

from .. import sweep as _sweep
from .. import theory
from . import style
from .phase import plot_phase_diagram

__all__ = ["compute_gated_phase_diagram", "draw_gated_phase_diagram", "lambda_zero_line"]


def lambda_zero_line(y, lam) -> np.ndarray:
    r"""Where each row of ``lam`` first crosses 0 upwards along ``y``.

    For row i, the first j with :math:`\lambda_{ij} < 0 \le \lambda_{i,j+1}`, and the
    linear interpolation :math:`y_j + (y_{j+1} - y_j)\,\lambda_{ij} /
    (\lambda_{ij} - \lambda_{i,j+1})` between the two; NaN where the row never crosses.
    Its error is of order :math:`\Delta y^2\,|\lambda''| / (8 |\lambda'|)`.

    Args:
        y: shape (Y,), increasing.
        lam: shape (X, Y).

    Returns:
        Shape (X,), float64.

    Examples:
        >>> import numpy as np
        >>> lambda_zero_line(np.array([0.0, 1.0, 2.0]),
        ...                  np.array([[-2.0, -1.0, 1.0], [1.0, 2.0, 3.0]])).tolist()
        [1.5, nan]
    """
    y, lam = np.asarray(y, np.float64), np.asarray(lam, np.float64)
    if y.ndim != 1 or lam.ndim != 2 or lam.shape[1] != y.size or y.size < 2:
        raise ValueError(f"`lam` must have shape (X, len(y)) with y (Y,), Y >= 2; got "
                         f"y {y.shape}, lam {lam.shape}.")
    up = (lam[:, :-1] < 0) & (lam[:, 1:] >= 0)
    j = np.argmax(up, axis=1)
    rows = np.arange(lam.shape[0])
    lo, hi = lam[rows, j], lam[rows, j + 1]
    cross = y[j] + (y[j + 1] - y[j]) * lo / (lo - hi)
    return np.where(up.any(axis=1), cross, np.nan)


def _axis(spec) -> np.ndarray:
    return np.linspace(spec[0], spec[1], int(spec[2]))


#: Grid points per vmapped batch of the theory grids. The quenched solves are
#: while-loops, which under vmap run every lane to the slowest lane's count: batches
#: of 8 in a lax.map took 2.4x less CPU time than one vmap over 450 points (N = 128).
_BATCH = 8


def _theory_grid(sigma, mu_f, *, rho_g, hidden, mode) -> np.ndarray:
    """Mean-field lambda_max over the (S, M) grid, in one compiled lax.map."""
    s, m = (jnp.asarray(a) for a in np.meshgrid(sigma, mu_f, indexing="ij"))

    def one(point):
        return theory.gated_mean_field("lstm", sigma=point[0], mu={"f": point[1]},
                                       rho={"g": rho_g}, mode=mode,
                                       hidden=hidden).lambda_max

    grid = jax.jit(lambda s, m: jax.lax.map(one, (s, m), batch_size=_BATCH))
    return np.asarray(grid(s.ravel(), m.ravel()), np.float64).reshape(s.shape)


def compute_gated_phase_diagram(cfg: dict) -> dict:
    """The figure's data from its settings (see the module docstring):
    ``sigma``, ``mu_f`` ([lo, hi, n] each, the quenched grid), ``rho_g``, ``hidden``
    (the N of the quenched theory), ``annealed`` ({"sigma", "mu_f"}: its coarser grid),
    ``measured`` ({"sigma", "mu_f", "N", "T", "warmup"}) and ``seed``."""
    sigma, mu_f = _axis(cfg["sigma"]), _axis(cfg["mu_f"])
    rho_g, hidden = cfg["rho_g"], cfg["hidden"]
    lam = _theory_grid(sigma, mu_f, rho_g=rho_g, hidden=hidden, mode="quenched")
    a_sigma, a_mu = _axis(cfg["annealed"]["sigma"]), _axis(cfg["annealed"]["mu_f"])
    a_lam = _theory_grid(a_sigma, a_mu, rho_g=rho_g, hidden=hidden, mode="annealed")
    m = cfg["measured"]
    grid = {"sigma": _axis(m["sigma"]).tolist(), "mu_f": _axis(m["mu_f"]).tolist()}
    points = _sweep.sweep(
        "gated_lyapunov", grid, chunk_size=len(grid["sigma"]) * len(grid["mu_f"]),
        options={"kind": "lstm", "rho_g": rho_g, "N": m["N"], "T": m["T"],
                 "warmup": m["warmup"], "seed": cfg["seed"]}).records

    def column(name, part="config"):
        return np.asarray([r[part][name] for r in points], np.float64)

    return {
        "sigma": sigma,
        "mu_f": mu_f,
        "lambda_max": lam,
        "critical_mu_f": lambda_zero_line(mu_f, lam),
        "annealed_sigma": a_sigma,
        "annealed_mu_f": a_mu,
        "annealed_lambda_max": a_lam,
        "annealed_critical_mu_f": lambda_zero_line(a_mu, a_lam),
        "measured_sigma": column("sigma"),
        "measured_mu_f": column("mu_f"),
        "measured_lambda_max": column("lambda_max", "results"),
        "rho_g": np.asarray(rho_g, np.float64),
        "hidden": np.asarray(hidden),
        "measured_N": np.asarray(m["N"]),
    }


def draw_gated_phase_diagram(data: dict):
    """The figure from :func:`compute_gated_phase_diagram`'s data. Artists, by gid:
    ``"phase"`` (mesh), ``"critical-line"`` (quenched), ``"annealed-line"``,
    ``"measured"`` (points), ``"contours"``."""
    fig = plot_phase_diagram(
        data["sigma"], data["mu_f"], data["lambda_max"],
        critical={"sigma_w": data["sigma"], "sigma_b": data["critical_mu_f"]},
        measured={"sigma_w": data["measured_sigma"], "sigma_b": data["measured_mu_f"],
                  "lambda_max": data["measured_lambda_max"]},
    )
    ax = fig.axes[0]
    with style.context():
        (annealed,) = ax.plot(data["annealed_sigma"], data["annealed_critical_mu_f"],
                              color="black", linewidth=1.0, linestyle="--")
        annealed.set_gid("annealed-line")
        ax.set_xlabel(r"recurrent weight scale $\sigma$ (all gates)")
        ax.set_ylabel(r"forget-gate bias mean $\mu_f$")
        ax.set_title(
            rf"LSTM, quenched $\lambda_{{max}}$ at $N = {int(data['hidden'])}$" "\n"
            rf"$\rho_g = {float(data['rho_g']):g}$, other biases 0, no input",
            fontsize=style.LEGEND_SIZE, loc="left")
        handles = [
            Line2D([], [], color="black", linewidth=1.2, label=r"quenched $\lambda = 0$"),
            Line2D([], [], color="black", linewidth=1.0, linestyle="--",
                   label=r"annealed $\lambda = 0$ (weights redrawn each step)"),
            Line2D([], [], linestyle="none", marker="o", markersize=4,
                   markerfacecolor="0.75", markeredgecolor="black", markeredgewidth=0.5,
                   label=rf"measured $\lambda_1$, one random LSTM, "
                   rf"$N = {int(data['measured_N'])}$"),
        ]
        ax.get_legend().remove()
        fig.legend(handles=handles, loc="outside lower center", ncols=1,
                   fontsize=style.LEGEND_SIZE)
    return fig
