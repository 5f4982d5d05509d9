"""Shared helpers of the gradspec benchmarks: configuration, timing, records, accuracy.

Timing protocol (every benchmark uses it through :func:`time_calls`):

1. A JAX method is compiled ahead of time (``jax.jit(f).lower(*args).compile()``); that
   wall time is ``compile_s``. Host methods (numpy, torch) have ``compile_s = None``.
2. Every method of a case is run once as a warm-up (excluded from the statistics; its
   output is kept for the accuracy check).
3. The methods of one case are then timed in *interleaved* rounds (A B C, B C A, ...),
   so that a burst of load from other processes hits all of them alike; outputs are
   waited for with ``jax.block_until_ready``. ``run_best_s`` (the number to compare)
   and ``run_median_s`` come from these rounds. A method whose warm-up already took
   more than ``budget_s / repeats`` gets fewer rounds (at least one) and says so.

Ratios are only ever formed between numbers measured in the same process, in the same
case, in the same interleaved rounds.

FLOP counts are written next to each benchmark (module docstrings and the
``flop_formula`` field of every record). The fractions of peak divide the achieved
FLOP/s by the best ``jnp.dot`` of two N x N matrices measured at the start of the same
run (:func:`measure_peaks`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SCHEMA_VERSION = 1

#: Accuracy tolerances per dtype, by metric (why each value: see the benchmark module
#: that uses it). Library methods must meet them; naive baselines are only reported.
EPS = {
    "float32": float(np.finfo(np.float32).eps),
    "float64": float(np.finfo(np.float64).eps),
}


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
            per_lag_count=4,
            peak_sizes=(64, 256, 1024, 2048) + ((4096, 8192) if accel else ()),
            host_repeats=3,
        )
    raise ValueError(f"`mode` must be 'tiny', 'quick' or 'full'; got {mode!r}.")


# --------------------------------------------------------------------------- device
def select_device(device: str | None) -> jax.Device:
    """Enable float64 (the references need it) and pick the device to run on."""
    jax.config.update("jax_enable_x64", True)
    if device is None:
        return jax.devices()[0]
    try:
        return jax.devices(device)[0]
    except RuntimeError as err:
        raise SystemExit(
            f"--device {device}: no such JAX backend here ({err})."
        ) from None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


#: torch intra-op threads; 0 means "match XLA": as many as the host threads XLA's CPU
#: backend uses. Set from ``--torch-threads``.
TORCH_THREADS = 0
#: Called with the records of the module in progress after every case (the runner
#: rewrites its output then, so a run stopped mid-grid keeps every finished case).
CHECKPOINT: Callable[[list], None] | None = None


def torch_module():
    """torch with its thread count set (see ``TORCH_THREADS``), or None if absent."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(TORCH_THREADS or host_threads())
    return torch


def environment(device: jax.Device) -> dict:
    import jaxlib

    torch = torch_module()
    return {
        "device_platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": len(jax.devices(device.platform)),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "python": platform.python_version(),
        "host_cpu": _cpu_model(),
        "host_threads": host_threads(),
        "load_average_start": list(os.getloadavg())
        if hasattr(os, "getloadavg")
        else None,
    }


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


def env_brief(env: dict) -> dict:
    """The environment fields repeated in every record."""
    keys = ("device_platform", "device_kind", "device_count", "jax", "jaxlib")
    return {k: env[k] for k in keys}


# --------------------------------------------------------------------------- timing
@dataclasses.dataclass
class Prepared:
    """A zero-argument callable ready to time, and what preparing it cost."""

    call: Callable[[], Any]
    compile_s: float | None
    sync: Callable[[Any], Any] = jax.block_until_ready
    host: bool = (
        False  # a numpy/torch/Python-loop baseline: rounds capped (host_repeats)
    )


def jax_call(fn: Callable, *args) -> Prepared:
    """AOT-compile ``jax.jit(fn)`` for ``args``; the compile wall time is recorded."""
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    return Prepared(lambda: compiled(*args), compile_s)


