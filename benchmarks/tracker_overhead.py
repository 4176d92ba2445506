"""What an energy window costs a training epoch: tracked against untracked, in one run.

A small MLP trains on synthetic data on the CPU. Epochs alternate untracked and tracked (one
``EnergyTracker`` window around the epoch), in ABBA order so that drift of a shared machine
hits both alike. Printed: the median epoch of each kind and the overhead, the median over
pairs of tracked / untracked (neighbouring epochs share the machine's load, so this ratio is the
robust figure on a shared machine). The cost of an empty window is also
timed directly, which no epoch-to-epoch noise blurs.

    python benchmarks/tracker_overhead.py [--pairs 20] [--meter auto|cpu-time] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

from optuna_sm2 import EnergyTracker, auto_meter
from optuna_sm2.energy import CpuTimeMeter, EnergyMeter

_METERS: dict[str, Callable[[], EnergyMeter]] = {"auto": auto_meter, "cpu-time": CpuTimeMeter}


def make_epoch(samples: int = 8192, batch_size: int = 128) -> Callable[[], None]:
    """One epoch of SGD on a 64-256-256-10 MLP over fixed synthetic data."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(samples, 64, generator=generator)
    y = torch.randint(0, 10, (samples,), generator=generator)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch() -> None:
        for start in range(0, samples, batch_size):
            optimizer.zero_grad()
            loss_fn(model(x[start : start + batch_size]), y[start : start + batch_size]).backward()
            optimizer.step()

    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="tracked/untracked pairs (20)")
    parser.add_argument("--meter", choices=sorted(_METERS), default="auto")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)"
    )
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error(f"--pairs must be >= 1, got {args.pairs}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)

    tracker = EnergyTracker(_METERS[args.meter]())
    epoch = make_epoch()
    epoch()  # warm-up

    def untracked() -> float:
        start = time.perf_counter()
        epoch()
        return time.perf_counter() - start

    def tracked() -> float:
        start = time.perf_counter()
        with tracker.window():
            epoch()
        return time.perf_counter() - start

    plain: list[float] = []
    measured: list[float] = []
    for i in range(args.pairs):
        order = (untracked, tracked) if i % 2 == 0 else (tracked, untracked)
        for run in order:
            (plain if run is untracked else measured).append(run())

    n_empty = 10_000
    start = time.perf_counter()
    for _ in range(n_empty):
        with tracker.window():
            pass
    per_window = (time.perf_counter() - start) / n_empty

    ratio = statistics.median([t / p for t, p in zip(measured, plain, strict=True)])
    median_plain = statistics.median(plain)
    median_tracked = statistics.median(measured)
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, meter {tracker.source}"
    )
    print(f"epochs: {args.pairs} untracked, {args.pairs} tracked, alternating (ABBA)")
    print(f"median untracked epoch: {median_plain * 1e3:.2f} ms")
    print(f"median tracked epoch:   {median_tracked * 1e3:.2f} ms")
    print(f"overhead, median of per-pair ratios: {(ratio - 1) * 100:+.2f} %")
    print(
        f"one empty window: {per_window * 1e6:.1f} µs "
        f"= {per_window / median_plain * 100:.4f} % of an untracked epoch"
    )
    tracker.meter.close()


if __name__ == "__main__":
    main()
