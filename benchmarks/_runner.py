"""The grid of the gradspec benchmarks and the loop over its cases: configuration, the
tanh RNN problem of every case, the PyTorch baselines' inputs.

How methods are timed: :mod:`benchmarks._timing`; what each case records:
:mod:`benchmarks._records`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import gradspec

from ._records import guarded, skipped
from ._timing import torch_module

# --------------------------------------------------------------------------- config
ALL_BENCHMARKS = ("gradient_profile", "spectra", "step_jacobians", "predict")


@dataclasses.dataclass
class Config:
    """What to run. ``mode`` is "quick", "full" or "tiny" (the test's smoke run)."""

    mode: str
    Ns: tuple  # hidden sizes
    Ts: tuple  # sequence lengths
    batches: tuple  # batch sizes (vmap)
    dtypes: tuple  # dtypes of the main grid
    f64_points: tuple  # extra (N, T, batch) float64 cases when float64 is not in dtypes
    repeats: int  # timed rounds after the warm-up (at least, when affordable)
    max_repeats: int  # cheap methods get up to this many rounds ...
    round_budget_s: float  # ... as long as they fit in this many seconds per method
    budget_s: float  # a case whose estimated cost exceeds this is skipped (with reason)
    loop_steps: int  # host loops (numpy/torch/per-step) run at most this many steps
    mem_limit_bytes: int  # largest materialised output (step_jacobians)
    k_values: tuple  # top-k Lyapunov scaling (k <= N); "N" means full
    k_case: tuple  # (N, T) of the top-k scaling study
    roofline_points: tuple  # (N, T) float32 points for the spectra's fraction of peak
    reorth_points: tuple  # (N, T) of the reorth_every study (float32 and float64)
    per_lag_count: int  # lags actually timed for the per-lag grad baseline
    peak_sizes: tuple  # matmul sizes for the peak
    host_repeats: int = 2  # numpy/torch/Python-loop baselines: at most this many rounds
    torch_max_n: int = 1 << 30  # PyTorch baselines only at N <= this
    extra_points_for: tuple = ALL_BENCHMARKS  # modules that also run ``f64_points``
    overrides: dict = dataclasses.field(default_factory=dict)  # module -> {"Ts": ...}

    def grid(self, bench: str):
        """Yield (N, T, dtype, batch) of the main grid plus the float64 points."""
        sub = self.overrides.get(bench, {})
        for dtype in self.dtypes:
            for n in sub.get("Ns", self.Ns):
                for t in sub.get("Ts", self.Ts):
                    for b in sub.get("batches", self.batches):
                        yield n, t, dtype, b
        if "float64" not in self.dtypes and bench in self.extra_points_for:
            for n, t, b in self.f64_points:
                yield n, t, "float64", b


def make_config(mode: str, platform_name: str) -> Config:
    accel = platform_name != "cpu"
    if mode == "tiny":  # the test's smoke run: seconds, every code path once
        return Config(
            mode=mode,
            Ns=(8,),
            Ts=(12,),
            batches=(1,),
            dtypes=("float32",),
            f64_points=((8, 12, 2),),
            repeats=1,
            max_repeats=2,
            round_budget_s=0.2,
            budget_s=5.0,
            loop_steps=12,
            mem_limit_bytes=64 << 20,
            k_values=(1, "N"),
            k_case=(8, 12),
            roofline_points=(),
            reorth_points=(),
            per_lag_count=2,
            peak_sizes=(8, 32),
            # the float64 + batched path once per kind of kernel, to stay within seconds
            extra_points_for=("gradient_profile", "step_jacobians"),
        )
    if mode == "quick":  # < 5 min on 2 CPU cores
        return Config(
            mode=mode,
            Ns=(64, 256),
            Ts=(100, 1000),
            batches=(1, 8),
            dtypes=("float32",),
            f64_points=((256, 1000, 1),),
            repeats=3,
            max_repeats=15,
            round_budget_s=0.4,
            budget_s=5.0,
            loop_steps=100,
            mem_limit_bytes=300 << 20,
            host_repeats=2,
            k_values=(1, 4, 16, 64, "N"),
            k_case=(256, 100),
            roofline_points=((512, 16),) + (((1024, 16), (4096, 8)) if accel else ()),
            reorth_points=((512, 100),),  # T past the 16 steps "auto" probes
            per_lag_count=3,
            peak_sizes=(64, 256, 512, 1024) + ((2048, 4096) if accel else ()),
            # predict's cost depends on T only through min(T, 16) powers of W_hh
            overrides={"predict": {"Ts": (1000,)}},
            extra_points_for=("gradient_profile", "spectra", "step_jacobians"),
        )
    if mode == "full":
        return Config(
            mode=mode,
            Ns=(64, 256, 1024) + ((4096,) if accel else ()),
            Ts=(100, 1000, 10000),
            batches=(1, 64),
            dtypes=("float32", "float64"),
            f64_points=(),
            repeats=5,
            max_repeats=25,
            round_budget_s=5.0,
            budget_s=600.0 if accel else 120.0,
            loop_steps=2000,
            mem_limit_bytes=(16 << 30) if accel else (4 << 30),
            k_values=(1, 4, 16, 64, 256, "N"),
            k_case=(1024, 1000),
            roofline_points=((512, 100), (1024, 100))
            + (((4096, 100),) if accel else ()),
            reorth_points=((512, 100), (1024, 100)),
            per_lag_count=4,
            peak_sizes=(64, 256, 1024, 2048) + ((4096, 8192) if accel else ()),
            host_repeats=3,
        )
    raise ValueError(f"`mode` must be 'tiny', 'quick' or 'full'; got {mode!r}.")


#: Called with the records of the module in progress after every case (the runner
#: rewrites its output then, so a run stopped mid-grid keeps every finished case).
CHECKPOINT: Callable[[list], None] | None = None


class Missing:
    """A falsy stand-in for an unavailable baseline library, with the reason."""

    def __init__(self, reason: str):
        self.reason = reason

    def __bool__(self):
        return False


def torch_for(cfg: Config, N: int):
    """torch for a case of size N, or :class:`Missing` saying why not."""
    if N > cfg.torch_max_n:
        return Missing(
            f"PyTorch baselines run at N <= {cfg.torch_max_n} in --{cfg.mode}"
        )
    torch = torch_module()
    return torch if torch is not None else Missing("torch is not installed")


# --------------------------------------------------------------------------- problems
@dataclasses.dataclass
class Problem:
    """A tanh RNN, inputs and initial state on the device, batched or not."""

    cell: Any
    params: dict  # W_hh (N, N), W_xh (N, D), b (N,)
    xs: jax.Array  # (T, D) or (B, T, D)
    h0: jax.Array  # (N,) or (B, N)
    readout: jax.Array  # (N,)
    N: int
    T: int
    batch: int
    dtype: str

    def case(self) -> dict:
        shapes = {
            "W_hh": list(self.params["W_hh"].shape),
            "xs": list(self.xs.shape),
            "h0": list(self.h0.shape),
        }
        return {
            "dtype": self.dtype,
            "N": self.N,
            "T": self.T,
            "batch": self.batch,
            "shapes": shapes,
        }

    def first(self):
        """(xs, h0) of the first sequence, unbatched."""
        if self.batch == 1:
            return self.xs, self.h0
        return self.xs[0], self.h0[0]

    def numpy64(self):
        """float64 numpy copies (W, W_xh, b, xs, h0, readout) of the first sequence."""
        xs, h0 = self.first()
        p = self.params
        arrays = (p["W_hh"], p["W_xh"], p["b"], xs, h0, self.readout)
        return tuple(np.asarray(a, np.float64) for a in arrays)

    def astype(self, dtype: str) -> Problem:
        """The same problem (float32 values exactly representable) in another dtype."""

        def cast(a):
            return jnp.asarray(a, dtype)

        return dataclasses.replace(
            self,
            params=jax.tree_util.tree_map(cast, self.params),
            xs=cast(self.xs),
            h0=cast(self.h0),
            readout=cast(self.readout),
            dtype=dtype,
        )


#: Inputs D, recurrent gain and input scale of every benchmark problem: a tanh RNN with
#: W_hh ~ N(0, 1/N) driven by unit Gaussian inputs. Its top Lyapunov exponent is about
#: -0.4 per step (contracting), so float32 and float64 trajectories stay together and
#: a float64 reference is meaningful at every T; gradients shrink by ~e^-400 over
#: T = 1000 steps, which is the regime where un-normalised float32 products underflow.
INPUTS, GAIN = 1, 1.0


def rnn_problem(
    N: int, T: int, dtype: str, batch: int, device, seed: int = 0
) -> Problem:
    cell = gradspec.cells.RNN("tanh")
    k_p, k_x = jax.random.split(jax.random.key(seed))
    # Draw in float32 and cast, so the float32 and float64 problems have equal values.
    params = cell.init(
        k_p, N, INPUTS, recurrent_init=gradspec.init.gaussian(GAIN), dtype=jnp.float32
    )
    shape = (T, INPUTS) if batch == 1 else (batch, T, INPUTS)
    xs = jax.random.normal(k_x, shape, jnp.float32)
    h0 = jnp.zeros((N,) if batch == 1 else (batch, N), jnp.float32)
    # the readout gradient_profile uses by default, in the problem's dtype
    readout = gradspec.default_readout(cell, N, jnp.dtype(dtype))

    def put(a):
        return jax.device_put(jnp.asarray(a, dtype), device)

    return Problem(
        cell,
        jax.tree_util.tree_map(put, params),
        put(xs),
        put(h0),
        put(readout),
        N,
        T,
        batch,
        dtype,
    )


def final_state(cell, params, h0, xs) -> jax.Array:
    """h_T by a plain ``lax.scan`` (no states kept): the naive baselines' forward."""
    return jax.lax.scan(lambda h, x: (cell.step(params, h, x), None), h0, xs)[0]


def torch_args(torch, prob: Problem, device):
    """torch copies (W_hh, W_xh, b, xs, h0, readout) of the first sequence, in the
    problem's dtype (on CUDA when JAX runs on a GPU), and the sync for their results."""
    dt = {"float32": torch.float32, "float64": torch.float64}[prob.dtype]
    tdev = "cuda" if device.platform == "gpu" and torch.cuda.is_available() else "cpu"
    # float64 copies cast back to the dtype: exact (the values are the problem's)
    args = [torch.tensor(a, dtype=dt, device=tdev) for a in prob.numpy64()]

    def sync(out):
        if tdev == "cuda":
            torch.cuda.synchronize()
        return out

    return args, sync


def for_each_case(cfg: Config, env: dict, peaks: dict, device, grid: str, runs) -> list:
    """The records of every case of ``cfg.grid(grid)``.

    ``runs`` holds ``(benchmark, run_case, skip)`` triples, applied in order to each
    case's :func:`rnn_problem`: where ``skip(prob)`` gives a reason, one ``skipped``
    record of the ``gradspec`` method says so; otherwise
    ``run_case(cfg, env, peaks, device, prob, torch)`` is logged and :func:`guarded`.
    """
    out = []
    for N, T, dtype, B in cfg.grid(grid):
        prob = rnn_problem(N, T, dtype, B, device)
        case = prob.case()
        for bench, run_case, skip in runs:
            reason = skip(prob)
            if reason:
                out.append(
                    skipped(
                        env=env, benchmark=bench, method="gradspec", library=True,
                        case=case, reason=reason,
                    )
                )
                continue
            log(f"[{bench}] N={N} T={T} {dtype} B={B}")
            out += guarded(
                lambda: run_case(cfg, env, peaks, device, prob, torch_for(cfg, N)),
                env=env,
                benchmark=bench,
                case=case,
            )
            if CHECKPOINT is not None:
                CHECKPOINT(out)
    return out


def batched(fn: Callable, batch: int, in_axes) -> Callable:
    """``fn`` for one sequence, or ``jax.vmap(fn, in_axes)`` for a batch."""
    return fn if batch == 1 else jax.vmap(fn, in_axes=in_axes)


def log(msg: str) -> None:
    print(msg, flush=True)
