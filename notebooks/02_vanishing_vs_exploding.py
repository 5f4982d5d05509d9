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
# # Vanishing vs exploding gradients in RNNs, with exact numbers
#
# The seed note of this project told the classic story in words: backpropagation
# through time multiplies one factor $f'(a_i) W_{hh}$ per step, so gradients of
# sigmoid/tanh RNNs shrink, large weights make them explode, and LSTM/GRU,
# initialization, ReLU, gradient clipping and truncated BPTT are the remedies.
#
# Here every claim is measured with gradspec: exact Jacobian products along real
# trajectories (no finite differences, no sampling of the product), mean-field theory
# for the prediction. Where the note was imprecise, the numbers say so.
#
# $$
# \frac{\partial L}{\partial h_{T-k}} = \frac{\partial L}{\partial h_T}
#   J_T J_{T-1} \cdots J_{T-k+1}, \qquad J_t = \mathrm{diag}(f'(a_t))\, W_{hh}.
# $$
#
# The growth rate of $\|\partial L/\partial h_{T-k}\|$ in k is the top Lyapunov exponent
# $\lambda_{max}$ (natural log per step): the gradient changes by a factor $e$ every
# $1/|\lambda_{max}|$ steps.

# %%
import math
import os

import jax
import jax.numpy as jnp
import optax

import gradspec
import gradspec.plots as gp
from gradspec import cells, init, theory
from gradspec.verdicts import classify  # the regime vocabulary: threshold 1/T here

SMALL = os.environ.get("GRADSPEC_NOTEBOOK_SMALL") == "1"
N = 32 if SMALL else 256  # hidden units
T = 100 if SMALL else 500  # sequence length
INPUT_SCALE = 0.1  # std of each unit's input drive
KEY = jax.random.key(0)
XS = INPUT_SCALE * jax.random.normal(jax.random.key(1), (T, 1))


def rate(profile):
    """Measured slope of log||dL/dh_{T-k}|| in k: least-squares fit to the profile."""
    return float(gradspec.profile_rate(profile))


def rnn(nonlinearity, recurrent_init, *, key=KEY):
    cell = cells.RNN(nonlinearity)
    return cell, cell.init(key, N, 1, recurrent_init=recurrent_init)


rows = []  # the summary table at the end
profiles = {}  # claim -> measured profile, reused by the summary figure


def record(claim, cell, params, predicted):
    """Measure the gradient profile along XS (exact VJPs) and its slope."""
    profile = gradspec.gradient_profile(cell, params, XS)
    measured = rate(profile)
    rows.append((claim, predicted, measured))
    profiles[claim] = profile
    print(f"{claim:<44} predicted {predicted:+.4f}   measured {measured:+.4f} per step")


# %% [markdown]
# ## 1. The product, exactly
#
# A linear RNN with $W_{hh} = w \cdot Q$ ($Q$ orthogonal) has $\|J_T \cdots J_{T-k+1}\| =
# w^k$ exactly. With $w = 0.9$ the gradient at lag k is $0.9^k$: the rate is
# $\log 0.9 = -0.1054$ per step, a factor $10^{-4.6}$ after 100 steps. gradspec's
# profile reproduces this to float rounding.

# %%
cell, params = rnn("linear", init.orthogonal(0.9))
profile = gradspec.gradient_profile(cell, params, XS)
slope = rate(profile)
print(f"slope {slope:+.6f} per step, log 0.9 = {math.log(0.9):+.6f}")
print(
    f"lag 100: 10^{float(profile[100]) / math.log(10):.3f} (0.9^100 = 10^{100 * math.log10(0.9):.3f})"
)
assert abs(slope - math.log(0.9)) < 1e-4

# %% [markdown]
# ## 2. Why tanh and sigmoid shrink the gradient — and when they do not
#
# The note: "for sigmoid or tanh, $f'(h) < 1$, so multiplying many small numbers gives
# zero". The derivative is bounded by $\gamma = \sup|f'|$: 1 for tanh, **1/4** for the
# sigmoid. Pascanu et al. turn that into a bound: with $\sigma_{max}$ the largest singular
# value of $W_{hh}$,
#
# $$\|J_T \cdots J_{T-k+1}\| \le (\gamma\, \sigma_{max})^k,$$
#
# so $\gamma \sigma_{max} < 1$ *guarantees* vanishing. A Gaussian $W_{hh}$ with gain g has
# $\sigma_{max} \approx 2g$ (quarter-circle law), so a sigmoid RNN vanishes for every
# $g < 2$, whatever the data.

