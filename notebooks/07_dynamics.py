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
# # The dynamics behind the gradient: Lyapunov spectra, dimension, entropy
#
# The gradient that reaches step $T - k$ is $\partial L/\partial h_T\, J_T \cdots
# J_{T-k+1}$, and its growth rate in every direction is a **Lyapunov exponent** of the
# network's dynamics: $\lambda_1 > 0$ explodes, $\lambda_1 < 0$ vanishes. The whole
# spectrum $\lambda_1 \ge \lambda_2 \ge \dots$ says more: how many directions carry a
# usable gradient, how complex the attractor the network runs on is, how fast it forgets.
#
# gradspec measures the spectrum exactly (Benettin's QR sweep, in the log domain) for
# any step function. We check it first on two systems whose answers are known, the
# Hénon map and the Lorenz flow, then read a tanh RNN's spectrum with the same tools:
#
# - the **Kaplan–Yorke dimension** $D_{KY} = j + \sum_{i \le j}\lambda_i / |\lambda_{j+1}|$
#   (j: the last index with a non-negative partial sum),
# - the **Kolmogorov–Sinai entropy** $h_{KS} = \sum_{\lambda_i > 0} \lambda_i$ (Pesin),
# - **local exponents** $\log|(R_t)_{ii}|$, step by step, and the **running estimate**
#   $\lambda_i(t)$ with its standard error over a batch, to see convergence rather than
#   assume it.
#
# Set `GRADSPEC_NOTEBOOK_SMALL=1` for a seconds-long run at small sizes (the tests do).

# %%
import math
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

import gradspec
import gradspec.plots as gp
import gradspec.style as gs_style

SMALL = os.environ.get("GRADSPEC_NOTEBOOK_SMALL") == "1"
B = 4 if SMALL else 16  # batch members (orbits, input sequences)
T_MAP = 2_000 if SMALL else 100_000  # Hénon steps
T_FLOW = 3_000 if SMALL else 100_000  # Lorenz RK4 steps of DT
N = 32 if SMALL else 128  # RNN units
T_RNN = 300 if SMALL else 3_000  # RNN steps
KEY = jax.random.key(0)

# %% [markdown]
# ## 1. The Hénon map: a known answer
#
# $(x, y) \mapsto (1 - a x^2 + y,\ b x)$ with $a = 1.4$, $b = 0.3$. Any step function is a
# gradspec cell (`StepCell`); its Jacobians come from autodiff. Known: $\lambda_1 \approx
# 0.41922$, and $\lambda_1 + \lambda_2 = \log b = -1.20397$ *exactly*, because
# $\det J = -b$ at every step.
#
# A batch of orbits (starts near the origin, inside the basin) gives the running mean
# $\bar\lambda_i(t)$ and its standard error.

# %%
def henon(p, h, x):
    return jnp.stack([1.0 - p["a"] * h[0] ** 2 + h[1], p["b"] * h[0]])


henon_cell = gradspec.cells.StepCell(henon, size=2)
henon_params = {"a": jnp.asarray(1.4), "b": jnp.asarray(0.3)}
starts = 0.1 * jax.random.normal(KEY, (B, 2))
henon_conv = gradspec.lyapunov_convergence(
    henon_cell, henon_params, jnp.zeros((T_MAP, 1)), starts, warmup=100
)
lam = henon_conv.mean[-1]
se = henon_conv.se[-1]
print(f"lambda_1 = {lam[0]:+.4f} +- {se[0]:.4f}   (known +0.41922)")
print(f"lambda_2 = {lam[1]:+.4f} +- {se[1]:.4f}   (known -1.62319)")
print(f"sum      = {lam.sum():+.6f}           (log b = {math.log(0.3):+.6f}, exact)")
print(f"D_KY     = {gradspec.kaplan_yorke_dimension(lam):.4f}            (known 1.258)")
print(f"h_KS     = {gradspec.ks_entropy(lam):.4f} nats per step")
assert abs(float(lam.sum()) - math.log(0.3)) < 1e-5  # float32 rounding of T logs

# %%
gp.plot_convergence(henon_conv, reference=[0.41922, math.log(0.3) - 0.41922])

# %% [markdown]
# ## 2. The Lorenz flow: a continuous system, integrated by RK4
#
# One step of a classical Runge–Kutta integrator with $\Delta t = 0.01$ is the cell; its
# exponents per step divided by $\Delta t$ are the flow's rates per unit time. Known
# (Sprott): $0.9056,\ 0,\ -14.5723$, summing to $-(\sigma + 1 + \beta) = -13.667$ (the
# flow's divergence is constant). The zero exponent belongs to the direction of the
# flow itself. $D_{KY} = 2 + 0.9056/14.5723 = 2.062$: the attractor is a little more
# than a surface.

# %%
DT = 0.01


def lorenz_field(p, u):
    x, y, z = u[0], u[1], u[2]
    return jnp.stack([p["sigma"] * (y - x), x * (p["rho"] - z) - y, x * y - p["beta"] * z])


def rk4(p, u, _x):
    k1 = lorenz_field(p, u)
    k2 = lorenz_field(p, u + 0.5 * DT * k1)
    k3 = lorenz_field(p, u + 0.5 * DT * k2)
    k4 = lorenz_field(p, u + DT * k3)
    return u + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


lorenz_cell = gradspec.cells.StepCell(rk4, size=3)
lorenz_params = {"sigma": jnp.asarray(10.0), "rho": jnp.asarray(28.0),
                 "beta": jnp.asarray(8.0 / 3.0)}
