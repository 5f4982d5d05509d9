r"""Spectra: product_singular_values, lyapunov_spectrum (full and top-k), vs naive ways.

Problem: the tanh RNN of ``_runner.rnn_problem`` (S = N). FLOP counts (per sequence;
times B for a batch; O(N^2) per-step terms dropped where an O(N^3) term is present):

- QR of an m x n matrix (m >= n) with the thin Q formed explicitly (what
  ``jnp.linalg.qr`` returns; LAPACK geqrf + orgqr): 2mn^2 - 2n^3/3 each, so
  **4 m n^2 - (4/3) n^3**; (8/3) N^3 for N x N.
- ``J Q`` for Q (N, k) with the closed form diag(f'(a)) W_hh: **2 N^2 k** (+ 2 N^2
  for the pre-activation, recomputed each step).

==============================  ======================================================
``psv:gradspec_1sweep``          ``product_singular_values(max_sweeps=1)``: one forward
                                 and one backward sweep, 2T steps of (2N^3 + (8/3)N^3):
                                 **(28/3) N^3 T** exactly. The FLOP/s and fraction of
                                 peak of the SVD route are read here.
``psv:gradspec``                 the default call (sweeps until two half-sweeps agree,
                                 at most 30): **s (28/3) N^3 T** with the sweep count s
                                 estimated as t(default) / t(1 sweep) (reported).
``psv:jacrev_svd``               ``jax.jacrev`` of h_0 -> h_T (2 N^3 T) then
                                 ``jnp.linalg.svd`` (~(8/3) N^3): not log-domain.
``psv:numpy_f64_product_svd``    explicit float64 product P = J_T ... J_1 (2 N^3 T) and
                                 ``np.linalg.svd``.
``psv:torch_autograd_svd``       ``torch.autograd.functional.jacobian`` (vectorised) of
                                 h_0 -> h_T and ``torch.linalg.svdvals``, in the dtype.
``lyap:gradspec``                ``lyapunov_spectrum`` (k = N): T steps of J Q + QR,
                                 **(14/3) N^3 T**.
``lyap:numpy_f64_loop``          Benettin in a float64 numpy loop, same count.
``lyap:torch_loop``              Benettin in a torch loop (closed-form J, no autograd
                                 needed), in the dtype, same count.
``topk:gradspec``                ``lyapunov_spectrum(k=k)``: trajectory 2N^2 T plus per
                                 step 2N^2 k + 2N^2 + 4Nk^2 - (4/3)k^3:
                                 **T (2N^2 (k + 2) + 4Nk^2 - (4/3)k^3)** = O(TN^2 k).
``lyap_reorth:m=...``            ``lyapunov_spectrum(k=k, reorth_every=m)``: one QR per
                                 m steps (``benchmarks/bench_reorth.py``), **T 2N^2
                                 (k + 2) + ceil(T/m) (4Nk^2 - (4/3)k^3)** executed.
==============================  ======================================================

Accuracy (every method, against float64):

- psv: max_i |log s_i - log s_i^ref| / (1 + max_i |log s_i^ref|), the scale at which
  the library's own stopping rule works (its rtol is sqrt(eps) of the dtype); the
  reference is the float64 call with the same ``max_sweeps`` through
  ``method="autodiff"`` (jacrev/jvp path, independent of the closed form).
  ``top1_error`` (absolute, log s_1) is reported too: the naive routes get the top
  singular value right and the rest wrong. Tolerance: ``PSV_TOL`` x sqrt(eps).
- Lyapunov: max_i |lambda_i - lambda_i^ref| / (1 + max_i |lambda_i^ref|), reference
  the float64 call through ``method="autodiff"`` (and the numpy float64 loop,
  cross-checked). Tolerance ``LYAP_TOL[dtype]`` over all exponents, and
  ``LYAP_TOP1_TOL`` on the top one (relative), which decides the regime.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import gradspec

from . import _records as Rec
from . import _runner as R
from . import _timing as Tm

BENCH_PSV, BENCH_LYAP, BENCH_TOPK = (
    "product_singular_values",
    "lyapunov_spectrum",
    "lyapunov_topk",
)
#: psv tolerance in units of sqrt(eps) of the dtype, on the scaled error above. The
#: default call stops at rtol = sqrt(eps) of that scale; float32 products at large T
#: carry about that much rounding in their smallest singular values.
PSV_TOL = 30.0
#: Lyapunov tolerance on max_i |lambda_i - lambda_i^ref| / (1 + max_i |lambda_i^ref|):
#: the most contracting exponents are set by saturated units, whose float32 slope
#: 1 - tanh(a)^2 loses digits to cancellation (see the benchmark report); the top
#: exponent, which decides the regime, must meet the tighter ``LYAP_TOP1_TOL``.
LYAP_TOL = {"float32": 1e-2, "float64": 1e-9}
LYAP_TOP1_TOL = {"float32": 1e-4, "float64": 1e-11}
MAX_SWEEPS = 30  # the library's default


def psv_tolerance(dtype):
    return PSV_TOL * math.sqrt(Rec.EPS[dtype])


def qr_flops(m, n):
    return 4 * m * n**2 - 4 * n**3 / 3


def sweep_flops(N, T):
    return 2 * T * (2 * N**3 + qr_flops(N, N))


def lyap_flops(N, T, k, m=1):
    """One QR per m steps (m = 1: Benettin's count, the work the exponents stand for)."""
    return T * 2 * N**2 * (k + 2) + math.ceil(T / m) * qr_flops(N, k)


# ------------------------------------------------------------------ JAX methods
def make_psv(cell, max_sweeps=MAX_SWEEPS, method="auto"):
    return lambda p, xs, h0: gradspec.product_singular_values(
        cell, p, xs, h0, max_sweeps=max_sweeps, method=method
    )


def make_lyap(cell, k=None, method="auto"):
    return lambda p, xs, h0: gradspec.lyapunov_spectrum(
        cell, p, xs, h0, k=k, method=method
    )


def make_jacrev_svd(cell):
    def fn(params, xs, h0):
        J = jax.jacrev(lambda h: R.final_state(cell, params, h, xs))(h0)
        return jnp.log(jnp.linalg.svd(J, compute_uv=False))

    return fn


# ------------------------------------------------------------------ host methods
def numpy_product_svd(W, Wx, b, xs, h0):
    h, P = h0, np.eye(W.shape[0])
    for t in range(xs.shape[0]):
        a = W @ h + Wx @ xs[t] + b
        h = np.tanh(a)
        P = ((1.0 - h * h)[:, None] * W) @ P
    with np.errstate(divide="ignore"):
        return np.log(np.linalg.svd(P, compute_uv=False))


def numpy_benettin(W, Wx, b, xs, h0, k):
    h, Q = h0, np.eye(W.shape[0], k)
    acc = np.zeros(k)
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + Wx @ xs[t] + b)
        Q, Rm = np.linalg.qr((1.0 - h * h)[:, None] * (W @ Q))  # J_t Q = Q' R
        acc += np.log(np.abs(np.diagonal(Rm)))
    return np.sort(acc / xs.shape[0])[::-1]


