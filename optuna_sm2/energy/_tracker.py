"""``EnergyTracker``: energy and time of code blocks, read at the block edges."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from optuna_sm2._validation import check_callable, is_real
from optuna_sm2.energy._meter import (
    DEFAULT_MAX_POWER_W,
    EDGE_SLACK_S,
    EnergyMeter,
    EnergyReadError,
)

_logger = logging.getLogger(__name__)


def _cuda_synchronize() -> None:
    """Wait for the kernels torch queued on every GPU; nothing when torch was never imported
    or never initialized CUDA (then nothing can be queued, and CUDA is not started here)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    for device in range(torch.cuda.device_count()):
        torch.cuda.synchronize(device)


class EnergyWindow:
    """The energy and duration of one ``with tracker.window()`` block.

    :attr:`source`, :attr:`is_estimate` and :attr:`update_period_s` are known from the start
    (a window estimated from power is relabeled when it closes, see :meth:`close`); the other
    attributes are filled when the block exits, and reading them earlier raises
    ``RuntimeError``. An invalid
    window (a read failed while it was open, or its reading is impossible: negative, not finite,
    or above the meter's power bound) has ``joules`` and ``mean_power_w`` NaN and says why in
    ``invalid_reason``; ``seconds`` is always measured.

    A tracker creates the window open and fills it with :meth:`close` when the block exits. A
    tracker of your own does the same: :class:`~optuna_sm2.integration.DistributedEnergyTracker`
    yields ``EnergyWindow(source, is_estimate)`` and, on exit, closes it with the figures summed
    over the ranks.

    Args:
        source: The meter's label.
        is_estimate: Whether the figures will be an estimate.
        update_period_s: Seconds between two advances of the meter's reading (its
            :attr:`~optuna_sm2.energy.EnergyMeter.update_period_s`, a finite number >= 0): the
            window's joules may be off by the energy of that long.

    Example:
        .. code-block:: python

            from optuna_sm2.energy import EnergyWindow

            window = EnergyWindow("nvml-counter", is_estimate=False)
            window.close(seconds=2.0, joules=300.0)
            print(window.mean_power_w)  # 150.0
    """

    __slots__ = ("_joules", "_reason", "_seconds", "is_estimate", "source", "update_period_s")

    def __init__(self, source: str, is_estimate: bool, update_period_s: float = 0.0) -> None:
        if not (is_real(update_period_s) and 0.0 <= float(update_period_s) < math.inf):
            raise ValueError(
                f"`update_period_s` must be a finite number >= 0, got {update_period_s!r}."
            )
        self.source = source
        """The meter's label, e.g. ``nvml-counter+rapl``; an estimate's label once estimated."""
        self.is_estimate = is_estimate
        """Whether the figures are an estimate (the CPU-time meter is part of the source, or the
        window was estimated from power)."""
        self.update_period_s = float(update_period_s)
        """Seconds between two advances of the meter's reading; 0.0 for a continuous one."""
        self._seconds: float | None = None
        self._joules = math.nan
        self._reason: str | None = None

    def close(
        self,
        seconds: float,
        joules: float,
        invalid_reason: str | None = None,
        *,
        estimated_as: str | None = None,
    ) -> None:
        """Fill the figures of the open window: what its tracker does when the block exits.

        Args:
            seconds: The block's wall time, a finite number >= 0.
            joules: The block's energy, a finite number >= 0 for a valid window; ignored (the
                window's ``joules`` is NaN) when ``invalid_reason`` is given.
            invalid_reason: Why the window is invalid, or ``None`` when it is valid.
            estimated_as: For joules estimated rather than read (a window shorter than the
                meter's step, estimated from power), the estimate's label, e.g.
                ``nvml-power-estimate``: it becomes :attr:`source`, and :attr:`is_estimate`
                becomes ``True``; ``None`` (default) keeps both.

        Raises:
            ValueError: ``seconds``, ``joules``, ``invalid_reason`` or ``estimated_as`` is not
                one of the above.
            RuntimeError: The window is already closed.
        """
        if estimated_as is not None and not (isinstance(estimated_as, str) and estimated_as):
            raise ValueError(
                f"`estimated_as` must be None or a non-empty str, got {estimated_as!r}."
            )
        if not (is_real(seconds) and 0.0 <= float(seconds) < math.inf):
            raise ValueError(f"`seconds` must be a finite number >= 0, got {seconds!r}.")
        if invalid_reason is not None and not (isinstance(invalid_reason, str) and invalid_reason):
            raise ValueError(
                f"`invalid_reason` must be None or a non-empty str, got {invalid_reason!r}."
            )
        valid = invalid_reason is None
        if valid and not (is_real(joules) and 0.0 <= float(joules) < math.inf):
            raise ValueError(
                "`joules` must be a finite number >= 0 for a valid window (give an "
                f"`invalid_reason` otherwise), got {joules!r}."
            )
        if self.closed:
            raise RuntimeError(f"the energy window is already closed: {self!r}")
        self._seconds = float(seconds)
        self._joules = float(joules) if valid else math.nan
        self._reason = invalid_reason
        if estimated_as is not None:
            self.source, self.is_estimate = estimated_as, True

    def _closed_seconds(self) -> float:
        if self._seconds is None:
            raise RuntimeError(
                "the energy window is still open: read it after its `with` block has exited"
            )
        return self._seconds

    @property
    def closed(self) -> bool:
        """Whether the block has exited and the figures are filled."""
        return self._seconds is not None

    @property
    def seconds(self) -> float:
        """Wall time of the block, in seconds (CUDA synchronized at both edges)."""
        return self._closed_seconds()

    @property
    def joules(self) -> float:
        """Energy of the block, in joules; NaN when the window is invalid."""
        self._closed_seconds()
        return self._joules

    @property
    def mean_power_w(self) -> float:
        """``joules / seconds``, in watts; NaN when invalid or when no time elapsed."""
        seconds = self._closed_seconds()
        return self._joules / seconds if seconds > 0.0 else math.nan

    @property
    def valid(self) -> bool:
        """Whether every read the window depends on succeeded and its reading is plausible."""
        self._closed_seconds()
        return self._reason is None

    @property
    def invalid_reason(self) -> str | None:
        """Why the window is invalid, or ``None`` when it is valid."""
        self._closed_seconds()
        return self._reason

    def __repr__(self) -> str:
        if not self.closed:
            return f"<EnergyWindow open source={self.source!r}>"
        if self._reason is not None:
            return f"<EnergyWindow invalid {self._reason!r}>"
        return (
            f"<EnergyWindow {self._joules:.3f} J in {self._seconds:.3f} s "
            f"source={self.source!r}{' (estimate)' if self.is_estimate else ''}>"
        )