# Independent orbits from random points around the attractor; 10 time units of warm-up.
starts = jnp.array([[0.0, 0.0, 25.0]]) + 8.0 * jax.random.normal(KEY, (B, 3))
lorenz_conv = gradspec.lyapunov_convergence(
    lorenz_cell, lorenz_params, jnp.zeros((T_FLOW, 1)), starts, warmup=int(10 / DT)
)
lam = lorenz_conv.mean[-1] / DT
se = lorenz_conv.se[-1] / DT
for i, known in enumerate((0.9056, 0.0, -14.5723)):
    print(f"lambda_{i + 1} = {lam[i]:+8.4f} +- {se[i]:.4f} per unit time  (known {known:+.4f})")
print(f"sum      = {lam.sum():+.4f}   (-(sigma + 1 + beta) = {-(10 + 1 + 8 / 3):+.4f})")
print(f"D_KY     = {gradspec.kaplan_yorke_dimension(lam):.4f}     (known 2.062)")

# %%
with gs_style.context():
    fig, axes = plt.subplots(1, 2, figsize=gs_style.figsize("two", 0.4))
gp.plot_convergence(lorenz_conv, indices=[1, 2], reference=[0.9056, 0.0], time_step=DT,
                    ax=axes[0])
local = jax.vmap(
    lambda h: gradspec.local_exponents(lorenz_cell, lorenz_params, jnp.zeros((T_FLOW, 1)), h)
)(starts)[:, int(10 / DT):]
gp.plot_local_exponents(local, indices=[1, 3], time_step=DT, ax=axes[1])
low, high = jnp.percentile(local[..., 0] / DT, jnp.array([5.0, 95.0]))
print(f"local lambda_1: 5% to 95% of steps between {low:+.1f} and {high:+.1f} per unit time")
fig

# %% [markdown]
# The local exponents are far from their means: step by step the most expanding
# direction alternates between fast growth and decay (the printed range), and only
# their average is 0.9. This **intermittency** is what a gradient through such dynamics
# feels: bursts of growth and decay whose balance decides the trend.
#
# ## 3. A chaotic tanh RNN
#
# The same tools on a vanilla RNN with Gaussian weights of gain $g = 2$ (the chaotic
# phase of mean-field theory), driven by small inputs: a batch of input sequences gives
# each exponent with a confidence band ($\pm 2$ standard errors). The positive
# exponents are the directions in which the gradient explodes; their sum is the rate at
# which the network creates information about its past (and so cannot keep it).

# %%
GAIN = 2.0
cell = gradspec.cells.RNN("tanh")
params = cell.init(KEY, hidden=N, inputs=1, recurrent_init=gradspec.init.gaussian(GAIN))
seqs = 0.1 * jax.random.normal(jax.random.key(1), (B, T_RNN, 1))
spectra, vectors = jax.vmap(
    lambda xs: gradspec.lyapunov_spectrum(cell, params, xs, warmup=T_RNN // 5,
                                          return_vectors=True)
)(seqs)
mean = spectra.mean(0)
positive = int((mean > 0).sum())
print(f"lambda_1 = {mean[0]:+.4f} per step: gradients explode by e every "
      f"{1 / abs(float(mean[0])):.1f} steps along the top direction")
print(f"{positive} of {N} exponents positive")
print(f"D_KY = {float(gradspec.kaplan_yorke_dimension(mean)):.2f} of N = {N} dimensions")
print(f"h_KS = {float(gradspec.ks_entropy(mean)):.4f} nats per step")
pr = gradspec.participation_ratio(vectors[0][:, :3])
print(f"participation ratio of the top 3 Lyapunov vectors: {[round(float(p), 1) for p in pr]}"
      f" of {N} units")

# %%
gp.plot_exponent_spectrum([{"label": f"tanh, $g = {GAIN}$", "exponents": spectra}])

# %% [markdown]
# The attractor's dimension is far below N: the dynamics, and with it the directions
# in which the gradient does not vanish, live on a few modes. The participation ratios
# say how many units each of the top directions spreads over: 1 would be a single unit
# carrying the growth, about N/3 a random direction.
#
# ## 4. Your own model: spectra from its Jacobians
#
# A model that is not a gradspec cell still has step Jacobians, e.g. from
# `jax.jacrev` of its step. `lyapunov_spectrum_from_jacobians` runs the same sweep on
# them (here checked against the cell path on the RNN's own Jacobians), and takes them in
# chunks when T * S * S numbers do not fit in memory: the frame is carried across.

# %%
xs = seqs[0]
Js = gradspec.step_jacobians(cell, params, xs)
direct = gradspec.lyapunov_spectrum(cell, params, xs, k=4, warmup=T_RNN // 5)
from_js = gradspec.lyapunov_spectrum_from_jacobians(Js, k=4, warmup=T_RNN // 5)
chunks = (Js[i : i + 50] for i in range(0, T_RNN, 50))
chunked = gradspec.lyapunov_spectrum_from_jacobians(chunks, k=4, warmup=T_RNN // 5)
print("cell path     ", [round(float(v), 5) for v in direct])
print("from Js       ", [round(float(v), 5) for v in from_js])
print("from 50-chunks", [round(float(v), 5) for v in chunked])
assert float(jnp.abs(from_js - direct).max()) < 1e-4  # float32: the same sweep
