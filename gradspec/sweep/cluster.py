r"""The processes of a multi-process sweep: start together, fail together, end together.

Under ``jax.distributed`` every process runs the same :func:`gradspec.sweep.sweep`
call. They talk through the key-value store of JAX's coordination service (the
process that ``jax.distributed.initialize`` made the coordinator serves it), never
through a device collective: a collective over gloo has a fixed deadline, prints to
stdout and, once one process is gone, can hold the others until JAX's shutdown
timeout (300 s) ends them with a C++ stack trace. Every wait below polls with its own
timeout and watches for failures while it waits. The keys (call ``n`` is this
session's n-th coordinated sweep, the same on every process)::

    gradspec.sweep/<n>/start/<i>   process i's fingerprint, host, pid (or why it could not start)
    gradspec.sweep/<n>/go          process 0 opened the store: the points still to do (or an error)
    gradspec.sweep/<n>/done/<i>    process i finished its share
    gradspec.sweep/failed/<i>      process i failed (error, points saved): every later wait stops
    gradspec.sweep/bye/<i>         process i is exiting (``gradspec sweep`` waits for these)

**Start.** Each process announces its job fingerprint (:mod:`gradspec.sweep.job`) and
waits (``start_timeout``) until all have; any difference stops every process with the
same message, before anything is written. Then process 0 alone takes the store's lock,
writes the manifest and reads what is done; the others wait for its go-ahead, which
carries the points still to do, so every process computes the same shares.

**Failure.** A process whose sweep raises announces it (``failed/<i>``, and
``failed-p<i>.json`` in the store) before the exception propagates. The others check
between chunks and raise :class:`SweepAborted` naming the process, its error and how
many points are saved. A process on the same host that vanished without a word (a
``SIGKILL``) is noticed the same way, by its pid; one on another host only by JAX's
heartbeat (``heartbeat_timeout_seconds`` of ``jax.distributed.initialize``, 100 s by
default), which then ends the others itself.

**End.** Each process announces that its share is done and waits for all the others
(``finish_timeout``, a day by default): a slow host never makes a fast one fail.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import time
from typing import Mapping

from .lock import pid_alive

__all__ = ["SweepAborted"]

_NS = "gradspec.sweep"
_POLL = 0.1  # seconds between two looks at the key-value store, for the first ...
_POLL_FAST_FOR = 5.0  # ... seconds of a wait; then every _POLL_SLOW s (a thousand
_POLL_SLOW = 1.0  # processes waiting a day would otherwise flood the coordinator)
_CALLS = [0]  # coordinated sweeps started in this process (the n of the keys)


class SweepAborted(RuntimeError):
    """Another process of a multi-process sweep failed, vanished or never came; this
    process stopped too. What was finished is in the store: rerun the same sweep with
    ``resume=True`` (``gradspec sweep ... --resume``) to compute the rest."""


def _client():
    """The coordination service client of ``jax.distributed`` (None if not started).

    It is private (``jax._src.distributed.global_state``), as used by
    ``multihost_utils`` itself and by Orbax: jax has no public key-value API.
    """
    from jax._src import distributed

    return getattr(distributed.global_state, "client", None)


def told_process_count(default: int) -> int:
    """The process count this process was started with
    (``jax.distributed.initialize(num_processes=...)``); a process told a larger count
    than the coordinator's joins the smaller job without an error from JAX."""
    from jax._src import distributed

    told = getattr(distributed.global_state, "num_processes", None)
    return told if isinstance(told, int) else default


class KVChannel:
    """Keys and values in JAX's coordination service (see the module docstring)."""

    def __init__(self, client=None):
        self.client = _client() if client is None else client
        if self.client is None:
            raise RuntimeError("a multi-process sweep needs jax.distributed.initialize(...) "
                               "first (or process_index=/process_count= for a grid split "
                               "over independent jobs).")

    def put(self, key: str, value: str) -> None:
        self.client.key_value_set(key, value, allow_overwrite=True)

    def items(self, prefix: str) -> dict[str, str]:
        """Every key under the directory ``prefix`` (full keys)."""
        return dict(self.client.key_value_dir_get(prefix))


