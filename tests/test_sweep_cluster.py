"""Sweeps on a cluster: one job, one configuration; fail fast and together; balanced resume.

Unit tests (fast) check the pieces one by one: the job fingerprint and hash, the
disagreement message, the balanced share, the atomic manifest with its job list, the
job hash in every record (and what readers do with a foreign one), the store's lock,
and the coordination protocol with threads standing in for processes. The
multi-process tests start two local ``jax.distributed`` processes over localhost
(tiny grids, N = 8); all but the plain two-process run are marked ``slow``.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import gradspec.sweep as gs
from gradspec.sweep import cluster, job as _job, lock as _lock, store as _store
from gradspec.sweep.grid import plan_grid

from .test_sweep import _CLI as _CLI_MAIN
from .test_sweep import _env, _free_port

ROOT = Path(__file__).resolve().parents[1]
GRID = {"sigma_w": [0.5, 1.0, 1.5]}


def _fingerprint(grid=GRID, options=None, process_count=2, store="runs/s"):
    return _job.fingerprint(plan_grid("mean_field", grid, options), process_count, store)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _entries_in(root):
    """The lock entries of a store."""
    return sorted(p.name for p in (root / _lock.LOCKS).glob("*.json"))


# -- the fingerprint and its hash ------------------------------------------------------


def test_fingerprint_holds_every_field_and_its_hash_sees_each():
    fp = _fingerprint()
    assert tuple(fp) == _job.FIELDS
    assert fp["store"] == os.path.abspath("runs/s")  # where it really writes
    assert fp["grid"] == [["sigma_w", [0.5, 1.0, 1.5]]]
    assert fp["process_count"] == 2 and fp["dtype"] == "float64"
    h = _job.job_hash(fp)
    assert h == _job.job_hash(_fingerprint()) and len(h) == 64  # deterministic
    changed = [
        _fingerprint(options={"nonlinearity": "relu"}),
        _fingerprint(grid={"sigma_w": [0.5, 1.0]}),
        _fingerprint(grid={"sigma_w": [1.5, 1.0, 0.5]}),  # the order is the grid order
        _fingerprint(process_count=3),
        _fingerprint(store="runs/other"),
        {**fp, "version": 2},
        {**fp, "source": "0" * 64},
        {**fp, "dtype": "float32"},
        {**fp, "measurement": "lyapunov"},
    ]
    hashes = {_job.job_hash(f) for f in changed}
    assert h not in hashes and len(hashes) == len(changed)
    # 1 and 1.0 are one grid value (coerced before hashing), as they are one point.
    assert _job.job_hash(_fingerprint(grid={"sigma_w": [1, 2]})) == \
        _job.job_hash(_fingerprint(grid={"sigma_w": [1.0, 2.0]}))


def _entries(fps, told=None, count=None):
    count = len(fps) if count is None else count
    return {i: {"fingerprint": fp, "host": "h", "pid": 100 + i,
                "told": (told or {}).get(i, count)} for i, fp in enumerate(fps)}


def test_disagreement_names_the_field_and_the_processes():
    fp = _fingerprint()
    assert _job.disagreement(_entries([fp, fp, fp]), 3) is None
    other = _fingerprint(options={"nonlinearity": "relu"})
    msg = _job.disagreement(_entries([fp, other, fp, other]), 4)
    assert msg.startswith("the 4 processes of this job disagree: options: ")
    assert 'processes [0, 2] have {}; processes [1, 3] have {"nonlinearity":"relu"}' in msg
    grid = _job.disagreement(_entries([fp] * 4 + [_fingerprint(grid={"sigma_w": [2.0]})]), 5)
    assert "grid: processes [0-3] have" in grid and "processes [4] have" in grid
    assert "options" not in grid  # only what differs
    both = _job.disagreement(_entries([fp, _fingerprint(store="x", process_count=2)]), 2)
    assert "store: " in both and both.count("processes [1]") == 1


def test_disagreement_on_process_counts_missing_and_failed_processes():
    fp = _fingerprint()
    msg = _job.disagreement(_entries([fp, fp], told={1: 3}), 2)
    assert ("the job has 2 processes, but they were started with different process "
            "counts (processes [0] with 2; processes [1] with 3)") in msg
    assert _job.disagreement({0: _entries([fp])[0]}, 2).endswith(
        "processes [1] did not announce themselves")
    failed = _job.disagreement({**_entries([fp]), 1: {"error": "ValueError: bad N",
                                                      "host": "h", "pid": 7}}, 2)
    assert "process 1 (host h, pid 7) could not start: ValueError: bad N" in failed


# -- the balanced share ----------------------------------------------------------------


@pytest.mark.parametrize("process_count", [1, 2, 3, 7])
def test_share_is_balanced_disjoint_and_deterministic(process_count):
    rng = np.random.default_rng(process_count)
    for n in (0, 1, 5, 40):
        remaining = rng.permutation(100)[:n].tolist()  # any order in, grid order out
        shares = [_job.share(remaining, i, process_count) for i in range(process_count)]
        sizes = [len(s) for s in shares]
        assert max(sizes) - min(sizes) <= 1
        assert sorted(sum(shares, [])) == sorted(remaining)
        assert all(s == sorted(s) for s in shares)
        assert shares == [_job.share(list(reversed(remaining)), i, process_count)
                          for i in range(process_count)]
    # A fresh grid: the old i, i + P, ... (so a fresh multi-process store is unchanged).
    assert _job.share(range(10), 1, 3) == [1, 4, 7]


def test_resume_after_a_dead_process_is_balanced_not_i_mod_p():
    # Process 0 of 2 finished its even points, process 1 died after two of its odd ones.
    remaining = list(range(5, 20, 2))  # 8 points, all of them "process 1's"
    assert [len(_job.share(remaining, i, 2)) for i in range(2)] == [4, 4]
    assert [i for i in remaining if i % 2 == 0] == []  # what i mod P would give 0


def test_point_sets_round_trip():
    for points, n in (([], 0), ([], 5), ([0, 4], 5), (list(range(0, 1000, 3)), 1001)):
        text = _job.encode_points(points, n)
        assert _job.decode_points(text, n) == points
    assert len(_job.encode_points(range(0, 10**6, 2), 10**6)) < 2000


# -- the manifest: written atomically, with every job's fingerprint --------------------


def test_manifest_is_written_atomically_and_lists_each_job(tmp_path, monkeypatch):
    store = tmp_path / "s"
    first = gs.sweep("mean_field", {"sigma_w": [0.5]}, store=store)
    manifest = json.loads((store / _store.MANIFEST).read_text())
    (job1,) = manifest["jobs"]
    assert manifest["jobs"][job1]["grid"] == [["sigma_w", [0.5]]]
    assert manifest["jobs"][job1]["store"] == str(store)
    assert [r["job"] for r in first.records] == [job1]
    before = (store / _store.MANIFEST).read_bytes()

    def crash(src, dst):  # a crash between writing the temporary file and moving it
        raise OSError("simulated crash")

    monkeypatch.setattr(_store.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}, store=store, resume=True)
    monkeypatch.undo()
    assert (store / _store.MANIFEST).read_bytes() == before  # the old one, whole
    assert not list(store.glob(".*.tmp"))  # no temporary file left
    assert _entries_in(store) == []  # the lock was released
    again = gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}, store=store, resume=True)
    jobs = json.loads((store / _store.MANIFEST).read_text())["jobs"]
    assert len(jobs) == 2 and job1 in jobs
    (job2,) = set(jobs) - {job1}
    assert [r["job"] for r in again.records] == [job1, job2]  # who computed each point
    assert [r["job"] for r in gs.load(store)] == [job1, job2]


# -- records carry their job's hash; readers refuse a foreign one ----------------------


def test_foreign_record_is_refused_by_readers_and_moved_out_by_repair(tmp_path):
    store = tmp_path / "s"
    gs.sweep("lyapunov", {"sigma_w": [0.5, 1.0]}, options={"N": 8, "T": 20, "warmup": 2},
             store=store)
    # A process with N = 16 that wrote into this store anyway (as two processes of one
    # job started with different options used to): its own job hash, its own config.
    other = tmp_path / "other"
    gs.sweep("lyapunov", {"sigma_w": [1.5]}, options={"N": 16, "T": 20, "warmup": 2},
             store=other)
    shard = store / "records-p0.jsonl"
    shard.write_bytes(shard.read_bytes() + (other / "records-p0.jsonl").read_bytes())
    for read in (lambda: gs.load(store),
                 lambda: gs.sweep("lyapunov", {"sigma_w": [0.5, 1.0]}, store=store,
                                  options={"N": 8, "T": 20, "warmup": 2}, resume=True)):
        with pytest.raises(ValueError, match=re.escape(
                "records-p0.jsonl line 3 was written by job")) as err:
            read()
        assert "never merged" in str(err.value) and "repair" in str(err.value)
    dropped = gs.repair(store)
    assert dropped == {"truncated": 0, "corrupt": 0, "missing_npz": 0, "duplicate": 0,
                       "foreign": 1}
    assert [r["config"]["N"] for r in gs.load(store)] == [8, 8]
    kept = (store / _store.FOREIGN).read_bytes().splitlines()  # moved, not deleted
    assert [json.loads(line)["config"]["N"] for line in kept] == [16]


def test_to_grid_refuses_records_of_two_configurations():
    a = gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}).records
    b = gs.sweep("mean_field", {"sigma_w": [1.5]}, options={"nonlinearity": "relu"}).records
    assert gs.to_grid(a, "chi", axes=("sigma_w",)).values.shape == (2,)
    with pytest.raises(ValueError, match=r"mix configurations: nonlinearity "
                                         r'\("relu", "tanh"\)'):
        gs.to_grid(a + b, "chi", axes=("sigma_w",))  # no cell collides: still refused
    v2 = [{**r, "version": 2} for r in b]
    with pytest.raises(ValueError, match="version"):
        gs.to_grid(a + v2, "chi", axes=("sigma_w", "nonlinearity"))


# -- the lock: one job per store -------------------------------------------------------


def test_lock_refuses_another_job_naming_the_owner(tmp_path):
    root = tmp_path / "s"
    entry = _lock.acquire(root, "a" * 64, {"process_count": 2})
    owner = json.loads(entry.read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    assert owner["job"] == "a" * 64 and owner["process_count"] == 2 and owner["started"]
    with pytest.raises(RuntimeError, match=re.escape(
            f"another job is writing it: job aaaaaaaaaaaa (host {socket.gethostname()}, "
            f"pid {os.getpid()}, started")) as err:
        _lock.acquire(root, "b" * 64, {})
    assert "that process is running" in str(err.value)
    assert _entries_in(root) == [entry.name]  # the refused entry was removed again
    with pytest.raises(RuntimeError, match="this job is already running on it"):
        _lock.acquire(root, "a" * 64, {})  # the same job started twice
    with pytest.raises(RuntimeError, match="another job"):  # nor a split of it
        _lock.acquire(root, "a" * 64, {}, process_index=0)
    _lock.release(entry)
    _lock.release(entry)  # twice is fine
    # The pieces of one split by hand share the store; a second piece 0 is refused.
    pieces = [_lock.acquire(root, "c" * 64, {}, process_index=i) for i in range(2)]
    with pytest.raises(RuntimeError, match=r"two processes given the same process index"):
        _lock.acquire(root, "c" * 64, {}, process_index=0)
    with pytest.raises(RuntimeError, match="another job"):
        _lock.acquire(root, "c" * 64, {})  # the same fingerprint, run as one job
    for p in pieces:
        _lock.release(p)
    assert _entries_in(root) == []


def test_stale_lock_on_this_host_is_cleared_elsewhere_break_lock(tmp_path):
    root = tmp_path / "s"
    entry = _lock.acquire(root, "a" * 64, {})
    owner = json.loads(entry.read_text())
    entry.write_text(json.dumps({**owner, "pid": _dead_pid()}))  # a killed job's lock
    with pytest.warns(gs.StoreWarning, match=r"removed the lock of job aaaaaaaaaaaa .*"
                                             r"that pid is not running on this host, so "
                                             r"the lock is stale"):
        mine = _lock.acquire(root, "b" * 64, {})
    assert _entries_in(root) == [mine.name]
    _lock.release(mine)
    # On another host only its age tells: a fresh one is refused, with how to clear it.
    entry = _lock.acquire(root, "a" * 64, {})
    _lock.release(entry)
    entry.write_text(json.dumps({**owner, "host": "elsewhere"}))
    with pytest.raises(RuntimeError) as err:
        _lock.acquire(root, "b" * 64, {})
    msg = str(err.value)
    assert "host elsewhere" in msg and "it may still be running there" in msg
    assert "break_lock=True" in msg and "--break-lock" in msg and str(entry) in msg
    old = time.time() - _lock.STALE_AFTER - 60  # not refreshed by a live job since
    os.utime(entry, (old, old))
    with pytest.warns(gs.StoreWarning, match=r"last refreshed \d+ s ago .* so it is stale"):
        mine = _lock.acquire(root, "b" * 64, {})
    _lock.release(mine)
    entry.write_text(json.dumps({**owner, "host": "elsewhere"}))
    with pytest.warns(gs.StoreWarning, match=r"removed the lock of job aaaa.*break_lock"):
        mine = _lock.acquire(root, "b" * 64, {}, break_lock=True)
    assert _entries_in(root) == [mine.name]
    _lock.release(mine)


def test_a_held_lock_is_kept_fresh(tmp_path, monkeypatch):
    monkeypatch.setattr(_lock, "REFRESH", 0.05)
    entry = _lock.acquire(tmp_path, "a" * 64, {})
    old = time.time() - 1000
    os.utime(entry, (old, old))
    time.sleep(0.3)
    assert time.time() - entry.stat().st_mtime < 5  # refreshed by its holder
    _lock.release(entry)
    assert not entry.exists() and entry not in _lock._KEEPERS


def test_sweep_refuses_a_locked_store_before_writing(tmp_path):
    store = tmp_path / "s"
    gs.sweep("mean_field", {"sigma_w": [0.5]}, store=store)
    assert _entries_in(store) == []  # released after the sweep
    other = _lock.acquire(store, "f" * 64, {})  # another job is running
    before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    with pytest.raises(RuntimeError, match="locked: another job is writing it: job ffff"):
        gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}, store=store, resume=True)
    assert {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()} == before
    with pytest.raises(RuntimeError, match="is in use, so this process cannot repair it: "
                                           "job ffff"):
        gs.repair(store)
    _lock.release(other)
    assert gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}, store=store,
                    resume=True).computed == 1


def test_failure_is_recorded_in_the_store_and_the_lock_released(tmp_path, monkeypatch):
    store = tmp_path / "s"
    from gradspec.sweep import runner

    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory, say")
        return run_chunk(*args, **kwargs)

    run_chunk = runner._run_chunk
    monkeypatch.setattr(runner, "_run_chunk", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        gs.sweep("lyapunov", {"sigma_w": [0.5, 1.0, 1.5]}, store=store, chunk_size=1,
                 options={"N": 8, "T": 20, "warmup": 2})
    marker = json.loads(_store.failure_marker(store, 0).read_text())
    assert marker["process"] == 0 and marker["saved"] == 1
    assert marker["error"] == "RuntimeError: out of memory, say"
    assert _entries_in(store) == []
    monkeypatch.setattr(runner, "_run_chunk", run_chunk)
    res = gs.sweep("lyapunov", {"sigma_w": [0.5, 1.0, 1.5]}, store=store, resume=True,
                   options={"N": 8, "T": 20, "warmup": 2})
    assert (res.computed, res.skipped) == (2, 1)
    assert not _store.failure_marker(store, 0).exists()  # a new job clears it


# -- the protocol, threads standing in for processes -----------------------------------


def _coordinators(n, channel=None):
    channel = channel or cluster.MemoryChannel()
    return channel, [cluster.Coordinator(channel, i, n, call=0) for i in range(n)]


def _in_threads(fns):
    out, errs = [None] * len(fns), [None] * len(fns)

    def run(i):
        try:
            out[i] = fns[i]()
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            errs[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out, errs


def test_start_gathers_every_fingerprint_even_from_a_late_process():
    _, coords = _coordinators(3)
    fp = _fingerprint(process_count=3)

    def late(c):
        time.sleep(0.5)  # a host starting late: the others wait, nobody fails
        return c.start({"fingerprint": fp, "told": 3}, timeout=10)

    out, errs = _in_threads([lambda c=c: c.start({"fingerprint": fp, "told": 3}, 10)
                             for c in coords[:2]] + [lambda: late(coords[2])])
    assert errs == [None] * 3
    assert all(sorted(o) == [0, 1, 2] for o in out)
    assert _job.disagreement(out[0], 3) is None
    assert out[0][2]["pid"] == os.getpid() and out[0][2]["host"] == socket.gethostname()


def test_start_times_out_naming_the_missing_process():
    _, coords = _coordinators(2)
    t0 = time.monotonic()
    with pytest.raises(gs.SweepAborted, match=r"processes \[1\] did not reach the start "
                                              r"of this sweep.*within 0.3 s"):
        coords[0].start({"fingerprint": {}, "told": 2}, timeout=0.3)
    assert time.monotonic() - t0 < 2


def test_failure_on_one_process_stops_the_others_at_their_next_check(tmp_path):
    channel, coords = _coordinators(3)
    _in_threads([lambda c=c: c.start({"told": 3}, 10) for c in coords])
    for c in coords:
        c.store, c.total, c.saved = str(tmp_path), 12, lambda: 5
    coords[0].check()  # nothing has happened
    coords[2].fail(ValueError("NaN in W_hh"), saved=4)
    for c in coords[:2]:
        with pytest.raises(gs.SweepAborted) as err:
            c.check()
        msg = str(err.value)
        assert f"process 2 (host {socket.gethostname()}, pid {os.getpid()}) failed: " \
               "ValueError: NaN in W_hh" in msg
        assert f"5 of the 12 grid points are saved in {str(tmp_path)!r}" in msg
        assert "resume=True" in msg and "--resume" in msg
    # ... and at the end, instead of waiting for the failed process to finish.
    t0 = time.monotonic()
    with pytest.raises(gs.SweepAborted, match="process 2"):
        coords[0].finish(timeout=60)
    assert time.monotonic() - t0 < 2


def test_finish_waits_for_a_slow_process_and_notices_a_dead_one():
    _, coords = _coordinators(2)
    _in_threads([lambda c=c: c.start({"told": 2}, 10) for c in coords])

    def slow():
        time.sleep(0.5)  # a slow host: the fast one waits, and neither fails
        coords[1].finish(timeout=10)

    out, errs = _in_threads([lambda: coords[0].finish(timeout=10), slow])
    assert errs == [None, None]
    _, coords = _coordinators(2)
    _in_threads([lambda c=c: c.start({"told": 2}, 10) for c in coords])
    coords[0].peers[1] = {**coords[0].peers[1], "pid": _dead_pid()}  # killed by SIGKILL
    with pytest.raises(gs.SweepAborted, match=r"process 1 \(pid \d+ on this host\) ended "
                                              "without finishing its share"):
        coords[0].finish(timeout=10)


def test_go_carries_process_0s_error_or_the_points_to_do():
    _, coords = _coordinators(2)
    coords[0].go({"remaining": _job.encode_points([1, 3], 4)})
    go = coords[1].wait_go(timeout=5)
    assert _job.decode_points(go["remaining"], 4) == [1, 3]
    with pytest.raises(gs.SweepAborted, match="process 0 did not open the store"):
        _coordinators(2)[1][1].wait_go(timeout=0.2)


# -- two local processes (jax.distributed over localhost) ------------------------------

_CLI = """
import os, sys, time
from gradspec.sweep import runner
run_chunk, calls = runner._run_chunk, []
me = int(sys.argv[sys.argv.index("--process-id") + 1])
def chunk(*args, **kwargs):  # slowed down, and failing where the test says
    calls.append(1)
    if me == int(os.environ.get("FAIL_PROCESS", -1)) and len(calls) == 2:
        raise RuntimeError(f"simulated failure on process {me}")
    if os.environ.get("GLOO") and len(calls) == 1:  # gloo prints to fd 1 from C++
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("gloo")
    time.sleep(float(os.environ.get("CHUNK_SLEEP", "0")))
    return run_chunk(*args, **kwargs)
