"""``RaplMeter``: CPU package and DRAM energy from Linux powercap (Intel RAPL, AMD too)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from optuna_sm2._validation import check_callable
from optuna_sm2.energy._meter import (
    EDGE_SLACK_S,
    EnergyMeter,
    EnergyMeterUnavailable,
    EnergyReadError,
)

RAPL_ZONE_POWER_CAP_W = 1000.0
"""Watts one RAPL zone (a CPU package, or its DRAM) is taken to draw at most: twice the rated
power of the largest server CPUs (500 W)."""

_ZONE_DIR = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")

_PERMISSION_FIX = (
    "since Linux 5.10 (CVE-2020-8694, 'Platypus') energy_uj is readable by root only; run as "
    "root, or let this user read it: sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*/intel-rapl:*/energy_uj (a udev rule makes it last)"
)


def _read(path: Path) -> str:
    """The stripped content of a sysfs file (the one place this module touches the files)."""
    with open(path) as f:
        return f.read().strip()


def _zone_dirs(root: Path) -> list[Path]:
    """Every ``intel-rapl:N`` and ``intel-rapl:N:M`` zone, found at the top of ``root`` (where
    sysfs links them all) or nested in their parent zone, each once, in numeric order."""
    found: dict[tuple[int, int], Path] = {}
    for top in root.glob("intel-rapl:*"):
        for path in (top, *top.glob("intel-rapl:*")):
            match = _ZONE_DIR.match(path.name)
            if match is not None:
                key = (int(match.group(1)), -1 if match.group(2) is None else int(match.group(2)))
                found.setdefault(key, path)
    return [found[key] for key in sorted(found)]


def _is_counted(path: Path, name: str) -> bool:
    """Package zones and DRAM zones; never core/uncore (inside their package) nor psys (the
    platform zone, which contains the packages)."""
    is_top = path.name.count(":") == 1
    return (is_top and name.startswith("package")) or name == "dram"


class RaplMeter(EnergyMeter):
    """CPU energy from the RAPL counters of Linux powercap (``/sys/class/powercap``).

    Counted: every top-level ``package-N`` zone and every ``dram`` zone. Their sub-zones
    (``core``, ``uncore``) are parts of the package and would be counted twice; the ``psys``
    zone of some laptops covers the whole platform, packages included, and is left out for the
    same reason. Each ``energy_uj`` counter wraps to 0 after ``max_energy_range_uj``; a read
    that finds a counter lower than before adds the range, but only when the energy that makes
    is plausible: at most :data:`RAPL_ZONE_POWER_CAP_W` over the seconds since the previous read
    (plus :data:`~optuna_sm2.energy.EDGE_SLACK_S`). Otherwise the counter was reset (firmware,
    suspend, a module reload): the read raises :class:`EnergyReadError`, the window is not
    counted, and counting restarts from the new value. Only one wrap between two reads can be
    seen: at 100 W a typical 262 kJ range lasts about 40 minutes, so keep windows shorter than
    that (one epoch per window is the intended use). :attr:`max_power_w` is the cap times the
    zones counted.

    RAPL measures whole packages: other processes on the same CPU are counted too. On Linux 5.10
    and later ``energy_uj`` is readable by root only (CVE-2020-8694); the error says how to
    allow it.

    Args:
        root: The powercap directory; injectable for tests.
        clock: Seconds on a monotonic clock, to tell a wrap from a reset; injectable for tests.

    Raises:
        EnergyMeterUnavailable: No readable package or DRAM zone under ``root``.

    Example:
        .. code-block:: python

            from optuna_sm2.energy import EnergyMeterUnavailable, RaplMeter

            try:
                with RaplMeter() as meter:
                    print(meter.zones, meter.read())
            except EnergyMeterUnavailable as exc:
                print("no RAPL here:", exc)
    """

    def __init__(
        self,
        root: str | Path = "/sys/class/powercap",
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)) or not str(root):
            raise ValueError(f"`root` must be a folder path (str or Path), got {root!r}.")
        check_callable("clock", clock, "clock() -> seconds")
        root = Path(root)
        if not root.is_dir():
            raise EnergyMeterUnavailable(
                f"{root} does not exist: this kernel exposes no powercap RAPL zones "
                "(Linux with intel_rapl_common; in a container, /sys/class/powercap must be "
                "mounted)"
            )
        self._paths: list[Path] = []
        self._ranges: list[int] = []
        self._last: list[int] = []
        self._clock = clock
        self._last_s: list[float] = []
        names: list[str] = []
        for zone in _zone_dirs(root):
            name = self._read_file(zone / "name")
            if not _is_counted(zone, name):
                continue
            self._ranges.append(int(self._read_file(zone / "max_energy_range_uj")))
            self._paths.append(zone / "energy_uj")
            self._last.append(int(self._read_file(zone / "energy_uj")))
            self._last_s.append(clock())
            names.append(f"{zone.name} ({name})")
        if not self._paths:
            raise EnergyMeterUnavailable(f"no RAPL package or dram zone under {root}")
        self.zones: tuple[str, ...] = tuple(names)
        """The zones counted, e.g. ``("intel-rapl:0 (package-0)", "intel-rapl:0:2 (dram)")``."""
        self._total_uj = 0

    @staticmethod
    def _read_file(path: Path) -> str:
        try:
            text = _read(path)
        except PermissionError:
            raise EnergyMeterUnavailable(f"cannot read {path}: {_PERMISSION_FIX}") from None
        except OSError as exc:
            raise EnergyMeterUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None
        if path.name != "name" and not text.isdigit():
            raise EnergyMeterUnavailable(f"{path} holds {text!r}, not a count of microjoules")
        return text

    @property
    def source(self) -> str:
        return "rapl"

    @property
    def max_power_w(self) -> float:
        return RAPL_ZONE_POWER_CAP_W * len(self._paths)

    def read(self) -> float:
        resets: list[str] = []
        for i, path in enumerate(self._paths):
            try:
                now = int(_read(path))
            except (OSError, ValueError) as exc:
                raise EnergyReadError(f"RAPL: cannot read {path}: {exc}") from exc
            now_s = self._clock()
            delta = now - self._last[i]
            if delta < 0:  # wrapped past max_energy_range_uj, or reset
                delta += self._ranges[i]
                seconds = now_s - self._last_s[i]
                if delta > RAPL_ZONE_POWER_CAP_W * 1e6 * (seconds + EDGE_SLACK_S):
                    resets.append(
                        f"{self.zones[i]} fell from {self._last[i]} to {now} µJ in "
                        f"{seconds:.3g} s, and a wraparound would mean "
                        f"{delta / 1e6 / (seconds + EDGE_SLACK_S):.6g} W"
                    )
                    delta = 0
            self._total_uj += delta
            self._last[i], self._last_s[i] = now, now_s
        if resets:
            raise EnergyReadError(
                f"RAPL counter reset ({'; '.join(resets)}, above the "
                f"{RAPL_ZONE_POWER_CAP_W:g} W a zone can draw): firmware, suspend or a module "
                "reload; the energy since the previous read is unknown"
            )
        return self._total_uj / 1e6