class MemoryChannel:
    """The same interface over a dict: threads as processes (tests)."""

    def __init__(self):
        self.data: dict[str, str] = {}

    def put(self, key: str, value: str) -> None:
        self.data[key] = value

    def items(self, prefix: str) -> dict[str, str]:
        prefix = prefix.rstrip("/") + "/"
        return {k: v for k, v in list(self.data.items()) if k.startswith(prefix)}


def _exit_without_jax_shutdown() -> None:
    """At interpreter exit, skip JAX's shutdown: it waits (300 s by default) at a
    barrier for every process, and a vanished one never comes; JAX then aborts with a
    C++ stack trace. Registered after JAX's own hook, so it runs first."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(1)


def _pause(since: float) -> None:
    """Sleep between two polls of a wait that began at ``since``."""
    time.sleep(_POLL if time.monotonic() - since < _POLL_FAST_FOR else _POLL_SLOW)


class Coordinator:
    """One process's side of one coordinated sweep call (see the module docstring).

    Args:
        channel: a :class:`KVChannel` (or :class:`MemoryChannel`).
        process_index, process_count: this process and the job's size.
        call: the call number ``n`` (:func:`next_call`).
    """

    def __init__(self, channel, process_index: int, process_count: int, call: int):
        self.channel, self.index, self.count = channel, process_index, process_count
        self.prefix = f"{_NS}/{call}"
        self.peers: dict[int, Mapping] = {}  # index -> start entry (host, pid, ...)
        self.store: str | None = None  # for messages
        self.total = 0  # grid points, for messages
        self.saved = lambda: None  # -> points in the store now (or None)

    # -- waiting ---------------------------------------------------------------------

    def _wait(self, prefix: str, want: set, timeout: float, late: str) -> dict[int, str]:
        """Poll until the keys ``prefix/<i>`` for every i in ``want`` exist; meanwhile
        stop on a failure or a vanished peer. ``late`` explains a timeout."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            found = {int(k.rsplit("/", 1)[1]): v for k, v in self._items(prefix).items()}
            if want <= set(found):
                return found
            self.check(finished=set(found) if prefix.endswith("/done") else set())
            if time.monotonic() > deadline:
                missing = sorted(want - set(found))
                self._abort(f"processes {missing} {late} within {timeout:g} s", vanished=True)
            _pause(start)

    def _items(self, prefix: str) -> dict[str, str]:
        try:
            return self.channel.items(prefix)
        except Exception as err:  # the coordinator's key-value store is gone
            self._abort(f"the coordinator (process 0) is unreachable ({err})", vanished=True)

    def check(self, finished: set = frozenset()) -> None:
        """Raise :class:`SweepAborted` if a process announced a failure, or if a peer
        on this host (not in ``finished``) is gone without a word."""
        failed = self._items(f"{_NS}/failed")
        if failed:
            key = min(failed)
            info = json.loads(failed[key])
            self._abort(f"process {info['process']} (host {info['host']}, pid "
                        f"{info['pid']}) failed: {info['error']}")
        for i, peer in sorted(self.peers.items()):
            if i != self.index and i not in finished and \
                    pid_alive(peer.get("host"), peer.get("pid")) is False:
                self._abort(f"process {i} (pid {peer.get('pid')} on this host) ended "
                            "without finishing its share or reporting an error (was it "
                            "killed?)", vanished=True)

    def _abort(self, why: str, vanished: bool = False):
        saved = self.saved()
        where = ""
        if self.store is not None and saved is not None:
            where = (f" {saved} of the {self.total} grid points are saved in "
                     f"{self.store!r};")
        if vanished and isinstance(self.channel, KVChannel) and not _EXIT_HOOK:
            # JAX's shutdown would wait for the vanished process in vain.
            _EXIT_HOOK.append(atexit.register(_exit_without_jax_shutdown))
        raise SweepAborted(
            f"multi-process sweep stopped on process {self.index}: {why}.{where} rerun "
            "the same sweep with resume=True (`gradspec sweep CONFIG --resume`) to "
            "compute the rest."
        )

    # -- the protocol ----------------------------------------------------------------

    def start(self, entry: Mapping, timeout: float, wait: bool = True) -> dict[int, dict]:
        """Announce ``entry`` (fingerprint and told process count, or an error) and,
        if ``wait``, gather every process's."""
        body = {**entry, "host": socket.gethostname(), "pid": os.getpid()}
        self.channel.put(f"{self.prefix}/start/{self.index}", json.dumps(body))
        if not wait:
            return {}
        found = self._wait(f"{self.prefix}/start", set(range(self.count)), timeout,
                           "did not reach the start of this sweep (a host starting "
                           "late, a crash before it, or a process running other sweep "
                           "calls); nothing was written. Raise `start_timeout` "
                           "(--start-timeout) if hosts start that far apart")
        self.peers = {i: json.loads(v) for i, v in found.items()}
        _PEERS.clear()
        _PEERS.update(self.peers)
        return self.peers

    def go(self, payload: Mapping) -> None:
        """Process 0: the store is open (or could not be: ``{"error": ...}``)."""
        self.channel.put(f"{self.prefix}/go", json.dumps(dict(payload)))

    def wait_go(self, timeout: float) -> dict:
        """The others: wait for process 0's go-ahead (its payload)."""
        start = time.monotonic()
        deadline = start + timeout
        while (text := self._items(self.prefix).get(f"{self.prefix}/go")) is None:
            self.check()
            if time.monotonic() > deadline:
                self._abort(f"process 0 did not open the store within {timeout:g} s",
                            vanished=True)
            _pause(start)
        return json.loads(text)

    def fail(self, err: BaseException, saved: int | None) -> dict:
        """Announce that this process failed; returns the marker (for the store)."""
        info = {"process": self.index, "host": socket.gethostname(), "pid": os.getpid(),
                "error": f"{type(err).__name__}: {err}".strip(), "saved": saved,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            self.channel.put(f"{_NS}/failed/{self.index}", json.dumps(info))
        except Exception:  # the coordinator is gone: nobody is left to tell
            pass
        return info

    def finish(self, timeout: float) -> None:
        """Announce this share done; wait for every process's."""
        self.channel.put(f"{self.prefix}/done/{self.index}", "1")
        self._wait(f"{self.prefix}/done", set(range(self.count)), timeout,
                   "did not finish their share; this process's points are saved. "
                   "Raise `finish_timeout` (--finish-timeout) for hosts that slow")


_EXIT_HOOK: list = []  # the exit hook, once registered
_PEERS: dict = {}  # the last coordinated call's start entries (say_bye skips dead ones)


def next_call() -> int:
    """The number of this coordinated sweep call in this process (0, 1, ...)."""
    _CALLS[0] += 1
    return _CALLS[0] - 1


def announce_failure(channel, process_index: int, err: BaseException) -> None:
    """A failure outside any sweep call (the CLI's own checks): tell the others."""
    Coordinator(channel, process_index, 0, -1).fail(err, None)


def say_bye(channel, process_index: int, process_count: int, wait: float) -> None:
    """Before exiting without JAX's shutdown: announce it, and on process 0 (which
    serves the key-value store, whose end ends the others with a C++ error) wait up
    to ``wait`` seconds for the others' goodbyes."""
    try:
        channel.put(f"{_NS}/bye/{process_index}", "1")
        if process_index != 0:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            gone = {i for i, p in _PEERS.items()
                    if pid_alive(p.get("host"), p.get("pid")) is False}
            byes = {int(k.rsplit("/", 1)[1]) for k in channel.items(f"{_NS}/bye")}
            if set(range(process_count)) <= byes | gone:
                return
            time.sleep(_POLL)
    except Exception:  # the service is already gone: nothing to wait for
        pass
