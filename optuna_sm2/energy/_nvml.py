"""``NvmlMeter``: NVIDIA GPU energy through NVML (module ``pynvml`` of ``nvidia-ml-py``)."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from optuna_sm2.energy._meter import (
    EnergyMeter,
    EnergyMeterUnavailable,
    EnergyReadError,
    check_finite,
)

_METHODS = ("auto", "counter", "power")

GPU_POWER_CAP_W = 2000.0
"""Watts a GPU is taken to draw at most when NVML gives no power limit: above every data-center
GPU's board power (700 W for an H100 SXM, 1000 W for a B200)."""

POWER_LIMIT_HEADROOM = 2.0
"""A GPU is taken to draw at most this times its enforced power limit: the limit holds the
average power, short peaks may pass it."""

NVML_COUNTER_PERIOD_S = 0.1
"""Seconds between two advances of NVML's energy counter, the default ``counter_period_s``: the
H100s of ``docs/gpu-validation.md`` advanced every 100 ms (every 50 ms on another machine; the
longer one is assumed, so that a step is never taken for finer than it is)."""

_DEVICE_FORMS = "an NVML index (int >= 0) or a GPU UUID string starting with 'GPU-'"


def _import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise EnergyMeterUnavailable(
            "module pynvml is missing: pip install nvidia-ml-py (not the deprecated 'pynvml')"
        ) from None


def _mig_refusal(label: str) -> str:
    return (
        f"GPU {label} is a MIG device or has MIG enabled: NVML reports energy and power for "
        "the whole physical GPU, shared by every MIG instance, so this process's share cannot "
        "be measured; use a GPU without MIG, or measure the CPU only (RaplMeter, CpuTimeMeter)"
    )