runner._run_chunk = chunk
from gradspec.cli.sweep import main
raise SystemExit(main(sys.argv[1:]))
"""
_CONFIG = """
chunk_size = 2
measurement = "lyapunov"
options = { N = 8, T = 40, warmup = 5 }
grid.sigma_w = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
grid.sigma_b = [0.0, 0.5]
"""
N_POINTS = 12
PAIR_TIMEOUT = 240


def _process(tmp_path, port, process_id, count, *args, config=None, env=None):
    """Start one process of ``gradspec sweep`` (2 CPU devices)."""
    script = tmp_path / "cli.py"
    script.write_text(_CLI)
    config = config or tmp_path / "c.toml"
    if not config.exists():
        config.write_text(_CONFIG)
    return subprocess.Popen(
        [sys.executable, str(script), str(config), "--store", str(tmp_path / "store"),
         *map(str, args), "--coordinator", f"localhost:{port}", "--num-processes",
         str(count), "--process-id", str(process_id)],
        cwd=ROOT, env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2",
                           **(env or {})),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _pair(tmp_path, *args, configs=None, env=None, counts=(2, 2)):
    """Start processes 0 and 1 of ``gradspec sweep``."""
    port = _free_port()
    return [_process(tmp_path, port, i, counts[i], *args, env=env,
                     config=(configs or [None, None])[i]) for i in range(2)]


def _wait(procs, timeout=PAIR_TIMEOUT):
    """``[(rc, stdout, stderr, seconds)]``, each process's time from now."""
    t0, results = time.monotonic(), []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"processes still running after {timeout} s")
        results.append((p.returncode, out, err, time.monotonic() - t0))
    return results


