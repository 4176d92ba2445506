"""The ``optuna-sm2`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its parser
and sets ``run(args) -> int``. Errors a user can cause raise :class:`CLIError` (or ``ValueError``)
and are printed as one line with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from optuna_sm2.cli import _bench, _dashboard, _demo, _doctor, _report, _worker
from optuna_sm2.cli._common import CLIError

_SUBCOMMANDS = (_demo, _report, _doctor, _dashboard, _worker, _bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optuna-sm2",
        description="Energy-aware hyperparameter search for Optuna (SM², arXiv 2412.08526).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optuna-sm2`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (CLIError, ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"optuna-sm2 {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (``optuna-sm2 report ... | head``): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"optuna-sm2 {args.command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["CLIError", "build_parser", "main"]