class EnergyTracker:
    """Measure the energy of code blocks: ``with tracker.window() as w:``, then ``w.joules``.

    The meter is read once when a window opens and once when it closes, never in between, so a
    training loop pays two reads per window. With ``sync_cuda`` (default) every GPU torch uses is
    synchronized at both edges first, so that kernels queued inside the block are counted in it
    and kernels queued before it are not. Windows may nest and follow each other; they share the
    meter.

    Readings are checked at the edges, and an impossible one is never booked. A read that
    raises (:class:`EnergyReadError`, ``OSError``, any ``Exception``) or returns NaN or an
    infinity never stops the block: every window open at that moment is marked invalid with the
    reason. A window whose joules are negative (a counter reset, a replaced meter) or imply more
    power than the meter's :attr:`~EnergyMeter.max_power_w` (:data:`DEFAULT_MAX_POWER_W` for a
    meter that declares none) over the window's seconds plus :data:`EDGE_SLACK_S` is invalid
    too. A meter whose ``read()`` returns something that is not a number (a string, ``None``, a
    boolean) is a programming error: ``ValueError`` naming the meter's class, at that read. An
    exception escaping the block still closes its window, then propagates.

    A valid window shorter than the meter's step (:attr:`~EnergyMeter.update_period_s`, e.g.
    the NVML counter's 100 ms) would read 0 J or one whole step: it is estimated instead as the
    meter's power at its end (:meth:`~EnergyMeter.instant_power_w`) times its seconds, and
    labeled with the meter's :attr:`~EnergyMeter.estimate_source` (``nvml-power-estimate``), an
    estimate. A meter that gives no power, or whose power reading fails or is not a finite
    number >= 0, keeps the window's reading.

    Args:
        meter: What to read; ``None`` for :func:`~optuna_sm2.auto_meter`.
        sync_cuda: Synchronize CUDA at window edges (when torch has initialized CUDA).
        clock: Seconds on a monotonic clock, read at the window edges;
            :func:`time.perf_counter` by default (tests drive a fake one).

    Example:
        .. code-block:: python

            from optuna_sm2 import EnergyTracker
            from optuna_sm2.energy import SimulatedMeter

            tracker = EnergyTracker(SimulatedMeter(power_w=100.0))
            with tracker.window() as epoch:
                with tracker.window() as step:
                    sum(range(100_000))
            print(f"{step.joules:.2f} J of {epoch.joules:.2f} J, {epoch.mean_power_w:.0f} W")
    """

    def __init__(
        self,
        meter: EnergyMeter | None = None,
        *,
        sync_cuda: bool = True,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if meter is None:
            from optuna_sm2.energy._auto import auto_meter

            meter = auto_meter()
        elif not isinstance(meter, EnergyMeter):
            raise ValueError(f"`meter` must be an EnergyMeter or None, got {meter!r}.")
        bound = meter.max_power_w
        if bound is not None and not (is_real(bound) and 0.0 < float(bound) < math.inf):
            raise ValueError(
                f"{type(meter).__name__}.max_power_w must be a finite number of watts > 0 or "
                f"None, got {bound!r}."
            )
        period = meter.update_period_s
        if not (is_real(period) and 0.0 <= float(period) < math.inf):
            raise ValueError(
                f"{type(meter).__name__}.update_period_s must be a finite number of seconds "
                f">= 0, got {period!r}."
            )
        if not isinstance(sync_cuda, bool):
            raise ValueError(f"`sync_cuda` must be True or False, got {sync_cuda!r}.")
        check_callable("clock", clock, "clock() -> seconds")
        self._meter = meter
        self._max_power_w = DEFAULT_MAX_POWER_W if bound is None else float(bound)
        self._sync_cuda = sync_cuda
        self._clock = clock
        self._failures = 0
        self._last_failure = ""

    @property
    def meter(self) -> EnergyMeter:
        """The meter read at window edges."""
        return self._meter

    @property
    def source(self) -> str:
        """The meter's label."""
        return self._meter.source

    @property
    def is_estimate(self) -> bool:
        """Whether the meter's figures are an estimate."""
        return self._meter.is_estimate

    def _read(self) -> tuple[float, str | None]:
        """The meter's joules, or NaN and why the read failed."""
        name = type(self._meter).__name__
        try:
            value: Any = self._meter.read()
        except EnergyReadError as exc:
            return math.nan, str(exc)
        except Exception as exc:  # a meter failing must not stop training
            return math.nan, f"{name}.read() raised {type(exc).__name__}: {exc}"
        if not is_real(value):
            raise ValueError(
                f"{name}.read() must return a number of joules (an int or a float), got "
                f"{value!r} of type {type(value).__name__}."
            )
        joules = float(value)
        if not math.isfinite(joules):
            return math.nan, f"{name}.read() returned {joules!r} joules"
        return joules, None

    def _edge(self) -> tuple[float, float]:
        """Synchronize, then read the clock and the meter (NaN when the read fails)."""
        if self._sync_cuda:
            _cuda_synchronize()
        now = self._clock()
        joules, failure = self._read()
        if failure is not None:
            self._failures += 1
            self._last_failure = failure
        return now, joules

    def _implausible(self, joules: float, seconds: float) -> str | None:
        """Why a window's reading cannot be true, or ``None`` when it can."""
        if not math.isfinite(joules):
            return f"the window's reading is {joules!r} joules"
        if joules < 0.0:
            return (
                f"the reading went backwards by {-joules:.6g} J ({self.source}): a counter "
                "reset or a replaced meter"
            )
        bound = self._max_power_w
        if joules > bound * (seconds + EDGE_SLACK_S):
            return (
                f"{joules:.6g} J in {seconds:.3g} s is at least "
                f"{joules / (seconds + EDGE_SLACK_S):.6g} W, above the {bound:.6g} W "
                f"{self.source} can plausibly draw"
            )
        return None

    def _power_estimate(self, seconds: float) -> tuple[float, str] | None:
        """Joules of a window of ``seconds`` shorter than the meter's step, estimated from its
        power now, and the estimate's label; ``None`` when the window is not shorter or the
        meter gives no usable power."""
        meter = self._meter
        label = meter.estimate_source
        if not seconds < meter.update_period_s or label is None:
            return None
        try:
            power: Any = meter.instant_power_w()
        except Exception as exc:  # keep the reading: a failed estimate must not stop training
            _logger.debug("%s power reading failed: %s", type(meter).__name__, exc)
            return None
        if not (is_real(power) and 0.0 <= float(power) < math.inf):
            return None
        return float(power) * seconds, label

    @contextlib.contextmanager
    def window(self) -> Iterator[EnergyWindow]:
        """Measure the enclosed block; the yielded :class:`EnergyWindow` is filled on exit."""
        window = EnergyWindow(self.source, self.is_estimate, self._meter.update_period_s)
        failures = self._failures
        start, joules_start = self._edge()
        try:
            yield window
        finally:
            end, joules_end = self._edge()
            seconds = end - start
            reason = self._last_failure if self._failures != failures else None
            joules, label = math.nan, None
            if reason is None:
                joules = joules_end - joules_start
                reason = self._implausible(joules, seconds)
            estimate = self._power_estimate(seconds) if reason is None else None
            if estimate is not None:
                joules, label = estimate
                reason = self._implausible(joules, seconds)
            window.close(seconds, joules, reason, estimated_as=label)


_shared: EnergyTracker | None = None
_shared_lock = threading.Lock()


def shared_tracker() -> EnergyTracker:
    """This process's tracker on :func:`~optuna_sm2.auto_meter`, created at the first call.

    Code that books windows without being given a tracker (e.g.
    :class:`~optuna_sm2.TrialEnergy`) shares this one, so that the meter is opened once per
    process, not once per trial.

    Example:
        .. code-block:: python

            from optuna_sm2.energy import shared_tracker

            assert shared_tracker() is shared_tracker()
            print(shared_tracker().source)
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = EnergyTracker()
        return _shared