# %%
for name in ("tanh", "sigmoid"):
    print(f"{name:8s} gamma = sup|f'| = {cells.NONLINEARITIES[name][1]}")
cell, params = rnn("sigmoid", init.gaussian(1.0))
bound = theory.gradient_bound(params, "sigmoid", 1)
print(
    f"sigmoid, g = 1: gamma * sigma_max = {math.exp(float(bound.log_rate)):.4f} "
    f"-> vanishing guaranteed: {bool(bound.vanishing_guaranteed)}"
)
print(f"   bound on the rate: {float(bound.log_rate):+.4f} per step")
record(
    "sigmoid, gaussian(1)",
    cell,
    params,
    float(theory.mean_field("sigmoid", 1.0).lambda_max),
)

# %% [markdown]
# But $f' \le 1$ alone does **not** make a tanh RNN's gradient vanish: $W_{hh}$ can
# amplify more than $f'$ shrinks. The exact condition (mean-field theory, Poole et al.
# 2016) is on
#
# $$\chi = \sigma_w^2\, \mathbb E\big[f'(\sqrt{q^*} z)^2\big], \qquad
#   \lambda_{max} = \tfrac12 \log \chi,$$
#
# the average squared slope at the network's own fixed-point variance $q^*$: vanishing
# for $\chi < 1$, exploding for $\chi > 1$. For tanh without bias the boundary is exactly
# $\sigma_w = 1$. The same tanh nonlinearity vanishes at $g = 0.8$ and explodes at
# $g = 2$, although $f' \le 1$ in both.

# %%
for g in (0.8, 1.0, 2.0):
    mf = theory.mean_field("tanh", g, sigma_x=INPUT_SCALE)
    cell, params = rnn("tanh", init.gaussian(g))
    record(f"tanh, gaussian({g})", cell, params, float(mf.lambda_max))
    print(f"   chi = {float(mf.chi):.4f}, regime {mf.regime}")

# %% [markdown]
# The note also says gradients explode "if $f'(h_i) > 1$": impossible for tanh and
# sigmoid ($f' \le 1$ and $\le 1/4$). Explosion comes from $W_{hh}$ alone.
#
# ## 3. Large weights explode
#
# A linear RNN with $W_{hh} = 1.2\, Q$: rate $\log 1.2 = +0.1823$ per step exactly,
# $10^{7.9}$ over 100 steps. A tanh RNN with $g = 3$ is chaotic: the state stays bounded
# (tanh saturates) while the gradient grows at the mean-field rate.

# %%
cell, params = rnn("linear", init.orthogonal(1.2))
record("linear, orthogonal(1.2)", cell, params, math.log(1.2))
assert abs(rows[-1][2] - math.log(1.2)) < 1e-4
cell, params = rnn("tanh", init.gaussian(3.0))
record(
    "tanh, gaussian(3)",
    cell,
    params,
    float(theory.mean_field("tanh", 3.0, sigma_x=INPUT_SCALE).lambda_max),
)
print(
    f"   max |h_t| = {float(jnp.abs(gradspec.trajectory(cell, params, XS)).max()):.3f} (bounded)"
)

# %% [markdown]
# The note recommends to "avoid unbounded activations (like plain tanh with very large
# inputs)". tanh is bounded, and large inputs do the opposite of exploding: they
# saturate the units, $f' \to 0$, and the gradient *vanishes*. Mean-field theory puts a
# number on it: the same $g = 1.5$ tanh RNN explodes with a weak input drive and vanishes
# with a strong one.

# %%
for sigma_x in (0.0, 0.5, 1.0, 2.0):
    mf = theory.mean_field("tanh", 1.5, sigma_x=sigma_x)
    print(
        f"tanh, g = 1.5, input std {sigma_x:3.1f}: chi = {float(mf.chi):.4f}, "
        f"lambda_max = {float(mf.lambda_max):+.4f} ({mf.regime})"
    )

# %% [markdown]
# ## 4. The remedies, measured
#
# ### LSTM and GRU
#
# Gates help *when they are open*. With PyTorch's default initialization (all weights
# and biases small) the forget gate sits near $\sigma(0) = 1/2$, so the memory cell
# roughly halves per step: a default LSTM (and GRU) vanishes at a rate between
# $\log \tfrac12 = -0.69$ and 0, measured below. Setting the forget-gate bias to 3
# ($\sigma(3) = 0.953$, Jozefowicz et al. 2015) keeps the memory: the rate rises to
# about 0 per step.