def torch_benettin(torch, W, Wx, b, xs, h0, k):
    h = h0
    Q = torch.eye(W.shape[0], k, dtype=W.dtype, device=W.device)
    acc = torch.zeros(k, dtype=W.dtype, device=W.device)
    for t in range(xs.shape[0]):
        h = torch.tanh(W @ h + Wx @ xs[t] + b)
        Q, Rm = torch.linalg.qr((1 - h * h)[:, None] * (W @ Q))
        acc += torch.log(torch.abs(torch.diagonal(Rm)))
    return torch.sort(acc / xs.shape[0], descending=True).values.cpu().numpy()


def torch_jacobian_svd(torch, W, Wx, b, xs, h0):
    def unrolled(h):
        for t in range(xs.shape[0]):
            h = torch.tanh(W @ h + Wx @ xs[t] + b)
        return h

    J = torch.autograd.functional.jacobian(unrolled, h0, vectorize=True)
    return torch.log(torch.linalg.svdvals(J)).cpu().numpy()


# ------------------------------------------------------------------ accuracy
def psv_accuracy(out, ref, dtype, reference):
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    scale = 1.0 + float(np.max(np.abs(ref)))
    err = Rec.max_abs_error(out, ref) / scale
    top1 = Rec.max_abs_error(out[:1], ref[:1])
    return Rec.accuracy(
        err,
        psv_tolerance(dtype),
        "max_i |log s_i error| / (1 + max|log s|)",
        reference,
        top1_error=top1,
        scale=scale,
    )


