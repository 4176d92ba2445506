"""The meter interface shared by every energy source, its errors, the probe of a source, and the
sum of several meters."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType, TracebackType

from optuna_sm2._validation import is_real

SOURCES = (
    "nvml-counter",
    "nvml-power",
    "zeus",
    "rapl",
    "nvml-power-estimate",
    "cpu-time-estimate",
    "simulated",
)
"""Every source label a single meter or window can carry, best first (``simulated`` is for
tests).

The one list of labels: every meter's :attr:`EnergyMeter.source` is one of them, or several
joined by ``+`` (a :class:`SumMeter`), and :func:`~optuna_sm2.energy.probe_meters` reports them in
this order. ``nvml-power-estimate`` is no meter's label but a window's: one shorter than the
NVML counter's step, estimated from the GPU's power (see :attr:`EnergyMeter.update_period_s`)."""

DEFAULT_MAX_POWER_W = 100_000.0
"""Watts a meter whose :attr:`EnergyMeter.max_power_w` is ``None`` is taken to see at most:
100 kW, above any one machine (eight 1 kW GPUs and their CPUs draw about 10 kW), so that no
reading of a custom meter goes unchecked (a 1e9 J jump in a 20 ms window is refused)."""


EDGE_SLACK_S = 0.1
"""Seconds added to the time between two readings before their energy is checked against a power
bound: hardware counters move in steps (NVML's every few to about 100 ms), so a very short window
may hold one whole step."""


def check_finite(name: str, value: float, *, minimum: float, inclusive: bool) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number above ``minimum`` (or equal to it
    when ``inclusive``)."""
    ok = (
        is_real(value)
        and math.isfinite(value)
        and (value >= minimum if inclusive else value > minimum)
    )
    if not ok:
        bound = ">=" if inclusive else ">"
        raise ValueError(f"`{name}` must be a finite number {bound} {minimum}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class SourceProbe:
    """What :func:`~optuna_sm2.energy.probe_meters` found about one energy source.

    Attributes:
        source: The label, one of :data:`SOURCES`, e.g. ``nvml-counter`` or ``rapl``.
        available: Whether the source works on this machine.
        used: Whether :func:`~optuna_sm2.energy.auto_meter` uses it.
        reason: For a used source, what it measures; otherwise why it is not used.
    """

    source: str
    available: bool
    used: bool
    reason: str


class EnergyMeterUnavailable(RuntimeError):
    """A meter cannot work on this machine; the message says why and, where there is one, how
    to fix it."""


class EnergyReadError(RuntimeError):
    """A meter that worked failed to read; the window being measured is invalid, training goes
    on."""


class EnergyMeter(abc.ABC):
    """A source of cumulative energy, in joules, since the meter was created.

    Subclasses set :attr:`source` and implement :meth:`read`. A meter is read only at the edges
    of measurement windows (see :class:`~optuna_sm2.energy.EnergyTracker`); a failed read raises
    :class:`EnergyReadError` and never anything that would stop training.

    Example:
        .. code-block:: python

            from optuna_sm2.energy import SimulatedMeter

            with SimulatedMeter(power_w=50.0) as meter:
                before = meter.read()
                sum(range(100_000))
                print(meter.source, meter.read() - before, "J")
    """

    skipped: Mapping[str, str] = MappingProxyType({})
    """Sources :func:`~optuna_sm2.auto_meter` did not use, mapped to why (empty otherwise)."""

    probes: tuple[SourceProbe, ...] = ()
    """What :func:`~optuna_sm2.auto_meter` found about every source (empty otherwise)."""

    @property
    @abc.abstractmethod
    def source(self) -> str:
        """The label of what is measured: one of :data:`SOURCES`, or several joined by ``+``."""

    @property
    def is_estimate(self) -> bool:
        """Whether the figures are an estimate rather than a hardware measurement."""
        return False

    @property
    def max_power_w(self) -> float | None:
        """The most power, in watts, this meter can plausibly see; ``None`` when no bound is known.

        :class:`~optuna_sm2.energy.EnergyTracker` marks a window invalid when its joules imply
        more (see ``docs/energy.md``). Meters of real hardware give a generous physical bound; a
        custom meter may override this with a bound of its own, and one that leaves it ``None``
        is checked against :data:`DEFAULT_MAX_POWER_W`.
        """
        return None

    @property
    def update_period_s(self) -> float:
        """Seconds between two advances of :meth:`read`; 0.0 (default) for a reading that moves
        continuously.

        A hardware counter advances in steps (NVML's about every 100 ms): a window shorter than
        a step reads 0 J or one whole step, and any window is off by up to one step. The tracker
        estimates windows shorter than this from :meth:`instant_power_w`, and the pruner ties
        energies within the step (``docs/energy.md``).
        """
        return 0.0

    def instant_power_w(self) -> float | None:
        """The power drawn now, in watts, to estimate a window shorter than
        :attr:`update_period_s`; ``None`` (default) when the meter cannot tell. May raise like
        :meth:`read`."""
        return None

    @property
    def estimate_source(self) -> str | None:
        """The label of a window estimated from :meth:`instant_power_w` (one of
        :data:`SOURCES`, or several joined by ``+``); ``None`` (default) when the meter gives no
        power."""
        return None

    @abc.abstractmethod
    def read(self) -> float:
        """Joules since the meter was created; raises :class:`EnergyReadError` on failure.

        Joules that could not be measured (a counter reset) are left out of the running total,
        and the read that found them raises.
        """

    def close(self) -> None:  # noqa: B027 (a no-op is the right default)
        """Release what the meter holds (threads, library handles); safe to call twice."""

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} source={self.source!r}>"


class SumMeter(EnergyMeter):
    """Several meters of disjoint parts of the machine, e.g. a GPU and the CPU, read as one.

    The source is the members' labels joined by ``+`` (``nvml-counter+rapl``); the sum is an
    estimate when any member is.

    Args:
        meters: The meters to add up, at least one. They must measure disjoint hardware: the
            sum does not check that.

    Example:
        .. code-block:: python

            from optuna_sm2.energy import SimulatedMeter, SumMeter

            with SumMeter(SimulatedMeter(200.0), SimulatedMeter(60.0)) as meter:
                print(meter.source, meter.read())
    """

    def __init__(self, *meters: EnergyMeter) -> None:
        if not meters:
            raise ValueError("SumMeter needs at least one EnergyMeter, got none.")
        for meter in meters:
            if not isinstance(meter, EnergyMeter):
                raise ValueError(f"SumMeter takes EnergyMeter instances, got {meter!r}.")
        self.meters: tuple[EnergyMeter, ...] = meters

    @property
    def source(self) -> str:
        return "+".join(meter.source for meter in self.meters)

    @property
    def is_estimate(self) -> bool:
        return any(meter.is_estimate for meter in self.meters)

    @property
    def max_power_w(self) -> float | None:
        """The sum of the members' bounds; ``None`` when any member has none."""
        bounds = [meter.max_power_w for meter in self.meters]
        return None if any(b is None for b in bounds) else sum(b for b in bounds if b is not None)

    @property
    def update_period_s(self) -> float:
        """The longest step of the members."""
        return max(meter.update_period_s for meter in self.meters)

    def instant_power_w(self) -> float | None:
        """The members' power summed; ``None`` when any member gives none."""
        powers = [meter.instant_power_w() for meter in self.meters]
        return None if any(p is None for p in powers) else sum(p for p in powers if p is not None)

    @property
    def estimate_source(self) -> str | None:
        """The members' estimate labels joined by ``+``; ``None`` when any member has none."""
        labels = [meter.estimate_source for meter in self.meters]
        return None if any(x is None for x in labels) else "+".join(x for x in labels if x)

    def read(self) -> float:
        return sum(meter.read() for meter in self.meters)

    def close(self) -> None:
        for meter in self.meters:
            meter.close()