def _no_cxx_noise(results):
    for rc, out, err, _ in results:
        assert "Check failure stack trace" not in err and "[Gloo]" not in out, err


@pytest.mark.slow  # two pairs of processes (~15 s on 2 cores)
def test_processes_with_different_options_or_grids_refuse_and_write_nothing(tmp_path):
    for i, (old, new, field) in enumerate([("N = 8", "N = 16", "options"),
                                           ("1.75]", "2.0]", "grid")]):
        case = tmp_path / str(i)
        case.mkdir()
        (case / "c.toml").write_text(_CONFIG)
        (case / "other.toml").write_text(_CONFIG.replace(old, new))
        results = _wait(_pair(case, configs=[None, case / "other.toml"]))
        for rc, out, err, _ in results:
            assert rc == 2 and out == "", err
            assert f"the 2 processes of this job disagree: {field}: processes [0] have" \
                in err and "processes [1] have" in err and "Nothing was" in err
        _no_cxx_noise(results)
        assert not (case / "store").exists()  # nothing written, not even a directory


@pytest.mark.slow  # two pairs of processes (~10 s and ~25 s on 2 cores)
def test_process_count_mismatch_is_named(tmp_path):
    # A worker told more processes than the coordinator joins its smaller job
    # (jax.distributed says nothing): the sweep's start names the difference.
    results = _wait(_pair(tmp_path, counts=(2, 3)))
    _no_cxx_noise(results)
    for rc, _, err, _ in results:
        assert rc == 2 and "started with different process counts (processes [0] with " \
            "2; processes [1] with 3)" in err, err
    assert not (tmp_path / "store").exists()
    # A coordinator told 4 and a worker told 2: the coordinator waits for processes 2
    # and 3, which never come. Both explain after --init-timeout instead of hanging.
    init_timeout = 15
    results = _wait(_pair(tmp_path, "--init-timeout", init_timeout, counts=(4, 2)))
    _no_cxx_noise(results)
    for rc, out, err, seconds in results:
        assert rc == 2 and out == "", err
        assert f"not every process joined within {init_timeout} s" in err
        assert "the same --num-processes P" in err
        assert seconds < init_timeout + 30  # + the imports, on 2 busy cores
    assert not (tmp_path / "store").exists()