def lyap_accuracy(out, ref, dtype, reference, **extra):
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    scale = 1.0 + float(np.max(np.abs(ref)))
    top1 = Rec.max_abs_error(out[:1], ref[:1]) / (1.0 + abs(float(ref[0])))
    acc = Rec.accuracy(
        Rec.max_abs_error(out, ref) / scale,
        LYAP_TOL[dtype],
        "max_i |lambda_i error| / (1 + max|lambda|)",
        reference,
        scale=scale,
        top1_error=top1,
        top1_tolerance=LYAP_TOP1_TOL[dtype],
        **extra,
    )
    acc["within_tolerance"] = bool(
        acc["within_tolerance"] and top1 <= LYAP_TOP1_TOL[dtype]
    )
    return acc


# ------------------------------------------------------------------ cases
PSV_SWEEP_FORMULA = "(28/3) N^3 T"
LYAP_FORMULA = "T (2 N^2 (N + 2) + (8/3) N^3) ~ (14/3) N^3 T"
#: the naive psv routes: the product (or full Jacobian) then one SVD
PSV_NAIVE = ("2 N^3 T + (8/3) N^3", lambda N, T: 2 * N**3 * T + 8 * N**3 / 3)


def _jax_ref(fn_maker, prob: R.Problem):
    """float64 reference on the first sequence (autodiff path)."""
    p64 = prob.astype("float64")
    xs, h0 = p64.first()
    return np.asarray(jax.jit(fn_maker(p64.cell))(p64.params, xs, h0))


