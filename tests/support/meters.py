"""Meters for tests that need readings of their choosing."""

from __future__ import annotations

from collections.abc import Callable

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


class CoarseMeter(ScriptedMeter):
    """Scripted readings of a meter advancing every 100 ms; ``power`` is what
    ``instant_power_w`` returns (or raises), ``None`` for a meter that cannot tell."""

    def __init__(self, *readings: object, power: object = None) -> None:
        super().__init__(*readings)
        self.power = power

    @property
    def update_period_s(self) -> float:
        return 0.1

    def instant_power_w(self) -> float | None:
        if isinstance(self.power, BaseException):
            raise self.power
        return self.power  # type: ignore[return-value]

    @property
    def estimate_source(self) -> str | None:
        return None if self.power is None else "nvml-power-estimate"


class StepMeter(EnergyMeter):
    """``power_w`` for one second between reads: every window holds ``power_w`` joules.

    With ``per_rank``, rank ``r`` of ``torch.distributed`` (read when the meter reads, so the
    meter can be made before the process group) draws ``power_w * (r + 1)``. A picklable,
    deterministic meter for sums over ranks.
    """

    def __init__(self, power_w: float, *, per_rank: bool = False, label: str = "simulated"):
        self.power_w, self.per_rank, self.label = power_w, per_rank, label
        self.reads = 0

    @property
    def source(self) -> str:
        return self.label

    def rank_power_w(self) -> float:
        if not self.per_rank:
            return self.power_w
        import torch.distributed as dist

        rank = dist.get_rank() if dist.is_initialized() else 0
        return self.power_w * (rank + 1)

    def read(self) -> float:
        self.reads += 1
        return self.rank_power_w() * self.reads


class SteppingMeter(EnergyMeter):
    """A counter that advances only every ``period`` seconds of ``clock``, like NVML's (every 50
    to 100 ms on an H100): it reads the energy ``power_w`` spent up to its last update."""

    def __init__(self, clock: Callable[[], float], power_w: float, period: float) -> None:
        self.clock, self.power_w, self.period = clock, power_w, period

    @property
    def source(self) -> str:
        return "simulated"

    def read(self) -> float:
        return (self.clock() // self.period) * self.period * self.power_w


class PlaybackMeter(EnergyMeter):
    """Plays given window energies back: reads come in pairs (a window's open and close), and
    the ``k``-th window holds ``joules[k]``. For a run whose windows are known in advance."""

    def __init__(self, joules: list[float], *, label: str = "simulated") -> None:
        self.joules = list(joules)
        self.label = label
        self.reads = 0
        self.total = 0.0

    @property
    def source(self) -> str:
        return self.label

    def read(self) -> float:
        if self.reads % 2:
            self.total += self.joules[self.reads // 2]
        self.reads += 1
        return self.total
