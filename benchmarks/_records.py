"""Records of the gradspec benchmarks: accuracy fields, one JSON record per method and
case (skipped and failed ones included), time ratios, and strict-JSON values."""

from __future__ import annotations

import functools
import math

import numpy as np

from ._timing import Timing, peak_fields

SCHEMA_VERSION = 1

#: Accuracy tolerances per dtype, by metric (why each value: see the benchmark module
#: that uses it). Library methods must meet them; naive baselines are only reported.
EPS = {
    "float32": float(np.finfo(np.float32).eps),
    "float64": float(np.finfo(np.float64).eps),
}


def env_brief(env: dict) -> dict:
    """The environment fields repeated in every record."""
    keys = ("device_platform", "device_kind", "device_count", "jax", "jaxlib")
    return {k: env[k] for k in keys}


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


def skipped(*, reason: str, library: bool = False, **fields) -> dict:
    """The record of a method not run, and why (``fields``: env, benchmark, method,
    case and optionally flop_formula, as for :func:`record`)."""
    return record(
        library=library,
        status="skipped",
        reason=reason,
        accuracy=not_checked(reason),
        **fields,
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


def failed(*, err: BaseException, **fields) -> dict:
    """The record of a method that raised ``err`` (``fields``: env, benchmark, method,
    library and case, as for :func:`record`)."""
    msg = f"{type(err).__name__}: {err}"
    return record(
        status="error", reason=msg[:500], accuracy=not_checked(msg[:200]), **fields
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

