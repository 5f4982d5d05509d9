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

``--crossover`` times the public calls of ``lyapunov_spectrum`` (top k) and
``product_singular_values``, ``scan="sequential"`` against ``"parallel"`` as
``scan="auto"`` would run them (probe and chunk choice included), over
N in {8, 16, 32, 64} x k in {1, 2, 4, 8, 16}: the table behind
``gradspec.measure.parallel.CROSSOVER`` (refill it from this on a device).

``--memory N T`` runs each method at (N, T) in a fresh process, once to compile and
once more after resetting the process's peak resident memory (``/proc/self/clear_refs``,
Linux): its peak over the resident memory before that run, the inputs' included.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
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


#: The --crossover grid: N, k of the top-k exponents (T steps), N of the singular
#: values (T_SV steps: their sweeps cost ~10 frame sweeps).
CROSSOVER_GRID = {"N": (8, 16, 32, 64), "k": (1, 2, 4, 8, 16), "T": 10_000,
                  "T_SV": 1000}


def crossover(cfg, device) -> list:
    """Sequential against parallel public calls over :data:`CROSSOVER_GRID`, in
    interleaved rounds; one record per (measurement, N, k, T)."""
    g = CROSSOVER_GRID
    cases = [("lyapunov_spectrum", n, k, g["T"]) for n in g["N"] for k in g["k"]
             if k <= n]
    cases += [("product_singular_values", n, n, g["T_SV"]) for n in g["N"]]
    records = []
    for what, n, k, steps in cases:
        prob = R.rnn_problem(n, steps, "float64", 1, device)
        args = (prob.cell, prob.params, prob.xs, prob.h0)
        if what == "lyapunov_spectrum":
            fn = lambda scan: gradspec.lyapunov_spectrum(*args, k=k, scan=scan)
        else:
            fn = lambda scan: gradspec.product_singular_values(*args, scan=scan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            timings = Tm.time_calls(
                {scan: Tm.host_call(fn, scan, sync=jax.block_until_ready, host=False)
                 for scan in ("sequential", "parallel")}, cfg)
        seq, par = timings["sequential"], timings["parallel"]
        records.append(dict(
            measurement=what, N=n, k=k, T=steps, sequential_s=seq.best,
            parallel_s=par.best, ratio_best=par.best / seq.best,
            ratio_median=par.median / seq.median, repeats=len(par.times_s),
            error=Rec.max_abs_error(par.output, seq.output)))
        r = records[-1]
        R.log(f"{what} N={n} k={k} T={steps}: parallel / sequential "
              f"{r['ratio_best']:.2f} (median {r['ratio_median']:.2f})")
    return records


def _memory_methods(cell, N, T, xs, h0) -> dict:
    """name -> function of (params, xs, h0): the grid's methods (top 8 with the chunk
    rule's C) and the product's singular values."""
    fns, _ = methods(cell, N, T, xs, h0)
    fns["parallel_lyapunov_top8"] = fns["parallel_lyapunov_top8"](None)
    for scan in ("sequential", "parallel"):
        fns[f"{scan}_singular_values"] = (
            lambda p, x, h, scan=scan: gradspec.product_singular_values(
                cell, p, x, h, scan=scan))
    return fns


def _resident() -> dict:
    """The process's resident and peak resident memory, bytes (Linux)."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}


def memory_one(name: str, N: int, T: int) -> dict:
    """This process's peak resident memory over its resident memory while ``name``
    runs at (N, T), compiled by a first run whose output is dropped."""
    device = Tm.select_device("cpu")
    prob = R.rnn_problem(N, T, "float64", 1, device)
    fn = _memory_methods(prob.cell, N, T, prob.xs, prob.h0)[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jax.block_until_ready(fn(prob.params, prob.xs, prob.h0))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current VmRSS
        before = _resident()["VmRSS"]
        t0 = time.perf_counter()
        jax.block_until_ready(fn(prob.params, prob.xs, prob.h0))
        run_s = time.perf_counter() - t0
    peak = _resident()["VmHWM"]
    return dict(method=name, N=N, T=T, run_s=run_s, resident_before_bytes=before,
                peak_over_before_bytes=peak - before)


def memory(N: int, T: int, names=None, timeout_s: float = 1800) -> list:
    """:func:`memory_one` of every method (or ``names``), each in a fresh process."""
    names = names or [*FLOPS, "sequential_singular_values", "parallel_singular_values"]
    records = []
    for name in names:
        code = ("import jax, json; jax.config.update('jax_enable_x64', True); "
                "from benchmarks.bench_parallel import memory_one; "
                f"print(json.dumps(memory_one({name!r}, {N}, {T})))")
        try:
            out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                 text=True, timeout=timeout_s, check=True)
            records.append(json.loads(out.stdout.strip().splitlines()[-1]))
        except (subprocess.SubprocessError, ValueError) as err:
            records.append(dict(method=name, N=N, T=T, error=str(err)[-300:]))
        R.log(json.dumps(records[-1]))
    return records


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_parallel",
                                 description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="T <= 10^4")
    mode.add_argument("--tiny", action="store_true", help="smoke run (seconds)")
    mode.add_argument("--crossover", action="store_true",
                      help="sequential vs parallel public calls over CROSSOVER_GRID")
    mode.add_argument("--memory", nargs=2, type=int, metavar=("N", "T"),
                      help="peak memory of each method at (N, T), CPU, float64")
    ap.add_argument("--methods", nargs="*", help="with --memory: only these")
    ap.add_argument("--device", choices=("gpu", "cpu"), default=None)
    ap.add_argument("--out", required=True, help="output JSON (a .md table beside it)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    device = Tm.select_device(args.device)
    if args.crossover or args.memory:
        return _study(args, device, t0)
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


def _study(args, device, t0) -> dict:
    """--crossover or --memory: their records, as JSON and a Markdown table."""
    env = Tm.environment(device)
    if args.memory:
        records = memory(*args.memory, names=args.methods)
        cols = ("method", "N", "T", "run_s", "peak_over_before_bytes")
    else:
        cfg = dataclasses.replace(R.make_config("quick", device.platform), repeats=7,
                                  max_repeats=15)
        with jax.default_device(device), jax.default_matmul_precision("highest"):
            records = crossover(cfg, device)
        cols = ("measurement", "N", "k", "T", "sequential_s", "parallel_s",
                "ratio_best", "ratio_median")
    result = Rec.sanitize({"env": env, "records": records,
                           "total_s": time.perf_counter() - t0})
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, allow_nan=False)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in records:
        cells = (r.get(c, r.get("error", "")) for c in cols)
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v)
                                       for v in cells) + " |")
    md = "\n".join(lines) + "\n"
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(f"bench_parallel on {env['device_kind']} ({env['host_cpu']}, "
                f"{env['host_threads']} threads, load {env['load_average_start']}), "
                f"jax {env['jax']}, float64\n\n" + md)
    R.log(md)
    return result


if __name__ == "__main__":
    main()
