"""A stand-in for ``pynvml`` (package ``nvidia-ml-py``) driving simulated GPUs in tests.

Faithful to what the real module documents and does: ``nvmlInit``/``nvmlShutdown`` are
reference-counted and every device call before ``nvmlInit`` raises NVML_ERROR_UNINITIALIZED;
errors are ``NVMLError(code)``, whose constructor returns the matching ``NVMLError_*`` subclass
and whose ``str`` is NVML's error string; ``nvmlDeviceGetTotalEnergyConsumption`` returns
millijoules since the driver loaded and raises NOT_SUPPORTED before Volta;
``nvmlDeviceGetPowerUsage`` returns milliwatts, and so do ``nvmlDeviceGetEnforcedPowerLimit`` and
``nvmlDeviceGetPowerManagementLimit`` (NOT_SUPPORTED where the GPU does not report them);
``nvmlDeviceGetUUID`` returns a ``str``;
``nvmlDeviceIsMigDeviceHandle`` returns a ctypes ``c_uint``; ``nvmlDeviceGetMigMode`` returns
``[current, pending]`` and raises NOT_SUPPORTED on GPUs without MIG; a bad index raises
INVALID_ARGUMENT and an unknown UUID NOT_FOUND.

Tests call :func:`reset` with the GPUs they want and change a :class:`FakeGpu` while a meter
runs (its counter, its power, or an error its next reads raise).

A GPU with a ``counter_period_s`` behaves like the real counter on a fake clock
(:func:`clock`, moved only by :func:`advance`): it draws its ``power_mw`` while the clock
advances, and its counter publishes the energy drawn only at each multiple of the period (an
H100's counter every 100 ms, ``docs/gpu-validation.md``), so that a window shorter than a
period reads 0 mJ or one whole step.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import threading

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1

_STRINGS = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    _subclasses: dict[int, type[NVMLError]] = {}  # noqa: RUF012
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._subclasses.get(value, NVMLError)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        super().__init__(value)

    def __str__(self) -> str:
        return _STRINGS.get(self.value, f"NVML Error with code {self.value}")


def _error_class(name: str, code: int) -> type[NVMLError]:
    def new(cls: type[NVMLError], *args: object) -> NVMLError:
        return NVMLError.__new__(cls, code)

    subclass = type(name, (NVMLError,), {"__new__": new, "__init__": lambda self, *a: None})
    NVMLError._subclasses[code] = subclass
    return subclass


NVMLError_Uninitialized = _error_class("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _error_class("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _error_class("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _error_class("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_NotFound = _error_class("NVMLError_NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_DriverNotLoaded = _error_class("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _error_class("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_GpuIsLost = _error_class("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)
NVMLError_Unknown = _error_class("NVMLError_Unknown", NVML_ERROR_UNKNOWN)


@dataclasses.dataclass
class FakeGpu:
    """One simulated GPU. ``energy_mj=None`` is a pre-Volta card (no energy counter);
    ``mig_mode=None`` a card without MIG support; ``error`` an NVML error code that every
    energy and power read raises while it is set; a power limit of ``None`` is one the card
    does not report (NOT_SUPPORTED). With ``counter_period_s`` the counter steps on the fake
    clock (see the module's docstring); without it (default) ``energy_mj`` reads as set."""

    uuid: str
    energy_mj: int | None = 1_000_000
    power_mw: int = 100_000
    power_limit_mw: int | None = 300_000
    enforced_power_limit_mw: int | None = 300_000
    mig_mode: int | None = None
    is_mig_instance: bool = False
    error: int | None = None
    power_reads: int = 0
    counter_period_s: float | None = None
    drawn_mj: float = dataclasses.field(default=0.0, init=False)
    """Millijoules drawn on the fake clock since :func:`reset` (the truth the counter steps
    towards)."""
    published_mj: float = dataclasses.field(default=0.0, init=False)
    """Of :attr:`drawn_mj`, what the counter has published."""


@dataclasses.dataclass(frozen=True)
class _Handle:
    index: int


_lock = threading.Lock()
gpus: list[FakeGpu] = []
init_count = 0
init_error: int | None = None
_now = 0.0


def reset(devices: list[FakeGpu], *, fail_init: int | None = None) -> None:
    """Start over with these GPUs, the fake clock at 0; ``fail_init`` is the error code
    ``nvmlInit`` raises."""
    global init_count, init_error, _now
    gpus[:] = devices
    for gpu in devices:
        gpu.drawn_mj = gpu.published_mj = 0.0
    init_count = 0
    init_error = fail_init
    _now = 0.0


def clock() -> float:
    """Seconds on the fake clock: pass it as the tracker's ``clock``."""
    return _now


def _steps(t: float, period: float) -> int:
    """How many whole periods fit in ``t`` seconds (rounded at 1e-9 s, so that a sum of
    float increments landing on a multiple counts it)."""
    return math.floor(t / period + 1e-9)


def advance(seconds: float) -> None:
    """Move the fake clock by ``seconds`` (>= 0), every stepping GPU drawing its ``power_mw``
    meanwhile; its counter moves to what it had drawn at the last whole period passed."""
    global _now
    if not seconds >= 0.0:
        raise ValueError(f"`seconds` must be >= 0, got {seconds!r}.")
    end = _now + seconds
    for gpu in gpus:
        period = gpu.counter_period_s
        if period is None or gpu.energy_mj is None:
            continue
        last = _steps(end, period)
        if last > _steps(_now, period):
            published = gpu.drawn_mj + gpu.power_mw * (last * period - _now)
            gpu.energy_mj += round(published) - round(gpu.published_mj)
            gpu.published_mj = published
        gpu.drawn_mj += gpu.power_mw * seconds
    _now = end


def _check_initialized() -> None:
    """UNINITIALIZED before ``nvmlInit`` (or after the last ``nvmlShutdown``)."""
    if init_count == 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)


