"""Run the gradspec benchmarks and write one JSON file (plus a Markdown summary).

    python -m benchmarks.run [--quick] [--device gpu|cpu] --out results.json
    python -m benchmarks.plot results.json --out DIR

Modes: default (full grid: N in {64, 256, 1024, 4096 on accelerators} x T in {100, 1000,
10000} x float32/float64 x batch {1, 64}; cases over the per-case budget are recorded
as skipped with the reason), ``--quick`` (< 5 min on 2 CPU cores), ``--tiny`` (the
test suite's smoke run). See ``benchmarks/_timing.py`` for the timing protocol and each
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
import json
import os
import sys
import time


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
        choices=(
            "gradient_profile",
            "spectra",
            "spectra_targets",
            "step_jacobians",
            "predict",
            "parallel",
        ),
        help="run only these benchmark modules (spectra_targets: the top-k scaling and "
        "N >= 512 studies of spectra, without its grid; parallel: the parallel-in-time "
        "scans, N in {16, 64} x T up to 10^5, also python -m benchmarks.bench_parallel)",
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
    from . import _runner as R
    from . import _timing as Tm
    from . import (
        bench_gradient_profile,
        bench_parallel,
        bench_predict,
        bench_reorth,
        bench_spectra,
        bench_step_jacobians,
    )

    runs = {
        "gradient_profile": bench_gradient_profile.run,
        "spectra": bench_spectra.run,
        "spectra_targets": bench_spectra.run_targets,
        "step_jacobians": bench_step_jacobians.run,
        "predict": bench_predict.run,
        "parallel": bench_parallel.run,
        "reorth": bench_reorth.run,
    }
    t_start = time.perf_counter()
    Tm.TORCH_THREADS = args.torch_threads
    device = Tm.select_device(args.device)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = R.make_config(mode, device.platform)
    env = Tm.environment(device)
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
    # gradspec traces its kernels with full float32 matmuls (gradspec/_precision.py); the
    # peak and the JAX baselines run the same way, or on GPUs/TPUs they would be timed on
    # TF32/bf16 units and compared with a kernel that does not use them. (PyTorch's CUDA
    # float32 matmul is full precision by default: allow_tf32 is off.)
    env["matmul_precision"] = "highest"
    with jax.default_device(device), jax.default_matmul_precision("highest"):
        peaks = Tm.measure_peaks(cfg, device)
        R.log(
            "matmul peak: "
            + ", ".join(
                f"{d} {peaks[d]['best_flops'] / 1e9:.1f} GFLOP/s "
                f"(N={peaks[d]['best_n']})"
                for d in ("float32", "float64")
            )
            + f"; float32 at TF32 {peaks['float32_tf32_flops']['flops'] / 1e9:.1f} GFLOP/s"
        )
        # Not by default: spectra_targets (studies), parallel and reorth (their own grids,
        # minutes each).
        names = args.only or [n for n in runs
                              if n not in ("spectra_targets", "parallel", "reorth")]
        for i, name in enumerate(names):
            R.CHECKPOINT = lambda partial: _write(
                args.out, mode, cfg, env, peaks, records + partial, t_start, complete=False
            )
            t0 = time.perf_counter()
            records += runs[name](cfg, env, peaks, device)
            R.log(f"  {name}: {time.perf_counter() - t0:.1f} s")
            # Written after every case and module: an interrupted run keeps what it measured.
            result, md = _write(
                args.out, mode, cfg, env, peaks, records, t_start,
                complete=i == len(names) - 1,
            )
    R.log(md)
    R.log(f"wrote {args.out} ({len(records)} records, {result['total_s']:.1f} s)")
    return result


def _write(out, mode, cfg, env, peaks, records, t_start, *, complete) -> tuple[dict, str]:
    """Write the JSON result and its Markdown summary (beside it, .md) so far."""
    from . import _records as Rec
    from .summary import markdown, targets

    env["load_average_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    result = {
        "schema_version": Rec.SCHEMA_VERSION,
        "mode": mode,
        "complete": complete,
        "config": dict(vars(cfg)),
        "env": env,
        "peaks": peaks,
        "records": records,
        "total_s": time.perf_counter() - t_start,
    }
    result["targets"] = targets(result)
    result = Rec.sanitize(result)
    md = markdown(result)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    for path, text in ((out, json.dumps(result, indent=1, allow_nan=False)),
                       (os.path.splitext(out)[0] + ".md", md)):
        with open(path + ".tmp", "w") as f:  # whole or not at all, even if killed here
            f.write(text)
        os.replace(path + ".tmp", path)
    return result, md


if __name__ == "__main__":
    main()
