"""Targets (measured vs goal) and the Markdown results table, from a results dict."""

from __future__ import annotations

from ._records import as_float

#: The issue's targets.
GOAL_PROFILE_VS_PLAIN = 2.0  # gradient_profile time <= 2x one plain forward+backward
GOAL_PROFILE_VS_PER_LAG = 50.0  # >= 50x faster than one jax.grad per lag, at T = 1000
GOAL_SPECTRA_PEAK = 0.5  # >= 50% of the matmul peak at N >= 512
GOAL_TOPK_MIN_RATIO_PER_N = 0.1  # t(k = N) / t(k = 1) >= N / 10: not O(T N^3) at k = 1


def _ok(records, **match):
    for r in records:
        if r.get("status") == "ok" and all(r.get(k) == v for k, v in match.items()):
            yield r


def targets(result: dict) -> list:
    recs = result["records"]
    out = []

    # 1. gradient_profile vs one plain forward + backward pass (jax.grad w.r.t. h_0).
    ratios = [
        (1.0 / r["speedup_vs"]["plain_grad_h0"], r)
        for r in _ok(recs, benchmark="gradient_profile", method="gradspec")
        if "plain_grad_h0" in r.get("speedup_vs", {})
    ]
    head = [
        x
        for x in ratios
        if (x[1]["N"], x[1]["T"], x[1]["dtype"], x[1]["batch"])
        == (256, 1000, "float32", 1)
    ]
    worst = max(ratios, key=lambda x: x[0]) if ratios else None
    pick = head[0] if head else worst
    out.append(
        {
            "name": "gradient_profile <= 2x plain forward+backward",
            "goal": f"t(profile) / t(jax.grad w.r.t. h_0) <= {GOAL_PROFILE_VS_PLAIN}",
            "measured": pick[0] if pick else None,
            "at": _where(pick[1]) if pick else None,
            "worst": worst[0] if worst else None,
            "worst_at": _where(worst[1]) if worst else None,
            "all": {_where(r): v for v, r in ratios},
            "met": (pick[0] <= GOAL_PROFILE_VS_PLAIN) if pick else None,
        }
    )

    # 2. >= 50x faster than per-lag grad at T = 1000.
    sp = [
        (r["speedup_vs"]["per_lag_grad"], r)
        for r in _ok(recs, benchmark="gradient_profile", method="gradspec", T=1000)
        if "per_lag_grad" in r.get("speedup_vs", {})
    ]
    low = min(sp, key=lambda x: x[0]) if sp else None
    out.append(
        {
            "name": "gradient_profile >= 50x faster than per-lag grad at T = 1000",
            "goal": f"t(per-lag grad, all lags, extrapolated) / t(profile) >= "
            f"{GOAL_PROFILE_VS_PER_LAG}",
            "measured": low[0] if low else None,
            "at": _where(low[1]) if low else None,
            "all": {_where(r): v for v, r in sp},
            "met": (low[0] >= GOAL_PROFILE_VS_PER_LAG) if low else None,
        }
    )

    # 3. Spectra at N >= 512: >= 50% of the measured matmul peak.
    big = [
        r
        for r in recs
        if r.get("status") == "ok"
        and r.get("N", 0) >= 512
        and r.get("library")
        and r["benchmark"] in ("product_singular_values", "lyapunov_spectrum")
        and r.get("frac_of_peak") is not None
    ]
    # Prefer the peak re-measured in the same rounds (roofline points), else the run's.
    fr = [
        (as_float(r.get("frac_of_peak_same_rounds", r["frac_of_peak"])), r) for r in big
    ]
    low = min(fr, key=lambda x: x[0]) if fr else None
    out.append(
        {
            "name": "product singular values and full Lyapunov spectrum at N >= 512: "
            ">= 50% "
            "of the matmul peak",
            "goal": f"achieved FLOP/s / best jnp.dot FLOP/s >= {GOAL_SPECTRA_PEAK}",
            "measured": low[0] if low else None,
            "at": _where(low[1]) + f" {low[1]['benchmark']}:{low[1]['method']}"
            if low
            else None,
            "all": {
                f"{_where(r)} {r['benchmark']}:{r['method']}": {
                    "frac_of_peak_same_rounds": r.get("frac_of_peak_same_rounds"),
                    "frac_of_peak_run_start": r["frac_of_peak"],
                    "frac_of_matmul_same_n": r.get("frac_of_matmul_same_n"),
                    "qr_alone_frac_of_peak": r.get("qr_alone_frac_of_peak"),
                    "kernel_floor_over_time": r.get("kernel_floor_over_time"),
                }
                for v, r in fr
            },
            "met": (low[0] >= GOAL_SPECTRA_PEAK) if low else None,
            "note": None if fr else "no N >= 512 point in this run",
            # What the goal can be held to: each step needs one N x N QR after one N x N
            # product, so the platform's QR rate caps the fraction of peak.
            "kernel_floor_note": "kernel_floor_over_time = T (t_qr + t_matmul) / t_sweep "
            "(2T for a psv sweep), each kernel timed alone: ~1 means the run costs what "
            "its QRs and products cost (> 1 where a lone call pays a dispatch the "
            "compiled scan does not)",
        }
    )

    # 4. Top-k: O(T N^2 k), not O(T N^3).
    sc = [r for r in _ok(recs, benchmark="lyapunov_topk", method="scaling")]
    if sc:
        r = sc[0]
        ratio = as_float(r["time_ratio_full_over_k1"])
        out.append(
            {
                "name": "top-k Lyapunov exponents cost O(T N^2 k), not O(T N^3)",
                "goal": f"t(k = N) / t(k = 1) >= N x {GOAL_TOPK_MIN_RATIO_PER_N} "
                "(an O(T N^3) "
                "method would give ~1); time exponent in k reported",
                "measured": ratio,
                "at": f"N={r['N']} T={r['T']} float32, k = {r['ks']}",
                "time_exponent_in_k": r["time_exponent_in_k"],
                "flop_ratio_full_over_k1": r["flop_ratio_full_over_k1"],
                "times_s": dict(zip([str(k) for k in r["ks"]], r["run_best_s"])),
                "met": ratio >= GOAL_TOPK_MIN_RATIO_PER_N * r["N"],
            }
        )
    else:
        out.append(
            {
                "name": "top-k Lyapunov exponents cost O(T N^2 k), not O(T N^3)",
                "goal": "",
                "measured": None,
                "met": None,
                "note": "not measured",
            }
        )
    return out


