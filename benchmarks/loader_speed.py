"""One training epoch with torch's DataLoader vs :class:`optuna_sm2.PreloadedBatches`.

A small MLP (64 features -> 128 -> 10) on synthetic data; both loaders feed the same model, the
same batch size and the same optimizer, alternating within each repeat so that both see the same
machine load. Prints per-loader median epoch times and the ratio preloaded / DataLoader, and,
to show what the loaders themselves cost, the time to iterate one epoch without training.

    .venv/bin/python benchmarks/loader_speed.py [--samples 20000] [--batch-size 64] [--repeats 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from optuna_sm2 import PreloadedBatches

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Batches) -> None:
    loss_fn = nn.CrossEntropyLoss()
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    inputs = torch.randn(args.samples, 64)
    targets = torch.randint(0, 10, (args.samples,))
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    loader = DataLoader(TensorDataset(inputs, targets), batch_size=args.batch_size, shuffle=True)
    preloaded = PreloadedBatches(inputs, targets, device="cpu", seed=0)

    def with_dataloader() -> None:
        train_epoch(model, optimizer, loader)

    def with_preloaded() -> None:
        train_epoch(model, optimizer, preloaded.batches(args.batch_size))

    def iterate_dataloader() -> None:
        for _ in loader:
            pass

    def iterate_preloaded() -> None:
        for _ in preloaded.batches(args.batch_size):
            pass

    runs = {
        "DataLoader": with_dataloader,
        "PreloadedBatches": with_preloaded,
        "DataLoader, no training": iterate_dataloader,
        "Preloaded, no training": iterate_preloaded,
    }
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(timed(run))

    print(
        f"torch {torch.__version__}, Python {platform.python_version()}, "
        f"{args.samples} samples, batch {args.batch_size}, {args.threads} thread(s), "
        f"{args.repeats} repeats"
    )
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    for name, ts in times.items():
        median_ms, min_ms = medians[name] * 1000, min(ts) * 1000
        print(f"{name:>24}: median {median_ms:8.1f} ms/epoch  (min {min_ms:.1f})")
    ratio = medians["PreloadedBatches"] / medians["DataLoader"]
    print(f"ratio PreloadedBatches / DataLoader (one training epoch): {ratio:.2f}x")


if __name__ == "__main__":
    main()
