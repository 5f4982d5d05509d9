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
# # Training check: does the predicted regime show up in training?
#
# For a few initializations of a vanilla RNN on the adding problem (a long-range task
# with a known chance-level loss, 1/6), this notebook
#
# 1. **predicts** the regime from the initial parameters alone (`gradspec.predict`,
#    driven by the task's own inputs), then
# 2. **trains** with optax (`gradspec.train`) and reads off the outcome:
#    `solved`, `stalled` (the loss stays near chance: what vanishing gradients do) or
#    `diverged` (non-finite loss: what exploding gradients do without clipping).
#
# The expectation is the diagonal vanishing → stalled, critical → solved, exploding →
# diverged; the optimizer has its say too (Adam normalises the step size, so an
# exploding gradient need not diverge).

# %%
import os

import gradspec
import gradspec.plots as gp
from gradspec.training import TrainConfig, init_params, task_batch, train

SMALL = os.environ.get("GRADSPEC_NOTEBOOK_SMALL") == "1"

# %% [markdown]
# ## The runs
#
# One task length and network size; three initializations trained with Adam, and the
# exploding one again with plain SGD at a large step, without (and, at full size, with)
# gradient clipping.

# %%
COMMON = dict(
    task="adding",
    T=10 if SMALL else 50,
    hidden=32 if SMALL else 64,  # N >= 32: predict trusts mean-field theory
    batch=32 if SMALL else 64,
    steps=150 if SMALL else 3000,
    learning_rate=1e-2,
    seed=0,
)
RUNS = [
    ("tanh, gaussian(0.5), Adam", dict(init="gaussian", gain=0.5)),
    ("tanh, orthogonal(1), Adam", dict(init="orthogonal", gain=1.0)),
    ("tanh, gaussian(3), Adam", dict(init="gaussian", gain=3.0)),
    (
        "tanh, gaussian(3), SGD",
        dict(init="gaussian", gain=3.0, optimizer="sgd", learning_rate=1.0),
    ),
]
if not SMALL:
    RUNS.append(
        (
            "tanh, gaussian(3), SGD + clip 1",
            dict(
                init="gaussian",
                gain=3.0,
                optimizer="sgd",
                learning_rate=1.0,
                clip_norm=1.0,
            ),
        )
    )

# %% [markdown]
# ## Predict, then train
#
# The prediction uses the same initial parameters and input batches the training run
# starts from (`init_params`, `task_batch`). `gradspec.verify` (and `gradspec verify`
# on the command line) automates this loop and also checks the gradient regime that
# training itself observed.

# %%
rows, runs = [], []
for label, fields in RUNS:
    config = TrainConfig(**{**COMMON, **fields})
    params = init_params(config)["cell"]
    inputs = task_batch(config).inputs
    prediction = gradspec.predict(
        config.make_cell(), params, config.spec.length, inputs=inputs
    )
    result = train(config, progress=False)
    rows.append(
        {
            "label": label,
            "predicted_regime": prediction.regime,
            "lambda_max": prediction.lyapunov,
            "observed_outcome": result.outcome,
            "final_loss_ratio": float(result.final_loss) / result.baseline,
        }
    )
    runs += gp.runs_from_train(result, label)
print(
    f"{'run':<34} {'lambda_max':>10}  {'predicted':<10} {'outcome':<9} loss/baseline"
)
for r in rows:
    print(
        f"{r['label']:<34} {r['lambda_max']:>+10.4f}  {r['predicted_regime']:<10} "
        f"{r['observed_outcome']:<9} {r['final_loss_ratio']:.3g}"
    )

# %% [markdown]
# ## Training curves, coloured by outcome

# %%
if runs:
    gp.plot_training_curves(runs, smooth=max(1, COMMON["steps"] // 40))

# %% [markdown]
# ## Predicted regime vs observed outcome
#
# The diagonal is agreement. Off-diagonal cells are the interesting ones: a prediction
# the optimizer overruled (Adam taming an exploding gradient) or a task short enough
# that a vanishing gradient still reaches the marked inputs.

# %%
if rows:
    counts = gp.agreement_counts(rows)
    print(counts)
    gp.plot_agreement(counts)  # the counts above, not recounted
