"""``optuna-sm2 doctor``: which energy sources work here, which one is used, its readings and
how repeatable they are."""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from optuna_sm2.energy import EnergyTracker, EnergyWindow, auto_meter, poll_resolution

MATRIX_SIDE = 256
"""Side of the square float64 matrices of the busy reading."""

LOOP_STEPS = 4_000_000
"""Steps of the repeatability workload, a pure-Python loop on one thread (about 0.17 s of CPU on
a 2.6 GHz AMD EPYC core)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="show which energy sources work here, take readings and measure their repeatability",
        description=(
            "List every energy source (NVML counter, NVML power, Zeus, RAPL, CPU-time "
            "estimate), whether it works on this machine and why not, which one optuna-sm2 "
            "uses and the power above which its readings are refused; then measure 2 s idle, "
            "2 s of matrix products on the CPU, and the same fixed workload (a loop of "
            f"{LOOP_STEPS:,} steps on one thread) in 5 windows, whose coefficient of variation "
            "says how repeatable the source's figures are here, and how often the reading "
            "advances (its resolution: a window shorter than a step reads 0 J)."
        ),
    )
    # Hidden: let the tests take short readings.
    parser.add_argument("--seconds", type=float, default=2.0, help=argparse.SUPPRESS)
    parser.add_argument("--windows", type=int, default=5, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def _matrix_products() -> Callable[[int], None]:
    """The busy load (numpy, no torch): ``products(n)`` multiplies two fixed matrices ``n``
    times into a fixed buffer."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((MATRIX_SIDE, MATRIX_SIDE))
    b = rng.standard_normal((MATRIX_SIDE, MATRIX_SIDE))
    out = np.empty_like(a)

    def products(n: int) -> None:
        for _ in range(n):
            np.matmul(a, b, out=out)

    return products


def _fixed_loop() -> int:
    """The repeatability workload: the same steps on one thread every time (no library, so no
    thread pool whose scheduling would add its own noise)."""
    total = 0
    for i in range(LOOP_STEPS):
        total += i * i
    return total


def coefficient_of_variation(joules: Sequence[float]) -> float | None:
    """Sample standard deviation over mean; ``None`` with fewer than two values or a mean of 0.

    Example:
        >>> round(coefficient_of_variation([10.0, 12.0, 8.0, 10.0, 10.0]), 4)
        0.1414
    """
    if len(joules) < 2:
        return None
    mean = statistics.fmean(joules)
    return statistics.stdev(joules) / mean if mean > 0.0 else None


def _resolution(read: Callable[[], float], seconds: float) -> str:
    """Poll ``read`` for ``seconds`` and say how often it advanced."""
    try:
        steps = poll_resolution(read, seconds)
    except Exception as exc:  # the doctor reports any failure of the source, then goes on
        return f"resolution: a reading failed while polling ({type(exc).__name__}: {exc})"
    if steps is None:
        return f"resolution: the reading advanced fewer than 3 times in {seconds:g} s of polling"
    period, joules = steps
    return (
        f"resolution: the reading advances about every {1e3 * period:.3g} ms, {joules:.3g} J a "
        f"step at this load; a window shorter than {20 * period:.2g} s is off by more than 5 % "
        "(SM2 then ranks a block by its mean epoch, and one that reads 0 J throughout is "
        "unmeasured)"
    )


def _reading(label: str, window: EnergyWindow) -> str:
    if not window.valid:
        return f"{label}: invalid ({window.invalid_reason})"
    kind = "estimate" if window.is_estimate else "measured"
    return (
        f"{label}: {window.joules:.2f} J in {window.seconds:.2f} s, "
        f"{window.mean_power_w:.1f} W mean ({kind})"
    )


def _repeatability(windows: Sequence[EnergyWindow]) -> str:
    label = f"repeatability, a {LOOP_STEPS:,}-step loop in each of {len(windows)} windows"
    valid = [w for w in windows if w.valid]
    invalid = [w for w in windows if not w.valid]
    missing = f"; {len(invalid)} invalid ({invalid[0].invalid_reason})" if invalid else ""
    joules = [w.joules for w in valid]
    cv = coefficient_of_variation(joules)
    if cv is None:
        why = (
            "fewer than two valid windows"
            if len(valid) < 2
            else "the windows measured 0 J (the source did not move)"
        )
        return f"{label}: coefficient of variation cannot be computed, {why}{missing}"
    seconds = statistics.fmean(w.seconds for w in valid)
    return (
        f"{label}: coefficient of variation {100.0 * cv:.1f} % "
        f"({min(joules):.3g} to {max(joules):.3g} J, mean {statistics.fmean(joules):.3g} J "
        f"in {seconds:.2f} s){missing}"
    )


def run(args: argparse.Namespace) -> int:
    if not (args.seconds > 0 and math.isfinite(args.seconds)):
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.windows < 2:
        raise ValueError(f"--windows must be >= 2, got {args.windows}")
    products = _matrix_products()
    with auto_meter() as meter:
        print("energy sources, best first:")
        for probe in meter.probes:
            state = "USED" if probe.used else "available" if probe.available else "unavailable"
            print(f"  {probe.source:<18} {state:<11} {probe.reason}")
        kind = "an ESTIMATE, not a measurement" if meter.is_estimate else "measured"
        print(f"using: {meter.source} ({kind})")
        bound = meter.max_power_w
        print(
            "readings refused as impossible: negative, not finite"
            + ("" if bound is None else f", or above {bound:.0f} W")
        )
        tracker = EnergyTracker(meter)
        with tracker.window() as idle:
            time.sleep(args.seconds)
        print(_reading(f"idle {args.seconds:g} s", idle))
        with tracker.window() as busy:
            end = time.perf_counter() + args.seconds
            while time.perf_counter() < end:
                products(10)
        print(_reading(f"busy {args.seconds:g} s (matrix products on cpu)", busy))
        windows = []
        for _ in range(args.windows):
            with tracker.window() as window:
                _fixed_loop()
            windows.append(window)
        print(_repeatability(windows))
        print(_resolution(meter.read, min(1.0, args.seconds)))
    return 0