def _where(r) -> str:
    return f"N={r['N']} T={r['T']} {r['dtype']} B={r['batch']}"


def _fmt(v, spec=".3g"):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    return format(v, spec)


SHORT = {
    "plain_grad_h0": "plain",
    "plain_grad_params": "plain(params)",
    "per_lag_grad": "per-lag",
    "jacrev_full": "jacrev",
    "numpy_f64_loop": "numpy",
    "torch_autograd": "torch",
    "torch_loop": "torch",
    "grad_all_states": "grad(all states)",
    "jacrev_svd": "jacrev+svd",
    "numpy_f64_product_svd": "numpy prod+svd",
    "torch_autograd_svd": "torch jac+svd",
    "gradspec_autodiff": "autodiff",
    "python_loop_jacrev": "loop jacrev",
    "gradspec_1sweep": "1 sweep",
}


def markdown(result: dict) -> str:
    env = result["env"]
    intro = (
        f"gradspec benchmarks (`--{result['mode']}`) on {env['device_kind']} "
        f"x{env['device_count']} ({env.get('host_cpu')}, "
        f"{env.get('host_threads')} threads), jax {env['jax']}, total "
        f"{result['total_s']:.0f} s. Times: best of the interleaved rounds; "
        "speed-ups = "
        "baseline time / gradspec time in the same rounds (>1: gradspec faster); "
        "% peak: of the best jnp.dot measured in the run (same rounds at the N >= 512 "
        "points); bw: of the streaming bandwidth (memory-bound step_jacobians); error: "
        "against float64 (see each benchmark)."
    )
    header = (
        "| benchmark | N | T | dtype | B | time (ms) | compile (s) | GFLOP/s | % peak "
        "| speed-up vs baselines | error (tol) |"
    )
    lines = [intro, "", header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["records"]:
        if (
            not r.get("library")
            or r.get("status") == "skipped"
            or r["method"] == "scaling"
        ):
            continue
        if r["method"].startswith("component:"):
            continue
        name = r["benchmark"] + (
            "" if r["method"] == "gradspec" else f" ({r['method']})"
        )
        if r.get("status") == "error":
            lines.append(
                f"| {name} | {r.get('N')} | {r.get('T')} | {r.get('dtype')} | "
                f"{r.get('batch')} | error: {r['reason'][:60]} | | | | | |"
            )
            continue
        sp = r.get("speedup_vs", {})
        sps = ", ".join(f"{SHORT.get(k, k)} {as_float(v):.3g}x" for k, v in sp.items())
        acc = r.get("accuracy") or {}
        err = (
            f"{_fmt(acc.get('value'), '.1e')} ({_fmt(acc.get('tolerance'), '.0e')})"
            if acc.get("metric")
            else "–"
        )
        frac = r.get("frac_of_peak_same_rounds", r.get("frac_of_peak"))
        gflops = as_float(r["flops_per_s"]) / 1e9 if r.get("flops_per_s") else None
        pct = _fmt(as_float(frac) * 100 if frac is not None else None, ".1f")
        if (
            r.get("frac_of_stream") is not None
        ):  # memory-bound: bandwidth is the roofline
            pct += f" ({as_float(r['frac_of_stream']) * 100:.0f}% bw)"
        lines.append(
            f"| {name} | {r['N']} | {r['T']} | {r['dtype']} | {r['batch']} | "
            f"{_fmt(as_float(r['run_best_s']) * 1e3)} | "
            f"{_fmt(r.get('compile_s'), '.2f')} | {_fmt(gflops)} | "
            f"{pct} | "
            f"{sps or '–'} | {err} |"
        )
    lines += ["", "| target | goal | measured | at | met |", "|---|---|---|---|---|"]
    for t in result.get("targets", []):
        m = t.get("measured")
        lines.append(
            f"| {t['name']} | {t['goal']} | "
            f"{_fmt(as_float(m) if m is not None else None)}"
            f" | {t.get('at') or t.get('note') or '–'} | "
            f"{'yes' if t['met'] else 'no' if t['met'] is False else 'n/a'} |"
        )
    skipped = [r for r in result["records"] if r.get("status") == "skipped"]
    errors = [r for r in result["records"] if r.get("status") == "error"]
    lines += [
        "",
        f"{len(skipped)} skipped records (reasons in the JSON), {len(errors)} errors.",
    ]
    for r in errors:
        lines.append(
            f"- error in {r['benchmark']}:{r['method']} at {_where(r)}: "
            f"{r['reason'][:200]}"
        )
    return "\n".join(lines) + "\n"