def psv_case(cfg, env, peaks, device, prob: R.Problem, torch, *, baselines=True):
    N, T, B, dtype = prob.N, prob.T, prob.batch, prob.dtype
    rec, skip = Rec.bind(env, BENCH_PSV, prob.case())
    c, p, xs, h0 = prob.cell, prob.params, prob.xs, prob.h0
    ax = (None, 0, 0)
    recs = []
    ref_name = "float64 product_singular_values, same max_sweeps, method='autodiff'"
    naive = baselines and B == 1

    # Phase 1: one sweep (exact flop count) and the naive routes, interleaved.
    prepared = {
        "gradspec_1sweep": Tm.jax_call(R.batched(make_psv(c, 1), B, ax), p, xs, h0)
    }
    if naive:
        prepared["jacrev_svd"] = Tm.jax_call(make_jacrev_svd(c), p, xs, h0)
        if T <= cfg.loop_steps:
            prepared["numpy_f64_product_svd"] = Tm.host_call(
                numpy_product_svd, *prob.numpy64()[:5]
            )
            if torch:
                targs, tsync = R.torch_args(torch, prob, device)
                prepared["torch_autograd_svd"] = Tm.host_call(
                    lambda *a: torch_jacobian_svd(torch, *a), *targs[:5], sync=tsync
                )
    t1 = Tm.time_calls(prepared, cfg)
    one_sweep = t1["gradspec_1sweep"].best
    ref1 = _jax_ref(lambda cell: make_psv(cell, 1, "autodiff"), prob)
    recs.append(
        rec(
            method="gradspec_1sweep",
            library=True,
            timing=t1["gradspec_1sweep"],
            flops=sweep_flops(N, T) * B,
            flop_formula=PSV_SWEEP_FORMULA + " B (one forward + one backward sweep)",
            peaks=peaks,
            accuracy=psv_accuracy(
                Rec.first_of(t1["gradspec_1sweep"].output, B),
                ref1,
                dtype,
                ref_name.replace("same max_sweeps", "max_sweeps=1"),
            ),
        )
    )

    # Phase 2: the default call, up to 30 sweeps: only where the worst case fits.
    worst = MAX_SWEEPS * one_sweep
    ref_default = None
    if (B == 1 or cfg.mode == "full") and worst <= 2 * cfg.budget_s:
        cheap = worst * (cfg.repeats + 1) <= cfg.budget_s
        td = Tm.time_calls(
            {"gradspec": Tm.jax_call(R.batched(make_psv(c), B, ax), p, xs, h0)},
            cfg,
            warmup=cheap,
        )["gradspec"]
        ref_default = _jax_ref(
            lambda cell: make_psv(cell, MAX_SWEEPS, "autodiff"), prob
        )
        sweeps = max(1.0, td.best / one_sweep)
        recs.append(
            rec(
                method="gradspec",
                library=True,
                timing=td,
                flops=round(sweeps) * sweep_flops(N, T) * B,
                flop_formula="s (28/3) N^3 T B, s = sweeps (estimated from time)",
                peaks=peaks,
                accuracy=psv_accuracy(
                    Rec.first_of(td.output, B), ref_default, dtype, ref_name
                ),
                sweeps_estimated=sweeps,
                one_sweep_s=one_sweep,
                note=None
                if cheap
                else "single timed run without warm-up (AOT-compiled; "
                "worst case over the per-case budget)",
            )
        )
    else:
        recs.append(
            skip(
                method="gradspec",
                library=True,
                reason=f"worst case {MAX_SWEEPS} sweeps x {one_sweep:.2f} s is over "
                f"the --{cfg.mode} budget (or a batch outside --full); gradspec_1sweep "
                "measured",
            )
        )

    formula, count = PSV_NAIVE
    for name in ("jacrev_svd", "numpy_f64_product_svd", "torch_autograd_svd"):
        if name not in t1:
            continue
        acc = (
            psv_accuracy(t1[name].output, ref_default, dtype, ref_name)
            if ref_default is not None
            else Rec.not_checked("no converged float64 reference in this mode")
        )
        recs.append(
            rec(
                method=name,
                library=False,
                timing=t1[name],
                flops=count(N, T),
                flop_formula=formula,
                peaks=peaks,
                accuracy=acc,
            )
        )
    if naive and not torch:
        recs.append(skip(method="torch_autograd_svd", reason=torch.reason))
    Rec.add_ratios(recs, "gradspec" if ref_default is not None else "gradspec_1sweep")
    return recs


def lyap_case(cfg, env, peaks, device, prob: R.Problem, torch, *, baselines=True):
    N, T, B, dtype = prob.N, prob.T, prob.batch, prob.dtype
    rec, skip = Rec.bind(env, BENCH_LYAP, prob.case())
    c, p, xs, h0 = prob.cell, prob.params, prob.xs, prob.h0
    prepared = {
        "gradspec": Tm.jax_call(R.batched(make_lyap(c), B, (None, 0, 0)), p, xs, h0)
    }
    loops = baselines and B == 1 and T <= cfg.loop_steps
    if loops:
        np_args = prob.numpy64()[:5]
        prepared["numpy_f64_loop"] = Tm.host_call(numpy_benettin, *np_args, N)
        if torch:
            targs, tsync = R.torch_args(torch, prob, device)
            prepared["torch_loop"] = Tm.host_call(
                lambda *a: torch_benettin(torch, *a, N), *targs[:5], sync=tsync
            )
    t = Tm.time_calls(prepared, cfg)
    ref = _jax_ref(lambda cell: make_lyap(cell, None, "autodiff"), prob)
    ref_name = "float64 lyapunov_spectrum, method='autodiff'"
    recs = []
    if loops and not torch:
        recs.append(skip(method="torch_loop", reason=torch.reason))
    for name, timing in t.items():
        lib = name == "gradspec"
        out = Rec.first_of(timing.output, B) if lib else timing.output
        extra = {}
        if lib and "numpy_f64_loop" in t:
            extra["cross_check_numpy_f64"] = Rec.max_abs_error(
                out, t["numpy_f64_loop"].output
            )
        recs.append(
            rec(
                method=name,
                library=lib,
                timing=timing,
                flops=lyap_flops(N, T, N) * (B if lib else 1),
                flop_formula=LYAP_FORMULA + (" B" if lib else ""),
                peaks=peaks,
                accuracy=lyap_accuracy(out, ref, dtype, ref_name, **extra),
            )
        )
    Rec.add_ratios(recs, "gradspec")
    return recs


