"""The ``gradspec`` command: one module per subcommand, on top of everything else.

``gradspec diagnose`` (:mod:`.diagnose`), ``gradspec verify`` (:mod:`.verify`),
``gradspec sweep`` (:mod:`.sweep`), ``gradspec figures`` (:mod:`.figures`);
``python -m gradspec`` is the same command.
"""

from __future__ import annotations

import argparse

from . import diagnose, figures, sweep, verify


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradspec",
        description="Will the gradients of this recurrent network vanish or explode?")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (diagnose, verify, sweep, figures):
        command.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run ``gradspec`` with ``argv`` (default: the command line); returns the exit code."""
    args = _parser().parse_args(argv)
    return args.run(args)