def host_call(
    fn: Callable, *args, sync: Callable = lambda out: out, host: bool = True
) -> Prepared:
    """A numpy/torch/Python callable (no compilation). ``host=False`` for a library
    call that is timed from Python (``predict``): it gets the full rounds."""
    return Prepared(lambda: fn(*args), None, sync, host=host)


@dataclasses.dataclass
class Timing:
    compile_s: float | None
    warmup_s: float
    times_s: list
    output: Any = None

    @property
    def best(self) -> float:
        return min(self.times_s)

    @property
    def median(self) -> float:
        return statistics.median(self.times_s)

    def as_dict(self) -> dict:
        return {
            "compile_s": self.compile_s,
            "warmup_s": self.warmup_s,
            "run_best_s": self.best,
            "run_median_s": self.median,
            "repeats": len(self.times_s),
            "times_s": self.times_s,
        }


def _once(p: Prepared):
    t0 = time.perf_counter()
    out = p.sync(p.call())
    return time.perf_counter() - t0, out


def time_calls(prepared: dict, cfg: Config, *, warmup: bool = True) -> dict:
    """Warm up each prepared method once, then time them in interleaved rounds.

    Rounds per method: ``cfg.repeats`` when they fit in ``cfg.budget_s`` (else as many
    as fit, at least one; host loops at most ``cfg.host_repeats``), raised up to
    ``cfg.max_repeats`` while they fit in
    ``cfg.round_budget_s`` (cheap methods get more rounds: a better best-of-N for free).
    ``warmup=False`` (AOT-compiled methods whose single run is long) times the first
    run and reports ``warmup_s = None``. Returns name -> :class:`Timing`.
    """
    warm, outputs = {}, {}
    for name, p in prepared.items():
        warm[name], outputs[name] = _once(p)
    rounds = {}
    for name, p in prepared.items():
        w = max(warm[name], 1e-9)
        r = max(1, min(cfg.repeats, int(cfg.budget_s / w)))
        if p.host:
            r = min(r, cfg.host_repeats)
        rounds[name] = max(r, min(cfg.max_repeats, int(cfg.round_budget_s / w)))
    # without a warm-up the first run is the first timed round
    times = {name: [] if warmup else [warm[name]] for name in prepared}
    names = list(prepared)
    for i in range(max(rounds.values(), default=0)):
        order = names[i % len(names) :] + names[: i % len(names)]  # no order bias
        for name in order:
            if len(times[name]) < rounds[name]:
                times[name].append(_once(prepared[name])[0])
    return {
        name: Timing(
            p.compile_s, warm[name] if warmup else None, times[name], outputs[name]
        )
        for name, p in prepared.items()
    }


