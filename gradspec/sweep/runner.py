"""Running a sweep: plan the grid, evaluate it in vmapped, sharded chunks, store each point.

The package docstring (:mod:`gradspec.sweep`) describes batching, keys, resuming and
multi-host runs; :mod:`gradspec.sweep.cluster` how the processes of one job agree.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .. import _checks
from .._json import canonical_json, decode_value
from . import cluster
from . import job as _job
from . import lock as _lock
from . import store as _store
from .batching import batch_width, over_points, traced_once
from .grid import Plan, fold_key, hash_word, plan_grid
from .measurements import Measurement, jax_dtype_of
from .store import repair as _repair

__all__ = ["SweepResult", "sweep", "load", "repair"]

_AXIS = "points"


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


def _compiled(m: Measurement, static_json: str, traced: tuple, devices: list, dtype: str,
              length: int, width: int | None):
    """jit(shard_map(batched point_fn)) for one group and chunk length, cached;
    ``width``: points per vmapped batch (None: :func:`~.batching.batch_width`)."""
    key = (m.fn, m.name, m.version, static_json, traced, tuple(d.id for d in devices),
           dtype, length, width)
    if key not in _COMPILED:
        static = json.loads(static_json)
        fn = m.fn

        def one(values, seed, word):
            out = fn(dict(values), fold_key(seed, word), **static)  # see point_key
            if not isinstance(out, Mapping):
                raise TypeError(f"measurement {m.name!r} must return a dict of arrays; "
                                f"got {type(out).__name__}.")
            return {str(k): jnp.asarray(v) for k, v in out.items()}

        per_device = length // len(devices)
        if width is None:
            scalar = lambda t: jax.ShapeDtypeStruct((), t)
            example = ({name: scalar(jax_dtype_of(m.params[name], dtype)) for name in traced},
                       scalar(jnp.int32), scalar(jnp.uint32))
            jaxpr, one = traced_once(one, example)
            width = batch_width(jaxpr, devices[0].platform, per_device)
        mesh = Mesh(np.asarray(devices), (_AXIS,))
        spec = PartitionSpec(_AXIS)
        # check_vma=False: the points are independent and nothing is communicated, so
        # a user's function need not annotate which values vary across devices (a
        # constant scan carry, e.g. an identity start frame, would otherwise fail).
        batched = jax.shard_map(over_points(one, width, per_device), mesh=mesh,
                                in_specs=spec, out_specs=spec, check_vma=False)
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
    words = np.asarray([hash_word(plan.hashes[i]) for i in padded], np.uint32)
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
    out["job"] = raw.get("job")
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
    skipped: int  # points reused from the store (resume=True): of this process's
    #               share, or of the whole grid in a coordinated multi-process job
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
    batch_size: int | None = None,
    progress: bool | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    start_timeout: float = 600.0,
    finish_timeout: float = 86400.0,
    break_lock: bool = False,
) -> SweepResult:
    r"""Evaluate ``measurement`` at every point of ``grid`` (Cartesian product).

    Each point's config is the measurement's defaults, overridden by ``options``, then
    by the point's axis values; its hash is the sha256 of the canonical JSON of
    ``{measurement, version, dtype, config}``. Points are grouped by their static
    options; each group runs in chunks of ``chunk_size`` points (rounded up to a
    multiple of the device count, the last one padded), one ``jit(shard_map(...))``
    call per chunk over ``devices``, in which each device evaluates its points in
    vmapped batches of ``batch_size`` (``lax.map`` over the batches). An unbatched
    measurement (``"train"``) is called once per point instead.

    Under ``jax.distributed`` with several processes, every process makes the same
    call and they run it as one job (:mod:`gradspec.sweep.cluster`): they first agree
    on the job's fingerprint (any difference stops all of them, nothing written),
    process 0 takes the store's lock and writes the manifest, the points still to do
    are divided evenly, a failure on one process stops the others between chunks,
    and each returns once all are done.

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
            (``ValueError`` otherwise); its grid may grow between runs. One job
            writes it at a time (its lock, :mod:`gradspec.sweep.lock`).
        resume: continue a store that already holds results: its points are reused
            (counted in ``skipped``), the rest computed. False (the default) refuses
            such a store with a ``ValueError``, as ``gradspec sweep`` does without
            ``--resume``. Jobs that split one grid over a shared store by
            ``process_index`` need it in every job that may start after another has
            written; under ``jax.distributed`` process 0 checks before any writes.
        devices: local devices to shard each chunk over; all of
            ``jax.local_devices()`` by default.
        chunk_size: points per compiled call (and the most a kill can lose); memory
            grows linearly with it. Default: the measurement's ``chunk_size`` (points
            per device) times the device count, sized for CPUs; raise it on GPUs.
        batch_size: points a device evaluates together in one ``vmap``. Default: on
            accelerators all of its chunk; on a CPU as many as keep the batch's
            largest matrix-product operands under 16384 elements (a tanh RNN of N =
            256 or 128 one point at a time, N = 64 four, N = 32 sixteen), since XLA's
            CPU backend runs batched matrix-vector products of big networks ~3x slower
            than one after the other. Results agree to rounding whatever the value.
        progress: tqdm bar over points (``None``: when tqdm is installed and stderr is
            a terminal).
        process_index, process_count: split the grid over independent jobs without
            ``jax.distributed``: this one takes points ``i, i + P, ...`` of the grid
            (no agreement, no waiting; the pieces of one split may share a store).
            Default: ``jax.process_index()`` / ``jax.process_count()``, one job.
        start_timeout: seconds a process of a multi-process job waits at the start
            for the others (to agree, then for process 0 to open the store).
        finish_timeout: seconds a process that finished its share waits for the
            others' (its own points are saved either way).
        break_lock: first remove the store's lock entries, left by a killed job
            (only when no job is running on the store).

    Returns:
        A :class:`SweepResult`; ``records`` holds every grid point that is done (with a
        store: in a multi-process job, the whole grid of all processes; else this
        process's share), each as in :func:`load`.

    Raises:
        ValueError: unknown axis/option names, bad values (the measurement's check),
            duplicate grid points, a store made for another sweep or by other code of
            the measurement, a store that holds results without ``resume``, a corrupt
            record or one of another configuration; processes of one job started
            with different sweeps or process counts (on every process, before
            anything is written);
            ``chunk_size`` or ``batch_size`` < 1 or ``process_index`` outside
            ``[0, process_count)`` (``TypeError`` if one of them is not an int).
        FileNotFoundError: a finished point's ``.npz`` is missing from the store.
        RuntimeError: the store is locked by another job (or a killed one), or
            another sweep is writing this process's shard.
        SweepAborted: another process of the job failed, vanished or timed out;
            this one's points are saved. After a process vanished (``SIGKILL``, a
            dead host) this process later exits with status 1 without JAX's
            shutdown, which would wait for the dead one (``shutdown_timeout_seconds``,
            300 s) and end in a C++ abort.

    Examples:
        >>> import gradspec.sweep as gs
        >>> res = gs.sweep("mean_field", {"sigma_w": [0.5, 1.0, 1.5]})
        >>> [round(r["results"]["chi"], 4) for r in res.records]
        [0.25, 1.0, 1.1393]
    """
    start = time.perf_counter()
    coord = None
    if process_index is None and process_count is None and jax.process_count() > 1:
        coord = cluster.Coordinator(cluster.KVChannel(), jax.process_index(),
                                    jax.process_count(), cluster.next_call())
    try:
        plan = plan_grid(measurement, grid, options)
        if chunk_size is not None:
            chunk_size = _checks.check_int("chunk_size", chunk_size, 1)
        if batch_size is not None:
            batch_size = _checks.check_int("batch_size", batch_size, 1)
        start_timeout = _check_seconds("start_timeout", start_timeout)
        finish_timeout = _check_seconds("finish_timeout", finish_timeout)
        process_count = _checks.check_int("process_count", jax.process_count()
                                          if process_count is None else process_count, 1)
        process_index = _checks.check_int("process_index", jax.process_index()
                                          if process_index is None else process_index,
                                          0, process_count - 1)
        m = plan.measurement
        devices = _check_devices(devices) if m.batched else list(jax.local_devices())[:1]
    except Exception as err:
        if coord is not None:  # the others would wait for this process in vain
            coord.start({"error": f"{type(err).__name__}: {err}"}, 0.0, wait=False)
        raise
    if chunk_size is None:
        chunk_size = m.chunk_size * len(devices)
    fp = _job.fingerprint(plan, process_count, store)
    job = _job.job_hash(fp)
    if coord is not None:
        entries = coord.start({"fingerprint": fp,
                               "told": cluster.told_process_count(process_count)},
                              start_timeout)
        problem = _job.disagreement(entries, process_count)
        if problem:
            raise ValueError(f"{problem}. Nothing was computed or written.")

    root = None if store is None else Path(store)
    n = len(plan.hashes)
    opened = _Opened({}, None, list(range(n)))
    if coord is None or coord.index == 0:
        try:
            if root is not None:
                opened = _open_store(root, plan, fp, job, resume, break_lock,
                                     None if coord is not None or process_count == 1
                                     else process_index)
        except BaseException as err:
            if coord is not None:
                coord.go({"error": str(err), "type": type(err).__name__})
            raise
        if coord is not None:
            coord.go({"remaining": _job.encode_points(opened.remaining, n)})
    else:
        go = coord.wait_go(start_timeout)
        if "error" in go:
            raise _ERRORS.get(go["type"], RuntimeError)(go["error"])
        opened = opened._replace(remaining=_job.decode_points(go["remaining"], n))
        if root is not None and _store.read_manifest(root) is None:
            # No shared file system: this host keeps its own copy of the store.
            _store.open_manifest(root, _wanted(plan), (job, fp))
    if coord is not None:
        todo = _job.share(opened.remaining, process_index, process_count)
        owned, skipped = todo, n - len(opened.remaining)
        coord.store, coord.total = (None if root is None else str(root)), n
        coord.saved = lambda: None if root is None else _store.count_records(root)
    else:  # this process's fixed share of the grid; what the store holds is skipped
        owned = list(range(process_index, n, process_count))
        todo = [i for i in owned if plan.hashes[i] not in opened.done]
        skipped = len(owned) - len(todo)

    try:
        fresh = _compute(plan, todo, devices, chunk_size, batch_size, progress, root,
                         job, process_index, process_count, coord)
        if coord is not None:
            coord.finish(finish_timeout)
    except cluster.SweepAborted:
        raise
    except BaseException as err:
        saved = None if root is None else _store.count_records(root)
        if coord is not None:
            info = coord.fail(err, saved)
        else:
            info = {"process": process_index, "error": f"{type(err).__name__}: {err}",
                    "saved": saved}
        if root is not None:  # why, for whoever looks at the store later
            info["job"] = job
            _store.write_json(_store.failure_marker(root, process_index), info)
        raise
    finally:
        _lock.release(opened.lock)

    if root is not None and process_count > 1:
        # Every process's points: what the store holds now (in a coordinated job,
        # everyone is done; in a split by hand, what the other pieces wrote so far).
        final = _store.index_records(_store.read_records(root, warn=False), warn=False)
        records = [_decode(final[h], _read_arrays(root, final[h]))
                   for h in plan.hashes if h in final]
    else:  # this process's points: those computed here, the rest read at the start
        records = [fresh[h] if h in fresh else
                   _decode(opened.done[h], _read_arrays(root, opened.done[h]))
                   for h in (plan.hashes[i] for i in owned)]
    return SweepResult(records, len(todo), skipped, time.perf_counter() - start,
                       None if root is None else str(root))


_ERRORS = {e.__name__: e for e in (ValueError, TypeError, FileNotFoundError, RuntimeError)}


def _check_seconds(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number of seconds; got {value!r}.")
    if not value > 0:
        raise ValueError(f"`{name}` must be > 0 seconds; got {value!r}.")
    return float(value)


def _wanted(plan: Plan) -> dict:
    """What a store's manifest must say to hold this sweep's results."""
    m = plan.measurement
    return {"measurement": m.name, "version": m.version, "source": m.source,
            "options": plan.options, "dtype": plan.dtype}


class _Opened(NamedTuple):
    done: dict  # hash -> raw record of the points already in the store
    lock: Path | None  # this process's lock entry, released at the end
    remaining: list  # grid indices not in the store, grid order


def _open_store(root: Path, plan: Plan, fp: dict, job: str, resume: bool,
                break_lock: bool, piece: int | None) -> _Opened:
    """Check, lock and open the store for this job; read what is done.

    ``piece``: the process index of a grid split by hand (its pieces share the store),
    or None for a process that speaks for its whole job. Nothing but the lock entry
    is written before every check passed, and the entry is removed if one fails.
    """
    m = plan.measurement
    wanted = _wanted(plan)
    # The lock first: a job running on the store is the refusal to hear first.
    entry = _lock.acquire(root, job, {"process_count": fp["process_count"],
                                      "measurement": m.name},
                          process_index=piece, break_lock=break_lock)
    try:
        existing = _store.read_manifest(root)
        if existing is not None:  # a store of another sweep, before "holds results"
            _store.check_manifest(root, existing, wanted)
        _store.check_resume(root, resume)
        manifest = _store.open_manifest(root, wanted, (job, fp))
        if piece is None:
            _store.clear_failure_markers(root)
        # A piece of a split reads the others' shards while they may be writing.
        quiet = [] if piece is None else [p for p in _store.shard_paths(root)
                                          if p != _store.shard_path(root, piece)]
        done = _store.index_records(
            _store.read_records(root, manifest=manifest, quiet_shards=quiet))
        grid = set(plan.hashes)
        for raw in done.values():
            # Its config is this point's: read_records checked it against the hash.
            if raw["hash"] in grid and raw.get("npz") and not (root / raw["npz"]).exists():
                raise FileNotFoundError(_store.missing_npz_message(root, raw))
    except BaseException:
        _lock.release(entry)
        raise
    remaining = [i for i, h in enumerate(plan.hashes) if h not in done]
    return _Opened(done, entry, remaining)


def _compute(plan: Plan, todo: list, devices: list, chunk_size: int,
             batch_size: int | None, progress, root: Path | None, job: str,
             process_index: int, process_count: int, coord) -> dict:
    """Evaluate the points ``todo`` chunk by chunk, appending each chunk to this
    process's shard; between chunks, stop if another process of the job failed.
    Returns ``{hash: user record}`` of the points computed."""
    m = plan.measurement
    fresh: dict = {}
    chunks = _chunks(m, plan, todo, len(devices), chunk_size)
    bar = _progress_bar(progress, len(todo), m.name)
    writer = None
    try:
        if todo and root is not None:
            writer = _store.ShardWriter(root, process_index)
        evaluated = _evaluate(m, plan, chunks, devices, batch_size)
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
                    "dtypes": dtypes, "npz": None, "job": job, "meta": dict(meta),
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
            if coord is not None:
                coord.check()
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()
    return fresh


def _chunks(m: Measurement, plan: Plan, todo: list, ndev: int, chunk_size: int) -> list:
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


def _evaluate(m: Measurement, plan: Plan, chunks: list, devices: list,
              batch_size: int | None):
    """Yield ``(point indices, results dict of (n, ...) arrays, seconds)`` per chunk."""
    traced = tuple(sorted(m.params))
    for static_json, idx, length in chunks:
        t0 = time.perf_counter()
        if m.batched:
            compiled, sharding = _compiled(m, static_json, traced, devices, plan.dtype,
                                           length, batch_size)
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
    ``config`` (the point's full config), ``job`` (the hash of the job that computed
    it, one of the manifest's ``jobs``; None in stores from before jobs), ``results``
    (scalars as Python numbers, small arrays inline and large ones from the ``.npz``
    as NumPy arrays in their original dtype), ``npz`` (its path in the store, or
    None) and ``meta`` (gradspec and jax versions, devices, process, seconds per
    point, time).

    Args:
        store: the store directory.
        arrays: also read the ``.npz`` arrays (False: only the JSON results).

    Raises:
        ValueError: not a store; a corrupt line, a record that does not match its
            hash, or one written by a job the manifest does not list (another
            configuration: never merged; :func:`repair` moves it out). A truncated
            last line (interrupted write) only warns.
        FileNotFoundError: a record's ``.npz`` is missing.
    """
    root = Path(store)
    manifest = _existing_manifest(root)
    raws = _store.index_records(_store.read_records(root, manifest=manifest))
    return [_decode(r, _read_arrays(root, r) if arrays else None) for r in raws.values()]


def repair(store: str | Path) -> dict:
    """Drop what a rerun should recompute: truncated or corrupt lines, records whose
    ``.npz`` is missing, duplicates; move records of another configuration (a job the
    manifest does not list) to ``foreign-records.jsonl``; remove stale temporary
    files. Returns the counts ``{"truncated", "corrupt", "missing_npz", "duplicate",
    "foreign"}``. Refused (``RuntimeError``) while a job holds the store's lock."""
    root = Path(store)
    _existing_manifest(root)
    _lock.check_free(root, "repair it")
    return _repair(root)


def _existing_manifest(root: Path) -> dict:
    """The manifest of an existing store (``ValueError`` if ``root`` is none)."""
    manifest = _store.read_manifest(root)
    if manifest is None:
        raise ValueError(f"`store` {str(root)!r} is not a sweep store (no "
                         f"{_store.MANIFEST}).")
    return manifest

