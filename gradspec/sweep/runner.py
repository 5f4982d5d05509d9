"""Running a sweep: plan the grid, evaluate it in vmapped, sharded chunks, store each point.

The package docstring (:mod:`gradspec.sweep`) describes batching, keys, resuming and
multi-host runs.
"""
from __future__ import annotations

import itertools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .. import _checks
from .._json import canonical_json, decode_value
from . import store as _store
from .measurements import Measurement, as_measurement, jax_dtype_of
from .store import point_hash
from .store import repair as _repair

__all__ = ["axis_values", "point_key", "SweepResult", "sweep", "load", "repair"]

_AXIS = "points"


# -- grid -----------------------------------------------------------------------------------


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


class _Plan(NamedTuple):
    measurement: Measurement
    options: dict  # the user's options, JSON-normalised
    dtype: str  # float dtype name of traced floats
    configs: list  # full config per point, grid order
    hashes: list  # sha256 per point


def _plan(measurement, grid, options) -> _Plan:
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
    return _Plan(m, options, dtype, configs, hashes)


def point_key(seed: int, point_hash_hex: str) -> jax.Array:
    """The PRNG key a sweep gives the point with hash ``point_hash_hex`` (what the
    traced function computes): ``fold_in(key(seed), int(hash[:8], 16))``."""
    return _fold_key(seed, _hash_word(point_hash_hex))


def _hash_word(point_hash_hex: str) -> np.uint32:
    """The 32-bit word of a point's hash that its key folds in."""
    return np.uint32(int(point_hash_hex[:8], 16))


def _fold_key(seed, word) -> jax.Array:
    """The documented key derivation; also traced (seed and word batched) in a sweep."""
    return jax.random.fold_in(jax.random.key(seed), word)


# -- execution ------------------------------------------------------------------------------

_COMPILED: dict = {}


def _check_devices(devices) -> list:
    if devices is None:
        return list(jax.local_devices())
    devices = list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError(f"`devices` must be a non-empty list of jax devices; got {devices!r}.")
    if len({d.id for d in devices}) != len(devices):
        raise ValueError(f"`devices` has repeats: {devices}.")
    here = jax.process_index()
    remote = [d for d in devices if d.process_index != here]
    if remote:
        raise ValueError(f"`devices` must be local to this process (jax.local_devices()); "
                         f"got {remote}. Each process of a multi-host sweep uses its own.")
    return devices


def _compiled(m: Measurement, static_json: str, traced: tuple, devices: list):
    """jit(shard_map(vmap(point_fn))) for one group, cached across calls."""
    key = (m.fn, m.name, m.version, static_json, traced, tuple(d.id for d in devices))
    if key not in _COMPILED:
        static = json.loads(static_json)
        fn = m.fn

        def one(values, seed, word):
            out = fn(dict(values), _fold_key(seed, word), **static)  # see point_key
            if not isinstance(out, Mapping):
                raise TypeError(f"measurement {m.name!r} must return a dict of arrays; "
                                f"got {type(out).__name__}.")
            return {str(k): jnp.asarray(v) for k, v in out.items()}

        mesh = Mesh(np.asarray(devices), (_AXIS,))
        spec = PartitionSpec(_AXIS)
        # check_vma=False: the points are independent and nothing is communicated, so
        # a user's function need not annotate which values vary across devices (a
        # constant scan carry, e.g. an identity start frame, would otherwise fail).
        batched = jax.shard_map(jax.vmap(one), mesh=mesh, in_specs=spec, out_specs=spec,
                                check_vma=False)
        _COMPILED[key] = (jax.jit(batched), NamedSharding(mesh, spec))
    return _COMPILED[key]


def _run_chunk(m, plan, idx: list, length: int, traced: tuple, compiled, sharding) -> dict:
    """Evaluate the points ``idx`` as one chunk padded (with its last point) to length."""
    padded = idx + [idx[-1]] * (length - len(idx))
    configs = [plan.configs[i] for i in padded]
    values = {
        name: np.asarray([c[name] for c in configs],
                         jax_dtype_of(m.params[name], plan.dtype))
        for name in traced
    }
    seeds = np.asarray([c.get("seed", 0) for c in configs], np.int32)
    words = np.asarray([_hash_word(plan.hashes[i]) for i in padded], np.uint32)
    out = compiled(*jax.device_put((values, seeds, words), sharding))
    # Copies (writable, like arrays read from a store), without the padding.
    return {k: np.array(v)[: len(idx)] for k, v in out.items()}


