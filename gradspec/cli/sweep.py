"""``gradspec sweep``: run the sweeps of a TOML config from the command line.

:func:`add_parser` / :func:`main` read the file with :func:`gradspec.sweep.read_config`
and run each sweep with :func:`gradspec.sweep.sweep`.

With several processes (``--distributed`` or ``--coordinator``), stdout carries
gradspec's lines only: everything else written to file descriptor 1 (gloo's and
XLA's C++ logging) goes to stderr, so ``--json`` parses. A run that fails ends every
process within about one chunk, and ends it with ``os._exit`` rather than a normal
exit: JAX's shutdown would wait (300 s) at a barrier for every process, and then
abort with a C++ stack trace when one is gone.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import shlex
import socket
import sys
import threading
from pathlib import Path
from typing import Sequence

import jax

from ..sweep import SweepAborted, read_config, repair, sweep
from ..sweep import cluster as _cluster
from ..sweep import store as _store
from ._args import positive as _positive

__all__ = ["add_parser", "main"]

_GOODBYE_WAIT = 30.0  # seconds process 0 (the coordinator) waits for the others to exit


def _resume_command(args) -> str:
    """The command that continues this run (``--process-id`` left for each process)."""
    parts = ["gradspec", "sweep", str(args.config), "--resume"]
    for flag, value in (("--store", args.store), ("--chunk-size", args.chunk_size)):
        if value is not None:
            parts += [flag, str(value)]
    for name in args.only or ():
        parts += ["--only", name]
    if args.distributed:
        parts.append("--distributed")
    if args.coordinator:
        parts += ["--coordinator", args.coordinator, "--num-processes",
                  str(args.num_processes), "--process-id", "I"]
    return " ".join(shlex.quote(p) if p != "I" else p for p in parts)


def _stdout_for_gradspec():
    """Keep file descriptor 1 for gradspec's lines: returns a stream on a copy of it
    and points fd 1 at stderr, where gloo's "[Gloo] Rank 0 is connected..." and any
    other C++ output then go."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return out


