"""How often a meter's reading advances: the smallest window it can measure.

Hardware counters advance in steps: an H100's NVML energy counter moved about every 50 ms in
``docs/gpu-validation.md``. A window shorter than a step reads 0 J or one whole step.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple


class Resolution(NamedTuple):
    """How a polled reading advanced: the median seconds between its changes and the median
    joules of one change."""

    period_s: float
    step_j: float


def relative_resolution(period_s: float, seconds: float) -> float:
    """How far a window of ``seconds`` may read off, relative to what it read, on a meter that
    advances every ``period_s`` seconds: at most 1.

    Each edge of the window falls somewhere within a step, so the reading is off by less than
    the energy of ``period_s`` seconds: of a reading of at least ``seconds - period_s``
    seconds' energy, that is ``period_s / (seconds - period_s)``. A window of at most two steps
    may be off by all it read (1, also for an estimate from power over a window shorter than a
    step, whose power reading says nothing finer); 0 for a continuous meter (``period_s`` 0).

    Example:
        >>> relative_resolution(0.1, 2.1), relative_resolution(0.1, 0.05)
        (0.05, 1.0)
        >>> relative_resolution(0.0, 0.05)
        0.0
    """
    if period_s <= 0.0:
        return 0.0
    return min(1.0, period_s / (seconds - period_s)) if seconds > 2.0 * period_s else 1.0


def counter_steps(times: Sequence[float], readings: Sequence[float]) -> Resolution | None:
    """The :class:`Resolution` of readings taken at ``times``; ``None`` with fewer than three
    changes (the first change's interval is cut by the start of the polling, so it is left out).

    Example:
        >>> counter_steps([0.0, 0.1, 0.25, 0.3, 0.5, 0.75], [0.0, 0.0, 3.5, 3.5, 7.0, 10.5])
        Resolution(period_s=0.25, step_j=3.5)
    """
    changes = [
        (t, r1 - r0)
        for t, r0, r1 in zip(times[1:], readings, readings[1:], strict=False)
        if r1 != r0
    ]
    if len(changes) < 3:
        return None
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(changes)]
    return Resolution(statistics.median(gaps), statistics.median(s for _, s in changes[1:]))


def poll_resolution(read: Callable[[], float], seconds: float) -> Resolution | None:
    """Call ``read`` (a meter's :meth:`~optuna_sm2.energy.EnergyMeter.read`) as fast as it
    answers for ``seconds`` and return :func:`counter_steps` of what it read. Exceptions of
    ``read`` propagate."""
    times: list[float] = []
    readings: list[float] = []
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        times.append(now - start)
        readings.append(read())
    return counter_steps(times, readings)
