r"""Sweep measurements: the registry and the built-in measurements.

A :class:`Measurement` is a pure function of one grid point. Its inputs are split in two:

- ``params``: scalar inputs that are *traced* (``sigma_w``, ``sigma_b``, ``seed``...).
  Points that differ only in these are evaluated together by one ``jax.vmap``.
- ``static``: options fixed at trace time (``nonlinearity``, ``N``, ``T``...): they may
  set array shapes, so points with different static values are compiled and run as
  separate groups.

Both come with defaults; a grid axis or a sweep option overrides them. A batched
measurement is called as ``fn(values, key, **static)`` with ``values`` a dict of traced
scalars and ``key`` the point's PRNG key, and returns a dict of arrays. An unbatched one
(``batched=False``, e.g. ``"train"``) is called once per point in Python as
``fn(config)`` with the point's full config dict.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
from typing import Any, Callable, Mapping

import jax.numpy as jnp
import jax.random as jr

from .. import theory, training
from .._checks import check_choice, check_int
from ..cells import NONLINEARITIES, RNN
from ..measure import gradient_profile, lyapunov_spectrum, profile_rate, trajectory
from . import gated_measurements as _gated

__all__ = ["Measurement", "register", "get_measurement", "measurements", "random_rnn"]

#: Seeds are traced as int32 and fed to ``jax.random.key``.
MAX_SEED = 2**31 - 1


@dataclasses.dataclass(frozen=True, eq=False)
class Measurement:
    """A named measurement a sweep can evaluate (see the module docstring).

    Attributes:
        name: registry name; recorded in every result and in the store's manifest.
        fn: batched: ``fn(values, key, **static) -> dict[str, Array]`` for ONE point
            (the sweep vmaps it); unbatched: ``fn(config) -> dict`` of scalars, arrays
            or strings.
        params: traced scalar inputs and their defaults. The default's type sets the
            dtype: float -> the default float dtype, int -> int32, bool -> bool.
        static: static options and their defaults (JSON values: str, int, float,
            bool, None, lists, dicts).
        batched: False for a Python-level call per point.
        version: bump it when ``fn`` changes its results; stores record it and refuse
            to mix versions. A store also records :attr:`source`, so an edit of
            ``fn`` without a bump is refused too instead of reusing stale results.
        check: ``check(config)`` raises ``ValueError``/``TypeError`` for a bad point,
            before anything is traced.
        normalize: ``normalize(config) -> config`` completes and validates an open set
            of options (used by ``"train"``, whose options are the
            ``TrainConfig`` fields); when given, unknown names are its business.
        description: one line for listings.
        chunk_size: default points per device per compiled call. On CPUs keep it
            small for big per-point arrays: a batch whose weights outgrow the cache
            makes every step stream them from memory (N = 128 Lyapunov points: 16 per
            device run 3x faster than 64). GPUs want far larger chunks.
    """

    name: str
    fn: Callable
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    static: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    batched: bool = True
    version: int = 1
    check: Callable[[dict], None] | None = None
    normalize: Callable[[dict], dict] | None = None
    description: str = ""
    chunk_size: int = 64

    @property
    def source(self) -> str:
        """sha256 (hex) of ``fn``'s source text (:func:`inspect.getsource`), or, where
        there is none (a function made by ``exec``, a C function, a ``partial``), of
        its qualified name and :attr:`version`.

        A store records it in its manifest and refuses a sweep whose measurement's
        source differs: an edit without a version bump would otherwise reuse results
        of the old code. Only ``fn``'s own text counts: a change in what it calls (a
        gradspec function, a closure's values) is the ``version``'s business.
        """
        try:
            text = inspect.getsource(self.fn)
        except (OSError, TypeError):  # no source file, or not a Python function
            fn = self.fn
            name = getattr(fn, "__qualname__", type(fn).__qualname__)
            text = f"{getattr(fn, '__module__', '?')}.{name}:v{self.version}"
        return hashlib.sha256(text.encode()).hexdigest()


_REGISTRY: dict[str, Measurement] = {}


def register(name: str, fn: Callable | None = None, *, params: Mapping | None = None,
             static: Mapping | None = None, batched: bool = True, version: int = 1,
             check: Callable | None = None, normalize: Callable | None = None,
             description: str = "", chunk_size: int = 64, overwrite: bool = False):
    """Register a measurement under ``name``; usable as a decorator.

    Args:
        name: the name sweeps and TOML configs refer to.
        fn: the measurement function (see :class:`Measurement`); omit to decorate.
        params, static, batched, version, check, normalize, description, chunk_size:
            as in :class:`Measurement`.
        overwrite: replace an existing registration instead of raising.

    Returns:
        The :class:`Measurement` (or, as a decorator, a function returning it).

    Raises:
        ValueError: ``name`` taken (without ``overwrite``), a name in both ``params``
            and ``static``, or a ``params`` default that is not a bool, int or float.
        TypeError, ValueError: ``chunk_size`` not an int >= 1.

    Examples:
        >>> import jax.numpy as jnp, gradspec.sweep as gs
        >>> @gs.register("square", params={"x": 0.0}, static={"power": 2}, overwrite=True)
        ... def square(values, key, *, power):
        ...     return {"y": values["x"] ** power}
        >>> [r["results"]["y"] for r in gs.sweep("square", {"x": [1.0, 3.0]}).records]
        [1.0, 9.0]
    """
    if fn is None:
        return lambda f: register(name, f, params=params, static=static, batched=batched,
                                  version=version, check=check, normalize=normalize,
                                  description=description, chunk_size=chunk_size,
                                  overwrite=overwrite)
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string; got {name!r}.")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"measurement {name!r} is already registered; pass "
                         "`overwrite=True` to replace it.")
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {type(fn).__name__}.")
    params, static = dict(params or {}), dict(static or {})
    both = sorted(set(params) & set(static))
    if both:
        raise ValueError(f"names {both} are in both `params` and `static`; each input is "
                         "either traced or static.")
    for key, value in params.items():
        if not isinstance(value, (bool, int, float)):
            raise ValueError(f"`params[{key!r}]` default must be a bool, int or float (a "
                             f"traced scalar); got {value!r}. Put it in `static` instead.")
    m = Measurement(name, fn, params, static, batched, int(version), check, normalize,
                    description, check_int("chunk_size", chunk_size, 1))
    _REGISTRY[name] = m
    return m


def get_measurement(name: str) -> Measurement:
    """The registered measurement ``name`` (``ValueError`` listing the known ones)."""
    if name not in _REGISTRY:
        raise ValueError(f"`measurement` must be one of {sorted(_REGISTRY)} (or a "
                         f"Measurement / function); got {name!r}.")
    return _REGISTRY[name]


def measurements() -> dict[str, str]:
    """``{name: description}`` of every registered measurement."""
    return {name: m.description for name, m in sorted(_REGISTRY.items())}


# -- checks shared by the built-ins -------------------------------------------------------


def _check_scales(config: Mapping, names=("sigma_w", "sigma_b", "sigma_x")) -> None:
    for name in names:
        v = config[name]
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"`{name}` must be a finite number >= 0; got {v!r}.")


def _check_seed(config: Mapping) -> None:
    check_int("seed", config["seed"], 0, MAX_SEED)


def _check_nonlinearity(config: Mapping) -> None:
    check_choice("nonlinearity", config["nonlinearity"], sorted(NONLINEARITIES))


def _check_rnn(config: Mapping) -> None:
    _check_nonlinearity(config)
    _check_scales(config)
    _check_seed(config)
    n = check_int("N", config["N"], 1)
    steps = check_int("T", config["T"], 2)
    check_int("warmup", config["warmup"], 0, steps - 1)
    if "k" in config:
        check_int("k", config["k"], 1, n)


# -- the random vanilla RNN of a grid point ------------------------------------------------


def random_rnn(sigma_w, sigma_b, sigma_x, key, *, N: int, T: int, nonlinearity: str = "tanh"):
    r"""The random vanilla RNN, initial state and inputs of one sweep point.

    One draw :math:`z \sim \mathcal N(0, I)` from ``key`` (a single draw compiles far
    faster under ``vmap`` than several), cut in order:

    .. math::
        W_{hh} = \frac{\sigma_w}{\sqrt N} z_{[0, N^2)}, \quad
        b = \sigma_b\, z_{[N^2, N^2 + N)}, \quad
        h_0 = z_{[N^2 + N, N^2 + 2N)}, \quad
        x = \sigma_x\, z_{[N^2 + 2N, N^2 + 2N + TN)} \in \mathbb R^{T \times N}.

    Driven (``sigma_x`` traced, or a number > 0): :math:`z` has length
    :math:`N^2 + 2N + TN`, ``W_xh`` is the (N, N) identity, so each unit's input drive
    has variance :math:`\sigma_x^2` as in :func:`gradspec.theory.mean_field`.
    Autonomous (``sigma_x`` the Python number 0): :math:`z` has length
    :math:`N^2 + 2N`, ``W_xh`` is (N, 1) zeros and ``xs`` (T, 1) zeros, which spares
    an (N, N) product per step (half the memory traffic of a vmapped batch).

    The key of a sweep point is
    ``jax.random.fold_in(jax.random.key(seed), int(point_hash[:8], 16))``
    (:func:`gradspec.sweep.point_key`).

    Args:
        sigma_w, sigma_b: scalars >= 0 (traced under a sweep).
        sigma_x: scalar >= 0; static (a Python number) in the built-in measurements.
        key: the point's PRNG key.
        N: hidden units; T: steps; nonlinearity: the RNN's f.

    Returns:
        ``(cell, params, xs, h0)``: params ``W_hh`` (N, N), ``W_xh`` (N, N) or (N, 1),
        ``b`` (N,); xs (T, N) or (T, 1); h0 (N,), all in ``sigma_w``'s dtype.
    """
    sigma_w = jnp.asarray(sigma_w)
    dtype = sigma_w.dtype
    driven = not (isinstance(sigma_x, (int, float)) and sigma_x == 0)
    z = jr.normal(key, (N * N + 2 * N + (T * N if driven else 0),), dtype)
    w_hh = (sigma_w / math.sqrt(N)) * z[: N * N].reshape(N, N)
    b = jnp.asarray(sigma_b, dtype) * z[N * N : N * N + N]
    h0 = z[N * N + N : N * N + 2 * N]
    if driven:
        xs = jnp.asarray(sigma_x, dtype) * z[N * N + 2 * N :].reshape(T, N)
        w_xh = jnp.eye(N, dtype=dtype)
    else:
        xs, w_xh = jnp.zeros((T, 1), dtype), jnp.zeros((N, 1), dtype)
    params = {"W_hh": w_hh, "W_xh": w_xh, "b": b}
    return RNN(nonlinearity), params, xs, h0


# -- built-in measurements -------------------------------------------------------------------


def _mean_field(values, key, *, nonlinearity):
    del key  # deterministic
    mf = theory.mean_field(nonlinearity, values["sigma_w"], sigma_b=values["sigma_b"],
                           sigma_x=values["sigma_x"])
    return mf._asdict()


def _lyapunov(values, key, *, nonlinearity, N, T, warmup, k, sigma_x):
    cell, params, xs, h0 = random_rnn(values["sigma_w"], values["sigma_b"], sigma_x,
                                      key, N=N, T=T, nonlinearity=nonlinearity)
    # Start frame: the first k axes (key=None); the random h0 and the warm-up make the
    # result independent of it, and it keeps the public function's own recipe.
    exponents = lyapunov_spectrum(cell, params, xs, h0, k=k, warmup=warmup)
    return {"lambda_max": exponents[0], "exponents": exponents,
            "finite": jnp.isfinite(exponents).all()}


def _gradient_profile(values, key, *, nonlinearity, N, T, warmup, sigma_x):
    cell, params, xs, h0 = random_rnn(values["sigma_w"], values["sigma_b"], sigma_x,
                                      key, N=N, T=T, nonlinearity=nonlinearity)
    h = trajectory(cell, params, xs[:warmup], h0)[-1] if warmup else h0
    profile = gradient_profile(cell, params, xs[warmup:], h)
    return {"rate": profile_rate(profile), "log_ratio": profile[-1] - profile[0],
            "profile": profile}


_SCALES = {"sigma_w": 1.0, "sigma_b": 0.0, "sigma_x": 0.0}
# The simulated measurements take sigma_x as a static option: 0 (the default) runs the
# autonomous network without an (N, N) input product (see random_rnn); a grid over
# sigma_x still works, one compiled group per value.
_SIM_PARAMS = {"sigma_w": 1.0, "sigma_b": 0.0, "seed": 0}

register(
    "mean_field",
    _mean_field,
    params=_SCALES,
    static={"nonlinearity": "tanh"},
    check=lambda c: (_check_nonlinearity(c), _check_scales(c)),
    description="gradspec.theory.mean_field: q_star, chi, lambda_max, xi, timescale",
    chunk_size=256,
)
register(
    "lyapunov",
    _lyapunov,
    params=_SIM_PARAMS,
    static={"nonlinearity": "tanh", "N": 128, "T": 1000, "warmup": 200, "k": 1,
            "sigma_x": 0.0},
    check=_check_rnn,
    description="top-k Lyapunov exponents of a random vanilla RNN (random_rnn): "
    "lambda_max, exponents (k,), finite",
    chunk_size=16,
)
register(
    "gradient_profile",
    _gradient_profile,
    params=_SIM_PARAMS,
    static={"nonlinearity": "tanh", "N": 128, "T": 500, "warmup": 100, "sigma_x": 0.0},
    check=_check_rnn,
    description="gradient profile of a random vanilla RNN after a warm-up: rate, "
    "log_ratio, profile (T - warmup + 1,)",
    chunk_size=16,
)

# Gated cells (gradspec.sweep.gated_measurements): the gate hyperparameters as traced
# axes sigma, mu, rho, nu and per-gate <name>_<gate> overrides.
register("gated_mean_field", _gated.gated_mean_field_point, **_gated.MEAN_FIELD_SPEC)
register(
    "gated_lyapunov",
    _gated.gated_lyapunov_point,
    check=lambda c: (_check_seed(c), _gated.check_gated_lyapunov(c)),
    **_gated.LYAPUNOV_SPEC,
)


# -- training: a Python-level call per point ------------------------------------------------


def _normalize_train(config: dict) -> dict:
    """Fill and validate every TrainConfig field; ``seeds`` (a list or None) is ours."""
    config = dict(config)
    seeds = config.pop("seeds", None)
    try:
        full = training.TrainConfig.from_dict(config).to_dict()
    except TypeError as err:
        raise ValueError(f"bad 'train' option: {err}") from None
    if seeds is not None:
        seeds = [check_int(f"seeds[{i}]", s, 0) for i, s in enumerate(seeds)]
    full["seeds"] = seeds
    return full


def _train(config: dict) -> dict:
    config = dict(config)
    seeds = config.pop("seeds")
    result = training.train(training.TrainConfig.from_dict(config),
                                seeds=seeds, progress=False)
    return {
        "final_loss": result.final_loss,
        "diverged_at": result.diverged_at,
        "outcome": result.outcome if isinstance(result.outcome, str) else list(result.outcome),
        "loss": result.loss,
        "grad_norm": result.grad_norm,
        "log_grad_h0": result.log_grad_h0,
        "log_grad_lags": result.log_grad_lags,
        "lags": list(result.lags),
        "baseline": result.baseline,
    }


register(
    "train",
    _train,
    batched=False,
    normalize=_normalize_train,
    description="gradspec.train per point (Python loop; it vmaps over `seeds` "
    "itself): final_loss, outcome, loss curve, gradient lags",
    chunk_size=1,
)


def as_measurement(fn, axes: Mapping[str, list], options: Mapping) -> Measurement:
    """A registered name, a :class:`Measurement`, or a plain batched function (its
    numeric grid axes traced, everything else static)."""
    if isinstance(fn, str):
        return get_measurement(fn)
    if isinstance(fn, Measurement):
        return fn
    if callable(fn):
        params = {}
        for name, values in axes.items():
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                params[name] = 0.0 if any(isinstance(v, float) for v in values) else 0
        static = {k: None for k in options}
        static.update({k: None for k in axes if k not in params})
        name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        return Measurement(name, fn, params, static)
    raise TypeError("`measurement` must be a registered name, a Measurement or a "
                    f"function; got {type(fn).__name__}.")


def jax_dtype_of(default, float_dtype):
    """The array dtype of a traced param from its default's Python type."""
    if isinstance(default, bool):
        return jnp.bool_
    if isinstance(default, int):
        return jnp.int32
    return float_dtype
