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
# # Gradient flossing: train the dynamics to the edge of stability first
#
# A recurrent network whose top Lyapunov exponent is $\lambda_1 < 0$ forgets at rate
# $e^{\lambda_1}$ per step: the error signal of a dependency $k$ steps back arrives
# damped by $e^{k \lambda_1}$. *Gradient flossing* (Engelken, NeurIPS 2023) makes the
# exponents themselves a loss,
#
# $$\mathcal L_{\rm floss} = \frac1k \sum_{i=1}^k (\lambda_i - \lambda^*)^2,$$
#
# measured by Benettin's QR sweep over a short driven trajectory and differentiated
# through the QR decompositions, and descends it before (or during) training.
#
# This notebook
#
# 1. measures $\lambda_1$ of a tanh RNN driven by delayed-XOR bits,
# 2. differentiates the flossing loss and uses `floss`, the optax transformation,
# 3. trains the same network and seeds with and without flossing (pre-flossing, then
#    inter-flossing every 250 steps), recording the exponents through training
#    (`TrainConfig(lyapunov_every=...)`).
#
# Set `GRADSPEC_NOTEBOOK_SMALL=1` for a seconds-long run at small sizes (the tests do).

# %%
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradspec
import gradspec.plots as gp
from gradspec.training import (
    FlossConfig,
    TrainConfig,
    floss,
    flossing_loss,
    init_params,
    lyapunov_drive,
    task_inputs,
    train,
)

SMALL = os.environ.get("GRADSPEC_NOTEBOOK_SMALL") == "1"
DELAY = 5 if SMALL else 20  # delayed XOR: the bits d and 2d steps back
CONFIG = TrainConfig(
    task="delayed_xor",
    T=8 * DELAY if SMALL else 130,
    task_options={"delay": DELAY, "encoding": "binary"},  # 0/1 bits, as Engelken's
    hidden=16 if SMALL else 64,
    init="gaussian",
    gain=1.0,
    batch=16,
    learning_rate=1e-3,
    clip_norm=1.0,
    steps=300 if SMALL else 5000,
    lyapunov_every=50 if SMALL else 250,
    lyapunov_k=4,
)
FLOSSING = FlossConfig(
    k=8 if SMALL else 32,  # half the exponents
    T=60 if SMALL else 150,  # horizon of the flossing sweep
    warmup=10 if SMALL else 20,
    pre_steps=100 if SMALL else 300,
    during=(100, 200) if SMALL else tuple(range(250, 5000, 250)),  # inter-flossing
    during_steps=20 if SMALL else 50,
)  # with the run's optimizer, Adam at 1e-3 (at 1e-2 the flossing loss diverges)

# %% [markdown]
# ## The network's exponents, driven by the task
#
# `lyapunov_drive(config)` is one fixed sequence of the task: the drive every record
# through training uses. The input bits push the tanh units towards saturation, so
# the driven network contracts much faster than the undriven one would.

# %%
cell = CONFIG.make_cell()
params = init_params(CONFIG)
xs = lyapunov_drive(CONFIG)
WARMUP = xs.shape[0] // 10
lam = gradspec.lyapunov_spectrum(cell, params["cell"], xs, k=4, warmup=WARMUP)
print("lambda_1..4 at init:", np.round(np.asarray(lam), 3))
damping = float(np.exp(2 * DELAY * lam[0]))
print(f"a gradient {2 * DELAY} steps back is damped by ~{damping:.1e}")

# %% [markdown]
# ## The flossing loss and its gradient
#
# `flossing_loss` is `lyapunov_spectrum` squared and averaged, so `jax.grad` goes
# through the QR sweep. The start state is the default relaxed one, held fixed.

# %%
sample = task_inputs(CONFIG.task, CONFIG.T, **dict(CONFIG.task_options))
drive = sample(jax.random.key(1), FLOSSING.T)
loss, grads = jax.value_and_grad(flossing_loss, argnums=1)(
    cell, params["cell"], drive, k=FLOSSING.k, warmup=FLOSSING.warmup
)
print(f"flossing loss {float(loss):.4f}")
print({name: float(jnp.linalg.norm(g)) for name, g in grads.items()})

# %% [markdown]
# ## `floss`: an optax transformation
#
# `floss(...)` adds the flossing gradient to whatever gradient it receives and keeps
# its PRNG key (the drives) in the optax state. Chained in front of an optimizer with
# zero task gradients, it *is* pre-flossing; in front of clipping it floss during
# training. Only the cell is flossed: the readout's update is exactly zero.

# %%
opt = optax.chain(
    floss(cell, sample, k=FLOSSING.k, T=FLOSSING.T, warmup=FLOSSING.warmup),
    optax.adam(CONFIG.learning_rate),
)
state = opt.init(params)
step = jax.jit(opt.update)
p = params
for _ in range(50):
    updates, state = step(jax.tree.map(jnp.zeros_like, p), state, p)
    p = optax.apply_updates(p, updates)
after = gradspec.lyapunov_spectrum(cell, p["cell"], xs, k=4, warmup=WARMUP)
print("lambda_1 after 50 flossing steps:", round(float(after[0]), 3))
print("readout unchanged:", bool(jnp.all(p["readout"]["W"] == params["readout"]["W"])))

# %% [markdown]
# ## Training with and without flossing
#
# `TrainConfig(flossing=FlossConfig(pre_steps=..., during=..., during_steps=...))` runs
# the flossing steps inside the compiled training program: before step 0, and before
# each step in `during`. Pre-flossing alone does not last at d = 20: training pulls
# $\lambda_1$ back to about $-0.25$ within 250 steps; inter-flossing keeps it near 0.
# `lyapunov_every` records the top exponents (after each step's flossing, before its
# update). Same seeds, same batches.

# %%
SEEDS = [0, 1]
plain = train(CONFIG, seeds=SEEDS, progress=False)
flossed = train(
    dataclasses.replace(CONFIG, flossing=FLOSSING), seeds=SEEDS, progress=False
)
for label, result in (("not flossed", plain), ("flossed", flossed)):
    acc = np.asarray(result.accuracy)[:, -50:].mean(1)
    lam1 = np.asarray(result.lyapunov)[:, :, 0]
    for i, seed in enumerate(SEEDS):
        print(
            f"{label:<12} seed {seed}: {result.outcome[i]:<9} accuracy {acc[i]:.3f}  "
            f"lambda_1 {lam1[i, 0]:+.3f} (step 0) -> {lam1[i, -1]:+.3f}"
        )

# %% [markdown]
# ## Exponents through training, beside the loss

# %%
runs = gp.exponent_runs(plain) + gp.exponent_runs(flossed)
gp.plot_flossing(runs, smooth=max(1, CONFIG.steps // 70), exponents=2)
