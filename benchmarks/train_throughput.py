"""Training throughput: gradspec's compiled step vs PyTorch, and 16 seeds under vmap.

For a vanilla tanh RNN and an LSTM (N = 128) on the adding task (T = 100, batch 128,
Adam, float32) it times optimizer steps per second of

- ``jax``: one run, the compiled ``lax.scan`` over steps that
  :func:`gradspec.train` uses (fresh batch, forward, backward, gradient
  records, Adam update per step);
- ``jax_vmap16``: 16 seeds trained at once by ``jax.vmap`` (steps/s of each run;
  ``seed_steps_per_s`` = 16 x that);
- ``torch_<k>thr``: the same model, task and optimizer with ``torch.nn.RNN``/``nn.LSTM``
  + ``nn.Linear``, with PyTorch's default thread count and with one thread (skipped when
  PyTorch is missing); the ratios use the faster of the two.

Compilation and warm-up are excluded; every timing ends with ``block_until_ready``
(JAX) or after the synchronous CPU step (PyTorch). Results go to JSON with the device
and library versions.

Usage::

    python -m benchmarks.train_throughput [--quick] --out results_train.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax

from gradspec.training import TrainConfig
from gradspec.training.loop import _init_carry, _resolve, _run_chunk

HIDDEN, T, BATCH, SEEDS = 128, 100, 128, 16
TIMEOUT_S = 300  # per PyTorch worker process


def _config(cell: str, **fields) -> TrainConfig:
    return TrainConfig(
        **fields,
        cell=cell,
        hidden=HIDDEN,
        init="orthogonal",
        task="adding",
        T=T,
        batch=BATCH,
        optimizer="adam",
        learning_rate=1e-3,
        dtype="float32",
    )


def _time(fn, repeats: int) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_jax(cell: str, steps: int, repeats: int, seeds: int | None,
              record_every: int | None = None) -> dict:
    """``record_every``: the transported gradient's recording interval (None: the
    TrainConfig default; a huge value: recorded at step 0 only, i.e. not timed)."""
    fields = {} if record_every is None else {"record_every": record_every}
    for_init, for_step = _resolve(_config(cell, **fields))
    vmapped = seeds is not None
    seed_array = jnp.arange(seeds if vmapped else 1, dtype=jnp.uint32)
    seed_array = seed_array if vmapped else seed_array[0]
    carry = jax.block_until_ready(_init_carry(for_init, seed_array, vmapped, None))

    def run():
        # Same carry each call: the compiled scan is timed, not a growing run.
        jax.block_until_ready(_run_chunk(for_step, carry, 0, steps, vmapped))

    seconds = _time(run, repeats)
    n = seeds or 1
    impl = "jax_vmap16" if vmapped else "jax"
    return {
        "impl": impl if record_every is None else f"{impl}_record_every_{record_every}",
        "record_every": for_step.record_every,
        "cell": cell,
        "seeds": n,
        "steps_timed": steps,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "seed_steps_per_s": n * steps / seconds,
    }


def bench_torch(
    cell: str, steps: int, repeats: int, threads: int | None
) -> dict | None:
    """PyTorch steps/s with ``threads`` intra-op threads (None: PyTorch's default).

    Runs in a fresh Python process: PyTorch's OpenMP pool and XLA's thread pool in one
    process compete (and were seen to hang here), and neither should slow the other.
    Returns None when PyTorch is not installed.
    """
    if importlib.util.find_spec("torch") is None:
        return None
    args = [cell, str(steps), str(repeats), str(threads or 0)]
    cmd = [sys.executable, "-m", "benchmarks.train_throughput", "--torch-worker", *args]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(
            cmd, check=True, capture_output=True, text=True, cwd=root, timeout=TIMEOUT_S
        ).stdout
    except subprocess.TimeoutExpired:
        # Seen on an oversubscribed CPU: OpenMP workers stuck at a barrier.
        impl = f"torch_{threads}thr" if threads else "torch_default"
        return {"impl": impl, "cell": cell, "error": f"timed out after {TIMEOUT_S} s"}
    return json.loads(out.strip().splitlines()[-1])


def _torch_worker(cell: str, steps: int, repeats: int, threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    print(json.dumps(_bench_torch(torch, cell, steps, repeats)))


def _bench_torch(torch, cell: str, steps: int, repeats: int) -> dict:
    torch.manual_seed(0)
    rnn_cls = torch.nn.RNN if cell == "rnn" else torch.nn.LSTM
    rnn = rnn_cls(2, HIDDEN, batch_first=True)
    head = torch.nn.Linear(HIDDEN, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    rows = torch.arange(BATCH)

    def step():
        # The adding task, drawn fresh each step as gradspec does.
        u = torch.rand(BATCH, T)
        i1 = torch.randint(0, T // 2, (BATCH,))
        i2 = torch.randint(T // 2, T, (BATCH,))
        marker = torch.zeros(BATCH, T)
        marker[rows, i1] = 1.0
        marker[rows, i2] = 1.0
        y = (u * marker).sum(1, keepdim=True)
        out, _ = rnn(torch.stack([u, marker], -1))
        loss = ((head(out[:, -1]) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def run():
        for _ in range(steps):
            step()

    seconds = _time(run, repeats)
    return {
        "impl": f"torch_{torch.get_num_threads()}thr",
        "cell": cell,
        "seeds": 1,
        "steps_timed": steps,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "seed_steps_per_s": steps / seconds,
        "torch_threads": torch.get_num_threads(),
    }


def device_info() -> dict:
    try:  # the version only: torch itself is imported by the worker processes
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    return {
        "jax_devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "torch": torch_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, one repeat")
    parser.add_argument("--out", default=None, help="JSON output file")
    parser.add_argument("--torch-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torch_worker:
        cell, steps, repeats, threads = args.torch_worker
        _torch_worker(cell, int(steps), int(repeats), int(threads))
        return {}
    steps, steps_vmap, repeats = (5, 2, 1) if args.quick else (50, 10, 3)

    def show(row):
        if "error" in row:
            print(f"{row['cell']:5s} {row['impl']:13s} {row['error']}", flush=True)
        else:
            print(
                f"{row['cell']:5s} {row['impl']:13s} {row['steps_per_s']:9.2f} steps/s "
                f"({row['seed_steps_per_s']:9.2f} seed-steps/s)",
                flush=True,
            )
        return row

    results, ratios = [], {}
    for cell in ("rnn", "lstm"):
        single = show(bench_jax(cell, steps, repeats, None))
        # The transported gradient's cost: recorded never (after step 0) and every step.
        bare = show(bench_jax(cell, steps, repeats, None, record_every=10**9))
        every_step = show(bench_jax(cell, steps, repeats, None, record_every=1))
        vmapped = show(bench_jax(cell, steps_vmap, repeats, SEEDS))
        # PyTorch's OpenMP threads can collapse on a busy machine (spin-waiting), so
        # its default thread count and one thread are both timed; ratios use the faster.
        torch_rows = [bench_torch(cell, steps, repeats, t) for t in (None, 1)]
        torch_rows = [show(r) for r in torch_rows if r is not None]
        timed = [r for r in torch_rows if "error" not in r]
        torch_best = max(timed, key=lambda r: r["steps_per_s"], default=None)
        results += [single, bare, every_step, vmapped, *torch_rows]
        ratios[cell] = {
            # Extra time per step for the transported gradient, default interval / every step.
            "transported_overhead_default": bare["steps_per_s"] / single["steps_per_s"] - 1,
            "transported_overhead_every_step": (
                bare["steps_per_s"] / every_step["steps_per_s"] - 1),
            # > 1: vmap trains 16 seeds faster than 16 runs one after another.
            "vmap16_vs_16_sequential": vmapped["seed_steps_per_s"]
            / single["steps_per_s"],
            # > 1: gradspec's step is faster than PyTorch's (faster thread setting).
            "jax_vs_torch": (
                single["steps_per_s"] / torch_best["steps_per_s"]
                if torch_best
                else None
            ),
            "jax_vmap16_seed_steps_vs_torch": (
                vmapped["seed_steps_per_s"] / torch_best["steps_per_s"]
                if torch_best
                else None
            ),
        }
    report = {
        "benchmark": "train_throughput",
        "settings": {
            "hidden": HIDDEN,
            "T": T,
            "batch": BATCH,
            "seeds": SEEDS,
            "task": "adding",
            "optimizer": "adam",
            "dtype": "float32",
            "quick": args.quick,
            "repeats": repeats,
        },
        "device": device_info(),
        "results": results,
        "ratios": ratios,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    print(json.dumps(ratios, indent=2))
    return report


if __name__ == "__main__":
    main()
