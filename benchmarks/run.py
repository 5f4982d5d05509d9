"""Run the gradspec benchmarks and write one JSON file (plus a Markdown summary).

    python -m benchmarks.run [--quick] [--device gpu|cpu] --out results.json
    python -m benchmarks.plot results.json --out DIR

Modes: default (full grid: N in {64, 256, 1024, 4096 on accelerators} x T in {100, 1000,
10000} x float32/float64 x batch {1, 64}; cases over the per-case budget are recorded
as skipped with the reason), ``--quick`` (< 5 min on 2 CPU cores), ``--tiny`` (the
test suite's smoke run). See ``benchmarks/_runner.py`` for the timing protocol and each
``bench_*.py`` for the methods and their FLOP counts.

CPU note: jaxlib's CPU QR/SVD/eig call LAPACK in scipy's OpenBLAS, whose own thread
pool competes with XLA's. Unless ``OPENBLAS_NUM_THREADS`` is already set, the runner
sets it to ``--blas-threads`` (default 1) *before* numpy/jax load; the value is
recorded in ``env``. ``--blas-threads 0`` leaves OpenBLAS at its default.

PyTorch baselines run with ``torch.set_num_threads`` = the host's threads (what XLA's
CPU backend uses; ``--torch-threads`` to change). Their OpenMP threads spin-wait by
default and then fight XLA's pool in the same process (single torch calls measured up
to 100x slower), so the runner sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set.
"""

from __future__ import annotations

import argparse
import os
import sys


def _parse(argv):
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="small subset (< 5 min, 2 cores)"
    )
    mode.add_argument(
        "--tiny", action="store_true", help="smoke run for the tests (seconds)"
    )
    ap.add_argument(
        "--device",
        choices=("gpu", "cpu"),
        default=None,
        help="JAX backend (default: JAX's default device)",
    )
    ap.add_argument("--out", required=True, help="output JSON path")
    ap.add_argument(
        "--only",
        nargs="*",
        default=None,
        choices=("gradient_profile", "spectra", "step_jacobians", "predict"),
        help="run only these benchmark modules",
    )
    ap.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch.set_num_threads for the PyTorch baselines (0: match XLA, "
        "i.e. the host's threads)",
    )
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="OPENBLAS_NUM_THREADS for LAPACK inside XLA on CPU (0: untouched)",
    )
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    args = _parse(sys.argv[1:] if argv is None else argv)
    blas_env = os.environ.get("OPENBLAS_NUM_THREADS")
    if blas_env is None and args.blas_threads > 0:
        # Before numpy / jaxlib load OpenBLAS, i.e. before the imports below.
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
    # torch's OpenMP threads spin-wait between parallel regions by default, fighting
    # XLA's pool in the same process (measured: 100x slower torch calls). Before import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import json
    import time

    from . import _runner as R
    from . import (
        bench_gradient_profile,
        bench_predict,
        bench_spectra,
        bench_step_jacobians,
    )

    modules = {
        "gradient_profile": bench_gradient_profile,
        "spectra": bench_spectra,
        "step_jacobians": bench_step_jacobians,
        "predict": bench_predict,
    }
    t_start = time.perf_counter()
    R.TORCH_THREADS = args.torch_threads
    device = R.select_device(args.device)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = R.make_config(mode, device.platform)
    env = R.environment(device)
    env["openblas_num_threads"] = os.environ.get("OPENBLAS_NUM_THREADS")
    env["openblas_num_threads_set_by_runner"] = (
        blas_env is None and args.blas_threads > 0
    )
    env["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    R.log(
        f"gradspec benchmarks --{mode} on {env['device_kind']} x{env['device_count']} "
        f"(jax {env['jax']}, torch {env['torch']}, OpenBLAS threads "
        f"{env['openblas_num_threads']})"
    )
    import jax

    records = []
    with jax.default_device(device):
        peaks = R.measure_peaks(cfg, device)
        R.log(
            "matmul peak: "
            + ", ".join(
                f"{d} {peaks[d]['best_flops'] / 1e9:.1f} GFLOP/s "
                f"(N={peaks[d]['best_n']})"
                for d in ("float32", "float64")
            )
        )
        for name in args.only or list(modules):
            t0 = time.perf_counter()
            records += modules[name].run(cfg, env, peaks, device)
            R.log(f"  {name}: {time.perf_counter() - t0:.1f} s")
    total = time.perf_counter() - t_start
    env["load_average_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    from .summary import markdown, targets

    result = {
        "schema_version": R.SCHEMA_VERSION,
        "mode": mode,
        "config": {k: v for k, v in vars(cfg).items()},
        "env": env,
        "peaks": peaks,
        "records": records,
        "total_s": total,
    }
    result["targets"] = targets(result)
    result = R.sanitize(result)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, allow_nan=False)
    md = markdown(result)
    md_path = os.path.splitext(args.out)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(md)
    R.log(md)
    R.log(f"wrote {args.out} and {md_path} ({len(records)} records, {total:.1f} s)")
    return result


if __name__ == "__main__":
    main()
