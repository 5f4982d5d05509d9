"""Gradient flossing on delayed XOR: the same network and seeds, with and without it.

A tanh RNN (N = 64, Gaussian gain 1) learns delayed XOR (the XOR of the bits d = 20
and 2d = 40 steps back, sequences of T = 130) with Adam (1e-3), gradient clipping at
1.0 and batch 16. The bits come as 0/1, as in Engelken's code (``encoding="binary"``).
Driven by them the network contracts (lambda_1 ~ -0.3 per step): the error signal of
a dependency 2d steps back arrives damped by e^{2d lambda_1} ~ 1e-5, and the loss stays
at chance. Flossing (Engelken, NeurIPS 2023) pulls the top k = 32 Lyapunov exponents
to zero (horizon 150, warm-up 20) with the run's Adam at 1e-3: 300 pre-flossing steps
before training, then 50 inter-flossing steps every 250 training steps. Both runs
record lambda_1..lambda_4 every 250 steps on one fixed task sequence
(``TrainConfig(lyapunov_every=...)``; a record at a multiple of 250 is taken after
that step's flossing).

Pre-flossing alone is not enough here: training pulls lambda_1 back to ~ -0.25 within
250 steps and the loss stays at chance (seed 0, 3500 steps); with inter-flossing the
exponents stay near zero and both seeds learn the task. With +-1 bits
(``encoding="sign"``) the driven network contracts harder (lambda_1 ~ -0.5) and 300
Adam steps at 1e-3 bring lambda_1 only to ~ -0.13.

Run: ``python examples/flossing.py`` (``--delay``, ``--length``, ``--steps``,
``--pre-steps``, ``--inter-every``, ``--inter-steps``, ``--plot out.png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from gradspec.training import FlossConfig, TrainConfig, train

#: The experiment's settings (``run(**EXPERIMENT)``; the slow test runs them).
EXPERIMENT = dict(delay=20, length=130, steps=5000, pre_steps=300, inter_every=250,
                  inter_steps=50, seeds=(0, 1))

BASE = TrainConfig(
    task="delayed_xor",
    T=EXPERIMENT["length"],
    task_options={"delay": EXPERIMENT["delay"], "encoding": "binary"},
    cell="rnn",
    nonlinearity="tanh",
    hidden=64,
    init="gaussian",
    gain=1.0,
    batch=16,
    optimizer="adam",
    learning_rate=1e-3,
    clip_norm=1.0,
    lyapunov_every=250,
    lyapunov_k=4,
    dtype="float32",  # also under x64 (the test suite's): the numbers of the README
)
#: Flossing: k = 32 exponents over a horizon of 150 steps, 20 of warm-up, to 0, with
#: the run's optimizer (Adam at 1e-3; at 1e-2 the flossing loss diverges).
FLOSSING = FlossConfig(k=32, T=150, warmup=20, target=0.0)


def configs(delay: int, length: int, steps: int, pre_steps: int, inter_every: int = 0,
            inter_steps: int = 0):
    """(plain, flossed) TrainConfigs of the experiment: inter-flossing before the
    training steps inter_every, 2 inter_every, ... (none when 0)."""
    options = dict(BASE.task_options, delay=delay)
    plain = dataclasses.replace(BASE, T=length, task_options=options, steps=steps)
    during = tuple(range(inter_every, steps, inter_every)) if inter_every else ()
    return plain, dataclasses.replace(plain, flossing=dataclasses.replace(
        FLOSSING, pre_steps=pre_steps, during=during,
        during_steps=inter_steps if during else 0))


def run(delay: int, length: int, steps: int, pre_steps: int, inter_every: int = 0,
        inter_steps: int = 0, seeds=(0, 1), progress: bool = False):
    """(plain, flossed): the two :class:`gradspec.TrainResult`, seeds vmapped."""
    both = configs(delay, length, steps, pre_steps, inter_every, inter_steps)
    return tuple(train(c, seeds=list(seeds), progress=progress) for c in both)


def summary(result, label: str, seconds: float | None = None) -> list[str]:
    """One line per seed: outcome, final loss, last-250-step accuracy, lambda_1."""
    lines = []
    acc = np.asarray(result.accuracy)
    lam = np.asarray(result.lyapunov)[..., 0]
    for i, seed in enumerate(result.seeds):
        tail = acc[i, -min(250, acc.shape[1]):].mean()
        lines.append(
            f"{label:<12} seed {seed}  {result.outcome[i]:<9} "
            f"loss {float(np.asarray(result.final_loss)[i]):.4f} "
            f"(chance {result.baseline:.4f})  accuracy {tail:.3f}  "
            f"lambda_1 at step 0: {lam[i, 0]:+.3f}  at the end: {lam[i, -1]:+.3f}")
    if seconds is not None:
        lines.append(f"{'':<12} {seconds:.0f} s (both seeds, compile included)")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=int, default=EXPERIMENT["delay"])
    parser.add_argument("--length", type=int, default=EXPERIMENT["length"],
                        help="the task's T (sequence length)")
    parser.add_argument("--steps", type=int, default=EXPERIMENT["steps"])
    parser.add_argument("--pre-steps", type=int, default=EXPERIMENT["pre_steps"])
    parser.add_argument("--inter-every", type=int, default=EXPERIMENT["inter_every"],
                        help="inter-flossing every this many steps (0: none)")
    parser.add_argument("--inter-steps", type=int, default=EXPERIMENT["inter_steps"])
    parser.add_argument("--seeds", type=int, nargs="+", default=EXPERIMENT["seeds"])
    parser.add_argument("--plot", default=None, help="save the figure to this path")
    args = parser.parse_args(argv)
    lines, results = [], []
    print(f"delayed XOR d = {args.delay}, T = {args.length}, {args.steps} steps, seeds "
          f"{list(args.seeds)}; flossed: {args.pre_steps} pre-flossing steps, "
          f"{args.inter_steps} inter-flossing steps every {args.inter_every}")
    both = configs(args.delay, args.length, args.steps, args.pre_steps,
                   args.inter_every, args.inter_steps)
    for label, config in zip(("not flossed", "flossed"), both):
        start = time.perf_counter()
        result = train(config, seeds=list(args.seeds), progress=False)
        results.append(result)
        lines += summary(result, label, time.perf_counter() - start)
    print("\n".join(lines))
    every = -(-len(results[0].lyapunov_steps) // 11)  # at most 11 columns
    steps = results[0].lyapunov_steps[::every]
    print(f"\nlambda_1 through training (seed {args.seeds[0]}):")
    print("step        " + " ".join(f"{s:>6d}" for s in steps))
    for label, result in zip(("not flossed", "flossed"), results):
        lam1 = np.asarray(result.lyapunov)[0, ::every, 0]
        print(f"{label:<12}" + " ".join(f"{v:+6.3f}" for v in lam1))
    if args.plot:
        import gradspec.plots as gp

        runs = gp.exponent_runs(results[0]) + gp.exponent_runs(results[1])
        gp.plot_flossing(runs, smooth=50, exponents=2).savefig(args.plot)
        print(f"figure: {args.plot}")
    return results


if __name__ == "__main__":
    main()
