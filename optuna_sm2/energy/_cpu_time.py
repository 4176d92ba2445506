"""``CpuTimeMeter``: an estimate from the CPU time of this process, where no counter exists."""

from __future__ import annotations

import os
import time

from optuna_sm2.energy._meter import EnergyMeter, check_finite

WATTS_PER_CORE = 5.6
"""Default watts per busy core: see :class:`CpuTimeMeter` for where the figure comes from."""


class CpuTimeMeter(EnergyMeter):
    """An **estimate**: this process's CPU seconds x a power per busy core.

    CPU seconds come from :func:`time.process_time` (user + system time of every thread of this
    process, torch's intra-op threads included; child processes such as ``DataLoader`` workers
    are not). Each CPU second is charged ``watts_per_core`` joules. Idle and static power of the
    machine, and other processes, are not counted: the figure is the marginal energy of this
    process's computation, which is what ranking configurations needs.

    Where the default 5.6 W per core comes from: the rated power (TDP) of a server CPU divided by
    its cores, for two common current parts: AMD EPYC 7763, 280 W for 64 cores = 4.4 W; Intel
    Xeon Platinum 8380, 270 W for 40 cores = 6.75 W (vendor specification sheets). 5.6 W is
    their mean. TDP is the sustained power with every core busy, uncore included, so the figure
    is a per-core share of a fully loaded package, not a measurement of this machine. Pass your
    own CPU's TDP / cores for a better estimate.

    The label is ``cpu-time-estimate`` and :attr:`is_estimate` is ``True``. A process cannot
    use more CPU seconds than the machine has cores, so :attr:`max_power_w` is
    ``watts_per_core`` times ``os.cpu_count()``.

    Args:
        watts_per_core: Joules charged per CPU second (a finite number > 0).

    Example:
        .. code-block:: python

            from optuna_sm2.energy import CpuTimeMeter

            meter = CpuTimeMeter(watts_per_core=270.0 / 40)
            sum(i * i for i in range(200_000))
            print(f"{meter.read():.2f} J (estimate)")
    """

    def __init__(self, watts_per_core: float = WATTS_PER_CORE) -> None:
        check_finite("watts_per_core", watts_per_core, minimum=0.0, inclusive=False)
        self.watts_per_core = float(watts_per_core)
        self._start = time.process_time()

    @property
    def source(self) -> str:
        return "cpu-time-estimate"

    @property
    def is_estimate(self) -> bool:
        return True

    @property
    def max_power_w(self) -> float:
        return self.watts_per_core * (os.cpu_count() or 1)

    def read(self) -> float:
        return self.watts_per_core * (time.process_time() - self._start)
