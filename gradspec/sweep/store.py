r"""The sweep result store: crash-safe, append-only, resumable.

Layout of a store directory::

    store/
      manifest.json          what the store is for: measurement, version, source
                             (sha256 of the measurement's code), options, dtype; and
                             ``jobs``: the fingerprint of every job that wrote here
      records-p0.jsonl       one JSON line per finished grid point (process 0's shard),
                             each with the hash of the job that wrote it
      records-p1.jsonl       process 1's shard in a multi-process run, ...
      arrays/<hash>.npz      a point's large arrays, named by the point's hash
      lock/<job>.json        the running job's lock (:mod:`gradspec.sweep.lock`)
      failed-p<i>.json       why process i of the last job failed, and when
      foreign-records.jsonl  records :func:`repair` moved out: written by a job this
                             manifest does not list (another configuration)

Crash safety (a ``SIGKILL`` at any instant loses at most the points in flight and never
leaves a corrupt or duplicate record):

- ``manifest.json`` and every ``.npz`` are written to a temporary file, fsynced, then
  moved into place with ``os.replace`` (atomic on POSIX), so a reader sees the old
  file or the complete new one. A point's ``.npz`` is in place *before* the JSON line
  that references it is appended; a kill in between leaves an orphan ``.npz`` that
  the rerun overwrites.
- Records are appended to a shard opened ``O_APPEND`` with one ``os.write`` of whole
  lines, then ``fsync``. Only a power cut or a full disk can leave a partial last line;
  readers ignore such a truncated tail with a warning (its point counts as not done),
  and the next append cuts it off first.
- Each process appends only to its own shard, under an exclusive ``flock``: two sweeps
  writing the same shard at once are refused instead of interleaving duplicates.

One configuration per store: every record names its job (``"job"``, the job hash of
:mod:`gradspec.sweep.job`) and the manifest lists every job that wrote the store, all
of them with the manifest's measurement, version, source, options and dtype. A record
of any other job (say, a process started with other options that wrote here anyway)
is refused by every reader and moved out by :func:`repair`; records are never merged
across configurations.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .._json import canonical_json, nonfinite_to_str

FORMAT = "gradspec.sweep/1"
MANIFEST = "manifest.json"
ARRAYS = "arrays"
#: Results with at most this many elements go inline into the JSON line; larger ones
#: into ``arrays/<hash>.npz``.
INLINE_MAX = 64
FOREIGN = "foreign-records.jsonl"
_SHARD = re.compile(r"^records-p(\d+)\.jsonl$")
_RECORD_KEYS = ("hash", "measurement", "version", "dtype", "config", "results", "dtypes")


class StoreWarning(UserWarning):
    """A store problem that loses no finished result (a truncated last line)."""


class ForeignRecord(ValueError):
    """A record written by a job that the store's manifest does not list."""


# -- canonical JSON and hashes ----------------------------------------------------------


def identity(measurement: str, version: int, dtype: str, config: Mapping) -> dict:
    """Everything a point's result depends on; its hash names the point."""
    return {"measurement": measurement, "version": version, "dtype": dtype,
            "config": dict(config)}


def point_hash(ident: Mapping) -> str:
    """sha256 (hex) of the canonical JSON of :func:`identity`."""
    return hashlib.sha256(canonical_json(ident).encode()).hexdigest()


# -- encoding results -------------------------------------------------------------------


def encode_results(results: Mapping[str, Any]):
    """Split one point's results into JSON-able ``(inline, dtypes, arrays)``.

    Scalars and arrays of at most :data:`INLINE_MAX` elements go inline (non-finite
    floats as the strings ``"nan"``, ``"inf"``, ``"-inf"``); ``dtypes`` records every
    field's dtype name (``"str"`` for text) so decoding restores it exactly; larger
    arrays come back in ``arrays`` for the ``.npz``.
    """
    inline, dtypes, arrays = {}, {}, {}
    for name in sorted(results):
        a = np.asarray(results[name])
        if a.dtype.kind in "US":
            inline[name], dtypes[name] = a.tolist(), "str"
        elif a.dtype.kind not in "biuf":
            raise TypeError(
                f"result {name!r} must be numeric, boolean or text; got dtype {a.dtype}."
            )
        elif a.size > INLINE_MAX:
            arrays[name], dtypes[name] = a, a.dtype.name
        else:
            inline[name], dtypes[name] = nonfinite_to_str(a.tolist()), a.dtype.name
    return inline, dtypes, arrays


