"""Gradient flossing and Lyapunov recording: cost per step against a plain training step.

The setting of ``examples/flossing.py``: a tanh RNN (N = 64) on delayed XOR (d = 20,
T = 130, 0/1 bits, batch 16), Adam, float32. It times, as seconds per step of the
compiled ``lax.scan`` that :func:`gradspec.train` runs (one seed, compilation and
warm-up excluded, every timing ended by ``block_until_ready``):

- ``plain``: the training step (fresh batch, forward, backward, records, Adam);
- ``floss_step_k<k>``: one flossing step alone (the pre-/inter-flossing phase step:
  a fresh drive of 150 steps, the k-column QR sweep with its reverse pass, Adam), for
  k = 1, 8, 32;
- ``train_floss_every_k<k>``: a training step with flossing during training at every
  step (``FlossConfig(every=1)``: task gradient + flossing gradient);
- ``lyapunov_k<k>_every_1``: a training step that records the top k exponents every
  step (``lyapunov_every=1``; the default-off cost is zero, every n steps costs 1/n).

Ratios are seconds per step over the plain step's, measured in the same process in
interleaved rounds (every case once per round, the order rotated), so that a burst of
load from other processes hits all of them alike; each case's best round counts.

Usage::

    python -m benchmarks.bench_flossing [--quick] [--out results_flossing.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time

import jax
import jax.numpy as jnp

from gradspec.training import FlossConfig, TrainConfig
from gradspec.training import flossing as _flossing
from gradspec.training.loop import _init_carry, _resolve, _run_chunk

from .train_throughput import device_info

HIDDEN, DELAY, T, BATCH = 64, 20, 130, 16
HORIZON, WARMUP = 150, 20
KS = (1, 8, 32)


def _config(**fields) -> TrainConfig:
    return TrainConfig(task="delayed_xor", T=T,
                       task_options={"delay": DELAY, "encoding": "binary"},
                       hidden=HIDDEN, init="gaussian", batch=BATCH, optimizer="adam",
                       learning_rate=1e-3, clip_norm=1.0, dtype="float32", **fields)


def _interleaved(cases: dict, repeats: int) -> dict:
    """name -> best wall seconds of ``cases[name]()`` over ``repeats`` interleaved
    rounds, after one warm-up call each (the best, not the median, as
    ``benchmarks/_timing.py`` compares: bursts of load only ever add time)."""
    for fn in cases.values():
        fn()
    names, best = list(cases), dict.fromkeys(cases, float("inf"))
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            cases[name]()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def train_case(config: TrainConfig, steps: int):
    """A call running ``steps`` steps of the compiled training scan of ``config`` (one
    seed)."""
    for_init, for_step = _resolve(config)
    carry = jax.block_until_ready(_init_carry(for_init, jnp.uint32(0), False, None))
    # Steps 1..: no scheduled phase, so only the per-step work is timed.
    return lambda: jax.block_until_ready(_run_chunk(for_step, carry, 1, steps, False))


@functools.partial(jax.jit, static_argnames=("config", "steps"))
def _flossing_steps(config, cell_params, state, steps):
    fc = dataclasses.replace(config.flossing, pre_steps=steps)
    params, state = _flossing.run_phases(dataclasses.replace(config, flossing=fc),
                                         {"cell": cell_params}, state, jnp.int32(0))
    return params, state


def floss_case(k: int, steps: int):
    """A call running ``steps`` flossing steps (the pre-/inter-flossing phase's own)."""
    config = _resolve(_config(flossing=FlossConfig(k=k, T=HORIZON, warmup=WARMUP,
                                                   pre_steps=1)))[1]
    params = _init_carry(config, jnp.uint32(0), False, None)[0]["cell"]
    state = _flossing.init_phases(config, params, jax.random.key(0))
    return lambda: jax.block_until_ready(_flossing_steps(config, params, state, steps))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, one repeat")
    parser.add_argument("--out", default=None, help="JSON output file")
    args = parser.parse_args(argv)
    steps, floss_steps, repeats = (10, 3, 1) if args.quick else (100, 30, 5)

    cases = {"plain": (train_case(_config(), steps), steps)}
    for k in KS:
        cases[f"floss_step_k{k}"] = floss_case(k, floss_steps), floss_steps
        every = FlossConfig(k=k, T=HORIZON, warmup=WARMUP, every=1)
        cases[f"train_floss_every_k{k}"] = (
            train_case(_config(flossing=every), floss_steps), floss_steps)
    for k in (4, 32):
        cases[f"lyapunov_k{k}_every_1"] = (
            train_case(_config(lyapunov_every=1, lyapunov_k=k), steps), steps)
    best = _interleaved({name: fn for name, (fn, _) in cases.items()}, repeats)
    results = [{"impl": name, "steps_timed": n, "s_per_step": best[name] / n}
               for name, (_, n) in cases.items()]
    for row in results:
        print(f"{row['impl']:26s} {1e3 * row['s_per_step']:9.3f} ms/step", flush=True)
    base = results[0]["s_per_step"]
    ratios = {r["impl"]: r["s_per_step"] / base for r in results}
    report = {
        "benchmark": "flossing",
        "settings": {"hidden": HIDDEN, "delay": DELAY, "T": T, "batch": BATCH,
                     "horizon": HORIZON, "warmup": WARMUP, "ks": list(KS),
                     "dtype": "float32", "quick": args.quick, "repeats": repeats},
        "device": device_info(),
        "results": results,
        "ratios_to_plain_step": ratios,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    print(json.dumps(ratios, indent=2))
    return report


if __name__ == "__main__":
    main()
