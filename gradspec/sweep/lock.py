r"""One job per store: the store's lock.

A job that writes a store first takes its lock: a small JSON file in
``<store>/lock/`` naming the job (its hash, see :mod:`gradspec.sweep.job`), the host,
the pid and the start time. A process that speaks for its whole job (a single process,
or process 0 of a coordinated multi-process job) holds ``lock/<job>.json``; each
process of a grid split by hand over independent jobs (``process_index=`` /
``process_count=`` without ``jax.distributed``) holds ``lock/<job>-p<i>.json``, so
that the pieces of one split may run at once while any other job is refused.

Taking it is atomic on any POSIX file system, NFS included: the entry is written to a
temporary file, then hard-linked to its name (``link`` fails if the name exists, and a
reader never sees a half-written entry). Then the other entries are listed: one of
another job means the store is in use, and the new entry is removed again. Of two jobs
that start at the same instant at least one sees the other, so they never both run.

While a job runs, a daemon thread refreshes its entry's mtime every :data:`REFRESH`
seconds. A process killed by ``SIGKILL`` (or a host that died, or a batch job past its
time limit) leaves its entry behind; it is stale when its pid is gone from this host,
or, from another host, when it was not refreshed for :data:`STALE_AFTER` seconds. A
stale entry is removed, with a :class:`StoreWarning` naming it, and the rerun
(``resume=True``) goes on as after any kill. Any other entry refuses the new job,
naming the owner, and says how to clear it if the owner is known to be gone:
``break_lock=True`` (``gradspec sweep --break-lock``) removes every entry first, or
delete the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Mapping

from .store import StoreWarning

__all__ = ["LOCKS", "acquire", "release", "check_free", "pid_alive"]

LOCKS = "lock"
#: Seconds between two refreshes of a held entry's mtime (a daemon thread).
REFRESH = 30.0
#: An entry of another host not refreshed for this long is a killed job's.
STALE_AFTER = 300.0
_KEEPERS: dict = {}  # entry path -> the Event that stops its refresher


def pid_alive(host: str | None, pid: int | None) -> bool | None:
    """Whether process ``pid`` runs: True/False on this host, ``None`` elsewhere."""
    if host != socket.gethostname() or not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    try:  # Linux: a killed process its parent has not reaped yet is a zombie, dead
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _read(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        owner = None
    return owner if isinstance(owner, dict) else {"job": "?"}


def _age(path: Path) -> float:
    """Seconds since the entry was last refreshed."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return 0.0


def _stale(owner: Mapping, path: Path) -> bool:
    """Provably left by a dead process: its pid is gone from this host, or (another
    host) its holder stopped refreshing it."""
    alive = pid_alive(owner.get("host"), owner.get("pid"))
    return alive is False or (alive is None and _age(path) > STALE_AFTER)


def _owner_text(owner: Mapping, path: Path) -> str:
    who = (f"job {str(owner.get('job', '?'))[:12]}"
           + (f" process {owner['process_index']}"
              if owner.get("process_index") is not None else "")
           + f" (host {owner.get('host')}, pid {owner.get('pid')}, started "
             f"{owner.get('started')})")
    alive = pid_alive(owner.get("host"), owner.get("pid"))
    age = _age(path)
    if alive is False:
        state = ("that pid is not running on this host, so the lock is stale (its "
                 "process was killed)")
    elif alive:
        state = "that process is running"
    elif age > STALE_AFTER:
        state = (f"its lock was last refreshed {age:.0f} s ago (a running job refreshes "
                 f"it every {REFRESH:g} s), so it is stale (its job was killed)")
    else:
        state = (f"it may still be running there (its lock was refreshed {age:.0f} s "
                 f"ago; a killed job's goes stale after {STALE_AFTER:g} s)")
    return f"{who}; {state}. Lock file: {str(path)!r}"


def _refusal(root: Path, owner: Mapping, path: Path, same_job: bool) -> RuntimeError:
    what = ("this job is already running on it (the same sweep started twice, or "
            "two processes given the same process index)" if same_job else
            "another job is writing it")
    return RuntimeError(
        f"store {str(root)!r} is locked: {what}: {_owner_text(owner, path)}. A store "
        "takes one job at a time; wait for that job, use another store path, or, if "
        "no job is running on this store, clear the lock with `break_lock=True` "
        "(`gradspec sweep ... --break-lock`) or by deleting the file."
    )