def parse_visible_devices(value: str) -> list[int | str]:
    """The GPUs that ``CUDA_VISIBLE_DEVICES=value`` shows, as NVML indices or ``GPU-`` UUIDs.

    As CUDA does, parsing stops at the first entry that is neither (``-1`` hides every GPU).
    ``MIG-`` entries are refused with :class:`EnergyMeterUnavailable`.
    """
    devices: list[int | str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if entry.isdigit():
            devices.append(int(entry))
        elif entry.startswith("GPU-"):
            devices.append(entry)
        elif entry.startswith("MIG-"):
            raise EnergyMeterUnavailable(_mig_refusal(f"{entry} (from CUDA_VISIBLE_DEVICES)"))
        else:
            break
    return devices


def _torch_current_device() -> int | None:
    """Torch's current CUDA device without initializing CUDA (which would break a later fork):
    0, torch's default, until CUDA is initialized; ``None`` when torch has no CUDA or this
    process has not imported torch (the meter never imports it: a process without torch, such as
    ``optuna-sm2 doctor``, has chosen no GPU)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return int(torch.cuda.current_device()) if torch.cuda.is_initialized() else 0


def _default_devices(pynvml: Any) -> list[int | str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = parse_visible_devices(visible)
        if not devices:
            raise EnergyMeterUnavailable(f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU")
        return devices
    current = _torch_current_device()
    if current is not None:
        return [current]
    return list(range(pynvml.nvmlDeviceGetCount()))


def _check_device(device: object) -> int | str:
    if isinstance(device, int) and not isinstance(device, bool) and device >= 0:
        return device
    if isinstance(device, str) and device.startswith("GPU-"):
        return device
    if isinstance(device, str) and device.startswith("MIG-"):
        raise EnergyMeterUnavailable(_mig_refusal(device))
    raise ValueError(f"a GPU must be {_DEVICE_FORMS}, got {device!r}.")


def _is_mig(pynvml: Any, handle: Any) -> bool:
    """Whether ``handle`` is a MIG instance or a GPU in MIG mode; GPUs without MIG support
    answer NOT_SUPPORTED, which means no."""
    try:
        # nvidia-ml-py returns a ctypes c_uint here, whose truth is its value.
        if bool(pynvml.nvmlDeviceIsMigDeviceHandle(handle)):
            return True
    except pynvml.NVMLError:
        pass
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except pynvml.NVMLError:
        return False
    return bool(current == pynvml.NVML_DEVICE_MIG_ENABLE)


def _power_limit_w(pynvml: Any, handle: Any) -> float | None:
    """The GPU's enforced power limit in watts, else its power management limit; ``None`` when
    NVML answers neither (both are milliwatts in NVML)."""
    for query in ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"):
        try:
            milliwatts = int(getattr(pynvml, query)(handle))
        except pynvml.NVMLError:
            continue
        if milliwatts > 0:
            return milliwatts / 1000.0
    return None


class _PowerIntegrator:
    """A daemon thread sampling the power of some GPUs and integrating it (trapezoids).

    A failed sample records why and restarts the integration at the next good sample; the next
    :meth:`read` raises :class:`EnergyReadError` with the reason, once.
    """

    def __init__(
        self,
        sample_w: Callable[[], float],
        interval_s: float,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._sample_w = sample_w
        self._clock = clock
        self._lock = threading.Lock()
        self._joules = 0.0
        self._last: tuple[float, float] | None = (clock(), sample_w())
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="optuna-sm2-nvml-power", daemon=True
        )
        self._thread.start()

    def _sample(self) -> None:
        now = self._clock()
        try:
            watts = self._sample_w()
        except Exception as exc:  # the thread must never die silently
            self._error = f"NVML power sample failed: {exc}"
            self._last = None
            return
        if self._last is not None:
            then, before = self._last
            self._joules += (before + watts) / 2.0 * (now - then)
        self._last = (now, watts)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            with self._lock:
                self._sample()

    def read(self) -> float:
        with self._lock:
            self._sample()
            error, self._error = self._error, None
            joules = self._joules
        if error is not None:
            raise EnergyReadError(error)
        return joules

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class NvmlMeter(EnergyMeter):
    """NVIDIA GPU energy through NVML.

    On Volta and newer GPUs NVML keeps a total-energy counter
    (``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the driver loaded): it is read at
    the window edges and nothing runs in between; the label is ``nvml-counter``. Older GPUs
    answer NOT_SUPPORTED; for them a daemon thread samples ``nvmlDeviceGetPowerUsage``
    (milliwatts) every ``sample_interval_s`` and integrates it, and the label is
    ``nvml-power``.

    Which GPUs: ``devices`` when given; otherwise those of ``CUDA_VISIBLE_DEVICES`` (indices or
    ``GPU-`` UUIDs) when it is set; otherwise torch's current CUDA device, when this process has
    imported torch; otherwise, when torch has no CUDA or is not imported, every GPU NVML sees.
    Integer indices are NVML's, in PCI bus order; they are CUDA's too when
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (or on machines with one GPU model): with mixed models, set
    that or use UUIDs. MIG devices, and GPUs in MIG mode, are refused: NVML
    measures the whole GPU, not one instance.

    An NVML error while reading never stops training: :meth:`read` raises
    :class:`EnergyReadError` saying why, and the tracker marks the window invalid. So does a
    counter found lower than at the previous read (the driver was reloaded or the GPU reset):
    the joules since then are unknown, and counting restarts from the new value.

    :attr:`max_power_w` is, summed over the GPUs, :data:`POWER_LIMIT_HEADROOM` times each GPU's
    enforced power limit (``nvmlDeviceGetEnforcedPowerLimit``, else
    ``nvmlDeviceGetPowerManagementLimit``), or :data:`GPU_POWER_CAP_W` where NVML gives none;
    the tracker refuses windows that imply more.

    The counter advances in steps, every ``counter_period_s``
    (:attr:`~optuna_sm2.energy.EnergyMeter.update_period_s`): the tracker estimates a window
    shorter than that from the GPUs' power now (:meth:`instant_power_w`, as Zeus's
    ``approx_instant_energy`` does) and labels it ``nvml-power-estimate``.

    Args:
        devices: GPUs to measure, each an NVML index or a ``GPU-`` UUID; ``None`` as above.
        sample_interval_s: Power sampling period for GPUs without the counter (> 0).
        method: ``"auto"`` (the counter where the GPU has it, power sampling elsewhere),
            ``"counter"`` (refuse GPUs without it) or ``"power"`` (sample power on every GPU,
            e.g. to check the counter against it, as ``benchmarks/gpu_energy_check.py`` does).
        counter_period_s: Seconds between two advances of the energy counter (> 0); ``optuna-sm2
            doctor`` prints what this GPU's counter does.

    Raises:
        EnergyMeterUnavailable: NVML is missing or fails to start, no GPU is selected, or a GPU
            is a MIG device.

    Example:
        .. code-block:: python

            from optuna_sm2.energy import EnergyMeterUnavailable, NvmlMeter

            try:
                with NvmlMeter() as meter:
                    print(meter.source, meter.devices, meter.read())
            except EnergyMeterUnavailable as exc:
                print("no NVIDIA GPU here:", exc)
    """

    def __init__(
        self,
        devices: Sequence[int | str] | None = None,
        *,
        sample_interval_s: float = 0.1,
        method: Literal["auto", "counter", "power"] = "auto",
        counter_period_s: float = NVML_COUNTER_PERIOD_S,
    ) -> None:
        check_finite("sample_interval_s", sample_interval_s, minimum=0.0, inclusive=False)
        check_finite("counter_period_s", counter_period_s, minimum=0.0, inclusive=False)
        self._counter_period_s = float(counter_period_s)
        if method not in _METHODS:
            raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
        self._method = method
        wanted = None if devices is None else [_check_device(d) for d in devices]
        pynvml = _import_pynvml()
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise EnergyMeterUnavailable(
                f"NVML cannot start ({exc}): no usable NVIDIA driver"
            ) from None
        self._pynvml = pynvml
        self._closed = False
        self._integrator: _PowerIntegrator | None = None
        try:
            self._open(wanted if wanted is not None else _default_devices(pynvml))
            if self._sampled:
                self._integrator = _PowerIntegrator(self._sampled_power_w, sample_interval_s)
        except BaseException:
            pynvml.nvmlShutdown()
            raise

    def _open(self, devices: list[int | str]) -> None:
        pynvml = self._pynvml
        if not devices:
            raise EnergyMeterUnavailable("NVML sees no GPU")
        handles: list[tuple[str, Any]] = []
        for device in devices:
            label = str(device)
            try:
                if isinstance(device, int):
                    handle = pynvml.nvmlDeviceGetHandleByIndex(device)
                else:
                    handle = pynvml.nvmlDeviceGetHandleByUUID(device)
                label = str(pynvml.nvmlDeviceGetUUID(handle))
            except pynvml.NVMLError as exc:
                count = pynvml.nvmlDeviceGetCount()
                raise EnergyMeterUnavailable(
                    f"NVML cannot open GPU {device!r} ({exc}); it sees {count} GPU(s), "
                    f"0..{count - 1}"
                ) from None
            if _is_mig(pynvml, handle):
                raise EnergyMeterUnavailable(_mig_refusal(label))
            handles.append((label, handle))
        self.devices: tuple[str, ...] = tuple(label for label, _ in handles)
        """UUIDs of the GPUs measured."""
        limits = [_power_limit_w(pynvml, handle) for _, handle in handles]
        self._max_power_w = sum(
            GPU_POWER_CAP_W if limit is None else POWER_LIMIT_HEADROOM * limit for limit in limits
        )
        self.power_limits_w: tuple[float | None, ...] = tuple(limits)
        """Each GPU's enforced power limit in watts, ``None`` where NVML gives none."""
        self._counters: list[tuple[str, Any]] = []
        self._last_mj: list[int] = []
        self._counted_j = 0.0
        self._sampled: list[tuple[str, Any]] = []
        self._missing: list[str] = []
        for label, handle in handles:
            if self._method == "power":
                self._sampled.append((label, handle))
                continue
            try:
                start = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            except pynvml.NVMLError_NotSupported:
                if self._method == "counter":
                    raise EnergyMeterUnavailable(
                        f"GPU {label} has no energy counter (it needs Volta or newer)"
                    ) from None
                self._missing.append(label)
                self._sampled.append((label, handle))
                continue
            except pynvml.NVMLError as exc:
                why = f"NVML energy counter of GPU {label}: {exc}"
                raise EnergyMeterUnavailable(why) from None
            self._counters.append((label, handle))
            self._last_mj.append(start)
        if self._sampled:
            try:
                self._sampled_power_w()
            except pynvml.NVMLError as exc:
                raise EnergyMeterUnavailable(
                    f"GPU {self._sampled[0][0]} has neither the energy counter (pre-Volta) nor "
                    f"a readable power ({exc})"
                ) from None

    def _power_w(self, gpus: list[tuple[str, Any]]) -> float:
        milliwatts = sum(int(self._pynvml.nvmlDeviceGetPowerUsage(h)) for _, h in gpus)
        return milliwatts / 1000.0

    def _sampled_power_w(self) -> float:
        return self._power_w(self._sampled)

    @property
    def source(self) -> str:
        return "nvml-power" if self._sampled else "nvml-counter"

    @property
    def counter_missing(self) -> tuple[str, ...]:
        """UUIDs of the GPUs found without the energy counter (pre-Volta), whose power is
        sampled instead."""
        return tuple(self._missing)

    @property
    def max_power_w(self) -> float:
        return self._max_power_w

    @property
    def update_period_s(self) -> float:
        """``counter_period_s`` where a counter is read; 0.0 when every GPU's power is sampled
        (the integration is read up to the moment of the read)."""
        return self._counter_period_s if self._counters else 0.0

    def instant_power_w(self) -> float:
        """The power of every GPU measured, in watts (``nvmlDeviceGetPowerUsage``); raises
        :class:`EnergyReadError` on an NVML error."""
        try:
            return self._power_w(self._counters + self._sampled)
        except self._pynvml.NVMLError as exc:
            raise EnergyReadError(f"NVML power reading: {exc}") from exc

    @property
    def estimate_source(self) -> str:
        return "nvml-power-estimate"

    def read(self) -> float:
        reset: list[str] = []
        for i, (label, handle) in enumerate(self._counters):
            try:
                now = int(self._pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            except self._pynvml.NVMLError as exc:
                raise EnergyReadError(f"NVML energy counter of GPU {label}: {exc}") from exc
            if now < self._last_mj[i]:
                reset.append(f"GPU {label} from {self._last_mj[i]} to {now} mJ")
            else:
                self._counted_j += (now - self._last_mj[i]) / 1000.0
            self._last_mj[i] = now
        if reset:
            raise EnergyReadError(
                f"NVML energy counter went backwards ({'; '.join(reset)}): the driver was "
                "reloaded or the GPU reset, the energy since the previous read is unknown"
            )
        joules = self._counted_j
        if self._integrator is not None:
            joules += self._integrator.read()
        return joules

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._integrator is not None:
            self._integrator.stop()
        # An error here means the driver went away: nothing is left to release.
        with contextlib.suppress(self._pynvml.NVMLError):
            self._pynvml.nvmlShutdown()
