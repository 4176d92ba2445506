from __future__ import annotations

import functools
import logging
import sys
import types
from pathlib import Path

import pytest

from optuna_sm2 import EnergyTracker, auto_meter
from optuna_sm2.energy import (
    SOURCES,
    CpuTimeMeter,
    EnergyMeterUnavailable,
    NvmlMeter,
    RaplMeter,
    SimulatedMeter,
    SourceProbe,
    SumMeter,
    ZeusMeter,
    _auto,
    _nvml,
    probe_meters,
)
from optuna_sm2.testing import fake_pynvml
from optuna_sm2.testing.fake_powercap import Zone, make_powercap
from optuna_sm2.testing.fake_pynvml import FakeGpu


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> types.SimpleNamespace:
    """A machine without NVIDIA driver, Zeus or RAPL, until a test adds them."""
    fake_pynvml.reset([], fail_init=fake_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.setitem(sys.modules, "zeus", None)  # import zeus raises ImportError
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(_nvml, "_torch_current_device", lambda: None)
    monkeypatch.setattr(_auto, "_logged", set())
    monkeypatch.setattr(_auto, "RaplMeter", functools.partial(RaplMeter, tmp_path / "none"))

    def add_gpu(**kwargs: object) -> None:
        fake_pynvml.reset([FakeGpu("GPU-aaaa", **kwargs)])  # type: ignore[arg-type]

    def add_rapl() -> None:
        root = make_powercap(tmp_path / "powercap", [Zone("package-0", 5)])
        monkeypatch.setattr(_auto, "RaplMeter", functools.partial(RaplMeter, root))

    return types.SimpleNamespace(add_gpu=add_gpu, add_rapl=add_rapl)


def _by_source(meter_probes: tuple[SourceProbe, ...]) -> dict[str, SourceProbe]:
    return {probe.source: probe for probe in meter_probes}


def test_nothing_measures_so_the_estimate_is_used(machine: types.SimpleNamespace) -> None:
    meter = auto_meter()
    assert meter.source == "cpu-time-estimate" and meter.is_estimate
    assert list(meter.skipped) == ["nvml-counter", "nvml-power", "zeus", "rapl"]
    assert "NVML Shared Library Not Found" in meter.skipped["nvml-counter"]
    assert "pip install 'optuna-sm2[zeus]'" in meter.skipped["zeus"]
    assert "does not exist" in meter.skipped["rapl"]
    assert [p.source for p in meter.probes] == [
        "nvml-counter",
        "nvml-power",
        "zeus",
        "rapl",
        "cpu-time-estimate",
    ]


def test_gpu_counter_and_rapl_are_summed(machine: types.SimpleNamespace) -> None:
    machine.add_gpu()
    machine.add_rapl()
    with auto_meter() as meter:
        assert isinstance(meter, SumMeter)
        assert meter.source == "nvml-counter+rapl" and not meter.is_estimate
        assert "RAPL measures the CPU" in meter.skipped["cpu-time-estimate"]
        assert "energy counter is used" in meter.skipped["nvml-power"]
        assert "not tried" in meter.skipped["zeus"] or "not installed" in meter.skipped["zeus"]
    assert fake_pynvml.init_count == 0


def test_old_gpu_alone_is_not_mixed_with_the_estimate(machine: types.SimpleNamespace) -> None:
    machine.add_gpu(energy_mj=None)
    with auto_meter() as meter:
        assert meter.source == "nvml-power" and not meter.is_estimate
        assert "Volta" in meter.skipped["nvml-counter"]
        assert "would turn a measurement into an estimate" in meter.skipped["cpu-time-estimate"]


def test_rapl_alone(machine: types.SimpleNamespace) -> None:
    machine.add_rapl()
    with auto_meter() as meter:
        assert meter.source == "rapl"
    probes = _by_source(probe_meters())
    assert probes["rapl"].used and "package-0" in probes["rapl"].reason
    assert not probes["cpu-time-estimate"].used and probes["cpu-time-estimate"].available


def test_probe_meters_closes_what_it_opens(machine: types.SimpleNamespace) -> None:
    machine.add_gpu()
    probes = _by_source(probe_meters())
    assert probes["nvml-counter"].used and "GPU-aaaa" in probes["nvml-counter"].reason
    assert fake_pynvml.init_count == 0


def test_choice_is_logged_once(
    machine: types.SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="optuna_sm2.energy"):
        auto_meter()
        auto_meter()
        EnergyTracker()
    records = [r for r in caplog.records if r.name == "optuna_sm2.energy"]
    assert len(records) == 1
    assert "energy source: cpu-time-estimate" in records[0].getMessage()
    assert "rapl (" in records[0].getMessage()


class _Measurement:
    def __init__(self, gpu: float, cpu: float) -> None:
        self.gpu_energy = {0: gpu}
        self.cpu_energy = {0: cpu}
        self.dram_energy = None
        self.soc_energy = types.SimpleNamespace(
            cpu_total_mj=1000, gpu_mj=500, gpu_sram_mj=None, dram_mj=None, ane_mj=0
        )


class _ZeusMonitor:
    """Zeus's ZeusMonitor as far as ZeusMeter uses it: begin_window / end_window."""

    def __init__(self, gpu_indices: list[int] | None) -> None:
        self.gpu_indices = [0] if gpu_indices is None else gpu_indices
        self.cpu_indices = [0]
        self.soc_is_present = True
        self.open: set[str] = set()

    def begin_window(self, key: str, sync_execution: bool = True) -> None:
        assert key not in self.open
        self.open.add(key)

    def end_window(
        self, key: str, sync_execution: bool = True, cancel: bool = False
    ) -> _Measurement:
        self.open.remove(key)
        return _Measurement(gpu=10.0, cpu=2.0)


def test_zeus_meter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zeus", None)
    with pytest.raises(EnergyMeterUnavailable, match=r"pip install 'optuna-sm2\[zeus\]'"):
        ZeusMeter()
    zeus = types.ModuleType("zeus")
    monitor_module = types.ModuleType("zeus.monitor")
    monitor_module.ZeusMonitor = _ZeusMonitor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zeus", zeus)
    monkeypatch.setitem(sys.modules, "zeus.monitor", monitor_module)
    with ZeusMeter() as meter:
        assert meter.source == "zeus" and not meter.is_estimate
        assert meter.read() == pytest.approx(13.5)  # 10 J GPU + 2 J CPU + 1.5 J SoC
        assert meter.read() == pytest.approx(27.0)
    assert meter._monitor.open == set()


def test_sources_is_the_one_list_of_labels(
    machine: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every probe, every meter and every estimated window carries a label of SOURCES, probed
    in its order."""
    windows_only = ("simulated", "nvml-power-estimate")
    assert [p.source for p in probe_meters()] == [s for s in SOURCES if s not in windows_only]
    machine.add_gpu()
    machine.add_rapl()
    labels = {SimulatedMeter().source, CpuTimeMeter().source}
    with NvmlMeter() as counter, NvmlMeter(method="power") as sampled:
        labels |= {counter.source, sampled.source, counter.estimate_source}
    with RaplMeter(make_powercap(tmp_path / "rapl", [Zone("package-0", 1)])) as rapl:
        labels.add(rapl.source)
    with auto_meter() as meter:
        assert set(meter.source.split("+")) <= set(SOURCES)
    zeus = types.ModuleType("zeus")
    monitor_module = types.ModuleType("zeus.monitor")
    monitor_module.ZeusMonitor = _ZeusMonitor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zeus", zeus)
    monkeypatch.setitem(sys.modules, "zeus.monitor", monitor_module)
    with ZeusMeter() as zeus_meter:
        labels.add(zeus_meter.source)
    assert labels == set(SOURCES)
