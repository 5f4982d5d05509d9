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
# # The phase diagram of random tanh RNNs
#
# A vanilla RNN with $W_{hh} \sim \mathcal N(0, \sigma_w^2/N)$ and bias
# $b \sim \mathcal N(0, \sigma_b^2)$ is, as N grows, in one of two phases (Poole et al.
# 2016; Schoenholz et al. 2017):
#
# - **ordered**: $\chi < 1$, nearby states converge, gradients **vanish** at
#   $\lambda_{max} = \tfrac12 \log\chi < 0$ per step;
# - **chaotic**: $\chi > 1$, nearby states diverge, gradients **explode**.
#
# The edge of chaos $\chi = 1$ is where gradients survive the longest. This notebook
# computes the mean-field $\lambda_{max}$ over a $(\sigma_w, \sigma_b)$ grid with one
# `jax.vmap`, the critical line from `theory.critical_gain`, and checks both against
# the top Lyapunov exponent of real random networks.

# %%
import os

import jax
import jax.numpy as jnp
import numpy as np

import gradspec.plots as gp
from gradspec.figures import lyapunov_points

SMALL = os.environ.get("GRADSPEC_NOTEBOOK_SMALL") == "1"
GRID = (30, 20) if SMALL else (120, 80)  # (sigma_w, sigma_b) mean-field grid
MEASURED = (4, 3) if SMALL else (11, 6)  # random networks per axis
N = 64 if SMALL else 256
T, WARMUP = (300, 100) if SMALL else (1500, 500)

# %% [markdown]
# ## Mean-field theory on a grid
#
# `gp.mean_field_grid` vmaps `theory.mean_field` over both axes: every point solves the
# variance fixed point $q^* = \sigma_w^2 \mathbb E[\tanh(\sqrt{q^*}z)^2] + \sigma_b^2$ and
# evaluates $\chi$ there.

# %%
sigma_w = jnp.linspace(0.05, 3.0, GRID[0])
sigma_b = jnp.linspace(0.0, 1.0, GRID[1])
mf = gp.mean_field_grid("tanh", sigma_w, sigma_b)
print("lambda_max grid:", mf.lambda_max.shape)
print(
    f"ordered (vanishing) fraction of the grid: {float(jnp.mean(mf.lambda_max < 0)):.2f}"
)

# %% [markdown]
# ## The critical line
#
# $\sigma_w^*(\sigma_b)$ solves $\chi = 1$. Without bias it is exactly 1 for tanh; bias
# pushes it up, since a larger $q^*$ saturates the units and lowers the average slope.

# %%
line_b = jnp.linspace(0.0, 1.0, 4 * GRID[1])
line_w = gp.critical_line("tanh", line_b)
for b, w in zip((0.0, 0.25, 0.5, 1.0), gp.critical_line("tanh", [0.0, 0.25, 0.5, 1.0])):
    print(f"sigma_b = {b:4.2f}: critical sigma_w = {float(w):.4f}")
assert abs(float(line_w[0]) - 1.0) < 1e-6

# %% [markdown]
# ## Measured: the top Lyapunov exponent of real networks
#
# One random autonomous network per point (`gradspec.figures.lyapunov_points`: all
# points in one `jax.vmap` of `gradspec.lyapunov_spectrum`). With N finite the
# measured exponents deviate from mean field by O(1/N), and near the critical line a
# small network's realisation can land on either side: at N = 32 some chaotic-phase
# draws even settle on a stable fixed point. The agreement tightens as N grows.

# %%
measured_w = np.linspace(0.25, 2.75, MEASURED[0])
measured_b = np.linspace(0.0, 1.0, MEASURED[1])
mw, mb = np.meshgrid(measured_w, measured_b, indexing="ij")
mw, mb = mw.ravel(), mb.ravel()
measured = lyapunov_points(
    "tanh", mw, mb, N=N, T=T, warmup=WARMUP, key=jax.random.key(0)
)
# The same (sigma_w, sigma_b) points, row-major as mw, mb: one vmapped grid, no loop.
predicted = np.asarray(
    gp.mean_field_grid("tanh", measured_w, measured_b).lambda_max
).ravel()
agree = np.sign(measured) == np.sign(predicted)
print(f"{'sigma_w':>8} {'sigma_b':>8} {'mean field':>11} {'measured':>9}")
for w, b, p, m in zip(mw, mb, predicted, measured):
    print(f"{w:8.2f} {b:8.2f} {p:+11.4f} {m:+9.4f}")
print(f"same sign at {int(agree.sum())} of {agree.size} points")

# %%
gp.plot_phase_diagram(
    sigma_w,
    sigma_b,
    mf.lambda_max,
    critical={"sigma_w": line_w, "sigma_b": line_b},
    measured={"sigma_w": mw, "sigma_b": mb, "lambda_max": measured},
)

# %% [markdown]
# The same diagram is `gradspec figures --only phase_diagram`, and at scale a
# resumable sweep: `gradspec sweep examples/phase_diagram.toml`.
