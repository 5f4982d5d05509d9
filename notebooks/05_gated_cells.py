# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Gated cells: annealed and quenched mean-field theory
#
# Do a random LSTM's or GRU's gradients vanish, and how fast? Mean-field theory answers
# from the gate hyperparameters alone. Each gate k (LSTM i, f, g, o; GRU r, z, n) has
# recurrent weights $W^k_{hh} \sim \mathcal N(0, \sigma_k^2/N)$, input weights
# $W^k_{ih} \sim \mathcal N(0, \nu_k^2/D)$ and biases $b_k \sim \mathcal N(\mu_k,
# \rho_k^2)$, so its pre-activation is Gaussian across units with variance
# $\Sigma_k = \sigma_k^2 Q_h + \nu_k^2 R + \rho_k^2$. Two theories follow:
#
# - **annealed** (Chen et al. 2018, Gilboa et al. 2019): the weights are redrawn every
#   step. A perturbation's mean squares $(q_h, q_c)$ then move by a 2x2 map M and
#   $\lambda_{max} = \tfrac12 \log \rho(M)$.
# - **quenched**: one network, weights tied in time. At zero input it settles on a fixed
#   point, and $\lambda_{max}$ is the log of the spectral radius of the Jacobian there,
#   $J = A + BW$ with a diagonal memory part A.
#
# They differ a lot: a per-step factor $a + b\sigma$ (tied) against
# $\sqrt{a^2 + b^2\sigma^2}$ (redrawn). This notebook compares both with real networks,
# draws the phase diagram over $(\sigma, \mu_f)$ and initialises an LSTM at the edge.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import gradspec
import gradspec.plots as gp
import gradspec.style as gs_style
import gradspec.theory as gt

SMALL = os.environ.get("GRADSPEC_NOTEBOOK_SMALL") == "1"
N = 128 if SMALL else 512  # hidden units of the measured networks
DRAWS = 2 if SMALL else 5  # networks per setting
T, WARMUP = (400, 200) if SMALL else (1500, 500)
GRID = (5, 4) if SMALL else (30, 24)  # (sigma, mu_f) phase-diagram grid
LINE = 3 if SMALL else 12  # points on the critical line
CELLS = {"lstm": gradspec.cells.LSTM(), "gru": gradspec.cells.GRU()}


def as_gates(kind, **hyper):
    """The theory's keywords (scalars or per-gate dicts) as ``init(gates=...)``."""
    return {
        g: {k: (v[g] if isinstance(v, dict) else v) for k, v in hyper.items()
            if not isinstance(v, dict) or g in v}
        for g in gt.GATES[kind]
    }


def measured_lambda(kind, gates, key):
    """Top Lyapunov exponent of DRAWS networks at zero input, from random starts."""
    cell, lams = CELLS[kind], []
    for k in jax.random.split(key, DRAWS):
        k_params, k_start = jax.random.split(k)
        params = cell.init(k_params, N, 1, gates=gates)
        h0 = 0.5 * jax.random.normal(k_start, (cell.state_size(N),))
        lam = gradspec.lyapunov_spectrum(
            cell, params, jnp.zeros((T, 1)), h0, k=1, warmup=WARMUP
        )
        lams.append(float(lam[0]))
    return np.array(lams)


# %% [markdown]
# ## Theory against real networks
#
# A few settings, each with both theories and the top exponent measured on `DRAWS`
# random networks (Benettin's QR method after the network has relaxed). The quenched
# theory places the N units' memory gates at their expected order statistics: a unit
# whose forget (or update) gate is nearly 1 keeps that eigenvalue, so finite N enters.

# %%
SETTINGS = [
    ("lstm", dict(mu={"f": 1.0}, rho={"g": 0.5})),
    ("gru", dict(sigma={"n": 1.5}, mu={"z": 1.0}, rho={"n": 0.3})),
    ("lstm", dict(sigma={"g": 1.5, "o": 0.5}, mu={"f": 1.5, "i": -1.0},
                  rho={"g": 0.3})),
    ("gru", dict(rho={"n": 0.5})),
][: 2 if SMALL else None]
print(f"{'cell':5} {'annealed':>9} {'quenched':>9} {'measured':>17}")
for j, (kind, hyper) in enumerate(SETTINGS):
    annealed = gt.gated_mean_field(kind, **hyper, mode="annealed")
    quenched = gt.gated_mean_field(kind, **hyper, hidden=N)
    lams = measured_lambda(kind, as_gates(kind, **hyper), jax.random.key(j))
    se = lams.std(ddof=1) / np.sqrt(len(lams))
    print(f"{kind:5} {float(annealed.lambda_max):+9.4f} "
          f"{float(quenched.lambda_max):+9.4f} {lams.mean():+9.4f} +- {se:.4f}")

