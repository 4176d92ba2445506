from __future__ import annotations

import math
import os
import sys
import time
import types

import pytest

from optuna_sm2 import EnergyMeter, EnergyTracker
from optuna_sm2.energy import (
    DEFAULT_MAX_POWER_W,
    CpuTimeMeter,
    EnergyReadError,
    EnergyWindow,
    SimulatedMeter,
    SumMeter,
    _tracker,
)
from optuna_sm2.energy._cpu_time import WATTS_PER_CORE
from tests.support.meters import CoarseMeter, ScriptedMeter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FlakyMeter(EnergyMeter):
    """1 J per read; the reads whose numbers are in ``fail`` raise."""

    def __init__(self, fail: set[int]) -> None:
        self.reads = 0
        self.fail = fail

    @property
    def source(self) -> str:
        return "simulated"

    def read(self) -> float:
        self.reads += 1
        if self.reads in self.fail:
            raise EnergyReadError(f"read {self.reads} failed")
        return float(self.reads)


def test_simulated_meter_is_power_times_elapsed() -> None:
    clock = Clock()
    meter = SimulatedMeter(power_w=40.0, clock=clock)
    clock.now = 2.5
    assert meter.read() == 100.0 and meter.source == "simulated" and not meter.is_estimate
    with pytest.raises(ValueError, match="power_w"):
        SimulatedMeter(power_w=-1.0)
    with pytest.raises(ValueError, match="power_w"):
        SimulatedMeter(power_w=math.inf)


def test_consecutive_and_nested_windows() -> None:
    clock = Clock()
    tracker = EnergyTracker(SimulatedMeter(power_w=10.0, clock=clock))
    with tracker.window() as epoch:
        clock.now += 1.0
        with tracker.window() as step1:
            clock.now += 2.0
        with tracker.window() as step2:
            clock.now += 3.0
    with tracker.window() as next_epoch:
        clock.now += 0.5
    assert (step1.joules, step2.joules, epoch.joules, next_epoch.joules) == (20, 30, 60, 5)
    for window in (epoch, step1, step2, next_epoch):
        assert window.valid and window.invalid_reason is None and window.seconds > 0
        assert window.source == "simulated" and not window.is_estimate


def test_mean_power_on_the_real_clock() -> None:
    tracker = EnergyTracker(SimulatedMeter(power_w=80.0))
    with tracker.window() as window:
        time.sleep(0.05)
    assert window.mean_power_w == pytest.approx(80.0, rel=0.02)


def test_figures_exist_only_after_the_block() -> None:
    tracker = EnergyTracker(SimulatedMeter())
    with tracker.window() as window:
        assert window.source == "simulated" and not window.closed
        for name in ("joules", "seconds", "mean_power_w", "valid", "invalid_reason"):
            with pytest.raises(RuntimeError, match="still open"):
                getattr(window, name)
    assert window.closed and "J in" in repr(window)


def test_a_window_closed_by_hand_holds_its_figures() -> None:
    """What a tracker of one's own (the distributed one) does: open a window, close it later."""
    window = EnergyWindow("nvml-counter", is_estimate=False)
    assert not window.closed
    window.close(2.0, 300.0)
    assert window.closed and window.valid and window.invalid_reason is None
    assert (window.seconds, window.joules, window.mean_power_w) == (2.0, 300.0, 150.0)
    invalid = EnergyWindow("rapl", is_estimate=True)
    invalid.close(seconds=1.5, joules=-4.0, invalid_reason="rank 1 failed")
    assert not invalid.valid and invalid.invalid_reason == "rank 1 failed"
    assert math.isnan(invalid.joules) and invalid.seconds == 1.5 and invalid.is_estimate
    with pytest.raises(RuntimeError, match="already closed"):
        window.close(1.0, 1.0)
    assert window.joules == 300.0