def topk_study(cfg, env, peaks, device) -> list:
    N, T = cfg.k_case
    prob = R.rnn_problem(N, T, "float32", 1, device)
    c, p, xs, h0 = prob.cell, prob.params, prob.xs, prob.h0
    ks = sorted({N if k == "N" else min(int(k), N) for k in cfg.k_values})
    prepared = {f"k={k}": Tm.jax_call(make_lyap(c, k), p, xs, h0) for k in ks}
    t = Tm.time_calls(prepared, cfg)
    best = {k: t[f"k={k}"].best for k in ks}
    recs = []
    for k in ks:
        timing = t[f"k={k}"]
        ref = _jax_ref(lambda cell, k=k: make_lyap(cell, k, "autodiff"), prob)
        recs.append(
            Rec.record(
                env=env,
                benchmark=BENCH_TOPK,
                method=f"gradspec_k{k}",
                library=True,
                case={**prob.case(), "k": k},
                timing=timing,
                flops=lyap_flops(N, T, k),
                flop_formula="T (2 N^2 (k + 2) + 4 N k^2 - (4/3) k^3)",
                peaks=peaks,
                accuracy=lyap_accuracy(
                    timing.output,
                    ref,
                    "float32",
                    "float64 lyapunov_spectrum(k), method='autodiff'",
                ),
            )
        )
    # Scaling exponent of time in k, fitted where J Q dominates the fixed per-step cost.
    big = [k for k in ks if k >= 4]
    alpha = None
    if len(big) >= 2:
        alpha = float(np.polyfit(np.log(big), np.log([best[k] for k in big]), 1)[0])
    summary = {
        "benchmark": BENCH_TOPK,
        "method": "scaling",
        "library": True,
        "status": "ok",
        "reason": None,
        **Rec.env_brief(env),
        "dtype": "float32",
        "N": N,
        "T": T,
        "batch": 1,
        "ks": ks,
        "run_best_s": [best[k] for k in ks],
        "time_exponent_in_k": alpha,
        "time_ratio_full_over_k1": best[ks[-1]] / best[ks[0]],
        "flop_ratio_full_over_k1": lyap_flops(N, T, N) / lyap_flops(N, T, 1),
        "note": "t(k) ~ k^alpha fitted over k >= 4; O(T N^2 k) means alpha <= ~1 "
        "(an O(T N^3) method would be flat in k)",
        "accuracy": Rec.not_checked("see the per-k records"),
    }
    return recs + [summary]


