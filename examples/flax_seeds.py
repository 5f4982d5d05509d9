"""A Flax model, 16 init seeds at once: vmap the conversion and the measurement.

Builds ``flax.linen.SimpleCell`` (tanh) at three recurrent scales, draws 16 seeds of each
with ``jax.vmap`` over ``cell.init``, converts them with ``gradspec.interop.from_flax`` *inside*
the vmap and measures every seed with ``gradspec.measurement`` under ``jit`` — no Python
loop over seeds. Draws the gradient profiles as seed means with standard-error bands
(``docs/flax_seed_bands.png``) and times the measurement beside one Adam step of the same
model (``--time``).

Run: ``python examples/flax_seeds.py [--out docs/flax_seed_bands.png] [--time]``.
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import gradspec
from gradspec.plots import plot_gradient_profiles

N, D, T, SEEDS = 64, 1, 300, 16


def measure_seeds(scale: float, xs):
    """gradspec.measurement of 16 Flax inits whose recurrent kernel is scaled by
    ``scale`` (Flax's default is orthogonal, so ``scale`` is the gain)."""
    module = nn.SimpleCell(N)

    def one(key):
        variables = module.init(key, jnp.zeros(N), jnp.zeros(D))
        params = variables["params"]  # SimpleCell: "h" (recurrent) and "i" (input)
        variables = {"params": {**params, "h": {"kernel": scale * params["h"]["kernel"]}}}
        cell, params = gradspec.interop.from_flax(module, variables)
        return gradspec.measurement(cell, params, xs)

    return jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), SEEDS))


def time_beside_training(xs):
    """Seconds per call: one measurement of one network (jit) and one Adam step of the
    same network on a regression loss through the same scan."""
    module = nn.SimpleCell(N)
    variables = module.init(jax.random.key(0), jnp.zeros(N), jnp.zeros(D))
    cell, params = gradspec.interop.from_flax(module, variables)
    measure = jax.jit(lambda p: gradspec.measurement(cell, p, xs))
    opt = optax.adam(1e-3)

    def loss(p):
        return jnp.mean(gradspec.trajectory(cell, p, xs, jnp.zeros(N))[:, 0] ** 2)

    @jax.jit
    def step(p, s):
        g = jax.grad(loss)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    state = opt.init(params)
    out = {}
    for name, fn in (("measurement", lambda: measure(params)),
                     ("adam step", lambda: step(params, state))):
        jax.block_until_ready(fn())
        t0, reps = time.perf_counter(), 20
        for _ in range(reps):
            jax.block_until_ready(fn())
        out[name] = (time.perf_counter() - t0) / reps
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/flax_seed_bands.png")
    parser.add_argument("--time", action="store_true")
    args = parser.parse_args()
    xs = jax.random.normal(jax.random.key(1), (T, D))
    curves = []
    for scale in (0.8, 1.0, 1.5):
        m = measure_seeds(scale, xs)
        print(f"scale {scale}: lambda_1 = {float(m.lyapunov.mean()):+.4f} "
              f"+- {float(m.lyapunov.std(ddof=1)) / SEEDS ** 0.5:.4f} over {SEEDS} seeds")
        curves.append({"log_norms": m.profile, "label": f"scale {scale}"})
    fig = plot_gradient_profiles(curves)
    fig.savefig(args.out, dpi=200, bbox_inches="tight")
    print(f"wrote {args.out}")
    if args.time:
        for name, seconds in time_beside_training(xs).items():
            print(f"{name}: {1e3 * seconds:.2f} ms")


if __name__ == "__main__":
    main()