@pytest.mark.parametrize(
    ("seconds", "joules", "reason", "argument"),
    [
        (-1.0, 1.0, None, "`seconds`"),
        (math.inf, 1.0, None, "`seconds`"),
        ("1", 1.0, None, "`seconds`"),
        (1.0, math.nan, None, "`joules`"),
        (1.0, -0.5, None, "`joules`"),
        (1.0, True, None, "`joules`"),
        (1.0, 1.0, "", "`invalid_reason`"),
        (1.0, 1.0, 3, "`invalid_reason`"),
    ],
)
def test_closing_with_bad_figures_is_refused(
    seconds: object, joules: object, reason: object, argument: str
) -> None:
    window = EnergyWindow("simulated", is_estimate=False)
    with pytest.raises(ValueError, match=argument):
        window.close(seconds, joules, reason)  # type: ignore[arg-type]
    assert not window.closed


def test_a_window_estimated_from_power_is_relabeled_when_it_closes() -> None:
    window = EnergyWindow("nvml-counter", is_estimate=False, update_period_s=0.1)
    assert window.update_period_s == 0.1 and window.source == "nvml-counter"
    window.close(0.05, 28.5, estimated_as="nvml-power-estimate")
    assert window.source == "nvml-power-estimate" and window.is_estimate
    assert EnergyWindow("rapl", is_estimate=False).update_period_s == 0.0
    for bad in (-0.1, math.inf, math.nan, "0.1"):
        with pytest.raises(ValueError, match="`update_period_s` must be a finite number >= 0"):
            EnergyWindow("simulated", False, bad)  # type: ignore[arg-type]
    for label in ("", 3):
        unlabeled = EnergyWindow("simulated", is_estimate=False)
        with pytest.raises(ValueError, match="`estimated_as`"):
            unlabeled.close(1.0, 1.0, estimated_as=label)  # type: ignore[arg-type]
        assert not unlabeled.closed


@pytest.mark.parametrize(
    ("power", "joules", "source"),
    [
        (300.0, 6.0, "nvml-power-estimate"),  # 300 W x 20 ms, not the step's 0 J
        (None, 0.0, "simulated"),  # no power reading: the reading, its step shown by the book
        (EnergyReadError("power gone"), 0.0, "simulated"),  # a failed estimate keeps it
        (math.nan, 0.0, "simulated"),
        (-5.0, 0.0, "simulated"),
    ],
)
def test_a_window_shorter_than_the_step_is_estimated_from_power(
    power: object, joules: float, source: str
) -> None:
    ticks = iter([0.0, 0.02, 1.0, 1.5])
    tracker = EnergyTracker(CoarseMeter(0.0, 0.0, 0.0, 30.0, power=power), clock=ticks.__next__)
    with tracker.window() as short:
        pass
    with tracker.window() as long:  # half a second: five steps, read as they are
        pass
    assert short.valid and short.joules == pytest.approx(joules) and short.source == source
    assert short.is_estimate == (source == "nvml-power-estimate")
    assert short.update_period_s == 0.1
    assert long.valid and long.joules == 30.0 and long.source == "simulated"
    assert not long.is_estimate


def test_a_meter_without_a_bound_is_held_to_the_default_bound() -> None:
    """Issue 22, item 7: a custom meter that declares no ``max_power_w`` jumps by 1e9 J in
    20 ms; the window is invalid and never booked, later windows are."""
    import optuna

    from optuna_sm2 import TrialEnergy

    ticks = iter([0.0, 0.02, 1.0, 2.0])
    meter = ScriptedMeter(0.0, 1e9, 1e9, 1e9 + 50.0)
    assert meter.max_power_w is None
    tracker = EnergyTracker(meter, clock=ticks.__next__)
    book = TrialEnergy(optuna.trial.FixedTrial({}), tracker)
    with book.window("train") as jump:
        pass
    assert not jump.valid and math.isnan(jump.joules)
    assert f"above the {DEFAULT_MAX_POWER_W:.6g} W simulated" in str(jump.invalid_reason)
    assert book.total_j is None and book.invalid_windows == 1  # never booked
    with book.window("train") as after:
        pass
    assert after.valid and book.total_j == 50.0


def test_exception_in_block_closes_the_window_and_propagates() -> None:
    tracker = EnergyTracker(SimulatedMeter())
    with pytest.raises(KeyError), tracker.window() as window:
        raise KeyError("boom")
    assert window.closed and window.valid