def _check_coordinator_port(address: str) -> None:
    """Process 0 serves the coordination service on ``address``'s port: refuse at once
    if something on this host already listens there. gRPC binds with
    ``SO_REUSEPORT``, so a second ``--process-id 0`` would otherwise start a second
    service on the same port, the processes would split between the two, and every
    one of them would wait for the others until ``--init-timeout``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--coordinator must be HOST:PORT; got {address!r}.")
    # JAX's service binds [::]:PORT (IPv4 too); an IPv4 bind of the port conflicts.
    with socket.socket(socket.AF_INET) as s:
        # SO_REUSEADDR: a closed connection in TIME_WAIT does not count, a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", int(port)))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                return  # not ours to judge: JAX reports it
            raise RuntimeError(
                f"--process-id 0 serves the coordinator on port {port} of this host "
                f"({address}), but the port is in use ({err.strerror}): another process "
                "was started with --process-id 0 (give each process its own id in [0, "
                "--num-processes)), or another program holds the port (choose another "
                "--coordinator port).") from None


def _initialize(args) -> None:
    """``jax.distributed.initialize``, with a watchdog that explains a hang."""
    kwargs = {}
    if args.coordinator and args.process_id == 0:
        _check_coordinator_port(args.coordinator)
    if args.coordinator:
        kwargs = {"coordinator_address": args.coordinator,
                  "num_processes": args.num_processes, "process_id": args.process_id}
    # Ours speaks first: JAX's own timeout ends in a C++ abort without an explanation.
    kwargs["initialization_timeout"] = int(args.init_timeout) + 60

    def give_up():
        print(f"gradspec sweep: error: not every process joined within "
              f"{args.init_timeout:g} s (jax.distributed.initialize"
              + (f", coordinator {args.coordinator}" if args.coordinator else "")
              + "). Start all processes, each with the same --num-processes P and its "
              "own --process-id in [0, P): a process count that differs or a process "
              "id given twice leaves the coordinator waiting for a process that never "
              "comes. Raise --init-timeout if hosts start further apart.",
              file=sys.stderr, flush=True)
        os._exit(2)

    timer = threading.Timer(args.init_timeout, give_up)
    timer.daemon = True
    timer.start()
    try:
        jax.distributed.initialize(**kwargs)
    finally:
        timer.cancel()


def _run_cli(args) -> int:
    specs, out = [], sys.stdout
    multi = bool(args.coordinator or args.distributed)
    try:
        if args.coordinator and (args.num_processes is None or args.process_id is None):
            raise ValueError("--coordinator needs --num-processes and --process-id.")
        if args.coordinator and not 0 <= args.process_id < args.num_processes:
            raise ValueError(f"--process-id must be in [0, {args.num_processes}) for "
                             f"--num-processes {args.num_processes}; got {args.process_id}.")
        if multi:
            out = _stdout_for_gradspec()
            _initialize(args)
        specs = read_config(args.config, store=args.store, chunk_size=args.chunk_size)
        if args.only:
            names = {s.name for s in specs}
            missing = sorted(set(args.only) - names)
            if missing:
                raise ValueError(f"--only {missing}: the config has sweeps {sorted(names)}.")
            specs = [s for s in specs if s.name in args.only]
        for spec in specs:
            root = Path(spec.store)
            if args.repair and root.is_dir() and jax.process_index() == 0:
                dropped = repair(root)
                print(f"{spec.name}: repaired {spec.store}: dropped {dropped}", file=out)
            # sweep()'s own rule, checked for every sweep of the file before any runs
            # (and again by each sweep; no process writes before its job agreed).
            _store.check_resume(root, args.resume, how="--resume")
        summaries = []
        for spec in specs:
            res = sweep(spec.measurement, spec.grid, options=spec.options, store=spec.store,
                        resume=args.resume, chunk_size=spec.chunk_size,
                        progress=args.progress, start_timeout=args.start_timeout,
                        finish_timeout=args.finish_timeout, break_lock=args.break_lock)
            n = len(res.records)
            summaries.append({"name": spec.name, "measurement": spec.measurement,
                              "store": spec.store, "points": n, "computed": res.computed,
                              "skipped": res.skipped, "seconds": round(res.seconds, 3)})
            if not args.json:
                rate = res.computed / res.seconds if res.seconds > 0 else math.inf
                tag = (f"[process {jax.process_index()}/{jax.process_count()}] "
                       if jax.process_count() > 1 else "")
                print(f"{tag}{spec.name}: {spec.measurement}, {n} points done "
                      f"({res.computed} computed, {res.skipped} already in the store) in "
                      f"{res.seconds:.1f} s ({rate:.1f} points/s) -> {spec.store}",
                      file=out)
        if args.json:
            json.dump(summaries, out, indent=2)
            print(file=out)
        out.flush()
        return 0
    except SweepAborted as err:  # another process failed: it said why; say how to go on
        print(f"gradspec sweep: error: {err} Resume: {_resume_command(args)}",
              file=sys.stderr)
        return _end(multi, 3, None, out)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        print(f"gradspec sweep: error: {err}", file=sys.stderr)
        return _end(multi, 2, err, out)
    except KeyboardInterrupt as err:  # Ctrl-C: what is saved is saved; say how to go on
        saved = sum(_store.count_records(Path(spec.store)) for spec in specs)
        print(f"gradspec sweep: interrupted; {saved} finished points are saved in the store, "
              f"and `{_resume_command(args)}` computes only the rest.", file=sys.stderr)
        return _end(multi, 130, err, out)


def _end(multi: bool, code: int, err: BaseException | None, out) -> int:
    """The exit code; in a multi-process run, tell the others and exit right here."""
    if not multi or not jax.distributed.is_initialized():
        return code
    try:
        channel = _cluster.KVChannel()
        if err is not None:  # so the others stop too (a sweep's own failure is told)
            _cluster.announce_failure(channel, jax.process_index(), err)
        _cluster.say_bye(channel, jax.process_index(), jax.process_count(), _GOODBYE_WAIT)
    finally:
        for stream in (out, sys.stdout, sys.stderr):
            stream.flush()
        # Not a normal exit: JAX's shutdown barrier would wait for processes that
        # are gone or going (300 s), then abort with a C++ stack trace.
        os._exit(code)


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("config", help="sweep TOML file (see examples/phase_diagram.toml)")
    p.add_argument("--resume", action="store_true",
                   help="continue a store that already holds results (skip points done)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this [sweeps.NAME] (repeatable)")
    p.add_argument("--store", help="override the config's store path")
    p.add_argument("--chunk-size", type=_positive, help="override points per compiled call")
    p.add_argument("--repair", action="store_true",
                   help="first drop truncated/corrupt records and ones with missing .npz, "
                   "and move out records of another configuration")
    p.add_argument("--break-lock", action="store_true",
                   help="first remove the store's lock, left by a killed job (only when "
                   "no job runs on the store)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="tqdm bar (default: when installed and stderr is a terminal)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    g = p.add_argument_group("multi-host (jax.distributed)")
    g.add_argument("--distributed", action="store_true",
                   help="jax.distributed.initialize() with cluster auto-detection")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="coordinator address")
    g.add_argument("--num-processes", type=_positive, help="with --coordinator")
    g.add_argument("--process-id", type=int, help="with --coordinator: this process, 0-based")
    g.add_argument("--init-timeout", type=_positive, default=300, metavar="S",
                   help="seconds for all processes to join (default 300)")
    g.add_argument("--start-timeout", type=_positive, default=600, metavar="S",
                   help="seconds a process waits at a sweep's start for the others to "
                   "agree (default 600)")
    g.add_argument("--finish-timeout", type=_positive, default=86400, metavar="S",
                   help="seconds a process that finished waits for the others (default "
                   "86400)")
    p.set_defaults(run=_run_cli)
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to ``gradspec``'s subparsers (``set_defaults(run=...)``,
    so ``args.run(args)`` runs it and returns the exit code)."""
    p = subparsers.add_parser(
        "sweep", help="evaluate a measurement over a grid (resumable store)",
        description="Run the sweeps of a TOML config into resumable stores.")
    return _configure(p)


def main(argv: Sequence[str] | None = None) -> int:
    """``gradspec sweep`` on its own: ``cli_main(["config.toml", "--resume"])``."""
    parser = _configure(argparse.ArgumentParser(
        prog="gradspec sweep", description="Run the sweeps of a TOML config into "
        "resumable stores."))
    args = parser.parse_args(argv)
    return args.run(args)
