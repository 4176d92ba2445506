from __future__ import annotations

import math
import sys
import time
import types
from collections.abc import Iterator

import pytest

from optuna_sm2.energy import (
    EnergyMeterUnavailable,
    EnergyReadError,
    EnergyTracker,
    NvmlMeter,
    _nvml,
)
from optuna_sm2.energy._nvml import parse_visible_devices
from optuna_sm2.testing import fake_pynvml
from optuna_sm2.testing.fake_pynvml import FakeGpu

UUIDS = ["GPU-aaaaaaaa-0000", "GPU-bbbbbbbb-1111", "GPU-cccccccc-2222"]

BY_HAND = 1e-9
"""A ``counter_period_s`` for the counters these tests move by hand between reads: every
window is longer than its step, so the tracker books the counter's reading, never an estimate
from power (that is tested with the stepping counter in ``test_resolution.py``)."""


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeGpu]]:
    """Three Volta-or-newer GPUs behind the fake pynvml; no CUDA_VISIBLE_DEVICES, no torch
    CUDA. Checks that every meter shut NVML down again."""
    gpus = [FakeGpu(uuid) for uuid in UUIDS]
    fake_pynvml.reset(gpus)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(_nvml, "_torch_current_device", lambda: None)
    yield gpus
    assert fake_pynvml.init_count == 0, "a meter left NVML initialized"


def test_counter_reads_millijoules_as_joules(nvml: list[FakeGpu]) -> None:
    with NvmlMeter([0]) as meter:
        assert meter.source == "nvml-counter" and not meter.is_estimate
        assert meter.devices == (UUIDS[0],) and meter.counter_missing == ()
        assert meter.read() == 0.0
        nvml[0].energy_mj += 12_345
        nvml[1].energy_mj += 99_999  # another GPU: not ours
        assert meter.read() == pytest.approx(12.345)
        assert nvml[0].power_reads == 0  # the counter needs no sampling


def test_power_sampling_integrates_on_pre_volta(nvml: list[FakeGpu]) -> None:
    nvml[1].energy_mj = None
    nvml[1].power_mw = 150_000
    start = time.perf_counter()
    with NvmlMeter([1], sample_interval_s=0.005) as meter:
        assert meter.source == "nvml-power" and meter.counter_missing == (UUIDS[1],)
        time.sleep(0.2)
        joules = meter.read()
        elapsed = time.perf_counter() - start
    assert nvml[1].power_reads > 10  # the thread sampled in between
    assert 150.0 * 0.2 <= joules <= 150.0 * elapsed


def test_power_sampling_integrates_changing_power(nvml: list[FakeGpu]) -> None:
    nvml[0].energy_mj = None
    nvml[0].power_mw = 100_000
    with NvmlMeter([0], sample_interval_s=0.002) as meter:
        time.sleep(0.1)
        first = meter.read()
        nvml[0].power_mw = 300_000
        time.sleep(0.1)
        second = meter.read() - first
    # Trapezoids: the step costs at most one sampling period at the mean of the two powers.
    assert second == pytest.approx(300.0 * 0.1, rel=0.25)
    assert second > 2.0 * first


def test_mixed_gpus_sample_only_those_without_counter(nvml: list[FakeGpu]) -> None:
    nvml[2].energy_mj = None
    with NvmlMeter([0, 2]) as meter:
        assert meter.source == "nvml-power" and meter.counter_missing == (UUIDS[2],)


def test_method_forces_counter_or_power(nvml: list[FakeGpu]) -> None:
    with NvmlMeter([0], method="power") as meter:
        assert meter.source == "nvml-power" and meter.counter_missing == ()
    nvml[1].energy_mj = None
    with pytest.raises(EnergyMeterUnavailable, match="no energy counter"):
        NvmlMeter([1], method="counter")
    with pytest.raises(ValueError, match="`method` must be one of"):
        NvmlMeter([0], method="sampling")  # type: ignore[arg-type]


def test_counter_error_mid_run_invalidates_windows_not_training(nvml: list[FakeGpu]) -> None:
    tracker = EnergyTracker(NvmlMeter([0], counter_period_s=BY_HAND))
    with tracker.window() as outer:
        with tracker.window() as inner:
            nvml[0].error = fake_pynvml.NVML_ERROR_GPU_IS_LOST
        nvml[0].error = None
        nvml[0].energy_mj += 2_000
    with tracker.window() as after:
        nvml[0].energy_mj += 1_000
    tracker.meter.close()
    for window in (inner, outer):
        reason = str(window.invalid_reason)
        assert not window.valid and "GPU is lost" in reason and UUIDS[0] in reason
    assert after.valid and after.joules == pytest.approx(1.0)