def acquire(root: Path, job: str, info: Mapping, *, process_index: int | None = None,
            break_lock: bool = False) -> Path:
    """Take the store's lock for job ``job`` (a job hash); returns the entry's path.

    Args:
        root: the store directory (created if missing).
        job: the job hash.
        info: what the entry records besides job, host, pid and start time (e.g. the
            process count and each process's host and pid).
        process_index: ``None`` when this process speaks for its whole job; else its
            index in a grid split by hand (the pieces of one split share the store).
        break_lock: first remove every entry (a killed job's), with a warning.
            Stale entries (see the module docstring) are removed anyway.

    Raises:
        RuntimeError: another job holds the store, or this job's entry exists (the
            job, or this piece of it, runs twice; or a killed run left it), naming
            the owner and whether its process is known to run.
    """
    locks = Path(root) / LOCKS
    locks.mkdir(parents=True, exist_ok=True)
    name = job[:16] + ("" if process_index is None else f"-p{process_index}")
    entry = locks / f"{name}.json"
    body = {**info, "job": job, "process_index": process_index,
            "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with _mutex(locks):
        for path in sorted(locks.glob("*.json")):
            owner = _read(path)
            dead = _stale(owner, path)
            if break_lock or dead:
                warnings.warn(f"store {str(root)!r}: removed the lock of "
                              f"{_owner_text(owner, path)}"
                              + ("" if dead else " (break_lock)."),
                              StoreWarning, stacklevel=3)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        tmp = locks / f".{name}.{socket.gethostname()}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        try:
            os.link(tmp, entry)  # atomic: fails if the entry exists
        except FileExistsError:
            raise _refusal(root, _read(entry), entry, same_job=True) from None
        finally:
            tmp.unlink()
        for other in sorted(locks.glob("*.json")):
            owner = _read(other)
            # A coordinated job and a split by hand of the same fingerprint are two jobs.
            split = owner.get("process_index") is not None
            if other != entry and (owner.get("job") != job
                                   or split != (process_index is not None)):
                release(entry)
                raise _refusal(root, owner, other, same_job=False)
    _KEEPERS[entry] = stop = threading.Event()
    threading.Thread(target=_refresh, args=(entry, stop), daemon=True,
                     name=f"gradspec-lock-{name}").start()
    return entry


def _refresh(entry: Path, stop: threading.Event) -> None:
    """Touch ``entry`` every :data:`REFRESH` seconds until ``stop`` (or the process
    ends): another host tells a running job's lock from a killed one's by its age."""
    while not stop.wait(REFRESH):
        try:
            os.utime(entry)
        except OSError:  # removed (break_lock elsewhere): nothing left to keep fresh
            return


@contextlib.contextmanager
def _mutex(locks: Path):
    """Serialise lock-taking on this store (``flock``; the link above is atomic even
    where ``flock`` is not, but clearing a stale entry then taking its name is not)."""
    fd = os.open(locks / ".mutex", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def check_free(root: Path, doing: str) -> None:
    """``RuntimeError`` naming the owner if a job (not provably dead) holds the store:
    ``doing`` (e.g. "repair it") must wait for it."""
    for path in sorted((Path(root) / LOCKS).glob("*.json")):
        owner = _read(path)
        if pid_alive(owner.get("host"), owner.get("pid")) is not False:
            raise RuntimeError(f"store {str(root)!r} is in use, so this process cannot "
                               f"{doing}: {_owner_text(owner, path)}. Wait for that job, "
                               "or clear its lock if it was killed (`--break-lock`, or "
                               "delete the file).")


def release(entry: Path | None) -> None:
    """Remove a lock entry taken by :func:`acquire` (nothing if ``None`` or gone)."""
    if entry is not None:
        stop = _KEEPERS.pop(Path(entry), None)
        if stop is not None:
            stop.set()
        with contextlib.suppress(FileNotFoundError):
            Path(entry).unlink()