def test_coordinator_port_in_use_is_refused_before_joining():
    from gradspec.cli.sweep import _check_coordinator_port

    with socket.socket() as server:  # a coordinator already serving on this host
        server.bind(("", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(RuntimeError, match=re.escape(
                f"--process-id 0 serves the coordinator on port {port} of this host "
                f"(localhost:{port}), but the port is in use")) as err:
            _check_coordinator_port(f"localhost:{port}")
        assert "another process was started with --process-id 0" in str(err.value)
    _check_coordinator_port(f"localhost:{port}")  # free again: no error
    for bad in ("localhost", "localhost:http", ":1234"):
        with pytest.raises(ValueError, match="--coordinator must be HOST:PORT"):
            _check_coordinator_port(bad)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("localhost", port)) == 0


@pytest.mark.slow  # two processes, one waiting for --init-timeout (~25 s on 2 cores)
def test_two_processes_with_the_same_process_id(tmp_path):
    port, init_timeout = _free_port(), 20
    first = _process(tmp_path, port, 0, 2, "--init-timeout", init_timeout)
    deadline = time.monotonic() + PAIR_TIMEOUT
    while not _listening(port) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the first one serves the coordinator now
    second = _process(tmp_path, port, 0, 2, "--init-timeout", init_timeout)
    (rc2, out2, err2, t2), = _wait([second])
    assert rc2 == 2 and out2 == "", err2
    assert t2 < init_timeout  # refused at once (the time is mostly the imports)
    assert "another process was started with --process-id 0" in err2
    assert f"port {port} of this host" in err2
    (rc1, out1, err1, t1), = _wait([first])
    assert rc1 == 2 and out1 == "", err1
    assert f"not every process joined within {init_timeout} s" in err1
    assert "a process id given twice" in err1
    _no_cxx_noise([(rc1, out1, err1, t1), (rc2, out2, err2, t2)])
    assert not (tmp_path / "store").exists()


@pytest.mark.slow  # a pair of processes (~10 s on 2 cores)
def test_an_error_on_one_process_ends_all_within_seconds(tmp_path):
    procs = _pair(tmp_path, "--chunk-size", "2",
                  env={"FAIL_PROCESS": "1", "CHUNK_SLEEP": "0.5"})
    results = _wait(procs)
    (rc0, out0, err0, t0), (rc1, out1, err1, t1) = results
    assert rc1 == 2 and "simulated failure on process 1" in err1
    assert rc0 == 3, err0
    assert abs(t0 - t1) < 15  # not JAX's 300 s shutdown barrier
    assert re.search(r"process 1 \(host .*, pid \d+\) failed: RuntimeError: simulated "
                     r"failure on process 1\. \d+ of the 12 grid points are saved", err0)
    assert "Resume: gradspec sweep" in err0 and "--resume" in err0
    assert out0 == out1 == ""
    _no_cxx_noise(results)
    marker = json.loads(_store.failure_marker(tmp_path / "store", 1).read_text())
    assert marker["process"] == 1 and "simulated failure" in marker["error"]
    assert _entries_in(tmp_path / "store") == []  # released


def _records_by_process(store):
    recs = [json.loads(line) for shard in _store.shard_paths(store)
            for line in shard.read_bytes().splitlines()]
    return recs


@pytest.mark.slow  # three pairs of processes and a kill (~40 s on 2 cores)
def test_second_job_refused_then_kill_one_host_then_balanced_resume(tmp_path):
    store = tmp_path / "store"
    procs = _pair(tmp_path, "--chunk-size", "2", "--json", env={"CHUNK_SLEEP": "1.0"})
    shard1 = store / "records-p1.jsonl"
    deadline = time.monotonic() + PAIR_TIMEOUT
    while not (shard1.exists() and shard1.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)
    # A second job on the same store is refused at once, naming the first.
    with pytest.raises(RuntimeError, match=r"locked: another job is writing it: job \w+ "
                                           r"\(host .*, pid \d+, started .*that process "
                                           r"is running"):
        gs.sweep("lyapunov", {"sigma_w": [0.5]}, options={"N": 8, "T": 40, "warmup": 5},
                 store=store, resume=True)
    os.kill(procs[1].pid, signal.SIGKILL)
    t_kill = time.monotonic()
    (rc0, out0, err0, _), _ = _wait(procs)
    assert time.monotonic() - t_kill < 15
    assert rc0 == 3 and out0 == "", err0
    assert re.search(r"process 1 \(pid \d+ on this host\) ended without finishing", err0)
    assert "Check failure stack trace" not in err0
    before = {p.name: len(p.read_bytes().splitlines()) for p in _store.shard_paths(store)}
    done = sum(before.values())
    assert done < N_POINTS - 2, "the kill came too late to test the resume's balance"
    results = _wait(_pair(tmp_path, "--chunk-size", "1", "--json", "--resume"))
    _no_cxx_noise(results)
    summaries = [json.loads(out)[0] for _, out, _, _ in results]
    computed = [s["computed"] for s in summaries]
    assert sum(computed) == N_POINTS - done and abs(computed[0] - computed[1]) <= 1
    assert [s["skipped"] for s in summaries] == [done, done]
    assert all(s["points"] == N_POINTS for s in summaries)
    records = _records_by_process(store)
    assert len({r["hash"] for r in records}) == len(records) == N_POINTS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(gs.load(store)) == N_POINTS


def test_two_processes_json_and_bit_identical_to_one(tmp_path):
    """--json parses with 2 processes; each point's result equals a single process's
    bit for bit (same compiled program: one point per device per call)."""
    # GLOO: one real gloo collective during the sweep, whose C++ "[Gloo] Rank i is
    # connected" line goes to file descriptor 1.
    results = _wait(_pair(tmp_path, "--json", "--chunk-size", "2", env={"GLOO": "1"}))
    _no_cxx_noise(results)
    for i, (rc, out, err, _) in enumerate(results):
        assert rc == 0, err
        assert f"[Gloo] Rank {i} is connected" in err  # to stderr, not stdout
        (summary,) = json.loads(out)  # stdout is gradspec's JSON and nothing else
        assert summary["points"] == N_POINTS and summary["computed"] == N_POINTS // 2
    single = tmp_path / "single"
    proc = subprocess.run(
        [sys.executable, "-c", _CLI_MAIN, str(tmp_path / "c.toml"), "--store",
         str(single), "--chunk-size", "2"], cwd=ROOT, capture_output=True, text=True,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
        timeout=PAIR_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    multi, one = gs.load(tmp_path / "store"), gs.load(single)
    assert len(multi) == len(one) == N_POINTS
    by_hash = {r["hash"]: r for r in one}
    for r in multi:
        ref = by_hash[r["hash"]]
        assert r["meta"]["process_count"] == 2 and ref["meta"]["process_count"] == 1
        for k, v in r["results"].items():
            np.testing.assert_array_equal(v, ref["results"][k], err_msg=k)
    shards = _store.shard_paths(tmp_path / "store")
    assert [p.name for p in shards] == ["records-p0.jsonl", "records-p1.jsonl"]
    for i, shard in enumerate(shards):  # a fresh store: process i took i, i + 2, ...
        recs = [json.loads(line) for line in shard.read_bytes().splitlines()]
        assert [r["config"] for r in recs] == [r["config"] for r in one[i::2]]
        assert {(r["meta"]["process_index"], r["meta"]["devices"]) for r in recs} == {(i, 2)}


_API = """
import json, sys, time
import jax
address, me, late, store = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
jax.distributed.initialize(coordinator_address=address, num_processes=2, process_id=me)
import gradspec.sweep as gs
time.sleep(late)  # this host reaches the sweep late
res = gs.sweep("lyapunov", GRID, options=OPTIONS, store=store, chunk_size=2)
print(json.dumps({"points": len(res.records), "computed": res.computed,
                  "seconds": res.seconds}))
"""


@pytest.mark.slow  # a pair of processes, one 45 s late (~60 s on 2 cores)
def test_python_api_host_45_s_late_completes(tmp_path):
    """The README's Python recipe (jax.distributed.initialize, then gs.sweep) with one
    host reaching the sweep 45 s after the other: beyond gloo's 30 s deadline that the
    first collective used to meet; the processes now synchronise at the start."""
    late = 45.0
    script = tmp_path / "api.py"
    grid = {"sigma_w": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "sigma_b": [0.0, 0.5]}
    script.write_text(_API.replace("GRID", repr(grid))
                      .replace("OPTIONS", repr({"N": 8, "T": 40, "warmup": 5})))
    port, store = _free_port(), tmp_path / "store"
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = [subprocess.Popen(
        [sys.executable, str(script), f"localhost:{port}", str(i), str(late * i),
         str(store)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for i in range(2)]
    results = _wait(procs)
    _no_cxx_noise(results)
    summaries = []
    for rc, out, err, _ in results:
        assert rc == 0, err
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    assert [s["points"] for s in summaries] == [N_POINTS, N_POINTS]
    assert [s["computed"] for s in summaries] == [N_POINTS // 2] * 2
    assert summaries[0]["seconds"] > late - 5  # process 0 waited for the late one ...
    assert summaries[1]["seconds"] < late  # ... which did not wait again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = gs.load(store)
    assert len({r["hash"] for r in records}) == len(records) == N_POINTS