# --------------------------------------------------------------------------- peaks
def measure_peaks(cfg: Config, device: jax.Device) -> dict:
    """Best ``jnp.dot`` FLOP/s of N x N matrices per dtype and size, in this run.

    ``peaks[dtype]["best_flops"]`` is the device's measured matmul peak (best over the
    sizes); ``peaks[dtype]["by_n"][N]`` the matmul rate at that size. Also a streaming
    bandwidth (``2 * x``, bytes read + written) for the memory-bound kernels.
    """
    sizes = sorted(
        set(cfg.peak_sizes) | set(cfg.Ns) | {n for n, _ in cfg.roofline_points}
    )
    prepared, meta = {}, {}
    key = jax.random.key(0)
    for dtype in ("float32", "float64"):
        for n in sizes:
            a = jax.device_put(jax.random.normal(key, (n, n), dtype), device)
            prepared[f"{dtype}:{n}"] = jax_call(jnp.dot, a, a)
            meta[f"{dtype}:{n}"] = (dtype, n)
    # streaming size: past the last-level cache (an H100's L2 is 50 MB)
    stream_n = (
        (1 << 18)
        if cfg.mode == "tiny"
        else ((8 << 20) if device.platform == "cpu" else (128 << 20))
    )
    x = jax.device_put(jnp.ones((stream_n,), jnp.float32), device)
    prepared["stream"] = jax_call(lambda v: 2 * v, x)
    # What full precision costs: the float32 product on the reduced-precision units that
    # JAX uses by default on accelerators (TF32 on NVIDIA; the same product on CPU).
    n_max = sizes[-1]
    with jax.default_matmul_precision("tensorfloat32"):
        a = jax.device_put(jax.random.normal(key, (n_max, n_max), jnp.float32), device)
        prepared["tf32"] = jax_call(jnp.dot, a, a)
    timings = time_calls(
        prepared, dataclasses.replace(cfg, repeats=max(cfg.repeats, 3), budget_s=10.0)
    )
    peaks = {}
    for name, (dtype, n) in meta.items():
        flops = 2.0 * n**3 / timings[name].best
        d = peaks.setdefault(dtype, {"by_n": {}, "best_flops": 0.0, "best_n": None})
        d["by_n"][str(n)] = flops
        if flops > d["best_flops"]:
            d["best_flops"], d["best_n"] = flops, n
    peaks["stream_bytes_per_s"] = 2 * 4 * stream_n / timings["stream"].best
    peaks["float32_tf32_flops"] = {"n": n_max, "flops": 2.0 * n_max**3 / timings["tf32"].best}
    peaks["method"] = (
        "best-of-repeats jnp.dot(A, A), A (N, N) in the dtype, 2 N^3 flops, at "
        "'highest' matmul precision (float32_tf32_flops: the largest N at TF32); "
        "stream: 2*x over 8M float32 on CPU, 128M on accelerators (read + write bytes)"
    )
    return peaks


def peak_fields(
    flops: float | None, seconds: float, peaks: dict, dtype: str, n: int
) -> dict:
    """Achieved FLOP/s and its fraction of the device peak and of the same-N matmul."""
    if flops is None or not seconds > 0:
        return {
            "flops": flops,
            "flops_per_s": None,
            "frac_of_peak": None,
            "frac_of_matmul_same_n": None,
        }
    rate = flops / seconds
    same = peaks[dtype]["by_n"].get(str(n))
    return {
        "flops": flops,
        "flops_per_s": rate,
        "frac_of_peak": rate / peaks[dtype]["best_flops"],
        "frac_of_matmul_same_n": rate / same if same else None,
    }


