"""``optuna-sm2 doctor``: which energy sources work here, which one is used, two readings."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from optuna_sm2.energy import EnergyTracker, EnergyWindow, auto_meter


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="show which energy sources work here and take an idle and a busy reading",
        description=(
            "List every energy source (NVML counter, NVML power, Zeus, RAPL, CPU-time "
            "estimate), whether it works on this machine and why not, which one optuna-sm2 "
            "uses, then measure 2 s idle and 2 s of matrix products."
        ),
    )
    # Hidden: lets the tests take short readings.
    parser.add_argument("--seconds", type=float, default=2.0, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def _matrix_products() -> tuple[str, Callable[[float], None]]:
    """Where the busy load runs (the GPU when torch has one) and the load itself, ready to
    start: torch is imported and the operand allocated before the window opens."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    operand = torch.randn(512, 512, device=device)

    def spin(seconds: float) -> None:
        a = operand
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            a = torch.tanh(a @ a)

    return device, spin


def _reading(label: str, window: EnergyWindow) -> str:
    if not window.valid:
        return f"{label}: invalid ({window.invalid_reason})"
    kind = "estimate" if window.is_estimate else "measured"
    return (
        f"{label}: {window.joules:.2f} J in {window.seconds:.2f} s, "
        f"{window.mean_power_w:.1f} W mean ({kind})"
    )


def run(args: argparse.Namespace) -> int:
    if not args.seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    with auto_meter() as meter:
        print("energy sources, best first:")
        for probe in meter.probes:
            state = "USED" if probe.used else "available" if probe.available else "unavailable"
            print(f"  {probe.source:<18} {state:<11} {probe.reason}")
        kind = "an ESTIMATE, not a measurement" if meter.is_estimate else "measured"
        print(f"using: {meter.source} ({kind})")
        tracker = EnergyTracker(meter)
        with tracker.window() as idle:
            time.sleep(args.seconds)
        print(_reading(f"idle {args.seconds:g} s", idle))
        device, spin = _matrix_products()
        with tracker.window() as busy:
            spin(args.seconds)
        print(_reading(f"busy {args.seconds:g} s (matrix products on {device})", busy))
    return 0
