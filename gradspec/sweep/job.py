r"""A sweep job's identity: its fingerprint and hash, agreement across processes, shares.

A *job* is one run of :func:`gradspec.sweep.sweep` by all the processes that take part
in it. Its **fingerprint** is everything the processes must agree on before any of them
computes or writes a point (:data:`FIELDS`): the measurement (name, version, sha256 of
its source), the float dtype, the options, the grid (axes in order, values as coerced),
the process count and the store path. Its **job hash** is the sha256 of the
fingerprint's canonical JSON: every record a job writes carries it, the store's
manifest lists the fingerprint of every job that wrote there, and the store's lock
names it.

The processes of a coordinated job exchange their fingerprints once at the start
(:mod:`gradspec.sweep.cluster`); :func:`disagreement` turns a set of differing ones
into one message naming the field and the processes. The points still to do are then
shared out by :func:`share`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Mapping, Sequence

import numpy as np

from .._json import canonical_json

__all__ = ["FIELDS", "fingerprint", "job_hash", "disagreement", "share"]

#: What the processes of one job must agree on, in the order a disagreement names them.
FIELDS = ("measurement", "version", "source", "dtype", "options", "grid",
          "process_count", "store")
#: The fields that make two jobs' results comparable: a store holds one of each.
CONFIGURATION = ("measurement", "version", "source", "dtype", "options")
_SHOWN = 160  # characters of a value a disagreement message shows


def fingerprint(plan, process_count: int, store) -> dict:
    """The fingerprint (:data:`FIELDS`) of a planned grid run by ``process_count``
    processes into ``store`` (a path, or ``None`` for an in-memory sweep).

    The store is recorded as an absolute path: two processes started in different
    working directories with one relative path would write two stores.
    """
    m = plan.measurement
    return {
        "measurement": m.name, "version": m.version, "source": m.source,
        "dtype": plan.dtype, "options": plan.options,
        # A list of [name, values] pairs: the axis order sets the grid order.
        "grid": [[name, list(values)] for name, values in plan.axes.items()],
        "process_count": int(process_count),
        "store": None if store is None else os.path.abspath(os.fspath(store)),
    }


def job_hash(fp: Mapping) -> str:
    """sha256 (hex) of the canonical JSON of a fingerprint.

    Examples:
        >>> fp = {f: 1 for f in FIELDS}
        >>> job_hash(fp) == job_hash(dict(reversed(list(fp.items()))))
        True
    """
    return hashlib.sha256(canonical_json(dict(fp)).encode()).hexdigest()


def _show(value) -> str:
    text = canonical_json(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _ranges(indices: Sequence[int]) -> str:
    """``[0, 2-5, 7]``: process indices, runs collapsed."""
    out, run = [], []
    for i in sorted(indices):
        if run and i != run[-1] + 1:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
            run = []
        run.append(i)
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
    return "[" + ", ".join(out) + "]"


def disagreement(entries: Mapping[int, Mapping], process_count: int) -> str | None:
    """Why the processes of a job may not start together, or ``None`` if they may.

    Args:
        entries: process index -> what that process announced: ``fingerprint``,
            ``host``, ``pid``, ``told`` (the process count it was started with, e.g.
            ``jax.distributed.initialize(num_processes=...)``), or ``error`` (it could
            not plan its sweep).
        process_count: the number of processes in the job (``jax.process_count()``).

    Returns:
        One message naming each differing field (or the process count, or a process
        that failed before starting) with the processes on each side; ``None`` when
        all ``process_count`` processes announced the same fingerprint.

    Examples:
        >>> fp = {f: 0 for f in FIELDS}
        >>> ok = {i: {"fingerprint": fp, "told": 2, "host": "h", "pid": i} for i in (0, 1)}
        >>> disagreement(ok, 2) is None
        True
        >>> bad = {**ok, 1: {**ok[1], "fingerprint": {**fp, "options": {"N": 128}}}}
        >>> for part in disagreement(bad, 2).split("; "):
        ...     print(part)
        the 2 processes of this job disagree: options: processes [0] have 0
        processes [1] have {"N":128}
    """
    problems = []
    failed = {i: e for i, e in entries.items() if "error" in e}
    for i, e in sorted(failed.items()):
        problems.append(f"process {i} (host {e.get('host')}, pid {e.get('pid')}) could "
                        f"not start: {e['error']}")
    told = {}
    for i, e in entries.items():
        told.setdefault(e.get("told", process_count), []).append(i)
    if set(told) != {process_count}:
        sides = "; ".join(f"processes {_ranges(ps)} with {n}" for n, ps in sorted(told.items()))
        problems.append(f"the job has {process_count} processes, but they were started "
                        f"with different process counts ({sides}): start every process "
                        f"with the same count")
    missing = sorted(set(range(process_count)) - set(entries))
    if missing:
        problems.append(f"processes {_ranges(missing)} did not announce themselves")
    fps = {i: e["fingerprint"] for i, e in entries.items() if "fingerprint" in e}
    for field in FIELDS:
        if field == "process_count" and len(told) > 1:
            continue  # said above, with the counts each process was given
        groups: dict = {}
        for i, fp in fps.items():
            groups.setdefault(canonical_json(fp.get(field)), []).append(i)
        if len(groups) > 1:
            sides = "; ".join(f"processes {_ranges(ps)} have {_show(fps[ps[0]].get(field))}"
                              for ps in sorted(groups.values()))
            problems.append(f"{field}: {sides}")
    if not problems:
        return None
    return f"the {process_count} processes of this job disagree: " + ". ".join(problems)


def share(remaining: Sequence[int], process_index: int, process_count: int) -> list[int]:
    """This process's share of the points still to do: every ``process_count``-th of
    them in grid order, starting at ``process_index``.

    Every process of a job computes the same ``remaining`` (the grid points missing
    from the store when the job started), so the shares are disjoint, cover it, and
    differ in size by at most one point. On a fresh store this is the grid's
    ``i, i + P, i + 2P, ...``; on a resume the points a dead process left are spread
    over all processes, not handed to one. Striding (rather than cutting blocks)
    spreads every static group, and any cost that varies along the grid, evenly.

    Examples:
        >>> [share([1, 4, 5, 6, 9], i, 2) for i in range(2)]
        [[1, 5, 9], [4, 6]]
    """
    return sorted(remaining)[process_index::process_count]


def encode_points(indices: Sequence[int], n: int) -> str:
    """A set of grid point indices in ``[0, n)`` as compact text (a zlib'd bitmap)."""
    bits = np.zeros(n, bool)
    bits[list(indices)] = True
    return base64.b64encode(zlib.compress(np.packbits(bits).tobytes())).decode()


def decode_points(text: str, n: int) -> list[int]:
    """Inverse of :func:`encode_points`."""
    packed = np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint8)
    return np.flatnonzero(np.unpackbits(packed)[:n]).tolist()
