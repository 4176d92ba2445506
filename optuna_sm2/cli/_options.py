"""Values of the command line: numbers with their ranges, lists of names, names and paths.

Each option's ``type`` parses and checks its text while argparse reads the command line, so a
bad value is refused before a command starts and before anything is created. A refusal is an
:class:`OptionError`: one line naming the option, what it accepts and what was given, printed by
:func:`optuna_sm2.cli.main` with exit code 2. argparse's own refusals (an unknown choice, a
missing option) are one line with exit code 2 too (:class:`Parser`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from optuna_sm2.cli._common import CLIError


class OptionError(CLIError):
    """A command-line value outside what its option accepts; ``prog`` is the command."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def bounds(low: float, high: float | None = None) -> str:
    """``>= low``, or ``>= low and <= high``: a range as the error messages and help say it."""
    return f">= {_num(low)}" if high is None else f">= {_num(low)} and <= {_num(high)}"


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def add_int(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    low: int,
    high: int | None = None,
    help: str,
    **kwargs: Any,
) -> None:
    """Add ``flag`` taking an integer in ``[low, high]``; its help ends with the range."""
    parser.add_argument(
        flag,
        type=_number(parser.prog, flag, int, "an integer", low, high),
        help=f"{help}; an integer {bounds(low, high)}",
        **kwargs,
    )


def add_real(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    low: float,
    high: float | None = None,
    help: str,
    **kwargs: Any,
) -> None:
    """Add ``flag`` taking a finite number in ``[low, high]``; its help ends with the range."""
    parser.add_argument(
        flag,
        type=_number(parser.prog, flag, float, "a number", low, high),
        help=f"{help}; a number {bounds(low, high)}",
        **kwargs,
    )


def _number(
    prog: str,
    flag: str,
    convert: Callable[[str], float],
    kind: str,
    low: float,
    high: float | None,
) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise OptionError(
                prog, f"{flag} must be {kind} {bounds(low, high)}, got {text!r}"
            ) from None
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise OptionError(prog, f"{flag} must be {bounds(low, high)}, got {_num(value)}")
        return value

    return parse


def add_name_list(
    parser: argparse.ArgumentParser, flag: str, choices: Sequence[str], *, help: str
) -> None:
    """Add ``flag`` taking a comma-separated selection of ``choices`` (each at most once)."""
    listed = ", ".join(choices)

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in text.split(","))
        unknown = [name for name in names if name not in choices]
        if unknown or len(set(names)) != len(names):
            what = f"unknown: {', '.join(map(repr, unknown))}" if unknown else "a name repeats"
            raise OptionError(
                parser.prog,
                f"{flag} must be a comma-separated selection of {listed}; got {text!r} ({what})",
            )
        return names

    parser.add_argument(flag, type=parse, metavar="A,B", help=f"{help} (of: {listed})")


def add_text(
    parser: argparse.ArgumentParser, flag: str, *, max_length: int | None = None, **kwargs: Any
) -> None:
    """Add ``flag`` taking text that is neither empty nor blank, without NUL characters (a name,
    a path, a URL)."""

    def parse(text: str) -> str:
        if text and not text.strip():
            raise OptionError(
                parser.prog, f"{flag} must not be blank (white space only), got {text!r}"
            )
        if not text or "\x00" in text:
            raise OptionError(
                parser.prog, f"{flag} must be non-empty text without NUL characters, got {text!r}"
            )
        if max_length is not None and len(text) > max_length:
            raise OptionError(
                parser.prog,
                f"{flag} must be at most {max_length} characters, got {len(text)}",
            )
        return text

    parser.add_argument(flag, type=parse, **kwargs)


PAPER_PRUNER = {"alpha": 0.75, "beta": 0.5}
"""α and β of a new study when ``--alpha`` / ``--beta`` are left out: the paper's."""

N_LRS_MIN = 3
"""Smallest LR grid: ``optuna_sm2.lr``'s ``MIN_LRS`` (a second derivative needs three points),
not imported so that ``--help`` loads no torch; a test checks that they agree."""


def add_schedule_options(parser: argparse.ArgumentParser, new_study: dict[str, str]) -> None:
    """The options that size an SM² run and weigh its pruner, shared by ``demo`` and ``worker``.

    Each is ``None`` when left out: an existing study's own value, else what ``new_study``
    (by option name: ``epochs_per_rung``, ``final_epochs``, ``n_lrs``) says in the help, and
    for ``--alpha`` and ``--beta`` the paper's (:data:`PAPER_PRUNER`).
    """

    def default(name: str) -> str:
        return f"; default: an existing study's own, else {new_study[name]}"

    add_int(
        parser,
        "--epochs-per-rung",
        low=1,
        high=1000,
        help="thorough epochs per block; a rung ends each" + default("epochs_per_rung"),
    )
    add_int(
        parser,
        "--final-epochs",
        low=0,
        high=10000,
        help="thorough epochs after the last rung" + default("final_epochs"),
    )
    add_int(
        parser,
        "--n-lrs",
        low=N_LRS_MIN,
        high=1000,
        help="learning rates in each exploratory sweep" + default("n_lrs"),
    )
    for name in PAPER_PRUNER:
        add_real(
            parser,
            f"--{name}",
            low=0.0,
            high=1.0,
            help=f"{name} of Eq. 2; default: an existing study's own, else {PAPER_PRUNER[name]} "
            "(the paper's)",
        )