def roofline(cfg, env, peaks, device) -> list:
    """N >= 512 float32 points: fraction of the matmul peak of the QR-bound spectra."""
    recs = []
    for N, T in cfg.roofline_points:
        prob = R.rnn_problem(N, T, "float32", 1, device)
        R.log(f"[spectra roofline] N={N} T={T}")
        c, p, xs, h0 = prob.cell, prob.params, prob.xs, prob.h0
        # The matmul peak again, in the same interleaved rounds: on a shared host the
        # load changes between the start of the run and here.
        n_peak = max(N, peaks["float32"]["best_n"])

        def square(n):
            return jax.device_put(
                jax.random.normal(jax.random.key(0), (n, n), jnp.float32), device
            )

        a_n, a_p = square(N), square(n_peak)
        prepared = {
            "psv_1sweep": Tm.jax_call(make_psv(c, 1), p, xs, h0),
            "lyap_full": Tm.jax_call(make_lyap(c), p, xs, h0),
            "matmul_N": Tm.jax_call(jnp.dot, a_n, a_n),
            "matmul_peak": Tm.jax_call(jnp.dot, a_p, a_p),
            "qr_N": Tm.jax_call(jnp.linalg.qr, a_n),
        }
        t = Tm.time_calls(prepared, cfg)
        peak_same = max(
            2 * N**3 / t["matmul_N"].best, 2 * n_peak**3 / t["matmul_peak"].best
        )
        same = {
            "matmul_same_rounds_flops_per_s": peak_same,
            "matmul_same_rounds_n": [N, n_peak],
            # The platform's own N x N QR (geqrf + orgqr), timed alone: every step needs
            # one after one N x N product, so T (t_qr + t_matmul) bounds a sweep from
            # below whatever the code around them does.
            "qr_alone_s": t["qr_N"].best,
            "qr_alone_frac_of_peak": qr_flops(N, N) / t["qr_N"].best / peak_same,
        }
        step_floor = t["qr_N"].best + t["matmul_N"].best
        case = {**prob.case(), "roofline": True}

        def add(bench, method, timing, flops, formula, accuracy, steps):
            recs.append(
                Rec.record(
                    env=env,
                    benchmark=bench,
                    method=method,
                    library=True,
                    case=case,
                    timing=timing,
                    flops=flops,
                    flop_formula=formula,
                    peaks=peaks,
                    accuracy=accuracy,
                    frac_of_peak_same_rounds=flops / timing.best / peak_same,
                    kernel_floor_over_time=steps * step_floor / timing.best,
                    **same,
                )
            )

        ref_psv = _jax_ref(lambda cell: make_psv(cell, 1, "autodiff"), prob)
        add(
            BENCH_PSV,
            "gradspec_1sweep",
            t["psv_1sweep"],
            sweep_flops(N, T),
            PSV_SWEEP_FORMULA + " (one forward + one backward sweep)",
            psv_accuracy(
                t["psv_1sweep"].output,
                ref_psv,
                "float32",
                "float64, max_sweeps=1, method='autodiff'",
            ),
            2 * T,
        )
        ref_lyap = _jax_ref(lambda cell: make_lyap(cell, None, "autodiff"), prob)
        add(
            BENCH_LYAP,
            "gradspec",
            t["lyap_full"],
            lyap_flops(N, T, N),
            LYAP_FORMULA,
            lyap_accuracy(
                t["lyap_full"].output,
                ref_lyap,
                "float32",
                "float64 lyapunov_spectrum, method='autodiff'",
            ),
            T,
        )
    return recs


def estimate_s(flops, peaks, dtype, efficiency=0.15):
    return flops / (efficiency * peaks[dtype]["best_flops"])


def run(cfg, env, peaks, device) -> list:
    def over_budget(factor):
        def skip(prob):
            # Full Lyapunov spectrum: T QRs of N x N (efficiency guess 15% of the
            # matmul peak for QR-bound scans; the measured fraction is in the records).
            N, T, B = prob.N, prob.T, prob.batch
            cost = factor * estimate_s(lyap_flops(N, T, N) * B, peaks, prob.dtype)
            if cost * (cfg.repeats + 3) > cfg.budget_s:
                return (
                    f"estimated {cost:.1f} s per call is over the "
                    f"--{cfg.mode} budget ({cfg.budget_s} s)"
                )
            return None

        return skip

    runs = [
        (BENCH_LYAP, lyap_case, over_budget(1)),
        (BENCH_PSV, psv_case, over_budget(2)),
    ]
    return R.for_each_case(cfg, env, peaks, device, "spectra", runs) + run_targets(
        cfg, env, peaks, device
    )


def run_targets(cfg, env, peaks, device) -> list:
    """Only the two studies the targets are judged on: top-k scaling and N >= 512."""
    R.log(f"[{BENCH_TOPK}] N, T = {cfg.k_case}, k = {cfg.k_values}")
    N, T = cfg.k_case
    out = Rec.guarded(
        lambda: topk_study(cfg, env, peaks, device),
        env=env,
        benchmark=BENCH_TOPK,
        case={"dtype": "float32", "N": N, "T": T, "batch": 1},
        method="scaling",
    )
    out += Rec.guarded(
        lambda: roofline(cfg, env, peaks, device),
        env=env,
        benchmark=BENCH_LYAP,
        case={"dtype": "float32", "N": 0, "T": 0, "batch": 1},
        method="roofline",
    )
    return out