def test_read_failure_invalidates_every_open_window() -> None:
    meter = FlakyMeter(fail={3})
    tracker = EnergyTracker(meter)
    with tracker.window() as outer, tracker.window() as inner:  # reads 1, 2, 3 (fails), 4
        pass
    with tracker.window() as after:  # reads 5 and 6
        pass
    for window in (outer, inner):
        assert not window.valid and window.invalid_reason == "read 3 failed"
        assert math.isnan(window.joules) and math.isnan(window.mean_power_w)
        assert window.seconds >= 0
    assert after.valid and after.joules == 1.0
    assert "invalid" in repr(inner)


def test_failure_at_the_opening_edge() -> None:
    tracker = EnergyTracker(FlakyMeter(fail={1}))
    with tracker.window() as window:
        pass
    assert not window.valid and window.invalid_reason == "read 1 failed"


def test_cuda_synchronized_at_both_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(_tracker, "_cuda_synchronize", lambda: calls.append(1))
    with EnergyTracker(SimulatedMeter()).window():
        assert len(calls) == 1
    assert len(calls) == 2
    with EnergyTracker(SimulatedMeter(), sync_cuda=False).window():
        pass
    assert len(calls) == 2


def test_cuda_synchronize_waits_on_every_initialized_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    cuda = types.SimpleNamespace(
        is_initialized=lambda: True, device_count=lambda: 2, synchronize=synced.append
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    _tracker._cuda_synchronize()
    assert synced == [0, 1]
    cuda.is_initialized = lambda: False  # CUDA never started: nothing queued, nothing started
    _tracker._cuda_synchronize()
    monkeypatch.delitem(sys.modules, "torch")
    _tracker._cuda_synchronize()
    assert synced == [0, 1]


def test_cpu_time_estimate_is_proportional_to_cpu_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpu = iter([10.0, 12.5, 17.5])
    monkeypatch.setattr(time, "process_time", lambda: next(cpu))
    meter = CpuTimeMeter(watts_per_core=8.0)
    assert meter.read() == pytest.approx(20.0)
    assert meter.read() == pytest.approx(60.0)
    assert meter.source == "cpu-time-estimate" and meter.is_estimate


def test_cpu_time_estimate_on_real_work() -> None:
    tracker = EnergyTracker(CpuTimeMeter())
    cpu_start = time.process_time()
    with tracker.window() as busy:
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            pass
    cpu_seconds = time.process_time() - cpu_start
    with tracker.window() as idle:
        time.sleep(0.05)
    assert busy.is_estimate and busy.source == "cpu-time-estimate"
    assert 0.0 < busy.joules <= WATTS_PER_CORE * cpu_seconds
    assert busy.joules == pytest.approx(WATTS_PER_CORE * cpu_seconds, rel=0.2)
    assert idle.joules < 0.2 * busy.joules
    with pytest.raises(ValueError, match="watts_per_core"):
        CpuTimeMeter(0.0)


def test_sum_meter_labels_and_estimates() -> None:
    clock = Clock()
    total = SumMeter(SimulatedMeter(200.0, clock=clock), SimulatedMeter(50.0, clock=clock))
    clock.now = 2.0
    assert total.read() == 500.0 and total.source == "simulated+simulated"
    assert SumMeter(SimulatedMeter(), CpuTimeMeter()).is_estimate
    assert not total.is_estimate
    with pytest.raises(ValueError, match="at least one"):
        SumMeter()
    with pytest.raises(ValueError, match="EnergyMeter instances"):
        SumMeter(object())  # type: ignore[arg-type]


def test_tracker_rejects_what_is_not_a_meter() -> None:
    with pytest.raises(ValueError, match="EnergyMeter or None"):
        EnergyTracker("rapl")  # type: ignore[arg-type]


def test_meter_context_manager_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[bool] = []
    meter = SimulatedMeter()
    monkeypatch.setattr(meter, "close", lambda: closed.append(True))
    with meter as entered:
        assert entered is meter
    assert closed == [True]


@pytest.mark.parametrize(
    ("readings", "reason"),
    [
        ((10.0, 4.0), "the reading went backwards by 6 J (simulated)"),
        ((10.0, math.nan), "ScriptedMeter.read() returned nan joules"),
        ((math.inf, 10.0), "ScriptedMeter.read() returned inf joules"),
        ((10.0, -math.inf), "ScriptedMeter.read() returned -inf joules"),
        ((OSError(5, "Input/output error"), 1.0), "raised OSError: [Errno 5] Input/output"),
        ((1.0, ZeroDivisionError("bug")), "ScriptedMeter.read() raised ZeroDivisionError: bug"),
    ],
)
def test_impossible_or_failed_readings_are_never_booked(
    readings: tuple[object, object], reason: str
) -> None:
    tracker = EnergyTracker(ScriptedMeter(*readings, 20.0, 25.0))
    trained = []
    with tracker.window() as window:
        trained.append("epoch")  # the block runs whatever the meter does
    with tracker.window() as after:
        pass
    assert trained == ["epoch"]
    assert not window.valid and math.isnan(window.joules) and math.isnan(window.mean_power_w)
    assert reason in str(window.invalid_reason)
    assert after.valid and after.joules == 5.0


def test_power_above_the_meters_bound_is_invalid() -> None:
    tracker = EnergyTracker(ScriptedMeter(0.0, 30.0, 30.0, 45.0, bound=100.0))
    with tracker.window() as impossible:  # 30 J in ~0 s: more than 100 W x 0.1 s of slack
        pass
    with tracker.window() as window:
        time.sleep(0.06)  # 15 J in 0.06 s + 0.1 s of slack: within 100 W
    assert not impossible.valid
    assert "30 J in" in str(impossible.invalid_reason)
    assert "above the 100 W simulated can plausibly draw" in str(impossible.invalid_reason)
    assert window.valid and window.joules == 15.0


def test_a_meter_returning_non_numbers_is_named_at_the_first_read() -> None:
    for bad in ("12.5", None, True, [1.0]):
        tracker = EnergyTracker(ScriptedMeter(bad, 1.0))
        entered = []
        match = r"ScriptedMeter\.read\(\) must return a number"
        with pytest.raises(ValueError, match=match), tracker.window():
            entered.append(True)
        assert entered == []  # nothing ran, nothing measured


def test_numpy_readings_are_numbers() -> None:
    np = pytest.importorskip("numpy")
    tracker = EnergyTracker(ScriptedMeter(np.float32(1.5), np.int64(4)))
    with tracker.window() as window:
        pass
    assert window.valid and window.joules == 2.5 and type(window.joules) is float


def test_a_bad_power_bound_is_refused() -> None:
    for bad in (0.0, -5.0, math.inf, math.nan):
        with pytest.raises(ValueError, match=r"ScriptedMeter\.max_power_w must be"):
            EnergyTracker(ScriptedMeter(bound=bad))


def test_a_bad_update_period_is_refused() -> None:
    class BadPeriod(ScriptedMeter):
        period: object = None

        @property
        def update_period_s(self) -> float:
            return self.period  # type: ignore[return-value]

    for bad in (-0.1, math.inf, math.nan, "0.1", None):
        meter = BadPeriod()
        meter.period = bad
        with pytest.raises(ValueError, match=r"BadPeriod\.update_period_s must be"):
            EnergyTracker(meter)
    with pytest.raises(ValueError, match="`clock` must be"):
        EnergyTracker(ScriptedMeter(), clock="now")  # type: ignore[arg-type]


def test_power_bounds_of_the_meters() -> None:
    assert SimulatedMeter().max_power_w is None  # nothing physical: no bound
    cpu = CpuTimeMeter(watts_per_core=5.0)
    assert cpu.max_power_w == 5.0 * (os.cpu_count() or 1)
    assert SumMeter(cpu, ScriptedMeter(bound=100.0)).max_power_w == cpu.max_power_w + 100.0
    assert SumMeter(cpu, SimulatedMeter()).max_power_w is None
