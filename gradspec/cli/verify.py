"""``gradspec verify``: predict, train and compare: the demo grid, the agreement study
(``--study``) or your own configurations (``--config FILE.toml``)."""

from __future__ import annotations

import argparse
import json
import sys

from ..training import demo_grid, format_table, read_grid, study_grid, verify
from ._args import positive


def run(args) -> int:
    """Run ``gradspec verify`` from parsed arguments; returns the exit code."""
    if args.config:
        try:
            grid = read_grid(args.config)
        except (OSError, ValueError) as err:
            print(f"gradspec verify: error: {err}", file=sys.stderr)
            return 2
    elif args.study:
        grid = study_grid(steps=args.steps or 300, hidden=args.hidden, quick=args.quick)
    else:
        grid = demo_grid(T=args.T, steps=args.steps or 600, hidden=args.hidden)
    rows = verify(grid, progress=args.progress)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        print(format_table(rows))
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``verify`` subcommand to ``gradspec``'s subparsers."""
    v = subparsers.add_parser(
        "verify", help="predict, train and compare (the demo grid, --study, or --config)")
    which = v.add_mutually_exclusive_group()
    which.add_argument("--study", action="store_true",
                       help="the agreement study: 30 configurations, 4 tasks, 2 lengths each")
    which.add_argument("--config", metavar="FILE.toml",
                       help="your own configurations: [defaults] and [[config]] tables "
                            "of TrainConfig fields")
    v.add_argument("--quick", action="store_true", help="with --study: 3 small configurations")
    v.add_argument("--T", type=positive, default=100, help="demo grid: sequence length")
    v.add_argument("--steps", type=positive, default=None,
                   help="training steps per run (demo 600, study 300)")
    v.add_argument("--hidden", type=positive, default=64, help="hidden units N")
    v.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    v.add_argument("--progress", action="store_true", help="training progress bars (tqdm)")
    v.set_defaults(run=run)
    return v
