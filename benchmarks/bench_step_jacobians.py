r"""step_jacobians: all T step Jacobians J_t = diag(f'(a_t)) W_hh, (T, N, N) at once.

This is a memory-bound kernel: it writes T N^2 numbers. Records carry ``bytes_out``
and ``frac_of_stream`` (achieved write bandwidth over the streaming bandwidth measured
at the start of the run) next to the FLOP/s.

=========================  ==========================================================
``gradspec``               ``step_jacobians`` (closed form): trajectory 2N^2 T, per
                           step the pre-activation again 2N^2 and the row scaling
                           N^2: **5 N^2 T** (B times for a batch).
``gradspec_autodiff``      ``step_jacobians(method="autodiff")``: ``jax.jacrev`` of
                           the step, vmapped over t: N cotangents through W_hh,
                           **2 N^3 T** (+ the trajectory).
``python_loop_jacrev``     a jitted ``jax.jacrev`` of one step called from a Python
                           loop: **2 N^3 T**; run on at most ``loop_steps`` steps and
                           extrapolated linearly to T (stated in the record).
``numpy_f64_loop``         float64 numpy loop writing J_t = (1 - h_t^2) W_hh:
                           **3 N^2 T**; prefix + extrapolation as above.
``torch_autograd``         ``torch.autograd.functional.jacobian`` (vectorised) of one
                           step per t, in the dtype: **2 N^3 T**; prefix as above.
=========================  ==========================================================

Accuracy: max over checked steps (the first and last ``CHECK_STEPS``) of
||J_t - J_t^ref||_F / ||J_t^ref||_F, against a float64 numpy computation on the same
inputs. Tolerance ``TOL[dtype]``: one float32 rounding of f'(a) and of each product,
plus the float32 trajectory's drift (the problem is contracting, so it stays ~1e-6).
"""

from __future__ import annotations

import jax
import numpy as np

import gradspec

from . import _records as Rec
from . import _runner as R
from . import _timing as Tm

BENCH = "step_jacobians"
TOL = {"float32": 1e-4, "float64": 1e-12}
CHECK_STEPS = 8


def make_auto(cell, method="auto"):
    return lambda p, xs, h0: gradspec.step_jacobians(cell, p, xs, h0, method=method)


def numpy_jacobians(W, Wx, b, xs, h0):
    h, out = h0, np.empty((xs.shape[0],) + W.shape)
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + Wx @ xs[t] + b)
        out[t] = (1.0 - h * h)[:, None] * W
    return out


def reference_at(W, Wx, b, xs, h0, steps):
    h, out = h0, {}
    wanted = set(steps)
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + Wx @ xs[t] + b)
        if t in wanted:
            out[t] = (1.0 - h * h)[:, None] * W
    return np.stack([out[t] for t in steps])


def python_loop_jacrev(step_jac, params, xs, h0, step):
    h, out = h0, []
    for t in range(xs.shape[0]):
        out.append(step_jac(params, h, xs[t]))
        h = step(params, h, xs[t])
    return jax.block_until_ready(out)


def torch_jacobians(torch, W, Wx, b, xs, h0):
    h, out = h0, []
    for t in range(xs.shape[0]):
        x = xs[t]
        out.append(
            torch.autograd.functional.jacobian(
                lambda v, x=x: torch.tanh(W @ v + Wx @ x + b), h, vectorize=True
            )
        )
        h = torch.tanh(W @ h + Wx @ x + b)
    return torch.stack(out)


def rel_frob_error(J, ref):
    J = np.asarray(J, np.float64)
    num = np.linalg.norm((J - ref).reshape(len(ref), -1), axis=1)
    den = np.linalg.norm(ref.reshape(len(ref), -1), axis=1)
    err = np.where(np.isfinite(num), num / den, np.inf)
    return float(err.max())


