r"""``reorth_every`` and ``qr`` of ``lyapunov_spectrum``: before (m = 1, one Householder
QR per step) / after (both ``"auto"``, the default) and the variants between, with
accuracy.

Problem: the tanh RNN of ``_runner.rnn_problem`` (S = N), the full spectrum (k = N) and
the top N/8 exponents, float32 and float64, at ``cfg.reorth_points``. Each variant is
``lyapunov_spectrum(k=k, reorth_every=m, qr=qr)`` called from Python (``"auto"``
measures the spread on the host, and ``qr="auto"`` is Householder under a trace, so it
is not put under ``jax.jit``); the matmul peak is timed in the same interleaved rounds.
``qr="gram"`` executes more FLOPs than Householder (two projections and two Cholesky
factorisations per panel) but only matrix products; the effective rate counts
Householder's. FLOPs: one QR per m steps executes
**T 2N^2 (k + 2) + ceil(T/m) (4Nk^2 - (4/3)k^3)**; ``frac_of_peak_same_rounds`` counts
one QR per step (``bench_spectra.lyap_flops``: the work the exponents stand for, the
"effective" rate), ``executed_frac_of_peak_same_rounds`` (fixed m) the executed count.
Accuracy: ``bench_spectra.lyap_accuracy`` against float64 with m = 1 (autodiff path).

    python -m benchmarks.bench_reorth --out reorth.json [--points 512x100 ...]
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp

import gradspec

from . import _records as Rec
from . import _runner as R
from . import _timing as Tm
from . import bench_spectra as S

BENCH = "lyapunov_reorth"
#: (m, qr): one Householder QR per step (before), both "auto" (after, the default), each
#: change alone, and fixed m, whose accuracy shows what the rule guards against.
BEFORE = (1, "householder")
REORTH_VARIANTS = (BEFORE, ("auto", "auto"), ("auto", "householder"), (1, "gram"),
                   (2, "auto"), (4, "auto"), (8, "auto"))
#: Called with the study's records after each case (``main`` writes them then).
CHECKPOINT = None


def make_lyap_host(cell, k, reorth_every, qr):
    """``lyapunov_spectrum`` called from Python (not under jit: "auto" measures)."""
    return lambda p, xs, h0: gradspec.lyapunov_spectrum(
        cell, p, xs, h0, k=k, reorth_every=reorth_every, qr=qr
    )


def _name(variant) -> str:
    return "m={} qr={}".format(*variant)


def _square(n, dtype, device):
    return jax.device_put(jax.random.normal(jax.random.key(0), (n, n), dtype), device)


def reorth_study(cfg, env, peaks, device) -> list:
    """Before (m = 1) / after ("auto") and fixed m of ``reorth_every``: the full
    spectrum and the top N/8 exponents, float32 and float64, with the matmul peak
    timed in the same interleaved rounds and every variant's error against float64."""
    recs = []
    for (N, T), dtype in [(pt, d) for pt in cfg.reorth_points for d in ("float32", "float64")]:
        prob = R.rnn_problem(N, T, dtype, 1, device)
        c, p, xs, h0 = prob.cell, prob.params, prob.xs, prob.h0
        n_peak = max(N, peaks[dtype]["best_n"])
        a_n, a_p = _square(N, dtype, device), _square(n_peak, dtype, device)
        for k in (N, N // 8):
            R.log(f"[{BENCH}] N={N} T={T} k={k} {dtype}")
            prepared = {
                _name(v): Tm.host_call(
                    make_lyap_host(c, k, *v), p, xs, h0, sync=jax.block_until_ready, host=False
                )
                for v in REORTH_VARIANTS
            }
            prepared["matmul_N"] = Tm.jax_call(jnp.dot, a_n, a_n)
            prepared["matmul_peak"] = Tm.jax_call(jnp.dot, a_p, a_p)
            t = Tm.time_calls(prepared, cfg)
            peak_same = max(
                2 * N**3 / t["matmul_N"].best, 2 * n_peak**3 / t["matmul_peak"].best
            )
            ref = S._jax_ref(lambda cell, k=k: S.make_lyap(cell, k, "autodiff"), prob)
            case = {**prob.case(), "k": k}
            for m, qr in REORTH_VARIANTS:
                timing = t[_name((m, qr))]
                executed = {}
                if m != "auto" and qr == "householder":
                    executed["executed_flops"] = S.lyap_flops(N, T, k, m)
                    executed["executed_frac_of_peak_same_rounds"] = (
                        S.lyap_flops(N, T, k, m) / timing.best / peak_same
                    )
                recs.append(
                    Rec.record(
                        env=env,
                        benchmark=BENCH,
                        method=_name((m, qr)),
                        library=True,
                        case=case,
                        timing=timing,
                        flops=S.lyap_flops(N, T, k),
                        flop_formula="T (2 N^2 (k + 2) + 4 N k^2 - (4/3) k^3) "
                        "(one QR per step: the effective rate)",
                        peaks=peaks,
                        accuracy=S.lyap_accuracy(
                            timing.output,
                            ref,
                            dtype,
                            "float64 lyapunov_spectrum(k), method='autodiff', m = 1",
                        ),
                        reorth_every=m,
                        qr=qr,
                        frac_of_peak_same_rounds=S.lyap_flops(N, T, k) / timing.best / peak_same,
                        matmul_same_rounds_flops_per_s=peak_same,
                        speedup_vs_before=t[_name(BEFORE)].best / timing.best,
                        **executed,
                    )
                )
            if CHECKPOINT is not None:
                CHECKPOINT(recs)
    return recs


def run(cfg, env, peaks, device) -> list:
    """The study for ``benchmarks.run --only reorth`` (its checkpoints: ``R.CHECKPOINT``)."""
    global CHECKPOINT
    CHECKPOINT = R.CHECKPOINT
    return reorth_study(cfg, env, peaks, device)


def main(argv=None):
    """``python -m benchmarks.bench_reorth --out reorth.json [--points 512x100 ...]``:
    the reorth_every study alone (the --quick config otherwise), records as JSON."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_reorth")
    ap.add_argument("--out", required=True)
    ap.add_argument("--points", nargs="*", default=None, help="NxT, e.g. 512x100")
    ap.add_argument("--device", choices=("gpu", "cpu"), default=None)
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds per variant")
    args = ap.parse_args(argv)
    device = Tm.select_device(args.device)
    cfg = R.make_config("quick", device.platform)
    # Every variant gets the same rounds, interleaved, whatever it costs: on a shared
    # host the best of several is what the ratios are taken from.
    cfg.repeats = cfg.max_repeats = args.repeats
    cfg.budget_s = 1e6
    if args.points:
        cfg.reorth_points = tuple(tuple(map(int, pt.split("x"))) for pt in args.points)
    cfg.roofline_points = cfg.reorth_points  # the peak sizes include N
    env = Tm.environment(device)
    with open("/proc/loadavg") as f:
        env["loadavg_start"] = f.read().split()[:3]
    t0 = time.perf_counter()

    def write(recs):
        with open(args.out, "w") as f:
            json.dump(Rec.sanitize({"env": env, "peaks": peaks, "records": recs,
                                    "total_s": time.perf_counter() - t0}), f, indent=1)

    global CHECKPOINT
    CHECKPOINT = write
    with jax.default_device(device), jax.default_matmul_precision("highest"):
        peaks = Tm.measure_peaks(cfg, device)
        recs = reorth_study(cfg, env, peaks, device)
    with open("/proc/loadavg") as f:
        env["loadavg_end"] = f.read().split()[:3]
    write(recs)
    for r in recs:
        acc = r["accuracy"]
        R.log(f"{r['dtype']} N={r['N']} T={r['T']} k={r['k']} {r['method']:>22}: "
              f"{r['run_best_s'] * 1e3:8.1f} ms  x{r['speedup_vs_before']:.2f}  "
              f"{100 * r['frac_of_peak_same_rounds']:5.1f}% of peak (effective)  "
              f"err {acc['value']:.1e} ({'ok' if acc['within_tolerance'] else 'OVER'})")


if __name__ == "__main__":
    main()