def _supported(value: int | None) -> int:
    """``value``, or NOT_SUPPORTED where the GPU does not report it (``None``)."""
    if value is None:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return value


def _gpu(handle: _Handle) -> FakeGpu:
    _check_initialized()
    gpu = gpus[handle.index]
    if gpu.error is not None:
        raise NVMLError(gpu.error)
    return gpu


def nvmlInit() -> None:
    global init_count
    if init_error is not None:
        raise NVMLError(init_error)
    with _lock:
        init_count += 1


def nvmlShutdown() -> None:
    global init_count
    with _lock:
        _check_initialized()
        init_count -= 1


def nvmlDeviceGetCount() -> int:
    _check_initialized()
    return len(gpus)


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    _check_initialized()
    if not 0 <= index < len(gpus):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return _Handle(index)


def nvmlDeviceGetHandleByUUID(uuid: str) -> _Handle:
    _check_initialized()
    for index, gpu in enumerate(gpus):
        if gpu.uuid == uuid:
            return _Handle(index)
    raise NVMLError(NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetUUID(handle: _Handle) -> str:
    _check_initialized()
    return gpus[handle.index].uuid


def nvmlDeviceGetTotalEnergyConsumption(handle: _Handle) -> int:
    return _supported(_gpu(handle).energy_mj)


def nvmlDeviceGetPowerUsage(handle: _Handle) -> int:
    gpu = _gpu(handle)
    gpu.power_reads += 1
    return gpu.power_mw


def nvmlDeviceGetEnforcedPowerLimit(handle: _Handle) -> int:
    return _supported(_gpu(handle).enforced_power_limit_mw)


def nvmlDeviceGetPowerManagementLimit(handle: _Handle) -> int:
    return _supported(_gpu(handle).power_limit_mw)


def nvmlDeviceIsMigDeviceHandle(handle: _Handle) -> ctypes.c_uint:
    _check_initialized()
    return ctypes.c_uint(int(gpus[handle.index].is_mig_instance))


def nvmlDeviceGetMigMode(handle: _Handle) -> list[int]:
    _check_initialized()
    mode = _supported(gpus[handle.index].mig_mode)
    return [mode, mode]
