"""Check NvmlMeter on a real NVIDIA GPU (Volta or newer). Not run by the test suite.

1. Counter against power integration: the same 10 s of matrix products, then 5 s idle (after
   3 s to settle, which are printed too: the power reading lags a drop of load), are measured
   at once by the NVML total-energy counter and by power sampling integrated over time; each
   phase passes when the two agree within 5 % (of the counter). Then how often the counter
   advances, idle and busy (its resolution).
2. Queued kernels: a window closes around kernels that are only queued when the block ends.
   CUDA synchronization at the edge must put their time and energy inside the window: it passes
   when the window lasts at least 90 % of the kernels' synchronized run time and its mean power
   is above the idle power of step 1. The same block without synchronization is shown beside it.

    python benchmarks/gpu_energy_check.py [--device 0] [--json results.json]

Exit status 0 when every check passes, 1 otherwise, 2 when there is no usable GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import torch

from optuna_sm2.energy import (
    EnergyMeterUnavailable,
    EnergyTracker,
    NvmlMeter,
    poll_resolution,
)

TOLERANCE = 0.05


def matmul_for(seconds: float, a: torch.Tensor) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(10):
            a = torch.tanh(a @ a)
        torch.cuda.synchronize()


def compare_phase(
    name: str, counter: EnergyTracker, power: EnergyTracker, work: Any, judged: bool = True
) -> dict[str, Any]:
    with counter.window() as by_counter, power.window() as by_power:
        work()
    gap = abs(by_power.joules - by_counter.joules) / by_counter.joules
    result = {
        "phase": name,
        "seconds": by_counter.seconds,
        "counter_j": by_counter.joules,
        "power_integration_j": by_power.joules,
        "counter_mean_w": by_counter.mean_power_w,
        "relative_gap": gap,
        "passed": by_counter.valid and by_power.valid and gap <= TOLERANCE,
    }
    print(
        f"{name:>5}: counter {by_counter.joules:9.1f} J, power integration "
        f"{by_power.joules:9.1f} J over {by_counter.seconds:.1f} s, gap {gap * 100:.2f} % "
        + (
            f"({'PASS' if result['passed'] else 'FAIL'}, target <= {TOLERANCE * 100:.0f} %)"
            if judged
            else "(shown, not judged)"
        )
    )
    return result


def counter_resolution(meter: NvmlMeter, load: str, a: torch.Tensor) -> dict[str, float] | None:
    """How often the counter advances, polled for 1 s while idle or while the GPU multiplies
    (queued in a CUDA stream so that the polling thread is free)."""
    if load == "busy":
        for _ in range(400):
            a = torch.tanh(a @ a)
    steps = poll_resolution(meter.read, 1.0)
    torch.cuda.synchronize()
    if steps is None:
        print(f"counter resolution, {load}: it advanced fewer than 3 times in 1 s")
        return None
    print(
        f"counter resolution, {load}: advances every {1e3 * steps.period_s:.1f} ms, "
        f"{steps.step_j:.2f} J a step"
    )
    return steps._asdict()


def nvml_device(index: int) -> int | str:
    """The NVML name of CUDA device ``index``: its UUID, which cannot be confused with another
    GPU; the index itself when NVML does not know that UUID (then CUDA_DEVICE_ORDER=PCI_BUS_ID
    makes the two orders agree)."""
    uuid = str(torch.cuda.get_device_properties(index).uuid)
    uuid = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
    try:
        NvmlMeter([uuid]).close()
    except EnergyMeterUnavailable as exc:
        print(f"NVML does not know {uuid} ({exc}); using NVML index {index}")
        return index
    return uuid


def queued_kernels(device: torch.device, idle_w: float, gpu: int | str) -> dict[str, Any]:
    a = torch.randn(4096, 4096, device=device)
    n = 200
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        torch.mm(a, a)
    torch.cuda.synchronize()
    run_s = time.perf_counter() - start

    results: dict[str, Any] = {"kernels_run_s": run_s}
    for sync in (True, False):
        tracker = EnergyTracker(NvmlMeter([gpu], method="counter"), sync_cuda=sync)
        with tracker.window() as window:
            for _ in range(n):
                torch.mm(a, a)
        torch.cuda.synchronize()
        tracker.meter.close()
        key = "synchronized" if sync else "unsynchronized"
        results[key] = {"seconds": window.seconds, "joules": window.joules}
        print(
            f"queued kernels, {key:>14} window: {window.seconds:.3f} s, {window.joules:.1f} J "
            f"({window.mean_power_w:.0f} W mean); the kernels run {run_s:.3f} s"
        )
    synced = results["synchronized"]
    results["passed"] = (
        synced["seconds"] >= 0.9 * run_s and synced["joules"] / synced["seconds"] > idle_w
    )
    print(f"queued kernels counted in their window: {'PASS' if results['passed'] else 'FAIL'}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=int, default=0, help="CUDA device index (0)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs an NVIDIA GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda", args.device)
    torch.cuda.set_device(device)
    try:
        gpu = nvml_device(args.device)
        counter = EnergyTracker(NvmlMeter([gpu], method="counter"))
        power = EnergyTracker(NvmlMeter([gpu], method="power", sample_interval_s=0.02))
    except EnergyMeterUnavailable as exc:
        print(f"NVML: {exc}", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name(device)} (NVML {gpu}), torch {torch.__version__}")

    a = torch.randn(4096, 4096, device=device)
    matmul_for(1.0, a)  # warm-up: clocks up, kernels loaded
    busy = compare_phase("busy", counter, power, lambda: matmul_for(10.0, a))
    # Not a pass or fail: how far the power reading lags a drop of load (NVML's power reading
    # is an average over the last second on recent GPUs); the idle phase starts after it.
    settling = compare_phase(
        "idle, the 3 s after load", counter, power, lambda: time.sleep(3.0), judged=False
    )
    idle = compare_phase("idle", counter, power, lambda: time.sleep(5.0))
    resolution = {load: counter_resolution(counter.meter, load, a) for load in ("idle", "busy")}
    counter.meter.close()
    power.meter.close()
    queued = queued_kernels(device, idle["counter_mean_w"], gpu)

    results = {
        "device": torch.cuda.get_device_name(device),
        "phases": [busy, idle],
        "settling_after_load": settling,
        "counter_resolution": resolution,
        "queued_kernels": queued,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if busy["passed"] and idle["passed"] and queued["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
