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
# # gradspec quickstart: diagnose one initialization
#
# Will the gradient that reaches step $T - k$ of this recurrent network vanish, stay
# usable, or explode? gradspec answers three ways that must agree:
#
# 1. **predict** from the initialization alone (random-matrix and mean-field theory),
# 2. **measure** the exact Jacobian products along a real input sequence,
# 3. **train** and see (notebook 04).
#
# This notebook does 1 and 2 for one vanilla tanh RNN with Gaussian recurrent weights
# $W_{hh} \sim \mathcal N(0, g^2/N)$, $g = 2$.
#
# Set `GRADSPEC_NOTEBOOK_SMALL=1` for a seconds-long run at small sizes (the tests do).

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

import gradspec
import gradspec.plots as gp
import gradspec.style as gs_style

SMALL = os.environ.get("GRADSPEC_NOTEBOOK_SMALL") == "1"
N = 64 if SMALL else 256  # hidden units
T = 120 if SMALL else 1000  # sequence length
GAIN = 2.0

# %% [markdown]
# ## The network and one input sequence
#
# A cell is data: `cell.step(params, h, x)` is a pure function and `params` a dict of
# arrays. The inputs drive every unit with standard deviation `INPUT_SCALE`
# ($W_{xh} \sim \mathcal N(0, 1/D)$ with $D = 1$).

# %%
INPUT_SCALE = 0.1
cell = gradspec.cells.RNN("tanh")
params = cell.init(
    jax.random.key(0), hidden=N, inputs=1, recurrent_init=gradspec.init.gaussian(GAIN)
)
xs = INPUT_SCALE * jax.random.normal(jax.random.key(1), (T, 1))
{name: value.shape for name, value in params.items()}

# %% [markdown]
# ## 1. Predict from the initialization
#
# `predict` recognises an i.i.d.-looking $W_{hh}$ and uses mean-field theory:
# $\lambda_{max} = \tfrac12 \log \chi$ with $\chi = \sigma_w^2\, \mathbb E[f'(\sqrt{q^*} z)^2]$.
# Driven by inputs, it averages $\tfrac12 \log \chi_t$ along them (the drive's variance
# changes from step to step); with no input and no bias in the ordered phase it gives the
# exact $\log(f'(0)\,\rho(W_{hh}))$ of the fixed point $h = 0$.
# Its `reasons` state the argument in words.

# %%
prediction = gradspec.predict(cell, params, T, inputs=xs)
print(f"regime     {prediction.regime}")
print(f"lambda_max {prediction.lyapunov:+.4f} per step ({prediction.source})")
print(f"time scale {prediction.timescale:.1f} steps")
for reason in prediction.reasons:
    print(" -", reason)

# %% [markdown]
# ## 2. Measure along the sequence
#
# `diagnose` measures the top Lyapunov exponent and the gradient profile
# $\ell_k = \log\|\partial L/\partial h_{T-k}\|$ (exact vector–Jacobian products, in the
# log domain so nothing under- or overflows).

# %%
diagnosis = gradspec.diagnose(cell, params, xs)
print(f"measured regime      {diagnosis.regime}")
print(f"Lyapunov lambda_1    {diagnosis.lyapunov:+.4f} per step")
print(f"profile slope        {diagnosis.profile_rate:+.4f} per step")
print(f"||dL/dh_0||/||dL/dh_T|| = 10^{diagnosis.log_gradient_ratio / jnp.log(10):+.1f}")
print(
    f"rho(W_hh) = {diagnosis.spectral_radius:.3f}, ||W_hh||_2 = {diagnosis.spectral_norm:.3f}"
)
print(f"prediction and measurement agree: {prediction.regime == diagnosis.regime}")

# %% [markdown]
# ## Figures
#
# The spectrum of $W_{hh}$ against the circular law (eigenvalues) and the quarter-circle
# law (singular values), and the gradient profile with the predicted slope. Each plot
# function takes plain results and returns a Figure in the house style.

# %%
spectrum = gradspec.weight_spectrum(params["W_hh"])
with gs_style.context():
    fig, axes = plt.subplots(1, 2, figsize=gs_style.figsize("two", 0.4))
gp.plot_eigenvalues(spectrum, gain=GAIN, ax=axes[0])
gp.plot_singular_values(spectrum, gain=GAIN, ax=axes[1])
fig

# %%
profile = gradspec.gradient_profile(cell, params, xs)
gp.plot_gradient_profiles(
    [
        {
            "label": f"tanh, $g = {GAIN}$",
            "log_norms": profile,
            "lambda_max": prediction.lyapunov,
            "lambda_se": prediction.uncertainty,
        },
    ]
)

# %% [markdown]
# ## A remedy in one line
#
# `gradspec.init.critical` picks the gain where $\chi = 1$ for this nonlinearity and
# input drive: the gradient neither vanishes nor explodes per step.

# %%
critical = cell.init(
    jax.random.key(0),
    hidden=N,
    inputs=1,
    recurrent_init=gradspec.init.critical("tanh", sigma_x=INPUT_SCALE),
)
critical_prediction = gradspec.predict(cell, critical, T, inputs=xs)
print(
    f"critical gain: {float(gradspec.theory.critical_gain('tanh', sigma_x=INPUT_SCALE)):.4f}"
)
print(
    f"regime {critical_prediction.regime}, lambda_max {critical_prediction.lyapunov:+.4f}"
)
gp.plot_gradient_profiles(
    [
        {
            "label": f"tanh, $g = {GAIN}$",
            "log_norms": profile,
            "lambda_max": prediction.lyapunov,
            "lambda_se": prediction.uncertainty,
        },
        {
            "label": "tanh, critical gain",
            "log_norms": gradspec.gradient_profile(cell, critical, xs),
            "lambda_max": critical_prediction.lyapunov,
            "lambda_se": critical_prediction.uncertainty,
        },
    ]
)
