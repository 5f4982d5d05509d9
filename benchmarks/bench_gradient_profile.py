r"""gradient_profile: every lag's gradient norm in one reverse scan, vs the naive ways.

Problem: tanh RNN (``_runner.rnn_problem``), readout r = 1/sqrt(N), L = r . h_T; the
profile is :math:`\ell_k = \log\|\partial L/\partial h_{T-k}\|`, k = 0..T.

Methods timed in the same interleaved rounds (``_timing.time_calls``), with their FLOP
counts (per sequence; times B for a batch; O(N T) terms and the D = 1 input dropped):

=============================  =====================================================
``gradspec``                   ``gradient_profile``: forward scan 2N^2 T (saving
                               f'(a_t)), reverse scan of VJPs (g * f'(a_t)) W_hh
                               2N^2 T: **4 N^2 T**.
``plain_grad_h0``              ``jax.grad`` of L w.r.t. h_0 through ``lax.scan``: one
                               plain forward + backward pass, **4 N^2 T**. This is
                               the target's yardstick (profile <= 2x this).
``plain_grad_params``          ``jax.grad`` of L (summed over the batch) w.r.t. the
                               params: 4 N^2 T + 2 N^2 T for dW_hh, **6 N^2 T**.
``grad_all_states``            ``jax.grad`` w.r.t. zero perturbations of every state:
                               all lags in one backward pass, **4 N^2 T**, but not in
                               the log domain (underflows in float32 at large T).
``jacrev_full``                ``jax.jacrev`` of the unrolled map h_0 -> h_T (the full
                               N x N Jacobian dh_T/dh_0): forward 2N^2 T + N
                               cotangents backward 2N^3 T, **2N^3 T**; gives lag T
                               only (one of the T + 1 entries).
``per_lag_grad``               one ``jax.grad`` per lag k, of L w.r.t. h_{T-k} through
                               k steps (4 N^2 k each, one compilation each); a few
                               lags are timed, t(k) = a + b k is fitted and summed over
                               k = 1..T: **2 N^2 T (T + 1)**. Compile time is extra
                               and not extrapolated.
``numpy_f64_loop``             Python loop in float64 numpy, renormalised each step
                               (log domain): **4 N^2 T**. Also the accuracy reference.
``torch_autograd``             PyTorch forward loop + one ``torch.autograd.grad`` for
                               all states: **4 N^2 T**, in the case's dtype.
=============================  =====================================================

Naive baselines run at batch 1 (their batched cost is B times by construction).

Accuracy: max over lags of |l_k - l_k^ref| (natural log, i.e. the relative error of
the norm) against the float64 numpy loop. Tolerance: float32 ``TOL_F32_PER_STEP * T``
(a few float32 roundings of the renormalised cotangent per step, accumulated over T
steps, plus the float32 trajectory's own rounding), float64 ``TOL_F64_PER_STEP * T``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import gradspec

from . import _records as Rec
from . import _runner as R
from . import _timing as Tm

BENCH = "gradient_profile"
TOL_PER_STEP = {"float32": 5e-6, "float64": 1e-12}
TOL_FLOOR = {"float32": 1e-4, "float64": 1e-10}

FLOPS = {
    "gradspec": ("4 N^2 T B", lambda N, T, B: 4 * N**2 * T * B),
    "plain_grad_h0": ("4 N^2 T B", lambda N, T, B: 4 * N**2 * T * B),
    "plain_grad_params": ("6 N^2 T B", lambda N, T, B: 6 * N**2 * T * B),
    "grad_all_states": ("4 N^2 T", lambda N, T, B: 4 * N**2 * T),
    "jacrev_full": ("2 N^3 T (lag T only)", lambda N, T, B: 2 * N**3 * T),
    "per_lag_grad": (
        "2 N^2 T (T + 1) (all lags, extrapolated)",
        lambda N, T, B: 2 * N**2 * T * (T + 1),
    ),
    "numpy_f64_loop": ("4 N^2 T", lambda N, T, B: 4 * N**2 * T),
    "torch_autograd": ("4 N^2 T", lambda N, T, B: 4 * N**2 * T),
}


def tolerance(dtype: str, T: int) -> float:
    return TOL_FLOOR[dtype] + TOL_PER_STEP[dtype] * T


# ------------------------------------------------------------------ JAX methods
def log_norm(g, axis=None):
    """log ||g||_2 without squaring under/overflow (scaled by max |g|): the baselines'
    gradients are judged on whether *they* are representable, not their squares."""
    m = jnp.max(jnp.abs(g), axis=axis, keepdims=True)
    safe = jnp.where(m > 0, m, 1)
    s = jnp.sum((g / safe) ** 2, axis=axis, keepdims=True)
    out = jnp.where(m > 0, jnp.log(safe) + 0.5 * jnp.log(s), -jnp.inf)
    return jnp.squeeze(out, axis) if axis is not None else out.reshape(())


def make_profile(cell):
    return lambda params, xs, h0: gradspec.gradient_profile(cell, params, xs, h0)


def make_plain_grad_h0(cell, readout):
    def fn(params, xs, h0):
        return jax.grad(lambda h: readout @ R.final_state(cell, params, h, xs))(h0)

    return fn


def make_plain_grad_params(cell, readout, batch):
    def loss(params, xs, h0):
        if batch == 1:
            return readout @ R.final_state(cell, params, h0, xs)
        return jnp.sum(
            jax.vmap(lambda x, h: readout @ R.final_state(cell, params, h, x))(xs, h0)
        )

    return jax.grad(loss)


def make_grad_all_states(cell, readout):
    def fn(params, xs, h0):
        def loss(h0, deltas):
            def body(h, inp):  # h_t = F(h_{t-1}, x_t) + delta_t: dL/d delta_t = dL/dh_t
                return cell.step(params, h, inp[0]) + inp[1], None

            return readout @ lax.scan(body, h0, (xs, deltas))[0]

        g0, gs = jax.grad(loss, argnums=(0, 1))(
            h0, jnp.zeros((xs.shape[0], h0.shape[0]), h0.dtype)
        )
        return log_norm(jnp.concatenate([gs[::-1], g0[None]]), axis=1)  # lags 0..T

    return fn


def make_jacrev_full(cell, readout):
    def fn(params, xs, h0):
        # dh_T/dh_0, (N, N)
        J = jax.jacrev(lambda h: R.final_state(cell, params, h, xs))(h0)
        return log_norm(readout @ J)  # lag T

    return fn


def make_lag_grad(cell, readout):
    """log ||dL/dh_{T-k}|| by a plain grad through the last k steps ``xs_tail``."""
    grad_h0 = make_plain_grad_h0(cell, readout)
    return lambda params, xs_tail, h_start: log_norm(grad_h0(params, xs_tail, h_start))


# ------------------------------------------------------------------ host methods
def numpy_profile(W, Wx, b, xs, h0, r):
    """float64 reference: forward loop saving f'(a), reverse loop renormalised."""
    T = xs.shape[0]
    h, slopes = h0, np.empty((T, h0.shape[0]))
    for t in range(T):
        h = np.tanh(W @ h + Wx @ xs[t] + b)
        slopes[t] = 1.0 - h * h
    n0 = np.linalg.norm(r)
    g, log_scale, out = r / n0, math.log(n0), [math.log(n0)]
    for t in range(T - 1, -1, -1):
        g = (g * slopes[t]) @ W
        n = np.linalg.norm(g)
        g = g / n if n > 0 else g
        log_scale += math.log(n) if n > 0 else -math.inf
        out.append(log_scale)
    return np.array(out)