# %%
lstm = cells.LSTM()
lstm_params = lstm.init(KEY, N, 1)
lam_default = gradspec.predict(lstm, lstm_params, T, inputs=XS, samples=2).lyapunov
record("LSTM, PyTorch init", lstm, lstm_params, lam_default)
# Gate order i, f, g, o (PyTorch): rows N..2N of the biases are the forget gate.
open_gate = dict(lstm_params)
open_gate["bias_hh"] = lstm_params["bias_hh"].at[N : 2 * N].set(3.0)
open_gate["bias_ih"] = lstm_params["bias_ih"].at[N : 2 * N].set(0.0)
lam_open = gradspec.predict(lstm, open_gate, T, inputs=XS, samples=2).lyapunov
record("LSTM, forget-gate bias 3", lstm, open_gate, lam_open)
gru = cells.GRU()
gru_params = gru.init(KEY, N, 1)
record(
    "GRU, PyTorch init",
    gru,
    gru_params,
    gradspec.predict(gru, gru_params, T, inputs=XS, samples=2).lyapunov,
)

# %% [markdown]
# ### Initialization: orthogonal and critical
#
# An orthogonal $W_{hh}$ has every singular value equal to 1: a *linear* RNN keeps the
# gradient norm exactly (rate 0). With tanh the factor $f' < 1$ still shrinks it a little.
# `init.critical` instead picks the Gaussian gain where $\chi = 1$ for the actual input
# drive; for tanh that gain is above 1.

# %%
cell, params = rnn("linear", init.orthogonal(1.0))
record("linear, orthogonal(1)", cell, params, 0.0)
cell, params = rnn("tanh", init.orthogonal(1.0))
record(
    "tanh, orthogonal(1)",
    cell,
    params,
    gradspec.predict(cell, params, T, inputs=XS, samples=2).lyapunov,
)
g_star = float(theory.critical_gain("tanh", sigma_x=INPUT_SCALE))
cell, params = rnn("tanh", init.critical("tanh", sigma_x=INPUT_SCALE))
record(f"tanh, critical gain {g_star:.4f}", cell, params, 0.0)

# %% [markdown]
# ### ReLU
#
# "Use ReLU instead of tanh/sigmoid": $f' \in \{0, 1\}$, so active units do not shrink the
# gradient, but inactive ones zero it. The mean-field slope average is
# $\mathbb E[f'^2] = 1/2$, so the critical gain is $\sqrt 2$, not 1 (He et al. 2015), and
# the identity initialization of the IRNN (Le et al. 2015) sits at the edge as long as
# units stay active.

# %%
print(
    f"relu critical gain = {float(theory.critical_gain('relu')):.6f} (sqrt 2 = {math.sqrt(2):.6f})"
)
print(
    f"relu, gaussian(1): chi = {float(theory.mean_field('relu', 1.0).chi):.4f} (vanishing)"
)
cell, params = rnn("relu", init.gaussian(math.sqrt(2.0)))
prof = gradspec.gradient_profile(cell, params, XS)
print(
    f"relu, gaussian(sqrt 2): measured rate {rate(prof):+.4f}; "
    f"lags with an exactly zero gradient: {int(jnp.sum(jnp.isneginf(prof)))}"
)
cell, params = rnn("relu", init.identity(1.0))
record("relu, identity (IRNN)", cell, params, 0.0)

# %% [markdown]
# ### Gradient clipping
#
# The note says to "clip gradients to a minimum threshold to prevent them from
# vanishing". Clipping by norm multiplies the *whole* gradient by one scalar
# $c = \min(1, \tau/\|g\|)$: it caps explosions, but the ratio between the gradient at
# lag k and at lag 0 is unchanged, so it cannot rescue a vanishing gradient. Here the
# per-lag gradients $\partial L/\partial h_{T-k}$ of an exploding and of a vanishing RNN
# are clipped together as one optax update (in float64: their ratio leaves float32's
# range at full size).


# %%
def lag_gradients(cell, params, xs=XS, *, window=0):
    """dL/dh_{T-k} for k = 0..T-1 (row k), by differentiating through additive zero
    perturbations of the states: one reverse pass. ``window`` > 0 truncates BPTT as
    gradspec.train does: a stop_gradient on the carried state every ``window`` steps,
    aligned to the end of the sequence."""
    readout = gradspec.default_readout(cell, N, xs.dtype)
    steps_left = jnp.arange(xs.shape[0] - 1, -1, -1)  # T - t for t = 1..T

    def loss(eps):
        def body(h, inputs):
            x, e, left = inputs
            h = cell.step(params, h, x) + e
            carry = h
            if window:
                carry = jnp.where(left % window == 0, jax.lax.stop_gradient(h), h)
            return carry, h

        _, hs = jax.lax.scan(body, jnp.zeros(N), (xs, eps, steps_left))
        return readout @ hs[-1]

    return jax.grad(loss)(jnp.zeros((xs.shape[0], N)))[::-1]


