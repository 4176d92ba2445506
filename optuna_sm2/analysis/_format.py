"""Numbers as the report, the notes and the figures print them."""

from __future__ import annotations

import math


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