def torch_profile(torch, W, Wx, b, xs, h0, r):
    h = h0.clone().requires_grad_(True)
    states = [h]
    for t in range(xs.shape[0]):
        h = torch.tanh(W @ h + Wx @ xs[t] + b)
        states.append(h)
    grads = torch.stack(torch.autograd.grad(r @ h, states)[::-1])  # lags 0..T
    m = grads.abs().amax(1, keepdim=True)  # scaled norm: no underflow of the squares
    safe = torch.where(m > 0, m, torch.ones_like(m))
    out = torch.log(safe[:, 0]) + 0.5 * torch.log(((grads / safe) ** 2).sum(1))
    return torch.where(m[:, 0] > 0, out, -torch.inf).detach().cpu().numpy()


# ------------------------------------------------------------------ one case
def per_lag_lags(T: int, count: int) -> list:
    return sorted({max(1, round(T * (i + 1) / count)) for i in range(count)})


def extrapolate_lags(lags, best_times, T):
    """Least-squares t(k) = a + b k, summed over k = 1..T (a clamped at >= 0)."""
    k = np.asarray(lags, float)
    t = np.asarray(best_times, float)
    if len(k) >= 2:
        b, a = np.polyfit(k, t, 1)
        if a < 0:  # noise: force through the origin
            a, b = 0.0, float((k @ t) / (k @ k))
    else:
        a, b = 0.0, float(t[0] / k[0])
    total = T * a + b * T * (T + 1) / 2
    return {
        "seconds": float(total),
        "from_lags": [int(x) for x in lags],
        "lag_best_s": [float(x) for x in t],
        "fit_a_s": float(a),
        "fit_b_s_per_lag": float(b),
        "how": "least-squares t(k) = a + b k over the timed lags, summed over k = 1..T",
    }


