from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from optuna_sm2.energy import (
    EnergyMeterUnavailable,
    EnergyReadError,
    EnergyTracker,
    RaplMeter,
    _rapl,
)
from optuna_sm2.testing.fake_powercap import MAX_RANGE_UJ, Zone, make_powercap, set_energy


def _laptop_and_server(root: Path, *, links: bool = True) -> Path:
    """Package 0 with core, uncore and dram; package 1 with dram; a psys platform zone."""
    return make_powercap(
        root,
        [
            Zone("package-0", 1_000, children=[Zone("core", 10), Zone("uncore"), Zone("dram")]),
            Zone("package-1", 5_000, children=[Zone("dram", 7)]),
            Zone("psys", 50_000),
        ],
        links=links,
    )


@pytest.mark.parametrize("links", [True, False])
def test_counts_packages_and_dram_but_not_their_parts(tmp_path: Path, links: bool) -> None:
    root = _laptop_and_server(tmp_path, links=links)
    meter = RaplMeter(root)
    assert meter.source == "rapl" and not meter.is_estimate
    assert meter.zones == (
        "intel-rapl:0 (package-0)",
        "intel-rapl:0:2 (dram)",
        "intel-rapl:1 (package-1)",
        "intel-rapl:1:0 (dram)",
    )
    assert meter.read() == 0.0
    set_energy(root, "intel-rapl:0", 1_000 + 3_000_000)  # 3 J
    set_energy(root, "intel-rapl:0:0", 10 + 2_000_000)  # core: inside package-0
    set_energy(root, "intel-rapl:0:2", 500_000)  # 0.5 J of DRAM
    set_energy(root, "intel-rapl:1:0", 7 + 250_000)  # 0.25 J of DRAM
    set_energy(root, "intel-rapl:2", 50_000 + 9_000_000)  # psys: the whole platform
    assert meter.read() == pytest.approx(3.75)


def test_wraparound_at_max_energy_range(tmp_path: Path) -> None:
    root = make_powercap(tmp_path, [Zone("package-0", MAX_RANGE_UJ - 1_000_000)])
    meter = RaplMeter(root)
    set_energy(root, "intel-rapl:0", 2_000_000)  # 1 J to the top, wrapped, 2 J more
    assert meter.read() == pytest.approx(3.0)
    set_energy(root, "intel-rapl:0", 2_500_000)
    assert meter.read() == pytest.approx(3.5)


def test_unreadable_counter_names_the_cve_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tests run as root, to whom chmod 000 hides nothing: the reader is made to fail as
    # open() does for an unprivileged user since Linux 5.10.
    root = make_powercap(tmp_path, [Zone("package-0", 1)])
    real_read = _rapl._read

    def read(path: Path) -> str:
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path)

    monkeypatch.setattr(_rapl, "_read", read)
    with pytest.raises(EnergyMeterUnavailable, match="CVE-2020-8694") as info:
        RaplMeter(root)
    assert "chmod o+r" in str(info.value) and "energy_uj" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file: nothing to test")
def test_unreadable_counter_with_real_permissions(tmp_path: Path) -> None:
    root = make_powercap(tmp_path, [Zone("package-0", 1)])
    (root / "intel-rapl:0" / "energy_uj").chmod(0)
    with pytest.raises(EnergyMeterUnavailable, match="CVE-2020-8694"):
        RaplMeter(root)


def test_no_powercap_no_zone_or_garbage_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EnergyMeterUnavailable, match="does not exist"):
        RaplMeter(tmp_path / "absent")
    psys_only = make_powercap(tmp_path / "psys", [Zone("psys", 1)])
    with pytest.raises(EnergyMeterUnavailable, match="no RAPL package or dram zone"):
        RaplMeter(psys_only)
    garbage = make_powercap(tmp_path / "garbage", [Zone("package-0")])
    (garbage / "intel-rapl:0" / "energy_uj").write_text("n/a\n")
    with pytest.raises(EnergyMeterUnavailable, match="not a count of microjoules"):
        RaplMeter(garbage)


def test_counter_vanishing_mid_run_is_a_read_error(tmp_path: Path) -> None:
    root = make_powercap(tmp_path, [Zone("package-0", 1)])
    meter = RaplMeter(root)
    (root / "intel-rapl:0" / "energy_uj").unlink()
    with pytest.raises(EnergyReadError, match="energy_uj"):
        meter.read()


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_reset_is_not_booked_as_a_wraparound(tmp_path: Path) -> None:
    """The counter drops near 0 (firmware, suspend, module reload) during a short epoch:
    taken as a wrap it would be 262 kJ; the window is invalid and counting restarts."""
    clock = _Clock()
    root = make_powercap(tmp_path, [Zone("package-0", 1_000_000)])
    tracker = EnergyTracker(RaplMeter(root, clock=clock))
    with tracker.window() as epoch:
        clock.now += 0.5
        set_energy(root, "intel-rapl:0", 12_000)
    with tracker.window() as after:
        clock.now += 0.5
        set_energy(root, "intel-rapl:0", 20_012_000)  # 20 J in 0.5 s
    assert not epoch.valid and math.isnan(epoch.joules)
    reason = str(epoch.invalid_reason)
    assert "RAPL counter reset" in reason and "from 1000000 to 12000 µJ in 0.5 s" in reason
    assert after.valid and after.joules == pytest.approx(20.0)


def test_a_long_wraparound_at_plausible_power_is_booked(tmp_path: Path) -> None:
    clock = _Clock()
    root = make_powercap(tmp_path, [Zone("package-0", 200_000_000_000)])
    meter = RaplMeter(root, clock=clock)
    clock.now += 1_000.0  # 1000 s at about 80 W: past the top of the range
    set_energy(root, "intel-rapl:0", 200_000_000_000 + 80_000_000_000 - MAX_RANGE_UJ)
    assert meter.read() == pytest.approx(80_000.0)
    assert meter.max_power_w == _rapl.RAPL_ZONE_POWER_CAP_W


def test_a_jump_above_the_zones_power_is_invalid(tmp_path: Path) -> None:
    clock = _Clock()
    root = make_powercap(tmp_path, [Zone("package-0", 5, children=[Zone("dram", 5)])])
    tracker = EnergyTracker(RaplMeter(root, clock=clock))
    with tracker.window() as window:
        set_energy(root, "intel-rapl:0", 5 + 10_000_000_000)  # 10 kJ with no time elapsed
    assert not window.valid
    assert "above the 2000 W rapl can plausibly draw" in str(window.invalid_reason)
