"""``auto_meter`` and ``probe_meters``: the best energy source here, and why not the others."""

from __future__ import annotations

import importlib.util
import logging
from types import MappingProxyType

from optuna_sm2.energy._cpu_time import CpuTimeMeter
from optuna_sm2.energy._meter import (
    EnergyMeter,
    EnergyMeterUnavailable,
    SourceProbe,
    SumMeter,
)
from optuna_sm2.energy._nvml import NvmlMeter
from optuna_sm2.energy._rapl import RaplMeter
from optuna_sm2.energy._zeus import ZeusMeter

_logger = logging.getLogger("optuna_sm2.energy")
_logged: set[str] = set()


def _gpu_probes(
    probes: list[SourceProbe],
) -> tuple[EnergyMeter | None, bool]:
    """Probe NVML, then Zeus when NVML has nothing; return the GPU meter and whether it is Zeus
    (which measures the CPU as well)."""
    try:
        nvml = NvmlMeter()
    except EnergyMeterUnavailable as exc:
        probes.append(SourceProbe("nvml-counter", False, False, str(exc)))
        probes.append(SourceProbe("nvml-power", False, False, str(exc)))
    else:
        gpus = ", ".join(nvml.devices)
        if nvml.counter_missing:
            missing = ", ".join(nvml.counter_missing)
            why = f"GPU {missing} has no energy counter (it needs Volta or newer)"
            probes.append(SourceProbe("nvml-counter", False, False, why))
            probes.append(SourceProbe("nvml-power", True, True, f"power of GPU {gpus}, sampled"))
        else:
            probes.append(SourceProbe("nvml-counter", True, True, f"energy counter of GPU {gpus}"))
            why = "the energy counter is used where it exists"
            probes.append(SourceProbe("nvml-power", True, False, why))
        installed = importlib.util.find_spec("zeus") is not None
        why = "not tried: NVML measures the GPU" if installed else "Zeus is not installed"
        probes.append(SourceProbe("zeus", installed, False, why))
        return nvml, False
    try:
        zeus = ZeusMeter()
    except EnergyMeterUnavailable as exc:
        probes.append(SourceProbe("zeus", False, False, str(exc)))
        return None, False
    probes.append(SourceProbe("zeus", True, True, "Zeus measures the GPU, CPU and SoC it finds"))
    return zeus, True


def _select() -> tuple[list[EnergyMeter], list[SourceProbe]]:
    probes: list[SourceProbe] = []
    gpu, gpu_is_zeus = _gpu_probes(probes)
    meters = [] if gpu is None else [gpu]
    try:
        rapl: RaplMeter | None = RaplMeter()
    except EnergyMeterUnavailable as exc:
        rapl = None
        probes.append(SourceProbe("rapl", False, False, str(exc)))
    if rapl is not None and gpu_is_zeus:
        rapl.close()
        why = "not added: Zeus already reads RAPL"
        probes.append(SourceProbe("rapl", True, False, why))
    elif rapl is not None:
        meters.append(rapl)
        probes.append(SourceProbe("rapl", True, True, f"CPU zones {', '.join(rapl.zones)}"))
    if not meters:
        meters.append(CpuTimeMeter())
        why = "estimate: no counter measures this machine"
        probes.append(SourceProbe("cpu-time-estimate", True, True, why))
    else:
        why = (
            "RAPL measures the CPU"
            if rapl is not None
            else "not added to a measured figure: it would turn a measurement into an estimate"
        )
        probes.append(SourceProbe("cpu-time-estimate", True, False, why))
    return meters, probes


def probe_meters() -> tuple[SourceProbe, ...]:
    """Every energy source, whether it works here, and whether :func:`auto_meter` uses it.

    The meters opened to find out are closed again. The order is the order of preference:
    ``nvml-counter``, ``nvml-power``, ``zeus``, ``rapl``, ``cpu-time-estimate``.

    Example:
        .. code-block:: python

            from optuna_sm2.energy import probe_meters

            for probe in probe_meters():
                print(probe.source, probe.available, probe.used, probe.reason)
    """
    meters, probes = _select()
    for meter in meters:
        meter.close()
    return tuple(probes)


def auto_meter() -> EnergyMeter:
    """The best energy meter available here.

    Preference: the NVML energy counter (Volta and newer), NVML power sampling (older NVIDIA
    GPUs), Zeus (AMD, Apple Silicon, Jetson), RAPL, and last the CPU-time estimate. A GPU meter
    and RAPL both measuring are summed (label ``nvml-counter+rapl``); the estimate is used only
    when nothing measures, and never added to a measurement. Zeus measures the CPU itself and is
    used alone.

    The returned meter's :attr:`~EnergyMeter.probes` holds what was found about every source and
    its :attr:`~EnergyMeter.skipped` maps each unused source to why; the choice and the reasons
    are logged once per process, at INFO level, on the ``optuna_sm2.energy`` logger.

    Example:
        .. code-block:: python

            from optuna_sm2 import auto_meter

            with auto_meter() as meter:
                print(meter.source, "estimate" if meter.is_estimate else "measured")
                print(dict(meter.skipped))
    """
    meters, probes = _select()
    meter = meters[0] if len(meters) == 1 else SumMeter(*meters)
    meter.probes = tuple(probes)
    meter.skipped = MappingProxyType({p.source: p.reason for p in probes if not p.used})
    message = f"energy source: {meter.source}; skipped: " + "; ".join(
        f"{source} ({reason})" for source, reason in meter.skipped.items()
    )
    if message not in _logged:
        _logged.add(message)
        _logger.info(message)
    return meter
