"""``SimulatedMeter``: a constant power, for tests and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable

from optuna_sm2._validation import check_callable
from optuna_sm2.energy._meter import EnergyMeter, check_finite


class SimulatedMeter(EnergyMeter):
    """Joules = ``power_w`` x the time elapsed on ``clock`` since the meter was created.

    Nothing is measured: the label is ``simulated``. The clock is injectable so that tests are
    deterministic.

    Args:
        power_w: The constant power, in watts (a finite number >= 0).
        clock: Seconds on a monotonic clock; :func:`time.perf_counter` by default.

    Example:
        .. code-block:: python

            from optuna_sm2.energy import SimulatedMeter

            ticks = iter([0.0, 2.0])
            meter = SimulatedMeter(power_w=100.0, clock=lambda: next(ticks))
            assert meter.read() == 200.0
    """

    def __init__(
        self, power_w: float = 100.0, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        check_finite("power_w", power_w, minimum=0.0, inclusive=True)
        check_callable("clock", clock, "clock() -> seconds")
        self.power_w = float(power_w)
        self._clock = clock
        self._start = clock()

    @property
    def source(self) -> str:
        return "simulated"

    def read(self) -> float:
        return self.power_w * (self._clock() - self._start)
