"""Energy measurement: meters for NVIDIA GPUs, RAPL, Zeus and an estimate, and windows.

Nothing here knows Optuna; :class:`EnergyTracker` measures any block of code. See
``docs/energy.md`` for how each source works and which figures are estimates.
"""

from __future__ import annotations

from optuna_sm2.energy._auto import auto_meter, probe_meters
from optuna_sm2.energy._cpu_time import CpuTimeMeter
from optuna_sm2.energy._meter import (
    DEFAULT_MAX_POWER_W,
    EDGE_SLACK_S,
    SOURCES,
    EnergyMeter,
    EnergyMeterUnavailable,
    EnergyReadError,
    SourceProbe,
    SumMeter,
)
from optuna_sm2.energy._nvml import NVML_COUNTER_PERIOD_S, NvmlMeter
from optuna_sm2.energy._rapl import RaplMeter
from optuna_sm2.energy._resolution import (
    Resolution,
    poll_resolution,
    relative_resolution,
)
from optuna_sm2.energy._simulated import SimulatedMeter
from optuna_sm2.energy._tracker import EnergyTracker, EnergyWindow, shared_tracker
from optuna_sm2.energy._zeus import ZeusMeter

__all__ = [
    "DEFAULT_MAX_POWER_W",
    "EDGE_SLACK_S",
    "NVML_COUNTER_PERIOD_S",
    "SOURCES",
    "CpuTimeMeter",
    "EnergyMeter",
    "EnergyMeterUnavailable",
    "EnergyReadError",
    "EnergyTracker",
    "EnergyWindow",
    "NvmlMeter",
    "RaplMeter",
    "Resolution",
    "SimulatedMeter",
    "SourceProbe",
    "SumMeter",
    "ZeusMeter",
    "auto_meter",
    "poll_resolution",
    "probe_meters",
    "relative_resolution",
    "shared_tracker",
]
