"""The ``optuna-sm2`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its parser
and sets ``run(args) -> int``. Every error a user or a storage can cause is one line on stderr
with exit code 2, never a traceback, and comes before anything is created: a value outside its
option's range (:mod:`optuna_sm2.cli._options`, checked while the command line is read), a
:class:`CLIError` or ``ValueError`` raised by a command, a file that cannot be read or written,
and a storage that fails (connection refused or lost, read-only, locked, damaged, full), also
when Optuna raises another error while it handles the failure
(:func:`~optuna_sm2.cli._common.storage_failure_in`). argparse's own refusals (an unknown
choice, a missing option) exit with code 2 through ``SystemExit``, in one line too. Ctrl-C exits
with code 130. The password of ``--storage`` is masked (``***``) in everything a command prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from optuna_sm2.cli import _bench, _dashboard, _demo, _doctor, _report, _worker
from optuna_sm2.cli._common import (
    CLIError,
    one_line,
    secrets_masked,
    storage_failure,
    storage_failure_in,
)
from optuna_sm2.cli._options import OptionError, Parser

_SUBCOMMANDS = (_demo, _report, _doctor, _dashboard, _worker, _bench)


def build_parser() -> Parser:
    parser = Parser(
        prog="optuna-sm2",
        description="Energy-aware hyperparameter search for Optuna (SM², arXiv 2412.08526).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optuna-sm2`` console script."""
    try:
        args = build_parser().parse_args(argv)
    except OptionError as exc:
        print(f"{exc.prog}: error: {exc}", file=sys.stderr)
        return 2
    with secrets_masked(getattr(args, "storage", None)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    prefix = f"optuna-sm2 {args.command}"
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(prefix)
            return int(args.run(args))
    except BrokenPipeError:
        # The reader went away (``optuna-sm2 report ... | head``): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (CLIError, ValueError, OSError) as exc:
        print(f"{prefix}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        cause = storage_failure_in(exc)
        if cause is None:
            raise
        failure = storage_failure("use", getattr(args, "storage", "the storage"), cause)
        print(f"{prefix}: error: {failure}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130


def _one_line_warning(prefix: str) -> Callable[..., None]:
    """``warnings.showwarning`` writing ``<prefix>: warning: <first line>`` on stderr: no file
    name, line number or source line of the code that warned."""

    def show(message: Warning | str, *args: object, **kwargs: object) -> None:
        text = str(message).strip().splitlines()
        print(f"{prefix}: warning: {text[0] if text else message}", file=sys.stderr)

    return show


__all__ = ["CLIError", "build_parser", "main"]