def run_case(cfg, env, peaks, device, prob: R.Problem, torch) -> list:
    N, T, B, dtype = prob.N, prob.T, prob.batch, prob.dtype
    rec, skipped = Rec.bind(env, BENCH, prob.case())
    cell, params, xs, h0, r = prob.cell, prob.params, prob.xs, prob.h0, prob.readout
    ax = (None, 0, 0)
    prepared = {
        "gradspec": Tm.jax_call(R.batched(make_profile(cell), B, ax), params, xs, h0),
        "plain_grad_h0": Tm.jax_call(
            R.batched(make_plain_grad_h0(cell, r), B, ax), params, xs, h0
        ),
    }
    if B == 1 or cfg.mode == "full":
        prepared["plain_grad_params"] = Tm.jax_call(
            make_plain_grad_params(cell, r, B), params, xs, h0
        )
    lags = []
    if B == 1:
        prepared["grad_all_states"] = Tm.jax_call(
            make_grad_all_states(cell, r), params, xs, h0
        )
        if 2 * N**3 * T <= 2e12 or cfg.mode == "full":
            prepared["jacrev_full"] = Tm.jax_call(
                make_jacrev_full(cell, r), params, xs, h0
            )
        states = gradspec.trajectory(cell, params, xs, h0)
        all_states = jnp.concatenate([h0[None], states])  # h_0..h_T
        lag_fn = jax.jit(make_lag_grad(cell, r))
        lags = per_lag_lags(T, cfg.per_lag_count)
        for k in lags:
            prepared[f"lag:{k}"] = Tm.jax_call(
                lag_fn, params, xs[T - k :], all_states[T - k]
            )
        np_args = prob.numpy64()
        prepared["numpy_f64_loop"] = Tm.host_call(numpy_profile, *np_args)
        if torch:
            targs, tsync = R.torch_args(torch, prob, device)
            prepared["torch_autograd"] = Tm.host_call(
                lambda *a: torch_profile(torch, *a), *targs, sync=tsync
            )
    timings = Tm.time_calls(prepared, cfg)

    # float64 reference (first sequence of the batch)
    ref = (
        timings["numpy_f64_loop"].output
        if "numpy_f64_loop" in timings
        else numpy_profile(*prob.numpy64())
    )
    tol = tolerance(dtype, T)
    ref_name = "numpy float64 loop (log domain), first sequence"

    def acc_full(out):  # the baselines run at B = 1 only
        return Rec.accuracy(
            Rec.max_abs_error(Rec.first_of(out, B), ref),
            tol,
            "max_k |log-norm error|",
            ref_name,
        )

    recs = []

    def add(name, timing, acc, **extra):
        formula, count = FLOPS[name]
        recs.append(
            rec(
                method=name,
                library=name == "gradspec",
                timing=timing,
                flops=count(N, T, B),
                flop_formula=formula,
                peaks=peaks,
                accuracy=acc,
                **extra,
            )
        )

    def skip(name, why):
        recs.append(skipped(method=name, reason=why, flop_formula=FLOPS[name][0]))

    for name in ("gradspec", "grad_all_states", "numpy_f64_loop", "torch_autograd"):
        if name in timings:
            acc = acc_full(timings[name].output)
            if name == "numpy_f64_loop":
                acc["note"] = "this is the reference itself"
            add(name, timings[name], acc, lags_covered=T + 1)
    if "plain_grad_h0" in timings:
        t = timings["plain_grad_h0"]
        g = Rec.first_of(t.output, B)
        err = Rec.max_abs_error(log_norm(jnp.asarray(g, jnp.float64)), ref[T])
        acc = Rec.accuracy(err, tol, "|log||dL/dh_0|| error| (lag T)", ref_name)
        add("plain_grad_h0", t, acc, lags_covered=1)
    if "plain_grad_params" in timings:
        acc = Rec.not_checked("yardstick only: a parameter gradient, not a profile entry")
        add("plain_grad_params", timings["plain_grad_params"], acc, lags_covered=0)
    if "jacrev_full" in timings:
        t = timings["jacrev_full"]
        acc = Rec.accuracy(
            Rec.max_abs_error(t.output, ref[T]), tol, "|log-norm error| (lag T)", ref_name
        )
        add(
            "jacrev_full",
            t,
            acc,
            lags_covered=1,
            all_lags_estimate_s=t.best * (T + 1) / 2,
            note="measured for lag T only; all lags by this route "
            "~ (T+1)/2 times this (cost linear in the lag)",
        )
    elif B == 1:
        skip("jacrev_full", "2 N^3 T > 2e12 flops outside --full mode")
    if lags:
        lag_t = [timings[f"lag:{k}"] for k in lags]
        ext = extrapolate_lags(lags, [t.best for t in lag_t], T)
        ext["median_seconds"] = extrapolate_lags(lags, [t.median for t in lag_t], T)[
            "seconds"
        ]
        errs = [Rec.max_abs_error(t.output, ref[k]) for k, t in zip(lags, lag_t)]
        acc = Rec.accuracy(
            max(errs), tol, "max over timed lags |log-norm error|", ref_name
        )
        merged = Tm.Timing(
            sum(t.compile_s for t in lag_t),
            sum(t.warmup_s for t in lag_t),
            [sum(ts) for ts in zip(*[t.times_s for t in lag_t])],
        )
        add(
            "per_lag_grad",
            merged,
            acc,
            extrapolated=ext,
            lags_covered=T,
            note=f"timed lags {lags}, extrapolated to all T lags; compile "
            "time covers the timed lags only (one compilation per lag)",
        )
    if B == 1 and not torch:
        skip("torch_autograd", torch.reason)
    Rec.add_ratios(recs, "gradspec")
    return recs


def run(cfg, env, peaks, device) -> list:
    def over_budget(prob):
        N, T, B, dtype = prob.N, prob.T, prob.batch, prob.dtype
        est = 6 * N**2 * T * B / (0.02 * peaks[dtype]["best_flops"])  # 2% of peak: GEMV
        if est * (cfg.repeats + 2) > cfg.budget_s * 4:
            return (
                f"estimated {est:.1f} s per call is over "
                f"the budget ({cfg.budget_s} s) of --{cfg.mode}"
            )
        return None

    runs = [(BENCH, run_case, over_budget)]
    return R.for_each_case(cfg, env, peaks, device, BENCH, runs)