# %% [markdown]
# ## Why the tied weights matter: the spectrum at the fixed point
#
# One LSTM, relaxed to its fixed point: the eigenvalues of its Jacobian in (h, c). The
# quenched edge $r^*$ (dashed) solves
# $\mathbb E[o^2]\,\mathrm{mean}_j \tau_j^2 \sum_k \sigma_k^2 d_{kj}^2/(r - f_j)^2 +
# \sigma_o^2\,\mathbb E[\sigma'(z_o)^2 \tanh^2 c^*]/r^2 = 1$; the annealed theory's
# $e^{\lambda_{max}}$ (dotted) is far inside.

# %%
kind, hyper = SETTINGS[0]
cell = CELLS[kind]
params = cell.init(jax.random.key(7), N, 1, gates=as_gates(kind, **hyper))
h0 = 0.5 * jax.random.normal(jax.random.key(8), (cell.state_size(N),))
states = gradspec.trajectory(cell, params, jnp.zeros((T, 1)), h0)
eig = np.linalg.eigvals(np.asarray(cell.jacobian(params, states[-1], jnp.zeros(1))))
r_quenched = float(jnp.exp(gt.gated_mean_field(kind, **hyper, hidden=N).lambda_max))
annealed = gt.gated_mean_field(kind, **hyper, mode="annealed")
r_annealed = float(jnp.exp(annealed.lambda_max))
print(f"spectral radius {np.abs(eig).max():.4f}, quenched r* {r_quenched:.4f}, "
      f"annealed {r_annealed:.4f}")
with gs_style.context():
    fig, ax = plt.subplots(figsize=gs_style.figsize("one", 1.0))
    ax.plot(eig.real, eig.imag, ".", ms=2, color="0.3", label="eigenvalues of J")
    angle = np.linspace(0, 2 * np.pi, 400)
    ax.plot(r_quenched * np.cos(angle), r_quenched * np.sin(angle), "--",
            label="quenched $r^*$")
    ax.plot(r_annealed * np.cos(angle), r_annealed * np.sin(angle), ":",
            label=r"annealed $e^{\lambda_{max}}$")
    ax.set_aspect("equal")
    ax.set_xlabel(r"Re $\lambda$")
    ax.set_ylabel(r"Im $\lambda$")
    ax.legend(loc="lower left", fontsize=6)

# %% [markdown]
# ## Phase diagram over $(\sigma, \mu_f)$
#
# All gates share $\sigma$; the forget-gate bias $\mu_f$ opens the memory, and
# $\rho_g = 0.5$. One `jax.vmap` over the grid, and the critical line
# $\lambda_{max} = 0$ from `gated_critical`: above it the fixed point is unstable and
# the network chaotic.

# %%
sigmas = jnp.linspace(0.3, 2.0, GRID[0])
mu_fs = jnp.linspace(-1.0, 4.0, GRID[1])


def quenched_lambda(s, m):
    return gt.gated_mean_field(
        "lstm", sigma=s, mu={"f": m}, rho={"g": 0.5}, hidden=N
    ).lambda_max


lam = jax.vmap(lambda s: jax.vmap(lambda m: quenched_lambda(s, m))(mu_fs))(sigmas)
line_s = np.linspace(0.3, 2.0, LINE)
line_mu = np.array([
    float(gt.gated_critical("lstm", sigma=s, rho={"g": 0.5}, hidden=N)["f"]["mu"])
    for s in line_s
])
for s, m in zip(line_s, line_mu):
    print(f"sigma = {s:.2f}: critical mu_f = {m:+.3f}")
fig = gp.plot_phase_diagram(
    sigmas, mu_fs, lam, critical={"sigma_w": line_s, "sigma_b": line_mu}
)
fig.axes[0].set_xlabel(r"$\sigma$ (all gates)")
fig.axes[0].set_ylabel(r"forget-gate bias $\mu_f$")

# %% [markdown]
# ## An LSTM at the edge
#
# `gated_critical` returns per-gate hyperparameters for `init(gates=...)`: networks
# drawn from them measure $\lambda_1 \approx 0$ (their gradients neither vanish nor
# explode per step), where the default forget bias 0 vanishes at
# $\lambda_1 \approx -0.3$.

# %%
gates = gt.gated_critical("lstm", sigma=1.0, rho={"g": 0.5}, hidden=N)
print(f"critical forget-gate bias: {float(gates['f']['mu']):.4f}")
edge = measured_lambda("lstm", gates, jax.random.key(11))
default = measured_lambda("lstm", as_gates("lstm", rho={"g": 0.5}), jax.random.key(12))
print(f"measured lambda_1 at the edge: {edge.mean():+.4f}; with mu_f = 0: "
      f"{default.mean():+.4f}")
assert abs(edge.mean()) < 0.05 and default.mean() < -0.1
