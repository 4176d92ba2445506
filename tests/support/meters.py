"""Meters for tests that need readings of their choosing."""

from __future__ import annotations

from optuna_sm2.energy import EnergyMeter


class ScriptedMeter(EnergyMeter):
    """Returns (or raises) the given readings in turn; ``bound`` is its ``max_power_w``."""

    def __init__(self, *readings: object, bound: float | None = None) -> None:
        self.readings = list(readings)
        self.bound = bound

    @property
    def source(self) -> str:
        return "simulated"

    @property
    def max_power_w(self) -> float | None:
        return self.bound

    def read(self) -> float:
        reading = self.readings.pop(0)
        if isinstance(reading, BaseException):
            raise reading
        return reading  # type: ignore[return-value]
