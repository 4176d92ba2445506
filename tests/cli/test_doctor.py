from __future__ import annotations

import functools
import itertools
import subprocess
import sys
import types
from pathlib import Path

import pytest

from optuna_sm2.cli import _doctor, main
from optuna_sm2.energy import EnergyReadError, RaplMeter, _auto, _nvml, _resolution
from optuna_sm2.testing import fake_pynvml
from optuna_sm2.testing.fake_powercap import Zone, make_powercap
from optuna_sm2.testing.fake_pynvml import FakeGpu
from tests.support.meters import ScriptedMeter, SteppingMeter


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
    assert main(["doctor", "--seconds", "0.05", "--windows", "2"]) == 0
    out = capsys.readouterr().out
    assert "nvml-counter       USED" in out and "GPU-aaaa" in out
    assert "rapl               USED" in out
    assert "zeus               unavailable Zeus is not installed" in out
    assert "cpu-time-estimate  available   RAPL measures the CPU" in out
    assert "using: nvml-counter+rapl (measured)" in out
    # 2 x the fake GPU's 300 W power limit, plus 1000 W for the RAPL package zone
    assert "readings refused as impossible: negative, not finite, or above 1600 W" in out
    assert "idle 0.05 s: 0.00 J" in out  # the fake counters stand still
    assert "busy 0.05 s (matrix products on cpu)" in out
    assert (
        "repeatability, a 4,000,000-step loop in each of 2 windows: coefficient of variation "
        "cannot be computed, the windows measured 0 J (the source did not move)"
    ) in out
    assert fake_pynvml.init_count == 0


def test_doctor_prints_the_coefficient_of_variation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # idle and busy readings, then five windows of 10, 12, 8, 10 and 10 J
    readings = [0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 10.0, 22.0, 22.0, 30.0, 30.0, 40.0, 40.0, 50.0]
    monkeypatch.setattr(_doctor, "auto_meter", lambda: ScriptedMeter(*readings))
    monkeypatch.setattr(_doctor, "LOOP_STEPS", 10)
    assert main(["doctor", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "using: simulated (measured)" in out
    assert "readings refused as impossible: negative, not finite\n" in out  # no power bound
    assert (
        "repeatability, a 10-step loop in each of 5 windows: coefficient of variation 14.1 % "
        "(8 to 12 J, mean 10 J in "
    ) in out


def test_doctor_counts_invalid_windows_out_of_the_repeatability(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lost = EnergyReadError("GPU is lost")
    readings = [0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 10.0, lost, 20.0, 30.0, 30.0, 40.0]
    monkeypatch.setattr(_doctor, "auto_meter", lambda: ScriptedMeter(*readings))
    monkeypatch.setattr(_doctor, "LOOP_STEPS", 10)
    assert main(["doctor", "--seconds", "0.01", "--windows", "4"]) == 0
    out = capsys.readouterr().out
    assert "coefficient of variation 0.0 % (10 to 10 J" in out
    assert "; 1 invalid (GPU is lost)" in out


def test_doctor_never_imports_torch() -> None:
    code = (
        "import sys; from optuna_sm2.cli import main; "
        "main(['doctor', '--seconds', '0.01', '--windows', '2']); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False", done.stdout + done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seconds", "-1"], "--seconds must be > 0, got -1.0"),
        (["--seconds", "inf"], "--seconds must be > 0, got inf"),
        (["--windows", "1"], "--windows must be >= 2, got 1"),
    ],
)
def test_doctor_rejects_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"optuna-sm2 doctor: error: {message}"


def test_doctor_measures_how_often_the_reading_advances(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A clock that advances 1 ms per look, for the poll and the meter alike: the poll sees each
    # step when it comes, whatever the machine's load (on the real clock a descheduled poll saw
    # a 10 ms step late, 15.1 ms once).
    ticks = itertools.count()

    def clock() -> float:
        return next(ticks) * 0.001

    monkeypatch.setattr(_resolution, "time", types.SimpleNamespace(perf_counter=clock))
    monkeypatch.setattr(
        _doctor, "auto_meter", lambda: SteppingMeter(clock, power_w=50.0, period=0.01)
    )
    monkeypatch.setattr(_doctor, "LOOP_STEPS", 10)
    assert main(["doctor", "--seconds", "0.3", "--windows", "2"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("resolution"))
    period_ms = float(line.split("about every ")[1].split(" ms")[0])
    assert 8.0 <= period_ms <= 15.0, line
    assert "0.5 J a step" in line
