"""``gradspec verify``: predict, train and compare the demo grid."""

from __future__ import annotations

import argparse
import json
import sys

from ..training import demo_grid, format_table, verify
from ._args import positive


def run(args) -> int:
    """Run ``gradspec verify`` from parsed arguments; returns the exit code."""
    rows = verify(demo_grid(T=args.T, steps=args.steps, hidden=args.hidden), progress=args.progress)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        print(format_table(rows))
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``verify`` subcommand to ``gradspec``'s subparsers."""
    v = subparsers.add_parser("verify", help="predict, train and compare the demo grid (adding task)")
    v.add_argument("--T", type=positive, default=100, help="sequence length")
    v.add_argument("--steps", type=positive, default=600, help="training steps per run")
    v.add_argument("--hidden", type=positive, default=64, help="hidden units N")
    v.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    v.add_argument("--progress", action="store_true", help="training progress bars (tqdm)")
    v.set_defaults(run=run)
    return v
