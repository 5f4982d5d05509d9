"""``gradspec figures``: regenerate the paper's figure set from the command line.

:func:`add_parser` adds the subcommand to ``gradspec``; :func:`main` runs it on its own.
Both call :func:`gradspec.plots.figures.generate` (settings, compute, draw and cache
live in :mod:`gradspec.plots.figures`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import matplotlib

from ..plots import figures as figure_set
from ..plots.figures import FIGURES, generate

__all__ = ["add_parser", "main", "run"]

_DESCRIPTION = figure_set.__doc__.splitlines()[0]


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "--out",
        default="figures",
        metavar="DIR",
        help="output directory (cache in DIR/cache; default: figures)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: the whole set in under 2 minutes on 2 CPU cores",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=list(FIGURES),
        metavar="NAME",
        help=f"make only these figures: {', '.join(FIGURES)}",
    )
    p.add_argument("--force", action="store_true", help="recompute, ignoring the cache")
    p.add_argument(
        "--formats",
        nargs="+",
        default=["png", "pdf", "svg"],
        choices=["png", "pdf", "svg"],
        help="output formats",
    )
    p.add_argument("--dpi", type=int, default=300, help="PNG resolution (default 300)")
    p.set_defaults(run=run)
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``figures`` subcommand to ``gradspec``'s subparsers
    (``set_defaults(run=run)``: ``args.run(args)`` runs it, returns the exit code)."""
    p = subparsers.add_parser(
        "figures",
        help="regenerate the paper's figure set (cached per figure)",
        description=_DESCRIPTION,
    )
    return _configure(p)


def run(args: argparse.Namespace) -> int:
    """Run ``gradspec figures`` from parsed arguments; returns the exit code."""
    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo"):
        matplotlib.use("Agg")  # a command writes files; never open windows
    start = time.perf_counter()
    written = generate(
        args.out,
        quick=args.quick,
        only=args.only,
        force=args.force,
        formats=tuple(args.formats),
        dpi=args.dpi,
    )
    made = sum(v is not None for v in written.values())
    print(
        f"{made} of {len(written)} figures in {args.out} "
        f"({time.perf_counter() - start:.1f}s)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``gradspec figures`` on its own: ``main(["--quick", "--out", "/tmp/figs"])``."""
    parser = _configure(
        argparse.ArgumentParser(prog="gradspec figures", description=_DESCRIPTION)
    )
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