# -- atomic files -----------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, write) -> None:
    """``write(file)`` into a temporary sibling, fsync, then ``os.replace`` onto path."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json(path: Path, data: Mapping) -> None:
    """Atomically write ``data`` as indented JSON to ``path`` (and make it durable)."""
    text = json.dumps(dict(data), indent=2, sort_keys=True) + "\n"
    _atomic_write(path, lambda f: f.write(text.encode()))
    _fsync_dir(path.parent)


def failure_marker(root: Path, process_index: int) -> Path:
    """Where process ``process_index`` records why it failed."""
    return root / f"failed-p{process_index}.json"


def clear_failure_markers(root: Path) -> None:
    """Remove the failure markers of an earlier job (a new job is starting)."""
    for path in root.glob("failed-p*.json"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def write_npz(root: Path, h: str, arrays: Mapping[str, np.ndarray]) -> str:
    """Atomically write a point's arrays; returns the path relative to the store."""
    rel = f"{ARRAYS}/{h}.npz"
    _atomic_write(root / rel, lambda f: np.savez(f, **arrays))
    return rel


def read_npz(root: Path, record: Mapping) -> dict:
    path = root / record["npz"]
    if not path.exists():
        raise FileNotFoundError(missing_npz_message(root, record))
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def missing_npz_message(root: Path, record: Mapping) -> str:
    return (
        f"store {str(root)!r}: the record of point {record['hash'][:12]} "
        f"(config {canonical_json(record['config'])}) references {record['npz']!r}, "
        "which is missing: the store is damaged (a file was deleted or not copied). "
        "Refusing to reuse that record; run `gradspec.sweep.repair(store)` (or "
        "`gradspec sweep CONFIG --repair`) to drop it so the next run recomputes it."
    )


# -- manifest ---------------------------------------------------------------------------


def read_manifest(root: Path) -> dict | None:
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"store {str(root)!r}: {MANIFEST} is not valid JSON ({err}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise ValueError(
            f"store {str(root)!r}: {MANIFEST} is not a gradspec sweep manifest "
            f"(expected format {FORMAT!r}, got {got!r})."
        )
    return manifest


