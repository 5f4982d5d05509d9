r"""Parallel in time (issue #17): each parallel-in-time scan against the sequential scan
it replaces, timed in the same interleaved rounds, with its error against that scan.

    python -m benchmarks.bench_parallel [--quick | --tiny] [--device D] --out F.json
    python -m benchmarks.run --only parallel --out F.json     (inside the full runner)

Problem: the tanh RNN of every benchmark (``_runner.rnn_problem``: W_hh ~ N(0, 1/N),
unit Gaussian inputs, h_0 = 0; lambda_1 ~ -0.4), float64, one sequence. Grid: N in
{16, 64} x T in {10^3, 10^4, 10^5} (``--quick``: T <= 10^4; ``--tiny``: N = 8, T = 64).

Pairs timed together (FLOPs per sequence; O(N^2 T) terms of the parallel ones dropped):

============================  ================================================  =======
``sequential_trajectory``     ``trajectory``: one ``lax.scan``                  2N^2 T
``deer``                      ``trajectory(scan="deer")``: per Newton           4N^3 T
                              iteration the (J, b) associative scan (~2T        x iters
                              N x N products)
``quasi_deer``                ``scan="quasi-deer"``: per iteration the steps    4N^2 T
                              and Jacobians (their diagonal kept), O(N T) scan  x iters
``sequential_profile``        ``gradient_profile``: forward + reverse scans     4N^2 T
``parallel_profile``          ``scan="parallel"``: suffix products by a         4N^3 T
                              reverse associative scan (~2T products)
``sequential_top_exponent``   ``lyapunov_spectrum(k=1)``: states + J q          4N^2 T
``parallel_top_exponent``     tree reduce of the block's Jacobians (T products) 2N^3 T
``sequential_lyapunov_top8``  ``lyapunov_spectrum(k=8)``: J Q + QR every step   18N^2 T
``parallel_lyapunov_top8``    chunk products (T products) + QR every C steps    2N^3 T
============================  ================================================  =======

Each record (one per method, N, T and device) carries the time, the Newton
``iterations`` (DEER), the error against the sequential float64 result of the same
run, and ``time_ratio_parallel_over_sequential`` (> 1: the parallel scan is slower).
Methods are AOT-compiled and timed without a separate warm-up (``_timing.time_calls``
with ``warmup=False``: the first run after compilation is the first round), since a
parallel call at T = 10^5 takes tens of seconds on a CPU. ``top8`` uses C from the
chunk rule (``gradspec.measure.parallel``), halved until no chunk breaks it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import warnings

import jax

import gradspec
from gradspec.measure import parallel

from . import _records as Rec
from . import _runner as R
from . import _timing as Tm

BENCH = "parallel"
#: The issue's tolerances against the sequential float64 result (tests/test_parallel).
TOL = {
    "trajectory": 1e-12,  # max |h_t - h_t^seq|
    "profile": 1e-9,  # max_k |l_k - l_k^seq|, plus 1e-14 T (rounding of summed logs)
    "top_exponent": 1e-9,  # |lambda - lambda^seq| T
    "lyapunov_top8": 1e-8,  # max_i |lambda_i - lambda_i^seq|
}
GRID = {
    "full": ((16, 64), (1000, 10_000, 100_000)),
    "quick": ((16, 64), (1000, 10_000)),
    "tiny": ((8,), (64,)),
}
K = 8
PAIRS = (
    ("trajectory", "sequential_trajectory", ("deer", "quasi_deer")),
    ("profile", "sequential_profile", ("parallel_profile",)),
    ("top_exponent", "sequential_top_exponent", ("parallel_top_exponent",)),
    ("lyapunov_top8", "sequential_lyapunov_top8", ("parallel_lyapunov_top8",)),
)
FLOPS = {
    "sequential_trajectory": ("2 N^2 T", lambda N, T, it: 2 * N**2 * T),
    "deer": ("4 N^3 T x iterations", lambda N, T, it: 4 * N**3 * T * it),
    "quasi_deer": ("4 N^2 T x iterations", lambda N, T, it: 4 * N**2 * T * it),
    "sequential_profile": ("4 N^2 T", lambda N, T, it: 4 * N**2 * T),
    "parallel_profile": ("4 N^3 T", lambda N, T, it: 4 * N**3 * T),
    "sequential_top_exponent": ("4 N^2 T", lambda N, T, it: 4 * N**2 * T),
    "parallel_top_exponent": ("2 N^3 T", lambda N, T, it: 2 * N**3 * T),
    "sequential_lyapunov_top8": ("18 N^2 T", lambda N, T, it: 18 * N**2 * T),
    "parallel_lyapunov_top8": ("2 N^3 T", lambda N, T, it: 2 * N**3 * T),
}


def _chunk(cell, params, xs, h0, q0, spread) -> int:
    """C by the chunk rule from the reference spread, halved until no chunk breaks
    it."""
    c = parallel.chunk_for_spread(2 * spread, h0.dtype)
    while c > 1:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parallel.parallel_lyapunov_spectrum(cell, params, xs, h0, q0, 0, chunk=c)
        if not caught:
            break
        c //= 2
    return c


def methods(cell, N: int, T: int, xs, h0):
    """name -> (function of (params, xs, h0), output -> comparable array)."""
    k = min(K, N)
    q1 = gradspec.measure.spectra.start_frame(None, N, 1, h0.dtype)
    qk = gradspec.measure.spectra.start_frame(None, N, k, h0.dtype)

    def lyap(q):
        return lambda p, x, h: gradspec.lyapunov_spectrum(cell, p, x, h, frame=q)

    def run_parallel(q, chunk):
        return lambda p, x, h: parallel.parallel_lyapunov_spectrum(
            cell, p, x, h, q, 0, chunk=chunk)[0]

    return {
        "sequential_trajectory": lambda p, x, h: gradspec.trajectory(cell, p, x, h),
        "deer": lambda p, x, h: gradspec.trajectory(cell, p, x, h, scan="deer"),
        "quasi_deer": lambda p, x, h: gradspec.trajectory(cell, p, x, h,
                                                          scan="quasi-deer"),
        "sequential_profile": lambda p, x, h: gradspec.gradient_profile(cell, p, x, h),
        "parallel_profile": lambda p, x, h: gradspec.gradient_profile(
            cell, p, x, h, scan="parallel"),
        "sequential_top_exponent": lyap(q1),
        "parallel_top_exponent": run_parallel(q1, None),
        "sequential_lyapunov_top8": lyap(qk),
        "parallel_lyapunov_top8": lambda chunk: run_parallel(qk, chunk),
    }, qk


def run_case(cfg, env, peaks, device, prob: R.Problem, torch=None) -> list:
    N, T = prob.N, prob.T
    rec, _ = Rec.bind(env, BENCH, prob.case())
    cell, params, xs, h0 = prob.cell, prob.params, prob.xs, prob.h0
    fns, qk = methods(cell, N, T, xs, h0)
    # The chunk of top8 from the sequential spectrum (outside the timing).
    ref8 = fns["sequential_lyapunov_top8"](params, xs, h0)
    chunk = _chunk(cell, params, xs, h0, qk, float(ref8[0] - ref8[-1]))
    fns["parallel_lyapunov_top8"] = fns["parallel_lyapunov_top8"](chunk)
    prepared = {name: Tm.jax_call(fn, params, xs, h0) for name, fn in fns.items()}
    timings = Tm.time_calls(prepared, cfg, warmup=False)
    recs = []
    for what, seq_name, par_names in PAIRS:
        seq = timings[seq_name]
        recs.append(_record(rec, peaks, seq_name, seq, None, N, T, what, chunk))
        for name in par_names:
            timing = timings[name]
            recs.append(_record(rec, peaks, name, timing, seq, N, T, what, chunk))
    return recs


def _record(rec, peaks, name, timing, seq, N, T, what, chunk) -> dict:
    out = timing.output
    extra, its = {}, 1
    if hasattr(out, "iterations"):  # DEER's TrajectoryResult
        its = int(out.iterations)
        extra.update(iterations=its, converged=bool(out.converged))
        out = out.states
    if seq is None:
        acc = Rec.not_checked("the sequential scan: the reference itself")
    else:
        ref = seq.output
        err = Rec.max_abs_error(out, ref)
        if what == "top_exponent":
            err *= T
        tol = TOL[what] + (1e-14 * T if what == "profile" else 0.0)
        acc = Rec.accuracy(err, tol, _METRIC[what], "the sequential scan, float64")
        extra["time_ratio_parallel_over_sequential"] = timing.best / seq.best
        extra["sequential"] = seq_name_of(name)
    if what == "lyapunov_top8" and seq is not None:
        extra["chunk"] = chunk
    formula, count = FLOPS[name]
    return rec(method=name, library=True, timing=timing, flops=count(N, T, its),
               flop_formula=formula, peaks=peaks, accuracy=acc, measures=what,
               role="sequential" if seq is None else "parallel", **extra)


_METRIC = {
    "trajectory": "max |h_t - h_t^seq|",
    "profile": "max_k |l_k - l_k^seq|",
    "top_exponent": "|lambda_1 - lambda_1^seq| T",
    "lyapunov_top8": "max_i |lambda_i - lambda_i^seq|",
}


def seq_name_of(name: str) -> str:
    return next(s for _, s, ps in PAIRS if name in ps)


def run(cfg, env, peaks, device) -> list:
    Ns, Ts = GRID[cfg.mode]
    cfg = dataclasses.replace(cfg, Ns=Ns, Ts=Ts, batches=(1,), dtypes=("float64",),
                              extra_points_for=())
    return R.for_each_case(cfg, env, peaks, device, BENCH,
                           [(BENCH, run_case, lambda prob: None)])


def table(records: list) -> str:
    """The Markdown table of the issue: one row per (N, T, method)."""
    lines = ["| N | T | method | time (s) | parallel / sequential | iterations | "
             "error (tol) |", "|---|---|---|---|---|---|---|"]
    for r in records:
        if r["status"] != "ok":
            lines.append(f"| {r['N']} | {r['T']} | {r['method']} | {r['status']}: "
                         f"{(r['reason'] or '')[:60]} | | | |")
            continue
        acc = r["accuracy"]
        err = (f"{Rec.as_float(acc['value']):.1e} ({acc['tolerance']:.0e})"
               if acc.get("metric") else "reference")
        ratio = r.get("time_ratio_parallel_over_sequential")
        its = r.get("iterations")
        conv = "" if r.get("converged", True) else " (fell back)"
        lines.append(
            f"| {r['N']} | {r['T']} | {r['method']} | "
            f"{Rec.as_float(r['run_best_s']):.4g} | "
            f"{f'{ratio:.3g}' if ratio is not None else '–'} | "
            f"{'' if its is None else its}{conv} | {err} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_parallel",
                                 description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="T <= 10^4")
    mode.add_argument("--tiny", action="store_true", help="smoke run (seconds)")
    ap.add_argument("--device", choices=("gpu", "cpu"), default=None)
    ap.add_argument("--out", required=True, help="output JSON (a .md table beside it)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    device = Tm.select_device(args.device)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = R.make_config(mode, device.platform)
    env = Tm.environment(device)
    with jax.default_device(device), jax.default_matmul_precision("highest"):
        peaks = Tm.measure_peaks(dataclasses.replace(cfg, Ns=GRID[mode][0]), device)
        records = run(cfg, env, peaks, device)
    result = Rec.sanitize({"schema_version": Rec.SCHEMA_VERSION, "mode": mode,
                           "env": env, "records": records,
                           "total_s": time.perf_counter() - t0})
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, allow_nan=False)
    md = table(result["records"])
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(f"bench_parallel --{mode} on {env['device_kind']} ({env['host_cpu']}, "
                f"{env['host_threads']} threads), jax {env['jax']}, float64, "
                f"{result['total_s']:.0f} s\n\n" + md)
    R.log(md)
    return result


if __name__ == "__main__":
    main()