clip = optax.clip_by_global_norm(1.0)
# In float64: over T = 500 steps the ratio is ~1e-50 (g = 0.8) and ~1e66 (g = 3),
# outside float32's range (1e-38 to 3e38), where it would read 0 and NaN (inf / inf).
with jax.enable_x64(True):
    for g in (0.8, 3.0):
        cell, params = rnn("tanh", init.gaussian(g))
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        grads = lag_gradients(cell, params, XS.astype(jnp.float64))
        clipped, _ = clip.update(grads, clip.init(grads))
        before = jnp.linalg.norm(grads[-1]) / jnp.linalg.norm(grads[0])
        after = jnp.linalg.norm(clipped[-1]) / jnp.linalg.norm(clipped[0])
        norms = float(jnp.linalg.norm(grads)), float(jnp.linalg.norm(clipped))
        print(
            f"tanh, g = {g}: ||g_lag{T - 1}|| / ||g_lag0|| = {float(before):.4e} "
            f"before clipping, {float(after):.4e} after; global norm "
            f"{norms[0]:.3e} -> {norms[1]:.3e}"
        )
        assert grads.dtype == jnp.float64 and 0 < before < jnp.inf  # a real ratio
        assert jnp.allclose(before, after, rtol=1e-4)

# %% [markdown]
# ### Truncated BPTT
#
# Backpropagating through windows of w steps sets $\partial L/\partial h_{T-k} = 0$ for
# $k \ge w$: it bounds the cost and any explosion, but it does not carry gradient further
# back: it gives up the long-range dependency instead of fixing its gradient.
# `gradspec.train` implements it (`TrainConfig(tbptt=w)`); notebook 04 trains with it.
# With the perturbation trick above, truncation is a `stop_gradient` every w steps:

# %%
W_TRUNC = 10
cell, params = rnn("tanh", init.gaussian(1.0))
full = jnp.linalg.norm(lag_gradients(cell, params), axis=1)
truncated = jnp.linalg.norm(lag_gradients(cell, params, window=W_TRUNC), axis=1)
print(f"full BPTT: nonzero gradient at {int(jnp.sum(full > 0))} of {T} lags")
print(
    f"window {W_TRUNC}: nonzero at lags 0..{int(jnp.sum(truncated > 0)) - 1}, exactly zero beyond"
)
assert int(jnp.sum(truncated > 0)) == W_TRUNC
assert jnp.allclose(truncated[:W_TRUNC], full[:W_TRUNC], rtol=1e-5)

# %% [markdown]
# ## Summary
#
# Predicted $\lambda_{max}$ (mean field for i.i.d. Gaussian weights, exact values for the
# linear cases, sampled Lyapunov exponents for gated and orthogonal cells) against the
# measured slope of the gradient profile along one input sequence, and the measured
# regime with the threshold $1/T$ (the gradient changes by less than a factor $e$ over
# the sequence). Mean-field numbers carry finite-size errors of order 1/N, which
# decide the sign right at the critical gain: "critical" is a band, not a point.

# %%
print(f"{'configuration':<44} {'predicted':>10} {'measured':>10}   regime")
for claim, predicted, measured in rows:
    print(
        f"{claim:<44} {predicted:>+10.4f} {measured:>+10.4f}   {classify(measured, 1 / T)}"
    )

# %%
# The profiles measured above (same networks, same inputs): nothing is recomputed.
predicted_of = {claim: lam for claim, lam, _ in rows}
summary = [  # (claim recorded above, label in the figure)
    ("tanh, gaussian(0.8)", "tanh, $g = 0.8$"),
    ("tanh, gaussian(3)", "tanh, $g = 3$"),
    ("sigmoid, gaussian(1)", "sigmoid, $g = 1$"),
    (f"tanh, critical gain {g_star:.4f}", "tanh, critical"),
    ("LSTM, forget-gate bias 3", "LSTM, forget bias 3"),
]
gp.plot_gradient_profiles(
    [
        {
            "label": label,
            "log_norms": profiles[claim],
            "lambda_max": float(predicted_of[claim]),
        }
        for claim, label in summary
    ]
)
