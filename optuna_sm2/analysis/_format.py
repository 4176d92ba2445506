"""Numbers as the report, the notes and the figures print them."""

from __future__ import annotations

import math
from collections.abc import Iterable


def format_joules(joules: float, digits: int = 3) -> str:
    """``joules`` with at least ``digits`` significant digits and at least one decimal.

    Small figures keep their digits (an energy per epoch of 0.0123 J does not read 0.0), large
    ones are not cut short.

    Example:
        >>> from optuna_sm2.analysis import format_joules
        >>> [format_joules(x) for x in (1530.0, 40.0, 1.4, 0.0123, 0.0, -2.5e-5)]
        ['1530.0', '40.0', '1.40', '0.0123', '0.0', '-0.0000250']
    """
    if joules == 0.0 or not math.isfinite(joules):
        return f"{joules:.1f}"
    decimals = max(1, digits - 1 - math.floor(math.log10(abs(joules))))
    return f"{joules:.{decimals}f}"


def format_number(x: float | None, spec: str = ".4g") -> str:
    """``x`` formatted with ``spec``, or ``-`` when there is none."""
    return "-" if x is None else format(x, spec)


def plural(n: int, word: str) -> str:
    """``1 window``, ``2 windows``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


SHOWN_TRIALS = 8
"""At most this many trial numbers (or runs of them) are written out in a list."""


def format_trials(numbers: Iterable[int]) -> str:
    """Trial numbers as a list a person reads: a short list as it is; a long one as runs of
    consecutive numbers, at most :data:`SHOWN_TRIALS` of them written out, then the count.

    Example:
        >>> from optuna_sm2.analysis import format_trials
        >>> format_trials([3, 1, 7])
        '1, 3, 7'
        >>> format_trials(range(100))
        '0–99 (100 trials)'
        >>> format_trials([*range(10), 12, 14, *range(20, 30)])
        '0–9, 12, 14, 20–29 (22 trials)'
        >>> format_trials(range(0, 40, 2))
        '0, 2, 4, 6, 8, 10, 12, 14, … (20 trials)'
    """
    ordered = sorted(set(numbers))
    if len(ordered) <= SHOWN_TRIALS:
        return ", ".join(str(n) for n in ordered)
    runs: list[list[int]] = []
    for n in ordered:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    pieces = [
        f"{run[0]}–{run[-1]}" if len(run) > 2 else ", ".join(str(n) for n in run) for run in runs
    ]
    shown = ", ".join(pieces[:SHOWN_TRIALS]) + (", …" if len(pieces) > SHOWN_TRIALS else "")
    return f"{shown} ({plural(len(ordered), 'trial')})"