def _meta(devices, process_index, process_count, seconds) -> dict:
    gradspec = sys.modules.get("gradspec")
    return {
        "gradspec": getattr(gradspec, "__version__", "unknown"),
        "jax": jax.__version__,
        "platform": devices[0].platform if devices else "cpu",
        "device_kind": devices[0].device_kind if devices else "cpu",
        "devices": len(devices),
        "process_index": process_index,
        "process_count": process_count,
        "seconds": seconds,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _progress_bar(progress, total: int, desc: str):
    """A tqdm bar when tqdm is importable and (by default) stderr is a terminal."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress or total == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="pt", file=sys.stderr)


def _decode(raw: Mapping, arrays: Mapping | None) -> dict:
    """A user-facing record: results decoded to Python scalars / NumPy arrays."""
    results = {k: decode_value(v, raw["dtypes"][k]) for k, v in raw["results"].items()}
    if arrays:
        results.update(arrays)
    out = {k: raw[k] for k in ("hash", "measurement", "version", "dtype", "config")}
    out["results"] = results
    out["npz"] = raw.get("npz")
    out["meta"] = raw.get("meta", {})
    return out


def _read_arrays(root: Path, raw: Mapping) -> dict | None:
    """A record's ``.npz`` arrays, or None when it has none."""
    return _store.read_npz(root, raw) if raw.get("npz") else None


class SweepResult(NamedTuple):
    """What :func:`sweep` returns."""

    records: list  # one dict per grid point done (see load), grid order
    computed: int  # points this call evaluated (this process)
    skipped: int  # points of this process's share reused from the store (resume=True)
    seconds: float  # wall time of this call
    store: str | None  # the store directory, if any


def sweep(
    measurement,
    grid: Mapping[str, Any],
    *,
    options: Mapping[str, Any] | None = None,
    store: str | Path | None = None,
    resume: bool = False,
    devices: Sequence[jax.Device] | None = None,
    chunk_size: int | None = None,
    progress: bool | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> SweepResult:
    r"""Evaluate ``measurement`` at every point of ``grid`` (Cartesian product).

    Each point's config is the measurement's defaults, overridden by ``options``, then
    by the point's axis values; its hash is the sha256 of the canonical JSON of
    ``{measurement, version, dtype, config}``. Points are grouped by their static
    options; each group runs in chunks of ``chunk_size`` points (rounded up to a
    multiple of the device count, the last one padded), one
    ``jit(shard_map(vmap(...)))`` call per chunk over ``devices``. An unbatched
    measurement (``"train"``) is called once per point instead.

    Args:
        measurement: a registered name (:func:`measurements`), a :class:`Measurement`,
            or a batched function ``fn(values, key, **options) -> dict`` (its numeric
            axes traced, the rest static).
        grid: axis name -> list of values, or a generator table (:func:`axis_values`).
            The first axis varies slowest.
        options: fixed inputs (static or traced) for every point.
        store: directory of a resumable store; ``None`` keeps results in memory only.
            A store holds one measurement (one version, one source: see
            :attr:`Measurement.source`) with one set of options and one dtype
            (``ValueError`` otherwise); its grid may grow between runs.
        resume: continue a store that already holds results: its points are reused
            (counted in ``skipped``), the rest computed. False (the default) refuses
            such a store with a ``ValueError``, as ``gradspec sweep`` does without
            ``--resume``. Jobs that split one grid over a shared store by
            ``process_index`` need it in every job that may start after another has
            written; under ``jax.distributed`` every process checks before any
            writes.
        devices: local devices to shard each chunk over; all of
            ``jax.local_devices()`` by default.
        chunk_size: points per compiled call (and the most a kill can lose); memory
            grows linearly with it. Default: the measurement's ``chunk_size`` (points
            per device) times the device count, sized for CPUs; raise it on GPUs.
        progress: tqdm bar over points (``None``: when tqdm is installed and stderr is
            a terminal).
        process_index, process_count: this process's share of the grid; default
            ``jax.process_index()`` / ``jax.process_count()``. Pass them to split a grid
            over independent jobs without ``jax.distributed`` (no barrier then).

    Returns:
        A :class:`SweepResult`; ``records`` holds every grid point that is done (with a
        store: after the barrier, the whole grid of all processes; without: this
        process's share), each as in :func:`load`.

    Raises:
        ValueError: unknown axis/option names, bad values (the measurement's check),
            duplicate grid points, a store made for another sweep or by other code of
            the measurement, a store that holds results without ``resume``, a corrupt
            record;
            ``chunk_size`` < 1 or ``process_index`` outside ``[0, process_count)``
            (``TypeError`` if one of them is not an int).
        FileNotFoundError: a finished point's ``.npz`` is missing from the store.
        RuntimeError: another sweep is writing this process's shard of the store.

    Examples:
        >>> import gradspec.sweep as gs
        >>> res = gs.sweep("mean_field", {"sigma_w": [0.5, 1.0, 1.5]})
        >>> [round(r["results"]["chi"], 4) for r in res.records]
        [0.25, 1.0, 1.1393]
    """
    start = time.perf_counter()
    plan = _plan(measurement, grid, options)
    m = plan.measurement
    if chunk_size is not None:
        chunk_size = _checks.check_int("chunk_size", chunk_size, 1)
    distributed = process_index is None and process_count is None
    process_count = _checks.check_int("process_count", jax.process_count()
                              if process_count is None else process_count, 1)
    process_index = _checks.check_int("process_index", jax.process_index()
                              if process_index is None else process_index, 0, process_count - 1)
    devices = _check_devices(devices) if m.batched else list(jax.local_devices())[:1]
    if chunk_size is None:
        chunk_size = m.chunk_size * len(devices)
    owned = list(range(process_index, len(plan.configs), process_count))

    root = writer = None
    done: dict = {}
    if store is not None:
        root = Path(store)
        manifest = _store.open_manifest(root, {
            "measurement": m.name, "version": m.version, "source": m.source,
            "options": plan.options, "dtype": plan.dtype,
        })
        _store.check_resume(root, resume)
        if not resume and distributed and process_count > 1:
            # Nobody writes before every process has found the store empty.
            multihost_utils.sync_global_devices(
                f"gradspec.sweep.start:{plan.hashes[0]}")
        others = [p for p in _store.shard_paths(root)
                  if p != _store.shard_path(root, process_index)]
        done = _store.index_records(
            _store.read_records(root, manifest=manifest, quiet_shards=others))
    todo, skipped = [], 0
    for i in owned:
        raw = done.get(plan.hashes[i])
        if raw is None:
            todo.append(i)
            continue
        # Its config is this point's: read_records checked it against the hash.
        if raw.get("npz") and not (root / raw["npz"]).exists():
            raise FileNotFoundError(_store.missing_npz_message(root, raw))
        skipped += 1

    fresh: dict = {}  # hash -> user record of each point computed here
    chunks = _chunks(m, plan, todo, len(devices), chunk_size)
    bar = _progress_bar(progress, len(todo), m.name)
    try:
        if todo and root is not None:
            writer = _store.ShardWriter(root, process_index)
        evaluated = _evaluate(m, plan, chunks, devices)
        for n_chunk, (idx_chunk, results, seconds) in enumerate(evaluated, 1):
            lines = []
            meta = _meta(devices, process_index, process_count, seconds / len(idx_chunk))
            for j, i in enumerate(idx_chunk):
                inline, dtypes, arrays = _store.encode_results(
                    {k: v[j] for k, v in results.items()})
                h = plan.hashes[i]
                raw = {
                    "hash": h, "measurement": m.name, "version": m.version,
                    "dtype": plan.dtype, "config": plan.configs[i], "results": inline,
                    "dtypes": dtypes, "npz": None, "meta": dict(meta),
                }
                if arrays and root is not None:
                    # The .npz is in place before the line that references it.
                    raw["npz"] = _store.write_npz(root, h, arrays)
                lines.append(raw)
                fresh[h] = _decode(raw, arrays)
            if writer is not None:
                writer.append(lines)
            if bar is not None:
                bar.set_postfix_str(f"chunk {n_chunk}/{len(chunks)}", refresh=False)
                bar.update(len(idx_chunk))
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()

    if distributed and process_count > 1:
        multihost_utils.sync_global_devices(f"gradspec.sweep:{plan.hashes[0]}")
    if root is not None and process_count > 1:
        # Every process's points: what the store holds now (after the barrier).
        final = _store.index_records(_store.read_records(root, warn=False), warn=False)
        records = [_decode(final[h], _read_arrays(root, final[h]))
                   for h in plan.hashes if h in final]
    else:  # this process's points: those computed here, the rest read at the start
        records = [fresh[h] if h in fresh else _decode(done[h], _read_arrays(root, done[h]))
                   for h in (plan.hashes[i] for i in owned)]
    computed = len(todo)
    return SweepResult(records, computed, skipped, time.perf_counter() - start,
                       None if root is None else str(root))


def _chunks(m: Measurement, plan: _Plan, todo: list, ndev: int, chunk_size: int) -> list:
    """``(static_json, point indices, padded length)`` per chunk, group by group."""
    if not m.batched:
        return [(None, [i], 1) for i in todo]  # one Python-level call per point
    groups: dict = {}
    for i in todo:
        static = {k: v for k, v in plan.configs[i].items() if k not in m.params}
        groups.setdefault(canonical_json(static), []).append(i)
    chunks = []
    for static_json, members in groups.items():
        # One shape per group: chunk_size rounded up to the devices, or less for a
        # small group; the last chunk is padded with its last point.
        length = min(_round_up(chunk_size, ndev), _round_up(len(members), ndev))
        chunks += [(static_json, members[lo : lo + length], length)
                   for lo in range(0, len(members), length)]
    return chunks


def _evaluate(m: Measurement, plan: _Plan, chunks: list, devices: list):
    """Yield ``(point indices, results dict of (n, ...) arrays, seconds)`` per chunk."""
    traced = tuple(sorted(m.params))
    for static_json, idx, length in chunks:
        t0 = time.perf_counter()
        if m.batched:
            compiled, sharding = _compiled(m, static_json, traced, devices)
            results = _run_chunk(m, plan, idx, length, traced, compiled, sharding)
        else:
            out = m.fn(dict(plan.configs[idx[0]]))
            results = {k: np.asarray(v)[None] for k, v in out.items()}
        yield idx, results, time.perf_counter() - t0


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


# -- loading results ------------------------------------------------------------------------


def load(store: str | Path, *, arrays: bool = True) -> list[dict]:
    """Every record of a store, in the order written (shard by shard).

    Each record is a dict: ``hash``, ``measurement``, ``version``, ``dtype``,
    ``config`` (the point's full config), ``results`` (scalars as Python numbers,
    small arrays inline and large ones from the ``.npz`` as NumPy arrays in their
    original dtype), ``npz`` (its path in the store, or None) and ``meta`` (gradspec
    and jax versions, devices, process, seconds per point, time).

    Args:
        store: the store directory.
        arrays: also read the ``.npz`` arrays (False: only the JSON results).

    Raises:
        ValueError: not a store; a corrupt line or a record that does not match its
            hash. A truncated last line (interrupted write) only warns.
        FileNotFoundError: a record's ``.npz`` is missing.
    """
    root = Path(store)
    manifest = _existing_manifest(root)
    raws = _store.index_records(_store.read_records(root, manifest=manifest))
    return [_decode(r, _read_arrays(root, r) if arrays else None) for r in raws.values()]


def repair(store: str | Path) -> dict:
    """Drop what a rerun should recompute: truncated or corrupt lines, records whose
    ``.npz`` is missing, duplicates; remove stale temporary files. Returns the counts
    ``{"truncated", "corrupt", "missing_npz", "duplicate"}``. Not while a sweep writes."""
    root = Path(store)
    _existing_manifest(root)
    return _repair(root)


def _existing_manifest(root: Path) -> dict:
    """The manifest of an existing store (``ValueError`` if ``root`` is none)."""
    manifest = _store.read_manifest(root)
    if manifest is None:
        raise ValueError(f"`store` {str(root)!r} is not a sweep store (no "
                         f"{_store.MANIFEST}).")
    return manifest

