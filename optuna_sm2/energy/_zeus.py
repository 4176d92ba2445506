"""``ZeusMeter``: Zeus's ``ZeusMonitor`` (AMD GPUs, Apple Silicon, Jetson), when installed."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Sequence
from typing import Any

from optuna_sm2.energy._meter import EnergyMeter, EnergyMeterUnavailable, EnergyReadError

_WINDOW = "optuna-sm2"

# Disjoint parts of the SoC measurements Zeus reports (millijoules). Jetson's board total, when
# its sensor has that rail, already holds the CPU and GPU rails.
_APPLE_FIELDS = ("cpu_total_mj", "gpu_mj", "gpu_sram_mj", "dram_mj", "ane_mj")
_JETSON_PARTS = ("cpu_energy_mj", "gpu_energy_mj")


def _soc_joules(measurement: Any) -> float:
    """The energy of a Zeus SoC measurement (Apple or Jetson), in joules."""
    total = getattr(measurement, "total_energy_mj", None)
    if total is not None:
        return float(total) / 1000.0
    fields = (*_APPLE_FIELDS, *_JETSON_PARTS)
    return sum(float(getattr(measurement, f, None) or 0.0) for f in fields) / 1000.0


class ZeusMeter(EnergyMeter):
    """Energy from `Zeus <https://ml.energy/zeus>`_'s ``ZeusMonitor``, for hardware NVML does not
    cover: AMD GPUs, Apple Silicon and NVIDIA Jetson. Needs the optional extra:
    ``pip install 'optuna-sm2[zeus]'``.

    Everything the monitor measures is added up: its GPUs, its CPU packages and DRAM (RAPL,
    when readable) and the SoC. Each :meth:`read` closes a Zeus window and opens the next, so
    the figures are Zeus's own; the microseconds between the two are not counted. The label is
    ``zeus``.

    Args:
        gpu_indices: CUDA/ROCm indices (after ``CUDA_VISIBLE_DEVICES``) to measure, as Zeus
            takes them; ``None`` for every GPU Zeus finds.

    Raises:
        EnergyMeterUnavailable: Zeus is not installed, or finds nothing to measure.

    Example:
        .. code-block:: python

            from optuna_sm2.energy import EnergyMeterUnavailable, ZeusMeter

            try:
                with ZeusMeter() as meter:
                    print(meter.read())
            except EnergyMeterUnavailable as exc:
                print(exc)
    """

    def __init__(self, gpu_indices: Sequence[int] | None = None) -> None:
        try:
            monitor_module = importlib.import_module("zeus.monitor")
        except ImportError:
            raise EnergyMeterUnavailable(
                "Zeus is not installed: pip install 'optuna-sm2[zeus]'"
            ) from None
        self._joules = 0.0
        self._open = False
        try:
            self._monitor = monitor_module.ZeusMonitor(
                gpu_indices=None if gpu_indices is None else list(gpu_indices)
            )
            found = (
                self._monitor.gpu_indices
                or getattr(self._monitor, "cpu_indices", None)
                or getattr(self._monitor, "soc_is_present", False)
            )
            if found:
                self._begin()
        except Exception as exc:  # Zeus raises assorted errors for missing hardware
            raise EnergyMeterUnavailable(f"Zeus cannot start: {exc}") from None
        if not found:
            raise EnergyMeterUnavailable("Zeus finds no GPU, CPU or SoC it can measure here")

    def _begin(self) -> None:
        self._monitor.begin_window(_WINDOW, sync_execution=False)
        self._open = True

    @property
    def source(self) -> str:
        return "zeus"

    def read(self) -> float:
        try:
            if self._open:
                self._open = False
                m = self._monitor.end_window(_WINDOW, sync_execution=False)
                self._joules += sum(m.gpu_energy.values())
                self._joules += sum((m.cpu_energy or {}).values())
                self._joules += sum((m.dram_energy or {}).values())
                if getattr(m, "soc_energy", None) is not None:
                    self._joules += _soc_joules(m.soc_energy)
            self._begin()
        except Exception as exc:  # a Zeus failure must not stop training
            raise EnergyReadError(f"Zeus: {exc}") from exc
        return self._joules

    def close(self) -> None:
        if self._open:
            self._open = False
            # After a Zeus failure there is no window left to cancel, and nothing to release.
            with contextlib.suppress(Exception):
                self._monitor.end_window(_WINDOW, sync_execution=False, cancel=True)
