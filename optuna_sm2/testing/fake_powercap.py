"""A fake ``/sys/class/powercap`` tree, laid out as Linux's powercap framework does.

As in ``Documentation/power/powercap/powercap.rst``: each zone is a directory
``intel-rapl:N`` (package N) holding ``name``, ``energy_uj`` and ``max_energy_range_uj``, with its
sub-zones nested inside as ``intel-rapl:N:M`` (``core``, ``uncore``, ``dram``); the class
directory links every zone, sub-zones included, at its top, next to the ``intel-rapl`` control
type. ``links=False`` leaves only the nested directories.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

MAX_RANGE_UJ = 262_143_328_850  # a common package range (a 32-bit counter of 61 µJ units)


@dataclasses.dataclass
class Zone:
    name: str
    energy_uj: int = 0
    max_energy_range_uj: int = MAX_RANGE_UJ
    children: list[Zone] = dataclasses.field(default_factory=list)


def make_powercap(root: Path, packages: list[Zone], *, links: bool = True) -> Path:
    """Write the zones under ``root`` (``packages[i]`` is ``intel-rapl:i``); return ``root``."""
    devices = root / "devices" / "intel-rapl"
    devices.mkdir(parents=True)
    (devices / "enabled").write_text("1\n")
    if links:
        (root / "intel-rapl").symlink_to(devices)
    for i, package in enumerate(packages):
        zone_dir = _write_zone(devices / f"intel-rapl:{i}", package)
        if links:
            (root / zone_dir.name).symlink_to(zone_dir)
        for j, child in enumerate(package.children):
            child_dir = _write_zone(zone_dir / f"intel-rapl:{i}:{j}", child)
            if links:
                (root / child_dir.name).symlink_to(child_dir)
    if not links:  # the nested directories alone, at the top of the class directory
        for zone_dir in sorted(devices.glob("intel-rapl:*")):
            zone_dir.rename(root / zone_dir.name)
    return root


def _write_zone(path: Path, zone: Zone) -> Path:
    path.mkdir()
    (path / "name").write_text(zone.name + "\n")
    (path / "energy_uj").write_text(f"{zone.energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{zone.max_energy_range_uj}\n")
    return path


def set_energy(root: Path, zone: str, energy_uj: int) -> None:
    """Set the counter of zone ``intel-rapl:N`` or ``intel-rapl:N:M``."""
    path = root / zone
    if not path.exists():  # a sub-zone of a tree without top-level links
        path = root / zone.rsplit(":", 1)[0] / zone
    (path / "energy_uj").write_text(f"{energy_uj}\n")
