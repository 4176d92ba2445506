"""One training epoch fed by torch's DataLoader and by SM2Objective's data sources, side by side.

A small MLP (64 features -> 128 -> 10) on synthetic data, the same model, batch size and
optimizer for every source, alternating within each repeat so that all see the same machine load:

- ``DataLoader``: ``DataLoader(TensorDataset(x, y), batch_size, shuffle=True)``, the baseline;
- ``tensors, preloaded``: ``PreloadedBatches(x, y)``, what a pair of tensors gives;
- ``Dataset, preloaded``: the same ``TensorDataset`` as ``SM2Objective`` takes it when it fits the
  preload budget (collated once, then cut on the device);
- ``dict Dataset, preloaded``: a Dataset whose items are ``({"x": ...}, y)``, preloaded;
- ``Dataset, streamed``: the ``TensorDataset`` over the budget (``preload_budget_bytes=0``),
  streamed through a DataLoader per epoch with the epoch's seeded order.

Prints per-source median epoch times, their ratio to the DataLoader's, the time to iterate one
epoch without training (what the loaders themselves cost) and the one-time collation of the
preloaded Dataset.

    .venv/bin/python benchmarks/loader_speed.py [--samples 20000] [--batch-size 64] [--repeats 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from optuna_sm2 import PreloadedBatches
from optuna_sm2.training._data import ObjectiveData, TrialBatches, check_data

Batches = Iterable[tuple[Any, torch.Tensor]]


class DictItems(Dataset[tuple[dict[str, torch.Tensor], torch.Tensor]]):
    """Items ``({"x": features}, label)``: the form of a multi-input or text model's data."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"x": self.x[i]}, self.y[i]


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Batches) -> None:
    loss_fn = nn.CrossEntropyLoss()
    for x, y in batches:
        features = x["x"] if isinstance(x, dict) else x
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(features), y).backward()
        optimizer.step()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def source(
    train: Dataset[Any], valid: tuple[torch.Tensor, torch.Tensor], budget: int | None
) -> tuple[ObjectiveData, TrialBatches]:
    """The training batches ``SM2Objective`` would use for ``train`` on the CPU."""
    data = ObjectiveData(
        check_data("train_data", train),
        check_data("valid_data", valid),
        device=torch.device("cpu"),
        preload_budget_bytes=budget,
    )
    return data, data.for_trial(seed=0)


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
    valid = (inputs[:10], targets[:10])
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    dataset = TensorDataset(inputs, targets)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True)
    tensors = PreloadedBatches(inputs, targets, device="cpu", seed=0)
    collate_s = timed(lambda: source(dataset, valid, None))
    placed, preloaded = source(dataset, valid, None)
    dict_placed, dict_preloaded = source(DictItems(inputs, targets), valid, None)
    streamed_placed, streamed = source(dataset, valid, 0)
    assert placed.preloaded["train_data"] and dict_placed.preloaded["train_data"]
    assert not streamed_placed.preloaded["train_data"]

    sources: dict[str, Callable[[], Batches]] = {
        "DataLoader": lambda: loader,
        "tensors, preloaded": lambda: tensors.batches(args.batch_size),
        "Dataset, preloaded": lambda: preloaded.batches(args.batch_size),
        "dict Dataset, preloaded": lambda: dict_preloaded.batches(args.batch_size),
        "Dataset, streamed": lambda: streamed.batches(args.batch_size),
    }

    def training(batches: Callable[[], Batches]) -> Callable[[], None]:
        return lambda: train_epoch(model, optimizer, batches())

    def iterating(batches: Callable[[], Batches]) -> Callable[[], int]:
        return lambda: sum(1 for _ in batches())

    runs: dict[str, Callable[[], object]] = {
        **{name: training(batches) for name, batches in sources.items()},
        **{f"{name}, no training": iterating(batches) for name, batches in sources.items()},
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
        base = "DataLoader, no training" if name.endswith("no training") else "DataLoader"
        ratio = medians[name] / medians[base]
        print(
            f"{name:>36}: median {median_ms:8.1f} ms/epoch  (min {min_ms:7.1f})  "
            f"ratio to {base}: {ratio:.2f}x"
        )
    print(f"collating and preloading the Dataset once: {collate_s * 1000:.1f} ms")


if __name__ == "__main__":
    main()
