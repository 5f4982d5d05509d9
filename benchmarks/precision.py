r"""What gradspec's full-precision matmuls buy and cost on this device.

On GPUs/TPUs JAX multiplies float32 matrices on reduced-precision units by default (TF32
on NVIDIA); gradspec traces its kernels at "highest" (``gradspec/_precision.py``). For
the tanh RNN of ``_runner.rnn_problem`` this times and checks, at each precision:

- ``gradient_profile`` (all T + 1 lags, float32): error = max_k |log||g_k|| - ref_k|,
  the reference being the float64 call on the CPU;
- ``lyapunov_spectrum(k=8)`` (float32): max_i |lambda_i - ref_i| against float64 on CPU.

On a CPU both precisions compute the same product, so the errors match and the run only
checks the plumbing.

    python -m benchmarks.precision [--device gpu] [--N 256] [--T 1000] --out precision.json
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

import gradspec

from . import _runner as R
from . import _timing as Tm

K = 8


def _measure(fn, repeats=5):
    out = jax.block_until_ready(fn())  # compile + warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return np.asarray(out, np.float64), min(times)


def run(N: int, T: int, device) -> dict:
    cpu = jax.devices("cpu")[0]
    prob = R.rnn_problem(N, T, "float32", 1, device)
    ref = R.rnn_problem(N, T, "float64", 1, cpu)
    kernels = {
        "gradient_profile": lambda p: gradspec.gradient_profile(p.cell, p.params, p.xs),
        "lyapunov_top8": lambda p: gradspec.lyapunov_spectrum(p.cell, p.params, p.xs, k=K),
    }
    out = {"N": N, "T": T, "device": device.device_kind, "jax": jax.__version__, "cases": []}
    for name, kernel in kernels.items():
        with jax.default_device(cpu):
            expected = np.asarray(kernel(ref), np.float64)
        for precision in ("highest", "tensorfloat32"):
            with jax.default_device(device), jax.default_matmul_precision(precision):
                got, best = _measure(lambda: kernel(prob))
            err = float(np.max(np.abs(got - expected)))
            out["cases"].append(
                {"kernel": name, "precision": precision, "best_s": best, "max_abs_error": err}
            )
            R.log(f"{name:17s} {precision:14s} {best * 1e3:9.2f} ms  max |error| {err:.2e}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__)
    ap.add_argument("--device", choices=("gpu", "cpu"), default=None)
    ap.add_argument("--N", type=int, default=256)
    ap.add_argument("--T", type=int, default=1000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    device = Tm.select_device(args.device)
    result = run(args.N, args.T, device)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
