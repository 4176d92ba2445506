"""Argument checks shared by every public constructor and function.

Each check raises one :class:`ValueError` that names the argument, the accepted values and what
was given, and returns the value converted to a plain Python type. Numpy numbers are accepted
wherever Python numbers are (``numbers.Integral`` / ``numbers.Real`` cover them); booleans are
not numbers.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any, TypeVar

_T = TypeVar("_T")


def is_int(x: object) -> bool:
    """Whether ``x`` is an integer (Python or numpy), not a boolean."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def is_real(x: object) -> bool:
    """Whether ``x`` is a real number (Python or numpy, int or float), not a boolean."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def finite_or_none(x: object) -> float | None:
    """``x`` as a finite float, or ``None`` when it is missing or not a finite number."""
    return float(x) if is_real(x) and math.isfinite(float(x)) else None  # type: ignore[arg-type]


def count(x: object) -> int | None:
    """``x`` as a non-negative int (``3`` or ``3.0``), else ``None``."""
    value = finite_or_none(x)
    return int(value) if value is not None and value >= 0 and value == int(value) else None


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as an ``int``; it must be an integer ``>= minimum`` and ``<= maximum`` (each
    when given)."""
    accepted = "an integer" if minimum is None else f"an integer >= {minimum}"
    if not is_int(value) or (minimum is not None and int(value) < minimum):
        raise ValueError(f"`{name}` must be {accepted}, got {value!r}.")
    if maximum is not None and int(value) > maximum:
        raise ValueError(f"`{name}` must be {accepted} and <= {maximum}, got {value!r}.")
    return int(value)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """``value`` as a finite ``float`` within the given bounds."""
    ok = is_real(value) and math.isfinite(float(value))
    if ok and low is not None:
        ok = float(value) >= low if low_inclusive else float(value) > low
    if ok and high is not None:
        ok = float(value) <= high if high_inclusive else float(value) < high
    if not ok:
        raise ValueError(
            f"`{name}` must be {_range_text(low, high, low_inclusive, high_inclusive)}, "
            f"got {value!r}."
        )
    return float(value)


def check_unit_interval(name: str, value: Any) -> float:
    """``value`` as a ``float`` in [0, 1]."""
    return check_real(name, value, low=0.0, high=1.0)


def check_choice(name: str, value: _T, choices: Collection[_T]) -> _T:
    """``value``, which must be one of ``choices``."""
    if isinstance(value, bool) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {listed}, got {value!r}.")
    return value


def check_callable(name: str, value: Any, signature: str) -> Any:
    """``value``, which must be callable as ``signature`` describes."""
    if not callable(value):
        raise ValueError(f"`{name}` must be a callable {signature}, got {value!r}.")
    return value


def first_line(exc: BaseException) -> str:
    """``ExceptionType: first line of its message``, for one-line errors and warnings."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _range_text(
    low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool
) -> str:
    if low is not None and high is not None:
        left, right = "[" if low_inclusive else "(", "]" if high_inclusive else ")"
        return f"a finite number in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f"a finite number {'>=' if low_inclusive else '>'} {low:g}"
    if high is not None:
        return f"a finite number {'<=' if high_inclusive else '<'} {high:g}"
    return "a finite number"
