"""Training throughput: gradspec's compiled step vs PyTorch, and 16 seeds under vmap.

For a vanilla tanh RNN and an LSTM (N = 128) on the adding task (T = 100, batch 128,
Adam, float32) it times optimizer steps per second of

- ``jax``: one run, the compiled ``lax.scan`` over steps that :func:`gradspec.train`
  uses (fresh batch, forward, backward, gradient records at the default
  ``record_every``, Adam update per step);
- ``jax_record_off``: the same with the transported gradient recorded at step 0 only;
- ``jax_vmap16``: 16 seeds trained at once by ``jax.vmap`` (steps/s of each run;
  ``seed_steps_per_s`` = 16 x that);
- ``before_*`` (with ``--baseline-rev REV``): the same three with ``loop.py`` as it was
  at git revision REV (the rest of the package as it is now);
- ``torch_<k>thr``: the same model, task and optimizer with ``torch.nn.RNN``/``nn.LSTM``
  + ``nn.Linear``, with PyTorch's default thread count and with one thread (skipped when
  PyTorch is missing); the ratios use the faster of the two.

Every method of a cell is timed in interleaved rounds (the order rotates each round),
so load from other processes hits all alike; the ratios compare the best round of each.
PyTorch runs in its own long-lived worker processes (its OpenMP pool and XLA's threads
in one process compete), told over a pipe when to run. Compilation and warm-up are
excluded; every timing ends with ``block_until_ready`` (JAX) or after the synchronous
CPU step (PyTorch). Results go to JSON with the device and library versions.

Usage::

    python -m benchmarks.train_throughput [--quick] [--baseline-rev REV] --out r.json
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
import tempfile
import time

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax

import gradspec.training.loop as _loop
from gradspec.training import TrainConfig

HIDDEN, T, BATCH, SEEDS = 128, 100, 128, 16
# Steps per timed call, from step 0: 10 (the default record_every) so that every
# method records the transported gradient at its default rate, once per call.
STEPS = 10
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def baseline_loop(rev: str):
    """``gradspec/training/loop.py`` at git revision ``rev``, imported as a module of
    the package as it is now."""
    source = subprocess.run(["git", "show", f"{rev}:gradspec/training/loop.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    name = "gradspec.training._baseline_loop"
    spec = importlib.util.spec_from_file_location(name, f.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.unlink(f.name)
    return module


def jax_method(loop, cell: str, steps: int, seeds: int | None, **fields):
    """A call that runs ``steps`` compiled training steps of ``loop`` (compiled and
    warmed up here) and waits for them; the same carry each call."""
    for_init, for_step = loop._resolve(_config(cell, **fields))
    vmapped = seeds is not None
    seed_array = jnp.arange(seeds, dtype=jnp.uint32) if vmapped else jnp.uint32(0)
    carry = jax.block_until_ready(loop._init_carry(for_init, seed_array, vmapped, None))

    def run():
        jax.block_until_ready(loop._run_chunk(for_step, carry, 0, steps, vmapped))

    run()
    return run


class TorchWorker:
    """PyTorch's training step in its own process, timed on request over a pipe."""

    def __init__(self, cell: str, threads: int):
        cmd = [sys.executable, "-m", "benchmarks.train_throughput", "--torch-worker",
               cell, str(threads)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.threads = int(self._read())  # after its set-up and warm-up step

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch worker exited")
        return line.strip()

    def __call__(self, steps: int) -> tuple[float, float]:
        """(wall, CPU) seconds of ``steps`` training steps."""
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        wall, cpu = self._read().split()
        return float(wall), float(cpu)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _torch_worker(cell: str, threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
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

    step()
    print(torch.get_num_threads(), flush=True)
    for line in sys.stdin:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(int(line)):
            step()
        print(time.perf_counter() - start, time.process_time() - cpu, flush=True)


def interleaved(methods: dict, repeats: int) -> dict:
    """(wall, CPU) seconds of every call of each method, in ``repeats`` rounds whose
    order rotates; ``methods``: name -> zero-argument call returning None (timed here,
    CPU time of this process and its threads) or its own (wall, CPU) times."""
    names, times = list(methods), {name: [] for name in methods}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start, cpu = time.perf_counter(), time.process_time()
            own = methods[name]()
            mine = (time.perf_counter() - start, time.process_time() - cpu)
            times[name].append(own if own is not None else mine)
    return times


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
        "load_average": os.getloadavg(),
    }


def bench_cell(cell: str, steps: int, steps_vmap: int, repeats: int, baseline) -> tuple:
    loops = {"": _loop} if baseline is None else {"": _loop, "before_": baseline}
    methods, per_call = {}, {}  # name -> (seeds, steps per call)
    for prefix, loop in loops.items():
        for name, seeds, n, fields in (
                ("jax", None, steps, {}),
                ("jax_record_off", None, steps, {"record_every": 10**9}),
                ("jax_vmap16", SEEDS, steps_vmap, {})):
            methods[prefix + name] = jax_method(loop, cell, n, seeds, **fields)
            per_call[prefix + name] = (seeds or 1, n)
    workers = []
    if importlib.util.find_spec("torch") is not None:
        for threads in (0, 1):  # PyTorch's default and one thread
            worker = TorchWorker(cell, threads)
            workers.append(worker)
            name = f"torch_{worker.threads}thr" + ("" if threads else "_default")
            methods[name] = lambda w=worker: w(steps)
            per_call[name] = (1, steps)
    try:
        times = interleaved(methods, repeats)
    finally:
        for worker in workers:
            worker.close()
    rows = {}
    for name, pairs in times.items():
        seeds, n = per_call[name]
        wall, cpu = (list(x) for x in zip(*pairs))
        rows[name] = {"impl": name, "cell": cell, "seeds": seeds, "steps_per_call": n,
                      "seconds": wall, "cpu_seconds": cpu, "steps_per_s": n / min(wall),
                      "steps_per_s_median": n / statistics.median(wall),
                      "seed_steps_per_s": seeds * n / min(wall),
                      # Per CPU-second: less sensitive to other processes' load.
                      "seed_steps_per_cpu_s": seeds * n / min(cpu)}
    return rows, _ratios(rows, loops)


def _ratios(rows: dict, loops: dict) -> dict:
    """Speed ratios by wall clock (the best call of each), and under ``per_cpu_s`` by
    CPU seconds (this process's for JAX, the worker's for PyTorch; less sensitive to
    other processes' load, blind to idle waits)."""
    return {**_ratios_of(rows, loops, "seed_steps_per_s"),
            "per_cpu_s": _ratios_of(rows, loops, "seed_steps_per_cpu_s")}


def _ratios_of(rows: dict, loops: dict, key: str) -> dict:
    torch = [r for k, r in rows.items() if k.startswith("torch")]
    best = max((r[key] for r in torch), default=None)
    ratios = {}
    for prefix in loops:
        r = {k: rows[prefix + k][key] for k in ("jax", "jax_record_off")}
        r["vmap16_seed_steps"] = rows[prefix + "jax_vmap16"][key]
        ratios[prefix + "ratios"] = {
            # > 1: gradspec's step is faster than PyTorch's (faster thread setting).
            "jax_vs_torch": r["jax"] / best if best else None,
            "record_off_vs_torch": r["jax_record_off"] / best if best else None,
            # > 1: vmap trains 16 seeds faster than 16 runs one after another.
            "vmap16_vs_16_sequential": r["vmap16_seed_steps"] / r["jax"],
            # Extra time per step for the transported gradient at the default interval.
            "transported_overhead": r["jax_record_off"] / r["jax"] - 1,
        }
    if "before_" in loops:
        ratios["after_vs_before"] = {
            k: rows[k][key] / rows["before_" + k][key]
            for k in ("jax", "jax_record_off", "jax_vmap16")}
    return ratios


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, two rounds")
    parser.add_argument("--out", default=None, help="JSON output file")
    parser.add_argument("--baseline-rev", default=None,
                        help="also time loop.py of this git revision (before/after)")
    parser.add_argument("--cells", default="rnn,lstm")
    parser.add_argument("--torch-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torch_worker:
        _torch_worker(args.torch_worker[0], int(args.torch_worker[1]))
        return {}
    repeats = 2 if args.quick else 3
    baseline = baseline_loop(args.baseline_rev) if args.baseline_rev else None
    results, ratios = [], {}
    for cell in args.cells.split(","):
        steps = 2 if args.quick else STEPS
        rows, ratios[cell] = bench_cell(cell, steps, steps, repeats, baseline)
        for row in rows.values():
            print(f"{cell:5s} {row['impl']:22s} {row['steps_per_s']:8.2f} steps/s "
                  f"(median {row['steps_per_s_median']:8.2f}; "
                  f"{row['seed_steps_per_s']:8.2f} seed-steps/s)", flush=True)
        results += list(rows.values())
    report = {
        "benchmark": "train_throughput",
        "settings": {"hidden": HIDDEN, "T": T, "batch": BATCH, "seeds": SEEDS,
                     "task": "adding", "optimizer": "adam", "dtype": "float32",
                     "quick": args.quick, "repeats": repeats,
                     "baseline_rev": args.baseline_rev},
        "device": device_info(),  # load_average: at the end of the run
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
