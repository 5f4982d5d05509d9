r"""predict: the regime verdict from the initialization alone, and what it costs.

``gradspec.predict`` is host-side (it returns Python floats and sentences), so it is
timed as a plain call: ``compile_s`` is first call minus best run (tracing and
compilation of its jitted parts), and it is not vmap-able: a batch of B networks costs
B calls (batch > 1 is recorded as skipped with that reason).

Its cost is independent of T except through ``transient_growth(max_power=K)``,
K = min(T, ``gradspec.verdicts.TRANSIENT_POWERS``), run only when ||W_hh||_2 > 1.
Components are timed in the same rounds, to show where the time goes
(``share_of_predict``; FLOP estimates per call below; no fraction of peak is claimed
for this host-side mix):

===============================  ====================================================
``gradspec``                     ``predict(cell, params, T)``: the sum of the below
                                 (``weight_spectrum`` is called twice inside).
``component:weight_spectrum``    ``weight_spectrum(W)``: eig + SVD on the CPU,
                                 ~(10 + 8/3) N^3 (LAPACK geev/gesdd estimates).
``component:transient_growth``   ``theory.transient_growth(W, max_power=K)``, K =
                                 min(T, TRANSIENT_POWERS): K products 2N^3 and K norms
                                 (a full SVD each, ~(8/3) N^3) + one eig 10 N^3:
                                 **K (2 + 8/3) N^3 + 10 N^3**.
``component:sampled_exponents``  top exponent on 8 sequences of 512 steps
                                 (``lyapunov_spectrum(k=1)`` vmapped): 8 x 512 x 6 N^2.
``numpy_f64_loop``               the sampled top exponent in a float64 numpy loop
                                 (8 x 512 steps, J q and renormalise): 8 x 512 x 4 N^2.
``torch_loop``                   the same in torch, in the dtype.
===============================  ====================================================

Accuracy: the float32 prediction against the float64 one on the same (float32-valued)
params: |lambda_max| difference (the mean-field value is a quadrature, deterministic:
``TOL_LAMBDA``; a sampled "lyapunov" source: within 4 standard errors), and the
sampled exponent within 4 standard errors (random draws differ per dtype). The loops
are checked against the float64 prediction's sampled exponent in the same way.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import gradspec
from gradspec import theory

from . import _records as Rec
from . import _runner as R
from . import _timing as Tm

BENCH = "predict"
TOL_LAMBDA = {"float32": 1e-3, "float64": 1e-9}
SAMPLES, STEPS, WARMUP = 8, 512, 128


def sampled_numpy(W, Wx, b, rng, samples=SAMPLES, steps=STEPS, warmup=WARMUP):
    """Mean top exponent of `samples` zero-input trajectories (float64 numpy loop)."""
    n = W.shape[0]
    rates = []
    for _ in range(samples):
        h = 0.5 * rng.standard_normal(n)
        q = rng.standard_normal(n)
        q /= np.linalg.norm(q)
        acc = 0.0
        for t in range(steps):
            h = np.tanh(W @ h + b)
            q = (1.0 - h * h) * (W @ q)
            nq = np.linalg.norm(q)
            q /= nq
            if t >= warmup:
                acc += math.log(nq)
        rates.append(acc / (steps - warmup))
    return float(np.mean(rates)), float(np.std(rates, ddof=1) / math.sqrt(samples))


def sampled_torch(torch, W, b, gen, samples=SAMPLES, steps=STEPS, warmup=WARMUP):
    n = W.shape[0]
    h = 0.5 * torch.randn(samples, n, generator=gen, dtype=W.dtype).to(W.device)
    q = torch.randn(samples, n, generator=gen, dtype=W.dtype).to(W.device)
    q = q / q.norm(dim=1, keepdim=True)
    acc = torch.zeros(samples, dtype=W.dtype, device=W.device)
    for t in range(steps):
        h = torch.tanh(h @ W.T + b)
        q = (1 - h * h) * (q @ W.T)
        nq = q.norm(dim=1, keepdim=True)
        q = q / nq
        if t >= warmup:
            acc += torch.log(nq[:, 0])
    rates = (acc / (steps - warmup)).double().cpu().numpy()
    return float(rates.mean()), float(rates.std(ddof=1) / math.sqrt(samples))


def run_case(cfg, env, peaks, device, prob: R.Problem, torch) -> list:
    N, T, dtype = prob.N, prob.T, prob.dtype
    case = prob.case()
    # no peaks: host-side calls, no fraction of peak is claimed
    rec, skip = Rec.bind(env, BENCH, case)

    def failed(method, err):
        return Rec.failed(
            env=env, benchmark=BENCH, method=method, library=True, case=case, err=err
        )

    cell, params = prob.cell, prob.params
    recs = []
    prepared, first = {}, {}
    try:
        predict = gradspec.predict
        t0 = time.perf_counter()
        predict(cell, params, T)  # first call: tracing + compilation
        first["gradspec"] = time.perf_counter() - t0
    except Exception as err:  # noqa: BLE001 - recorded, the run goes on
        recs.append(failed("gradspec", err))
        predict = None
    W = params["W_hh"]
    W64 = np.asarray(W, np.float64)
    K = min(T, gradspec.verdicts.TRANSIENT_POWERS)  # the powers predict searches
    sync = jax.block_until_ready
    key = jax.random.key(1)
    xs8 = jnp.zeros((SAMPLES, STEPS, 1), dtype)
    h08 = 0.5 * jax.random.normal(key, (SAMPLES, N), dtype)
    sampled = jax.jit(
        jax.vmap(
            lambda xs, h0: gradspec.lyapunov_spectrum(
                cell, params, xs, h0, k=1, warmup=WARMUP
            )
        )
    )
    components = {
        "component:weight_spectrum": (
            lambda: gradspec.weight_spectrum(W),
            (10 + 8 / 3) * N**3,
            "(10 + 8/3) N^3",
        ),
        "component:transient_growth": (
            lambda: theory.transient_growth(W64, max_power=K),
            K * (2 + 8 / 3) * N**3 + 10 * N**3,
            "K (2 + 8/3) N^3 + 10 N^3, K = min(T, verdicts.TRANSIENT_POWERS)",
        ),
        "component:sampled_exponents": (
            lambda: sampled(xs8, h08),
            SAMPLES * STEPS * 6 * N**2,
            "8 x 512 x 6 N^2",
        ),
    }
    for name, (fn, _, _) in components.items():
        t0 = time.perf_counter()
        sync(fn())
        first[name] = time.perf_counter() - t0
        prepared[name] = Tm.host_call(fn, sync=sync, host=False)
    if predict is not None:
        prepared["gradspec"] = Tm.host_call(lambda: predict(cell, params, T), host=False)
    np_args = prob.numpy64()
    rng = np.random.default_rng(0)
    prepared["numpy_f64_loop"] = Tm.host_call(
        lambda: sampled_numpy(np_args[0], np_args[1], np_args[2], rng)
    )
    if torch:
        targs, tsync = R.torch_args(torch, prob, device)
        gen = torch.Generator().manual_seed(0)
        prepared["torch_loop"] = Tm.host_call(
            lambda: sampled_torch(torch, targs[0], targs[2], gen), sync=tsync
        )
    else:
        recs.append(skip(method="torch_loop", reason=torch.reason))
    t = Tm.time_calls(prepared, cfg)
    for name, first_s in first.items():  # first call minus best run
        if name in t:
            t[name].compile_s = max(0.0, first_s - t[name].best)

    ref = None
    try:
        if predict is not None:
            ref = predict(cell, prob.astype("float64").params, T)
    except Exception as err:  # noqa: BLE001 - recorded, the run goes on
        recs.append(failed("float64_reference", err))
    ref_name = "gradspec.predict on the float64 params"

    def stat_acc(mean, se, what):
        if ref is None:
            return Rec.not_checked("no float64 prediction (predict failed)")
        tol = 4 * math.hypot(se, ref.uncertainty) + 1e-3
        return Rec.accuracy(
            abs(mean - ref.measured_lyapunov),
            tol,
            f"|sampled lambda_max - reference| ({what}; 4 standard errors)",
            ref_name + " (measured_lyapunov)",
        )

    if "gradspec" in t:
        out = t["gradspec"].output
        if ref is not None:
            tol = TOL_LAMBDA[dtype]
            if out.source != "mean-field":  # a sampled estimate: within its errors
                tol = max(tol, 4 * math.hypot(out.uncertainty, ref.uncertainty))
            acc = Rec.accuracy(
                abs(out.lyapunov - ref.lyapunov),
                tol,
                "|lambda_max error|",
                ref_name,
                regime=out.regime,
                regime_ref=ref.regime,
                # the regime may flip where |lambda_max| sits on the threshold 1/T
                regime_agrees=out.regime == ref.regime,
                source=out.source,
                sampled=stat_acc(
                    out.measured_lyapunov, out.uncertainty, "predict's own samples"
                ),
            )
            acc["within_tolerance"] = bool(
                acc["within_tolerance"] and acc["sampled"]["within_tolerance"]
            )
        else:
            acc = Rec.not_checked("no float64 prediction")
        recs.append(
            rec(
                method="gradspec",
                library=True,
                timing=t["gradspec"],
                flops=sum(c[1] for c in components.values())
                + components["component:weight_spectrum"][1],
                flop_formula="sum of the components (weight_spectrum twice)",
                accuracy=acc,
                lambda_max=out.lyapunov,
                regime=out.regime,
                compile_note="first call minus best run",
            )
        )
    for name, (_, flops, formula) in components.items():
        recs.append(
            rec(
                method=name,
                library=True,
                timing=t[name],
                flops=flops,
                flop_formula=formula,
                accuracy=Rec.not_checked(
                    "component timing (its value is checked "
                    "through predict and the library tests)"
                ),
                compile_note="first call minus best run",
                K=K,
            )
        )
    for name in ("numpy_f64_loop", "torch_loop"):
        if name in t:
            mean, se = t[name].output
            recs.append(
                rec(
                    method=name,
                    library=False,
                    timing=t[name],
                    flops=SAMPLES * STEPS * 4 * N**2,
                    flop_formula="8 x 512 x 4 N^2",
                    accuracy=stat_acc(mean, se, name),
                    lambda_sampled=mean,
                )
            )
    Rec.add_ratios(recs, "gradspec")
    main = next(
        (r for r in recs if r["method"] == "gradspec" and r["status"] == "ok"), None
    )
    if main is not None:  # components are parts of predict, not alternatives to it
        for r in recs:
            if r["method"].startswith("component:"):
                main["speedup_vs"].pop(r["method"], None)
                r["share_of_predict"] = r.pop("time_ratio_to_primary", None)
    return recs


def run(cfg, env, peaks, device) -> list:
    def batched(prob):
        if prob.batch > 1:
            return (
                "predict is host-side (Python verdict) "
                "and not vmap-able: B networks cost B calls"
            )
        return None

    runs = [(BENCH, run_case, batched)]
    return R.for_each_case(cfg, env, peaks, device, BENCH, runs)