def open_manifest(root: Path, wanted: Mapping, job: tuple[str, Mapping] | None = None) -> dict:
    """Create the store with ``wanted`` as its manifest, or check that the existing
    manifest matches it (same measurement, version, options and dtype, and the same
    measurement source: an edit without a version bump is refused, not reused).

    ``job`` (its hash and fingerprint) is added to the manifest's ``jobs``, written
    atomically (a temporary file moved into place): a reader sees the old manifest or
    the new one, never a part. Only one process of a job calls this, holding the
    store's lock.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / ARRAYS).mkdir(exist_ok=True)
    manifest = read_manifest(root)
    if manifest is None:
        manifest = {"format": FORMAT, **wanted, "jobs": {}}
    else:
        check_manifest(root, manifest, wanted)
    if job is not None and job[0] not in manifest.get("jobs", {}):
        manifest = {**manifest, "jobs": {**manifest.get("jobs", {}), job[0]: dict(job[1])}}
    elif (root / MANIFEST).exists():
        return manifest
    write_json(root / MANIFEST, manifest)
    return manifest


def check_manifest(root: Path, manifest: Mapping, wanted: Mapping) -> None:
    """``ValueError`` unless ``manifest`` was made for the sweep ``wanted`` describes."""
    diffs = [
        f"{key}: store has {canonical_json(manifest.get(key))}, this sweep has "
        f"{canonical_json(wanted[key])}"
        for key in ("measurement", "version", "options", "dtype")
        if canonical_json(manifest.get(key)) != canonical_json(wanted[key])
    ]
    if diffs:
        raise ValueError(
            f"store {str(root)!r} was created for a different sweep ({'; '.join(diffs)}). "
            "Its records would not be results of this configuration; use another store "
            "path (one store holds one measurement with one set of options; grid axes "
            "may change between runs)."
        )
    if manifest.get("source") != wanted["source"]:
        old = manifest.get("source")
        raise ValueError(
            f"store {str(root)!r}: measurement {wanted['measurement']!r} changed since "
            f"the store was written, without a version bump: its code's sha256 is now "
            f"{wanted['source'][:12]}, the store's results came from "
            + (f"{old[:12]}" if isinstance(old, str) else "unrecorded code")
            + f" (both version {wanted['version']}). They may be stale, so they are "
            "not reused. If the edit changes results, bump `version` in "
            "gradspec.sweep.register(...) and use another store path; if it cannot (a "
            f"comment, a docstring), set \"source\" in {str(root / MANIFEST)!r} to "
            f"{wanted['source']!r} to keep them."
        )


def count_records(root: Path) -> int:
    """Lines in the store's shards: its finished points (and a truncated last line, if
    an interrupted write left one); 0 where there is no store yet."""
    if not root.is_dir():
        return 0
    return sum(len(path.read_bytes().splitlines()) for path in shard_paths(root))


def check_resume(root: Path, resume: bool, how: str = "resume=True") -> None:
    """Refuse to add to a store that already holds results unless ``resume``.

    One rule for :func:`gradspec.sweep.sweep` and ``gradspec sweep`` alike: a store
    path that already holds results is continued only when asked (``how``: the
    argument or flag to name), never silently.
    """
    n = 0 if resume else count_records(root)
    if n:
        raise ValueError(
            f"store {str(root)!r} already holds {n} results; pass {how} to continue "
            "it (points already done are reused, the rest computed) or use another "
            "store path."
        )


# -- reading records --------------------------------------------------------------------


def shard_paths(root: Path) -> list[Path]:
    found = [(int(m.group(1)), p) for p in root.glob("records-p*.jsonl")
             if (m := _SHARD.match(p.name))]
    return [p for _, p in sorted(found)]


def shard_path(root: Path, process_index: int) -> Path:
    return root / f"records-p{process_index}.jsonl"


def _split_lines(data: bytes):
    """Complete lines (with their 1-based numbers) and the truncated tail (or b'')."""
    parts = data.split(b"\n")
    tail = parts.pop()  # b"" when data ends with a newline
    return list(enumerate(parts, 1)), tail


def check_record(root: Path, path: Path, lineno: int, record: Any,
                 manifest: Mapping | None) -> dict:
    where = f"store {str(root)!r}: {path.name} line {lineno}"
    if not isinstance(record, dict) or any(k not in record for k in _RECORD_KEYS):
        raise ValueError(
            f"{where} is not a sweep record (expected keys {list(_RECORD_KEYS)}). "
            "Run `gradspec.sweep.repair(store)` to drop it."
        )
    ident = identity(record["measurement"], record["version"], record["dtype"], record["config"])
    if point_hash(ident) != record["hash"]:
        raise ValueError(
            f"{where}: the record's config does not match its hash {record['hash'][:12]} "
            "(the config was edited after the point ran, or the record is corrupt). "
            "Refusing to reuse it; run `gradspec.sweep.repair(store)` to drop it."
        )
    if manifest is not None:
        for key in ("measurement", "version", "dtype"):
            if record[key] != manifest.get(key):
                raise ValueError(
                    f"{where}: record has {key} {record[key]!r} but the store's manifest "
                    f"says {manifest.get(key)!r}; the store mixes sweeps."
                )
        job = record.get("job")
        if job is not None and job not in manifest.get("jobs", {}):
            raise ForeignRecord(
                f"{where} was written by job {str(job)[:12]}, which the store's manifest "
                "does not list: a process with another configuration (options, grid, "
                "process count, code) wrote into this store. Records of different "
                "configurations are never merged; run `gradspec.sweep.repair(store)` "
                f"(`gradspec sweep CONFIG --repair`) to move them to {FOREIGN}."
            )
    return record


def read_records(root: Path, *, manifest: Mapping | None = None, warn: bool = True,
                 quiet_shards: Iterable[Path] = ()) -> list[dict]:
    """Every valid record of every shard, in shard then line order.

    A line that ends without a newline (an interrupted write) is ignored with a
    :class:`StoreWarning` (none for ``quiet_shards``, which another live process may
    be writing right now). A complete line that is not a valid record raises
    ``ValueError`` naming the file and line.
    """
    quiet = {Path(p) for p in quiet_shards}
    records = []
    for path in shard_paths(root):
        lines, tail = _split_lines(path.read_bytes())
        for lineno, line in lines:
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValueError(
                    f"store {str(root)!r}: {path.name} line {lineno} is corrupt ({err}): "
                    f"{line[:80]!r}. It was not written by an interrupted sweep (those "
                    "only truncate the last line); refusing to guess. Run "
                    "`gradspec.sweep.repair(store)` to drop corrupt lines (their points "
                    "are recomputed)."
                ) from None
            records.append(check_record(root, path, lineno, record, manifest))
        if tail and warn and path not in quiet:
            warnings.warn(
                f"store {str(root)!r}: {path.name} ends with a truncated record "
                f"({len(tail)} bytes, line {len(lines) + 1}) from an interrupted write; "
                "ignored: its point counts as not done, and the next append to this "
                "shard cuts the tail off.",
                StoreWarning,
                stacklevel=3,
            )
    return records


def index_records(records: list[dict], *, warn: bool = True) -> dict[str, dict]:
    """``{hash: record}``, keeping the first of any duplicates (with a warning)."""
    done, dupes = {}, 0
    for record in records:
        if record["hash"] in done:
            dupes += 1
            continue
        done[record["hash"]] = record
    if dupes and warn:
        warnings.warn(f"{dupes} duplicate record(s) ignored (first kept); "
                      "`gradspec.sweep.repair(store)` removes them.", StoreWarning, stacklevel=3)
    return done


# -- appending --------------------------------------------------------------------------


class ShardWriter:
    """Appends whole JSON lines to one process's shard, fsynced, under an exclusive
    lock. The truncated tail an interrupted write may have left is cut off before the
    first append."""

    def __init__(self, root: Path, process_index: int):
        self.root, self.path = root, shard_path(root, process_index)
        created = not self.path.exists()
        self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise RuntimeError(
                f"store {str(root)!r}: {self.path.name} is locked by another running "
                "sweep; two sweeps may not write the same shard (wait for it, or give "
                "each process its own process_index)."
            ) from None
        if created:
            _fsync_dir(root)
        self._tail_checked = False

    def _cut_truncated_tail(self) -> None:
        size = os.fstat(self.fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            # Scan back for the last newline; the bytes after it are a partial line.
            block, end = 1 << 16, size
            while end > 0:
                start = max(0, end - block)
                f.seek(start)
                chunk = f.read(end - start)
                pos = chunk.rfind(b"\n")
                if pos >= 0:
                    keep = start + pos + 1
                    break
                end = start
            else:
                keep = 0
        if keep < size:
            os.ftruncate(self.fd, keep)
            os.fsync(self.fd)
            warnings.warn(
                f"store {str(self.root)!r}: cut a truncated last line ({size - keep} "
                f"bytes) off {self.path.name} before appending.", StoreWarning, stacklevel=3)

    def append(self, records: list[dict]) -> None:
        """Append ``records`` as lines; the ``.npz`` files they reference must already
        be written (their directory entries are made durable first)."""
        if not records:
            return
        if not self._tail_checked:
            self._cut_truncated_tail()
            self._tail_checked = True
        if any(r.get("npz") for r in records):
            _fsync_dir(self.root / ARRAYS)
        data = "".join(canonical_json(r) + "\n" for r in records).encode()
        view = memoryview(data)
        while view:  # one write in practice; loop in case the kernel takes less
            view = view[os.write(self.fd, view):]
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- repair -----------------------------------------------------------------------------


def repair(root: Path) -> dict:
    """Rewrite every shard keeping only valid, unique records whose ``.npz`` exists;
    remove temporary files. Records of a job the manifest does not list (another
    configuration) are moved to :data:`FOREIGN`, not deleted. Returns counts of what
    was dropped. Run it while no sweep writes the store (it takes each shard's lock
    and refuses otherwise)."""
    root = Path(root)
    manifest = read_manifest(root)
    dropped = {"truncated": 0, "corrupt": 0, "missing_npz": 0, "duplicate": 0, "foreign": 0}
    seen, foreign = set(), []
    for path in shard_paths(root):
        lines, tail = _split_lines(path.read_bytes())
        dropped["truncated"] += bool(tail)
        keep = []
        for lineno, line in lines:
            try:
                record = check_record(root, path, lineno, json.loads(line), manifest)
            except ForeignRecord:
                dropped["foreign"] += 1
                foreign.append(line + b"\n")
                continue
            except (ValueError, UnicodeDecodeError):
                dropped["corrupt"] += 1
                continue
            if record.get("npz") and not (root / record["npz"]).exists():
                dropped["missing_npz"] += 1
                continue
            if record["hash"] in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(record["hash"])
            keep.append(line + b"\n")
        if foreign:  # kept, out of the shards, before the shard loses them
            with open(root / FOREIGN, "ab") as f:
                f.write(b"".join(foreign))
                f.flush()
                os.fsync(f.fileno())
            foreign = []
        if len(keep) != len(lines) or tail:
            m = _SHARD.match(path.name)
            with ShardWriter(root, int(m.group(1))):  # holds the lock while rewriting
                _atomic_write(path, lambda f: f.write(b"".join(keep)))
                _fsync_dir(root)
    for tmp in list(root.glob(".*.tmp")) + list((root / ARRAYS).glob(".*.tmp")):
        tmp.unlink()
    return dropped
