"""Sweep throughput: points/second over 1, 2, 4, 8 devices and against a Python loop.

A (sigma_w x sigma_b) grid of tanh RNN points, two measurements: ``mean_field``
(theory) and ``lyapunov`` (top exponent of one random N-unit network per point, T
steps). Each device count runs in its own subprocess, because the number of emulated
CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=n``) is fixed when jax
starts. Inside each subprocess, after compilation, the methods are timed in
interleaved rounds (as ``benchmarks/_timing.py`` does), best round reported:

- ``sweep``: :func:`gradspec.sweep.sweep` in memory, its default chunk size (16 points
  per device for ``lyapunov``, 256 for ``mean_field``);
- ``sweep_chunk64``: ``lyapunov`` with 64 points per device, to show what a batch whose
  weights outgrow the CPU cache costs;
- ``python_loop``: the same points, one call of a jitted single-point function each
  from a Python loop (compiled once), the baseline;

and ``sweep`` once more into a fresh store (``with_store_s``: JSONL + fsync cost).
``speedup_vs_loop`` divides numbers of the same process and rounds.

``--batching`` instead times, in this process (its devices), how a device evaluates
the points of a chunk: ``vmap_chunk`` vmaps all of them at once (``batch_size`` = the
chunk per device: gradspec before issue #18), ``auto`` is the default
(``batch_size=None``: on a CPU, networks of N >= 128 one at a time), interleaved,
with the largest difference of ``lambda_max`` between the two.

    python -m benchmarks.sweep_scaling --out sweep_scaling.json
    python -m benchmarks.sweep_scaling --quick --out /tmp/s.json   # smoke run
    python -m benchmarks.sweep_scaling --batching --N 256 --T 2000 --rounds 2

Emulated devices share the host's cores. XLA's CPU backend does not keep all cores
busy with one device's small batched steps, so up to the core count emulated devices
can help (on a 2-core host, 2 devices ran the Lyapunov sweep ~1.8x faster than 1);
beyond it they only add overhead. Real speed-ups need real devices (several
GPUs/TPUs, or hosts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

import gradspec
import gradspec.sweep as gs
from gradspec import theory

DEVICE_COUNTS = (1, 2, 4, 8)


def _grid(points: int) -> dict:
    side = int(round(points**0.5))
    if side * side != points:
        raise SystemExit(f"--points must be a square; got {points}")
    return {"sigma_w": [float(v) for v in np.linspace(0.5, 2.5, side)],
            "sigma_b": [float(v) for v in np.linspace(0.0, 1.0, side)]}


def _options(args) -> dict:
    return {"mean_field": {"nonlinearity": "tanh"},
            "lyapunov": {"nonlinearity": "tanh", "N": args.N, "T": args.T,
                         "warmup": args.T // 5, "k": 1}}


def _loop_fn(name, options):
    """One jitted single-point call per grid point, from Python."""
    if name == "mean_field":
        def one(w, b, key):
            return theory.mean_field("tanh", np.float32(w), sigma_b=np.float32(b)).lambda_max
        return one

    @jax.jit
    def lyapunov_point(sigma_w, sigma_b, key):
        cell, params, xs, h0 = gs.random_rnn(sigma_w, sigma_b, 0.0, key, N=options["N"],
                                             T=options["T"])
        return gradspec.lyapunov_spectrum(cell, params, xs, h0, k=1,
                                          warmup=options["warmup"])[0]

    return lambda w, b, key: lyapunov_point(np.float32(w), np.float32(b), key)


def _worker(args) -> list:
    grid, ndev = _grid(args.points), len(jax.local_devices())
    points = [(w, b) for w in grid["sigma_w"] for b in grid["sigma_b"]]
    keys = [jax.random.fold_in(jax.random.key(0), i) for i in range(len(points))]
    rows = []
    for name, options in _options(args).items():
        methods = {"sweep": args.chunk_size}
        if name == "lyapunov" and args.chunk_size is None:
            methods["sweep_chunk64"] = 64 * ndev
        calls, first = {}, {}
        for method, chunk in methods.items():
            calls[method] = (lambda c=chunk: gs.sweep(name, grid, options=options,
                                                      chunk_size=c, progress=False))
        one = _loop_fn(name, options)

        def loop(one=one):
            for (w, b), key in zip(points, keys):
                jax.block_until_ready(one(w, b, key))

        calls["python_loop"] = loop
        for method, call in calls.items():  # compile + warm-up, not in the statistics
            t0 = time.perf_counter()
            call()
            first[method] = time.perf_counter() - t0
        times = {m: [] for m in calls}
        order = list(calls)
        for r in range(args.rounds):  # interleaved: A B C, B C A, ...
            for method in order[r % len(order):] + order[: r % len(order)]:
                t0 = time.perf_counter()
                calls[method]()
                times[method].append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as store:
            t0 = time.perf_counter()
            gs.sweep(name, grid, options=options, chunk_size=args.chunk_size, store=store,
                     progress=False)
            stored = time.perf_counter() - t0
        loop_best = min(times["python_loop"])
        for method in calls:
            best = min(times[method])
            chunk = methods.get(method)
            per_device = None
            if method != "python_loop":
                per_device = (chunk or gs.get_measurement(name).chunk_size * ndev) // ndev
            row = {
                "method": method, "measurement": name, "devices": ndev,
                "points": len(points), "chunk_per_device": per_device,
                "first_call_s": round(first[method], 4),
                "run_best_s": round(best, 4),
                "run_median_s": round(statistics.median(times[method]), 4),
                "rounds": len(times[method]),
                "points_per_s": round(len(points) / best, 2),
                "speedup_vs_loop": round(loop_best / best, 2),
            }
            if method == "sweep":
                row["with_store_s"] = round(stored, 4)
                row["with_store_points_per_s"] = round(len(points) / stored, 2)
            rows.append(row)
    return rows


def _batching(args) -> dict:
    """Points/s of one lyapunov sweep with each batching (see the module docstring)."""
    grid, options = _grid(args.points), _options(args)["lyapunov"]
    ndev = len(jax.local_devices())
    chunk = args.chunk_size or gs.get_measurement("lyapunov").chunk_size * ndev
    methods = {"vmap_chunk": chunk // ndev, "auto": None}

    def run(batch):
        return gs.sweep("lyapunov", grid, options=options, chunk_size=chunk,
                        batch_size=batch, progress=False)

    first, times, lam = {}, {m: [] for m in methods}, {}
    for method, batch in methods.items():  # compile + warm-up, not in the statistics
        t0 = time.perf_counter()
        lam[method] = np.array([r["results"]["lambda_max"] for r in run(batch).records])
        first[method] = time.perf_counter() - t0
    order = list(methods)
    for r in range(args.rounds):  # interleaved: A B, B A, ...
        for method in order[r % 2:] + order[: r % 2]:
            t0 = time.perf_counter()
            run(methods[method])
            times[method].append(time.perf_counter() - t0)
    rows = [{"method": m, "batch_size": methods[m], "points": len(lam[m]),
             "chunk_size": chunk, "devices": ndev, "first_call_s": round(first[m], 3),
             "run_best_s": round(min(times[m]), 3),
             "points_per_s": round(len(lam[m]) / min(times[m]), 2)} for m in methods]
    return {"benchmark": "sweep_batching", "platform": jax.devices()[0].platform,
            "device_kind": jax.devices()[0].device_kind,
            "lyapunov": options, "grid": f"{args.points} points (sigma_w x sigma_b)",
            "load_average": list(os.getloadavg()),
            "speedup_auto_vs_vmap_chunk": round(min(times["vmap_chunk"])
                                                / min(times["auto"]), 2),
            "max_abs_diff_lambda_max": float(np.abs(lam["auto"]
                                                    - lam["vmap_chunk"]).max()),
            "results": rows}


def _spawn(args, devices: int) -> list:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "benchmarks.sweep_scaling", "--worker", "--points",
           str(args.points), "--N", str(args.N), "--T", str(args.T), "--rounds",
           str(args.rounds)]
    if args.chunk_size is not None:
        cmd += ["--chunk-size", str(args.chunk_size)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"worker on {devices} devices failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="JSON file to write (stdout if omitted)")
    p.add_argument("--points", type=int, default=256, help="grid points (a square)")
    p.add_argument("--N", type=int, default=128, help="hidden units of the Lyapunov points")
    p.add_argument("--T", type=int, default=500, help="steps per Lyapunov point")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per method")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="points per compiled call (default: each measurement's per-device "
                   "default times the devices)")
    p.add_argument("--devices", type=int, nargs="+", default=list(DEVICE_COUNTS))
    p.add_argument("--quick", action="store_true", help="64 points, N=32, T=100, 2 rounds")
    p.add_argument("--batching", action="store_true",
                   help="compare vmapping a whole chunk with the default batching "
                   "(lyapunov only, in this process)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.points, args.N, args.T, args.rounds = 64, 32, 100, 2
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    if args.batching:
        return _write(_batching(args), args.out)

    rows = []
    for n in args.devices:
        rows += _spawn(args, n)
        print(f"{n} device(s) done", file=sys.stderr)
    report = {
        "benchmark": "sweep_scaling",
        "grid": f"{args.points} points (sigma_w x sigma_b), tanh",
        "lyapunov": {"N": args.N, "T": args.T, "warmup": args.T // 5, "k": 1},
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                 "python": platform.python_version(), "jax": jax.__version__,
                 "load_average": list(os.getloadavg())},
        "note": "emulated CPU devices share the host's cores: no speed-up is expected "
                "beyond the core count. first_call_s includes compilation; run_best_s is the "
                "best of interleaved rounds; speedup_vs_loop compares with python_loop "
                "in the same process and rounds; with_store_s writes a fresh store.",
        "results": rows,
    }
    return _write(report, args.out)


def _write(report: dict, out: str | None) -> int:
    text = json.dumps(report, indent=2)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