def test_power_sample_error_is_reported_once(nvml: list[FakeGpu]) -> None:
    nvml[0].energy_mj = None
    with NvmlMeter([0], sample_interval_s=0.002) as meter:
        nvml[0].error = fake_pynvml.NVML_ERROR_UNKNOWN
        time.sleep(0.02)
        nvml[0].error = None
        with pytest.raises(EnergyReadError, match="Unknown Error"):
            meter.read()
        before = meter.read()
        time.sleep(0.02)
        assert meter.read() > before


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        ("1", [UUIDS[1]]),
        ("2,0", [UUIDS[2], UUIDS[0]]),
        (f"{UUIDS[2]},{UUIDS[1]}", [UUIDS[2], UUIDS[1]]),
        ("0,-1,2", [UUIDS[0]]),  # CUDA stops at the first invalid entry
    ],
)
def test_cuda_visible_devices_selects_the_gpus(
    nvml: list[FakeGpu], monkeypatch: pytest.MonkeyPatch, visible: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with NvmlMeter() as meter:
        assert list(meter.devices) == expected


def test_torch_current_device_then_every_gpu(
    nvml: list[FakeGpu], monkeypatch: pytest.MonkeyPatch
) -> None:
    with NvmlMeter() as meter:  # torch without CUDA: every GPU NVML sees
        assert meter.devices == tuple(UUIDS)
    monkeypatch.setattr(_nvml, "_torch_current_device", lambda: 2)
    with NvmlMeter() as meter:
        assert meter.devices == (UUIDS[2],)


def test_mig_is_refused(nvml: list[FakeGpu], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-4f1c2b3a-aaaa")
    with pytest.raises(EnergyMeterUnavailable, match="MIG"):
        NvmlMeter()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    nvml[1].mig_mode = fake_pynvml.NVML_DEVICE_MIG_ENABLE
    with pytest.raises(EnergyMeterUnavailable, match=f"GPU {UUIDS[1]} is a MIG device"):
        NvmlMeter([1])
    nvml[1].mig_mode = fake_pynvml.NVML_DEVICE_MIG_DISABLE
    nvml[2].is_mig_instance = True
    with pytest.raises(EnergyMeterUnavailable, match="whole physical GPU"):
        NvmlMeter([UUIDS[2]])
    NvmlMeter([1]).close()


def test_bad_selection_is_one_clear_error(
    nvml: list[FakeGpu], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match=r"NVML index .* or a GPU UUID"):
        NvmlMeter(["cuda:0"])
    with pytest.raises(ValueError, match="NVML index"):
        NvmlMeter([-1])
    with pytest.raises(EnergyMeterUnavailable, match="sees 3 GPU"):
        NvmlMeter([7])
    with pytest.raises(EnergyMeterUnavailable, match="Not Found"):
        NvmlMeter(["GPU-ffffffff"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(EnergyMeterUnavailable, match="hides every GPU"):
        NvmlMeter()
    with pytest.raises(ValueError, match="sample_interval_s"):
        NvmlMeter([0], sample_interval_s=0.0)


def test_no_driver_is_unavailable(nvml: list[FakeGpu]) -> None:
    fake_pynvml.reset(nvml, fail_init=fake_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    with pytest.raises(EnergyMeterUnavailable, match="NVML Shared Library Not Found"):
        NvmlMeter()
    fake_pynvml.reset([])
    with pytest.raises(EnergyMeterUnavailable, match="NVML sees no GPU"):
        NvmlMeter()


def test_parse_visible_devices() -> None:
    assert parse_visible_devices(" 3 , GPU-x ") == [3, "GPU-x"]
    assert parse_visible_devices("") == []
    with pytest.raises(EnergyMeterUnavailable, match="MIG"):
        parse_visible_devices("MIG-GPU-x/1/0")


def test_counter_going_backwards_is_never_booked(nvml: list[FakeGpu]) -> None:
    tracker = EnergyTracker(NvmlMeter([0, 1], counter_period_s=BY_HAND))
    with tracker.window() as before:
        nvml[0].energy_mj += 4_000
    with tracker.window() as across:
        nvml[0].energy_mj += 1_000
        nvml[1].energy_mj = 5_000  # GPU 1's driver reloaded: its counter starts over
    with tracker.window() as after:
        nvml[1].energy_mj += 3_000
        nvml[0].energy_mj += 500
    tracker.meter.close()
    assert before.valid and before.joules == pytest.approx(4.0)
    assert not across.valid and math.isnan(across.joules)
    reason = str(across.invalid_reason)
    assert "went backwards" in reason and f"GPU {UUIDS[1]} from 1000000 to 5000 mJ" in reason
    assert after.valid and after.joules == pytest.approx(3.5)  # counting restarted from 5000


def test_power_bound_is_twice_the_enforced_limit(nvml: list[FakeGpu]) -> None:
    nvml[0].enforced_power_limit_mw = 250_000
    nvml[1].enforced_power_limit_mw = None  # falls back to the management limit: 300 W
    nvml[2].enforced_power_limit_mw = nvml[2].power_limit_mw = None  # no limit: the cap
    with NvmlMeter([0, 1, 2]) as meter:
        assert meter.power_limits_w == (250.0, 300.0, None)
        assert meter.max_power_w == pytest.approx(2 * 250 + 2 * 300 + _nvml.GPU_POWER_CAP_W)
    with NvmlMeter([0], counter_period_s=BY_HAND) as meter:
        tracker = EnergyTracker(meter)
        with tracker.window() as plausible:
            nvml[0].energy_mj += 20_000  # 20 J: within 500 W x (t + 0.1 s)
        with tracker.window() as impossible:
            nvml[0].energy_mj += 262_155_000  # 262 kJ in a moment: megawatts
        with tracker.window() as after:
            nvml[0].energy_mj += 1_000
    assert plausible.valid and plausible.joules == pytest.approx(20.0)
    assert not impossible.valid and math.isnan(impossible.joules)
    assert "above the 500 W nvml-counter can plausibly draw" in str(impossible.invalid_reason)
    assert after.valid and after.joules == pytest.approx(1.0)


def test_torch_is_consulted_only_when_already_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert _nvml._torch_current_device() is None
    assert "torch" not in sys.modules  # the meter never imports torch
    cuda = types.SimpleNamespace(
        is_available=lambda: True, is_initialized=lambda: False, current_device=lambda: 3
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert _nvml._torch_current_device() == 0  # torch's default until CUDA starts
    cuda.is_initialized = lambda: True
    assert _nvml._torch_current_device() == 3
    cuda.is_available = lambda: False
    assert _nvml._torch_current_device() is None


def test_the_fake_counter_steps_like_the_real_one(nvml: list[FakeGpu]) -> None:
    """Millijoules published every 100 ms on the fake clock, power in milliwatts."""
    nvml[0].counter_period_s = 0.1
    nvml[0].power_mw = 570_000
    start = nvml[0].energy_mj
    fake_pynvml.advance(0.099)
    assert nvml[0].energy_mj == start  # drawn, not yet published
    fake_pynvml.advance(0.002)
    assert nvml[0].energy_mj == start + 57_000  # one step: 570 W x 100 ms
    fake_pynvml.advance(0.25)
    assert nvml[0].energy_mj == start + 3 * 57_000 and fake_pynvml.clock() == pytest.approx(0.351)
    assert nvml[0].drawn_mj == pytest.approx(570 * 351)
    assert nvml[1].energy_mj == start  # a GPU without a period moves only by hand


def test_windows_shorter_than_the_counter_step_are_estimated_from_power(
    nvml: list[FakeGpu],
) -> None:
    nvml[0].counter_period_s = 0.1
    nvml[0].power_mw = 570_000
    with NvmlMeter([0]) as meter:
        assert meter.update_period_s == _nvml.NVML_COUNTER_PERIOD_S == 0.1
        assert meter.instant_power_w() == 570.0
        tracker = EnergyTracker(meter, clock=fake_pynvml.clock)
        fake_pynvml.advance(0.07)
        with tracker.window() as across:  # 70 .. 120 ms: the counter reads one whole step
            fake_pynvml.advance(0.05)
        with tracker.window() as within:  # 120 .. 170 ms: the counter reads 0 J
            fake_pynvml.advance(0.05)
        with tracker.window() as long:  # 2 s: 20 steps, read from the counter
            fake_pynvml.advance(2.0)
    for window in (across, within):
        assert window.valid and window.joules == pytest.approx(570.0 * 0.05)
        assert window.source == "nvml-power-estimate" and window.is_estimate
    assert long.source == "nvml-counter" and not long.is_estimate
    assert abs(long.joules - 570.0 * 2.0) <= 57.0 and long.update_period_s == 0.1
    with NvmlMeter([0], method="power", sample_interval_s=10.0) as sampled:
        assert sampled.update_period_s == 0.0  # integrated up to each read: no step


def test_counter_period_is_validated(nvml: list[FakeGpu]) -> None:
    for bad in (0.0, -0.1, math.inf, "0.1"):
        with pytest.raises(ValueError, match="`counter_period_s` must be a finite number > 0"):
            NvmlMeter([0], counter_period_s=bad)  # type: ignore[arg-type]
    assert fake_pynvml.init_count == 0
