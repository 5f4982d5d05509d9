"""How the gradspec benchmarks measure: device, environment, timing protocol, matmul peak.

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
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

if TYPE_CHECKING:
    from ._runner import Config


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


def torch_module():
    """torch with its thread count set (see ``TORCH_THREADS``), or None if absent."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(TORCH_THREADS or host_threads())
    return torch


def environment(device: jax.Device) -> dict:
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