# --------------------------------------------------------------------------- accuracy
def to_numpy(x) -> np.ndarray:
    """A JAX/numpy array or a torch tensor (on any device) as a numpy array."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def max_abs_error(value, ref) -> float:
    """max |value - ref| over entries; inf where one is non-finite and they differ."""
    v = np.asarray(value, np.float64)
    r = np.asarray(ref, np.float64)
    if v.shape != r.shape:
        return math.inf
    same = (v == r) | (np.isnan(v) & np.isnan(r))
    diff = np.where(same, 0.0, np.abs(v - r))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max()) if diff.size else 0.0


def accuracy(
    error: float, tolerance: float, metric: str, reference: str, **extra
) -> dict:
    return {
        "metric": metric,
        "reference": reference,
        "value": error,
        "tolerance": tolerance,
        "within_tolerance": bool(error <= tolerance),
        **extra,
    }


def not_checked(reason: str) -> dict:
    return {
        "metric": None,
        "reference": None,
        "value": None,
        "tolerance": None,
        "within_tolerance": None,
        "not_checked": reason,
    }


# --------------------------------------------------------------------------- records
def record(
    *,
    env: dict,
    benchmark: str,
    method: str,
    library: bool,
    case: dict,
    timing: Timing | None = None,
    flops: float | None = None,
    flop_formula: str | None = None,
    peaks: dict | None = None,
    accuracy: dict | None = None,
    status: str = "ok",
    reason: str | None = None,
    extrapolated: dict | None = None,
    **extra,
) -> dict:
    """One JSON record. ``case`` holds dtype, N, T, batch and shapes."""
    rec = {
        "benchmark": benchmark,
        "method": method,
        "library": library,
        "status": status,
        "reason": reason,
        **env_brief(env),
        **case,
        "flop_formula": flop_formula,
    }
    if timing is not None:
        rec.update(timing.as_dict())
        seconds = timing.best
        if extrapolated is not None:
            seconds = extrapolated["seconds"]
            rec["run_best_s"] = seconds
            rec["run_median_s"] = extrapolated.get("median_seconds", seconds)
        if peaks is not None:
            rec.update(peak_fields(flops, seconds, peaks, case["dtype"], case["N"]))
        else:
            rec["flops"] = flops
    else:
        rec.update(
            {
                "compile_s": None,
                "run_best_s": None,
                "run_median_s": None,
                "repeats": 0,
                "flops": flops,
            }
        )
    rec["extrapolated"] = extrapolated
    rec["accuracy"] = accuracy
    rec.update(extra)
    return rec


def skipped(
    *, env, benchmark, method, case, reason, library=False, flop_formula=None
) -> dict:
    return record(
        env=env,
        benchmark=benchmark,
        method=method,
        library=library,
        case=case,
        status="skipped",
        reason=reason,
        flop_formula=flop_formula,
        accuracy=not_checked(reason),
    )


def bind(env: dict, benchmark: str, case: dict):
    """:func:`record` and :func:`skipped` with the fields every record of one case
    shares (``env``, ``benchmark``, ``case``; each may still be overridden)."""
    shared = {"env": env, "benchmark": benchmark, "case": case}
    return functools.partial(record, **shared), functools.partial(skipped, **shared)


def first_of(out, batch: int) -> np.ndarray:
    """A method's output for the first sequence of a batch (what references cover)."""
    out = np.asarray(out)
    return out if batch == 1 else out[0]


def guarded(run, *, env, benchmark, case, method="gradspec") -> list:
    """``run()``'s records; if it raises, one ``failed`` record instead, so one broken
    case never stops the whole benchmark run."""
    try:
        return run()
    except Exception as err:  # noqa: BLE001 - recorded, the run goes on
        return [
            failed(
                env=env,
                benchmark=benchmark,
                method=method,
                library=True,
                case=case,
                err=err,
            )
        ]


def failed(*, env, benchmark, method, library, case, err: BaseException) -> dict:
    msg = f"{type(err).__name__}: {err}"
    return record(
        env=env,
        benchmark=benchmark,
        method=method,
        library=library,
        case=case,
        status="error",
        reason=msg[:500],
        accuracy=not_checked(msg[:200]),
    )


def add_ratios(records: list, primary: str, *, key: str = "speedup_vs") -> None:
    """Give the ``primary`` record of a case ``speedup_vs[name] = t_name / t_primary``
    and every other one ``time_ratio_to_primary = t_self / t_primary`` (best times)."""
    ok = {r["method"]: r for r in records if r["status"] == "ok" and r["run_best_s"]}
    if primary not in ok:
        return
    base = ok[primary]["run_best_s"]
    ok[primary][key] = {
        name: r["run_best_s"] / base for name, r in ok.items() if name != primary
    }
    for name, r in ok.items():
        if name != primary:
            r["time_ratio_to_primary"] = r["run_best_s"] / base
            r["primary"] = primary


def sanitize(obj):
    """JSON-safe copy: non-finite floats become the strings "inf", "-inf", "nan"."""
    if isinstance(obj, dict):
        return {str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def as_float(v) -> float:
    """Inverse of :func:`sanitize` for one number."""
    if isinstance(v, str):
        return float(v)
    return math.nan if v is None else float(v)


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
    import gradspec

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