def run_case(cfg, env, peaks, device, prob: R.Problem, torch) -> list:
    N, T, B, dtype = prob.N, prob.T, prob.batch, prob.dtype
    rec, skip = Rec.bind(env, BENCH, prob.case())
    c, p, xs, h0 = prob.cell, prob.params, prob.xs, prob.h0
    itemsize = np.dtype(dtype).itemsize
    ax = (None, 0, 0)
    prepared = {"gradspec": Tm.jax_call(R.batched(make_auto(c), B, ax), p, xs, h0)}
    if 2 * N**3 * T * B <= 2e11 or cfg.mode == "full":
        prepared["gradspec_autodiff"] = Tm.jax_call(
            R.batched(make_auto(c, "autodiff"), B, ax), p, xs, h0
        )
    prefix = min(T, cfg.loop_steps)
    if B == 1:
        np_args = prob.numpy64()[:5]
        prepared["numpy_f64_loop"] = Tm.host_call(
            numpy_jacobians, *np_args[:3], np_args[3][:prefix], np_args[4]
        )
        step_jac = jax.jit(jax.jacrev(c.step, argnums=1))
        step = jax.jit(c.step)
        jax.block_until_ready(step_jac(p, h0, xs[0]))  # compile outside the timing
        jax.block_until_ready(step(p, h0, xs[0]))
        prepared["python_loop_jacrev"] = Tm.host_call(
            python_loop_jacrev, step_jac, p, xs[:prefix], h0, step
        )
        if torch:
            targs, tsync = R.torch_args(torch, prob, device)
            targs[3] = targs[3][:prefix]
            prepared["torch_autograd"] = Tm.host_call(
                lambda *a: torch_jacobians(torch, *a), *targs[:5], sync=tsync
            )
    t = Tm.time_calls(prepared, cfg)

    steps = sorted(
        set(range(min(CHECK_STEPS, T))) | set(range(max(0, T - CHECK_STEPS), T))
    )
    ref = reference_at(*prob.numpy64()[:5], steps)
    ref_name = (
        "float64 numpy J_t = (1 - h_t^2) W_hh at the first/last steps, first sequence"
    )
    bytes_out = T * N * N * B * itemsize
    stream = peaks["stream_bytes_per_s"]
    recs = []
    formulas = {
        "gradspec": ("5 N^2 T B", 5 * N**2 * T * B),
        "gradspec_autodiff": ("2 N^3 T B", 2 * N**3 * T * B),
        "python_loop_jacrev": ("2 N^3 T", 2 * N**3 * T),
        "numpy_f64_loop": ("3 N^2 T", 3 * N**2 * T),
        "torch_autograd": ("2 N^3 T", 2 * N**3 * T),
    }
    for name, timing in t.items():
        ext = None
        out = timing.output
        lib = name.startswith("gradspec")
        if lib:
            checked = steps
            J = Rec.first_of(out, B)[steps]
        else:  # the host loops ran the first `prefix` steps
            checked = [s for s in steps if s < prefix]
            J = np.stack([Rec.to_numpy(out[s]) for s in checked])
            if prefix < T:
                ext = {
                    "seconds": timing.best * T / prefix,
                    "median_seconds": timing.median * T / prefix,
                    "from_steps": prefix,
                    "how": "linear in T (one step per "
                    "iteration): time on the first steps x T / steps",
                }
        acc = Rec.accuracy(
            rel_frob_error(J, ref[: len(checked)]),  # `checked` is a prefix of `steps`
            TOL[dtype],
            "max_t ||J_t - J_t^ref||_F / ||J_t^ref||_F"
            + ("" if checked == steps else " (prefix steps)"),
            ref_name,
            steps_checked=checked,
        )
        formula, flops = formulas[name]
        seconds = ext["seconds"] if ext else timing.best
        b_out = (
            bytes_out
            if lib
            else T * N * N * (8 if name == "numpy_f64_loop" else itemsize)
        )
        recs.append(
            rec(
                method=name,
                library=lib,
                timing=timing,
                flops=flops,
                flop_formula=formula,
                peaks=peaks,
                accuracy=acc,
                extrapolated=ext,
                bytes_out=b_out,
                bytes_per_s=b_out / seconds,
                frac_of_stream=b_out / seconds / stream,
            )
        )
    if B == 1 and not torch:
        recs.append(skip(method="torch_autograd", reason=torch.reason))
    Rec.add_ratios(recs, "gradspec")
    return recs


def run(cfg, env, peaks, device) -> list:
    def over_memory(prob):
        need = prob.T * prob.N**2 * prob.batch * np.dtype(prob.dtype).itemsize
        if need > cfg.mem_limit_bytes:
            return (
                f"output T N^2 B = {need / 2**20:.0f} MiB is over the --{cfg.mode} "
                f"limit ({cfg.mem_limit_bytes / 2**20:.0f} MiB)"
            )
        return None

    runs = [(BENCH, run_case, over_memory)]
    return R.for_each_case(cfg, env, peaks, device, BENCH, runs)
