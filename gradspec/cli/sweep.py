"""``gradspec sweep``: run the sweeps of a TOML config from the command line.

:func:`add_parser` / :func:`main` read the file with :func:`gradspec.sweep.read_config`
and run each sweep with :func:`gradspec.sweep.sweep`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import jax

from ..sweep import read_config, repair, sweep
from ..sweep import store as _store
from ._args import positive as _positive

__all__ = ["add_parser", "main"]


def _run_cli(args) -> int:
    specs = []
    try:
        if args.coordinator and (args.num_processes is None or args.process_id is None):
            raise ValueError("--coordinator needs --num-processes and --process-id.")
        if args.coordinator or args.distributed:
            kwargs = {}
            if args.coordinator:
                kwargs = {"coordinator_address": args.coordinator,
                          "num_processes": args.num_processes, "process_id": args.process_id}
            jax.distributed.initialize(**kwargs)
        specs = read_config(args.config, store=args.store, chunk_size=args.chunk_size)
        if args.only:
            names = {s.name for s in specs}
            missing = sorted(set(args.only) - names)
            if missing:
                raise ValueError(f"--only {missing}: the config has sweeps {sorted(names)}.")
            specs = [s for s in specs if s.name in args.only]
        for spec in specs:
            root = Path(spec.store)
            if args.repair and root.is_dir():
                dropped = repair(root)
                print(f"{spec.name}: repaired {spec.store}: dropped {dropped}")
            # sweep()'s own rule, checked for every sweep of the file before any runs.
            _store.check_resume(root, args.resume, how="--resume")
        if jax.process_count() > 1:  # nobody writes before every process has checked
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("gradspec.sweep.cli")
        summaries = []
        for spec in specs:
            # resume=True: every store was checked above, before any process wrote;
            # another process may have written to this one since.
            res = sweep(spec.measurement, spec.grid, options=spec.options, store=spec.store,
                        resume=True, chunk_size=spec.chunk_size, progress=args.progress)
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
                      f"{res.seconds:.1f} s ({rate:.1f} points/s) -> {spec.store}")
        if args.json:
            json.dump(summaries, sys.stdout, indent=2)
            print()
        return 0
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        print(f"gradspec sweep: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: what is saved is saved; say how to go on
        saved = sum(_store.count_records(Path(spec.store)) for spec in specs)
        print(f"gradspec sweep: interrupted; {saved} finished points are saved in the store, "
              f"and `gradspec sweep {args.config} --resume` computes only the rest.",
              file=sys.stderr)
        return 130


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("config", help="sweep TOML file (see examples/phase_diagram.toml)")
    p.add_argument("--resume", action="store_true",
                   help="continue a store that already holds results (skip points done)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this [sweeps.NAME] (repeatable)")
    p.add_argument("--store", help="override the config's store path")
    p.add_argument("--chunk-size", type=_positive, help="override points per compiled call")
    p.add_argument("--repair", action="store_true",
                   help="first drop truncated/corrupt records and ones with missing .npz")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="tqdm bar (default: when installed and stderr is a terminal)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    g = p.add_argument_group("multi-host (jax.distributed)")
    g.add_argument("--distributed", action="store_true",
                   help="jax.distributed.initialize() with cluster auto-detection")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="coordinator address")
    g.add_argument("--num-processes", type=_positive, help="with --coordinator")
    g.add_argument("--process-id", type=int, help="with --coordinator: this process, 0-based")
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
