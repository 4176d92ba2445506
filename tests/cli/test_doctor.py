from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

from optuna_sm2.cli import main
from optuna_sm2.energy import RaplMeter, _auto, _nvml
from optuna_sm2.testing import fake_pynvml
from optuna_sm2.testing.fake_powercap import Zone, make_powercap
from optuna_sm2.testing.fake_pynvml import FakeGpu


@pytest.fixture
def gpu_and_rapl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_pynvml.reset([FakeGpu("GPU-aaaa")])
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.setitem(sys.modules, "zeus", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(_nvml, "_torch_current_device", lambda: None)
    root = make_powercap(tmp_path, [Zone("package-0", 5)])
    monkeypatch.setattr(_auto, "RaplMeter", functools.partial(RaplMeter, root))


def test_doctor_lists_sources_and_takes_two_readings(
    gpu_and_rapl: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--seconds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "nvml-counter       USED" in out and "GPU-aaaa" in out
    assert "rapl               USED" in out
    assert "zeus               unavailable Zeus is not installed" in out
    assert "cpu-time-estimate  available   RAPL measures the CPU" in out
    assert "using: nvml-counter+rapl (measured)" in out
    assert "idle 0.05 s: 0.00 J" in out  # the fake counters stand still
    assert "busy 0.05 s (matrix products on cpu)" in out
    assert fake_pynvml.init_count == 0


def test_doctor_rejects_a_bad_duration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--seconds", "-1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "optuna-sm2 doctor: error: --seconds must be > 0, got -1.0"
    )
