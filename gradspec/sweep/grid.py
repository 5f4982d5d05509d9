"""Grids: axis values, the planned points of a sweep (configs and hashes), point keys."""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._json import canonical_json
from . import store as _store
from .measurements import Measurement, as_measurement
from .store import point_hash

__all__ = ["axis_values", "point_key"]


# -- axes ------------------------------------------------------------------------------------


def axis_values(spec: Any, name: str = "axis") -> list:
    """The values of one grid axis from a list or a generator table.

    ``spec`` is a list of values, or a dict with one of ``linspace = [start, stop, num]``,
    ``logspace = [start, stop, num]`` (powers of 10, as ``numpy.logspace``),
    ``range = [start, stop, step]`` (integers) or ``values = [...]``, plus optionally
    ``every = k`` to keep every k-th value (a coarser subgrid whose points coincide
    with the fine grid's).

    Examples:
        >>> axis_values({"linspace": [0.0, 3.0, 7], "every": 3})
        [0.0, 1.5, 3.0]
    """
    if isinstance(spec, Mapping):
        spec = dict(spec)
        every = spec.pop("every", 1)
        kinds = sorted(set(spec) & {"linspace", "logspace", "range", "values"})
        extra = sorted(set(spec) - {"linspace", "logspace", "range", "values"})
        if len(kinds) != 1 or extra:
            raise ValueError(
                f"grid axis {name!r} must be a list or a table with exactly one of "
                f"linspace, logspace, range, values (plus optional every); got {spec}."
            )
        kind, arg = kinds[0], spec[kinds[0]]
        if kind == "values":
            values = list(arg)
        else:
            if not isinstance(arg, (list, tuple)) or len(arg) != 3:
                raise ValueError(f"grid axis {name!r}: `{kind}` must be [start, stop, "
                                 f"{'step' if kind == 'range' else 'num'}]; got {arg!r}.")
            if kind == "range":
                values = list(range(*(int(a) for a in arg)))
            else:
                fn = np.linspace if kind == "linspace" else np.logspace
                values = [float(v) for v in fn(float(arg[0]), float(arg[1]), int(arg[2]))]
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"grid axis {name!r}: `every` must be an int >= 1; got {every!r}.")
        values = values[::every]
    elif isinstance(spec, (list, tuple, np.ndarray)):
        values = list(np.asarray(spec).tolist()) if isinstance(spec, np.ndarray) else list(spec)
    else:
        raise ValueError(f"grid axis {name!r} must be a list of values (put a fixed value "
                         f"in `options`); got {spec!r}.")
    if not values:
        raise ValueError(f"grid axis {name!r} has no values.")
    return values


def _plain(value, where: str):
    """A JSON-able Python value (NumPy scalars unwrapped, tuples as lists)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite; got {value!r}.")
        return value
    raise TypeError(f"{where} must be a JSON value (str, number, bool, None, list, dict); "
                    f"got {type(value).__name__}.")


def _coerce(m: Measurement, name: str, value, where: str):
    """Cast an input to its declared type, so 1 and 1.0 are one point."""
    value = _plain(value, where)
    if name not in m.params:
        default = m.static.get(name)
        if (isinstance(default, float) and isinstance(value, int)
                and not isinstance(value, bool)):
            return float(value)  # a float option given as an int (TOML `sigma_x = 0`)
        return value
    default = m.params[name]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{where} must be a bool; got {value!r}.")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where} must be a number; got {value!r}.")
    if isinstance(default, int):
        if float(value) != int(value):
            raise ValueError(f"{where} must be an integer; got {value!r}.")
        return int(value)
    return float(value)


class Plan(NamedTuple):
    """A grid, planned: every point's full config and hash, in grid order."""

    measurement: Measurement
    options: dict  # the user's options, JSON-normalised
    dtype: str  # float dtype name of traced floats
    configs: list  # full config per point, grid order
    hashes: list  # sha256 per point
    axes: dict  # axis name -> coerced values, in the grid's order


def plan_grid(measurement, grid, options) -> Plan:
    """Check ``grid`` and ``options`` against the measurement and expand the grid."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"`grid` must be a non-empty dict of axis name -> values; got {grid!r}.")
    options = dict(options or {})
    axes = {str(name): axis_values(spec, name) for name, spec in grid.items()}
    m = as_measurement(measurement, axes, options)
    both = sorted(set(axes) & set(options))
    if both:
        raise ValueError(f"{both} given both as grid axes and as options; pick one.")
    if m.normalize is None:
        known = set(m.params) | set(m.static)
        for kind, names in (("grid axis", axes), ("option", options)):
            for name in names:
                if name not in known:
                    raise ValueError(
                        f"{kind} {name!r} is not an input of measurement {m.name!r}; "
                        f"its inputs are {sorted(m.params)} (traced) and "
                        f"{sorted(m.static)} (static)."
                    )
    options = {k: _coerce(m, k, v, f"option `{k}`") for k, v in options.items()}
    # Coerced once per axis value, not once per grid point.
    axes = {n: [_coerce(m, n, v, f"grid axis `{n}` value") for v in values]
            for n, values in axes.items()}
    dtype = jnp.zeros(()).dtype.name
    base = {**m.params, **m.static, **options}
    configs, hashes = [], []
    for combo in itertools.product(*axes.values()):
        config = {**base, **dict(zip(axes, combo))}
        if m.normalize is not None:
            config = _plain(m.normalize(config), "normalized config")
        if m.check is not None:
            m.check(config)
        configs.append(config)
        hashes.append(point_hash(_store.identity(m.name, m.version, dtype, config)))
    if len(set(hashes)) != len(hashes):
        dupes = [n for n, values in axes.items()
                 if len({canonical_json(v) for v in values}) < len(values)]
        raise ValueError(f"the grid has repeated points: axes {dupes or list(axes)} contain "
                         "duplicate values (1 and 1.0 count as the same value).")
    return Plan(m, options, dtype, configs, hashes, axes)


def point_key(seed: int, point_hash_hex: str) -> jax.Array:
    """The PRNG key a sweep gives the point with hash ``point_hash_hex`` (what the
    traced function computes): ``fold_in(key(seed), int(hash[:8], 16))``."""
    return fold_key(seed, hash_word(point_hash_hex))


def hash_word(point_hash_hex: str) -> np.uint32:
    """The 32-bit word of a point's hash that its key folds in."""
    return np.uint32(int(point_hash_hex[:8], 16))


def fold_key(seed, word) -> jax.Array:
    """The documented key derivation; also traced (seed and word batched) in a sweep."""
    return jax.random.fold_in(jax.random.key(seed), word)
