"""One-epoch regret of the selected LR against every grid LR, on six model families.

For each model family, batch size and start (fresh weights, or weights trained for 2 epochs),
one exploration is run the way ``SM2Objective`` runs it (``sweep_plan`` of the training set,
``explore_fraction=0.25``, the paper's grid of 20 LRs over 1e-3 .. 1, plain SGD), and then,
from the same weights, one epoch of plain SGD is trained at the selected LR and at every grid
LR. Quality is the validation accuracy after that epoch (the mean over ``--orders`` data
orders, the same orders for every LR). Then

    regret = (best grid quality - quality at the pick) / (best grid quality - chance)

where chance is the validation share of the most frequent class. A case counts only when
some grid LR trains (best >= chance + 0.10); a pick "at chance" scores <= chance + 0.05.

Data: scikit-learn's handwritten digits (1,797 8x8 images in the wheel; 1,437 train, 360
validation, the split of ``optuna-sm2 demo``); nothing is downloaded. Families: logistic
regression, the demo's MLP (64 hidden), a deeper MLP (4 x 64), a CNN with batch norm, a GRU
over the image rows, a 1-layer Transformer over the rows. "Trained" starts: 2 epochs of Adam
(lr 3e-3, batch 16) from the fresh weights.

Also printed: the exploration's samples against its stated budget (``explore_fraction`` of
the set plus one batch), and the exploration's joules per sample against a thorough epoch's
on a constant-power ``SimulatedMeter`` read on the wall clock (median of 3 side by side).

    nice .venv/bin/python benchmarks/lr_regret.py            # ~10 minutes on 2 busy cores
    nice .venv/bin/python benchmarks/lr_regret.py --quick    # 2 families, 3 batch sizes

The "before" column of docs/lr-sweep.md is this script copied into a checkout of older code
and run there (``git worktree add /tmp/before 5304717^``; the script puts its own checkout first
on ``sys.path``). Without ``sweep_plan`` the exploration gets the batches the old objective gave
it (the 25% share, cycled until every grid LR has a batch).
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import optuna_sm2.lr as lr_package
from optuna_sm2 import EnergyTracker, explore_lr
from optuna_sm2.energy import SimulatedMeter
from optuna_sm2.scenarios.digits import load_digits

Pair = tuple[torch.Tensor, torch.Tensor]
GRID = np.logspace(-3, 0, 20)
FRACTION = 0.25
TRAINS = 0.10  # best grid quality at least this far above chance: some LR trains
AT_CHANCE = 0.05  # quality at most this far above chance: left at chance


class GRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.view(-1, 8, 8))
        return self.head(out[:, -1])


class RowTransformer(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.embed = nn.Linear(8, width)
        self.pos = nn.Parameter(torch.randn(8, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, 4, 64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x.view(-1, 8, 8)) + self.pos).mean(1))


def deep_mlp() -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(64, 64), nn.ReLU()]
    for _ in range(3):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(64, 10))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 10),
    )  # fmt: skip


FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "logistic regression": lambda: nn.Linear(64, 10),
    "MLP (64)": lambda: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)),
    "deeper MLP (4x64)": deep_mlp,
    "CNN (batch norm)": cnn,
    "GRU (rows)": GRU,
    "Transformer (rows, 1 layer)": RowTransformer,
}


def accuracy(model: nn.Module, valid: Pair) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(valid[0]).argmax(1) == valid[1]).float().mean())


def one_epoch(model: nn.Module, train: Pair, batch_size: int, lr: float, order: int) -> None:
    x, y = train
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    torch.manual_seed(100 + order)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(order))
    for i in range(0, len(y), batch_size):
        index = perm[i : i + batch_size]
        opt.zero_grad()
        F.cross_entropy(model(x[index]), y[index]).backward()
        opt.step()


def quality(
    start: nn.Module, data: tuple[Pair, Pair], batch_size: int, lr: float, orders: int
) -> float:
    """Mean validation accuracy after one epoch at ``lr`` from ``start``, over data orders."""
    out = []
    for order in range(orders):
        model = copy.deepcopy(start)
        one_epoch(model, data[0], batch_size, lr, order)
        out.append(accuracy(model, data[1]))
    return float(np.mean(out))


def pretrained(model: nn.Module, train: Pair) -> nn.Module:
    """2 epochs of Adam (lr 3e-3, batch 16) from ``model``'s weights."""
    model = copy.deepcopy(model)
    x, y = train
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    g = torch.Generator().manual_seed(5)
    for _ in range(2):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 16):
            index = perm[i : i + 16]
            opt.zero_grad()
            F.cross_entropy(model(x[index]), y[index]).backward()
            opt.step()
    return model


def exploration_batches(train: Pair, batch_size: int, count: int, seed: int) -> list[Pair]:
    """``count`` batches of the exploration's share, reshuffled when the share runs out (the
    way the objective cycles the data)."""
    x, y = train
    share = max(math.ceil(FRACTION * len(y)), batch_size)
    g = torch.Generator().manual_seed(seed)
    out: list[Pair] = []
    while len(out) < count:
        perm = torch.randperm(len(y), generator=g)[:share]
        for i in range(0, share, batch_size):
            out.append((x[perm[i : i + batch_size]], y[perm[i : i + batch_size]]))
            if len(out) == count:
                break
    return out


def explore(model: nn.Module, train: Pair, batch_size: int, seed: int, **kwargs: Any) -> Any:
    """One exploration as the objective runs it (or, without ``sweep_plan``, as it used to)."""
    n = len(train[1])
    plan_of = getattr(lr_package, "sweep_plan", None)
    if plan_of is None:  # an optuna_sm2 from before the plan: the old objective's batches
        count = max(20, -(-max(math.ceil(FRACTION * n), batch_size) // batch_size))
        batches = exploration_batches(train, batch_size, count, seed)
        return explore_lr(model, F.cross_entropy, batches, **kwargs)
    plan = plan_of(n, batch_size, FRACTION, len(GRID))
    batches = exploration_batches(train, batch_size, plan.n_batches, seed)
    return explore_lr(model, F.cross_entropy, batches, plan=plan, **kwargs)


def regret_table(families: list[str], batch_sizes: list[int], orders: int) -> None:
    data = load_digits()
    train, valid = data
    chance = float(torch.bincount(valid[1]).max()) / len(valid[1])
    regrets: list[float] = []
    at_chance: list[str] = []
    spend: dict[int, list[float]] = {b: [] for b in batch_sizes}
    print(
        "| family | start | batch | pick | quality at pick | best grid LR | best quality "
        "| regret | samples / budget |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in families:
        torch.manual_seed(0)
        fresh = FAMILIES[name]()
        for start, model in (("fresh", fresh), ("trained", pretrained(fresh, train))):
            for batch_size in batch_sizes:
                grid = np.array(
                    [quality(model, data, batch_size, float(lr), orders) for lr in GRID]
                )
                result = explore(model, train, batch_size, seed=batch_size)
                pick = result.selected_lr
                match = np.flatnonzero(np.isclose(GRID, pick, rtol=1e-9))
                picked = (
                    float(grid[match[0]])
                    if match.size
                    else quality(model, data, batch_size, pick, orders)
                )
                best = float(grid.max())
                samples = getattr(result, "samples_processed", None)
                if samples is None:  # before the count: the sweep's batches and the checks'
                    samples = batch_size * (result.n_batches + 7 * len(result.checks))
                ratio = samples / (FRACTION * len(train[1]) + batch_size)
                spend[batch_size].append(ratio)
                if best - chance >= TRAINS:
                    regret = (best - picked) / (best - chance)
                    regrets.append(regret)
                    shown = f"{regret:.3f}"
                    if picked <= chance + AT_CHANCE:
                        at_chance.append(f"{name}, {start}, batch {batch_size}")
                else:
                    shown = "n/a (no LR trains)"
                print(
                    f"| {name} | {start} | {batch_size} | {pick:.3g} | {picked:.3f} "
                    f"| {GRID[grid.argmax()]:.3g} | {best:.3f} | {shown} | {ratio:.2f} |",
                    flush=True,
                )
    r = np.array(regrets)
    print(
        f"\nchance = {chance:.3f}; {r.size} cases where some grid LR trains: median regret "
        f"{np.median(r):.3f}, mean {r.mean():.3f}, worst {r.max():.3f}; above 0.25: "
        f"{int((r > 0.25).sum())}; above 0.10: {int((r > 0.10).sum())}; picks left at chance "
        f"while some LR trains: {len(at_chance)} {at_chance}"
    )
    print("\nsamples processed / (explore_fraction x train set + one batch), per batch size:")
    print("| batch | median | max |")
    print("|---|---|---|")
    for batch_size, ratios in spend.items():
        print(f"| {batch_size} | {np.median(ratios):.2f} | {max(ratios):.2f} |")


def joules_per_sample(batch_sizes: list[int]) -> None:
    """Exploration J/sample over a thorough epoch's, constant power on the wall clock."""
    if not hasattr(lr_package, "sweep_plan"):
        return
    train, _ = load_digits()
    tracker = EnergyTracker(SimulatedMeter(power_w=100.0))
    print("\nexploration J per sample / thorough epoch J per sample (MLP and CNN, median of 3):")
    print("| batch | MLP (64) | CNN (batch norm) |")
    print("|---|---|---|")
    for batch_size in batch_sizes:
        row = []
        for name in ("MLP (64)", "CNN (batch norm)"):
            ratios = []
            for rep in range(4):  # the first is a warm-up
                torch.manual_seed(rep)
                model = FAMILIES[name]()
                copied = copy.deepcopy(model)
                with tracker.window() as epoch:
                    one_epoch(copied, train, batch_size, 0.01, rep)
                result = explore(model, train, batch_size, seed=rep, tracker=tracker)
                thorough = epoch.joules / len(train[1])
                ratios.append(result.energy.joules / result.samples_processed / thorough)
            row.append(f"{statistics.median(ratios[1:]):.2f}")
        print(f"| {batch_size} | {' | '.join(row)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 families, 3 batch sizes")
    parser.add_argument("--orders", type=int, default=2, help="data orders per quality")
    args = parser.parse_args()
    torch.set_num_threads(1)
    families = ["MLP (64)", "CNN (batch norm)"] if args.quick else list(FAMILIES)
    batch_sizes = [4, 64, 1024] if args.quick else [4, 8, 16, 64, 256, 1024]
    machine = platform.processor() or platform.machine()
    print(
        f"{date.today()}, {machine}, torch {torch.__version__}, 1 thread; quality = "
        f"validation accuracy after one epoch, mean of {args.orders} data orders\n"
    )
    started = time.perf_counter()
    regret_table(families, batch_sizes, args.orders)
    joules_per_sample(batch_sizes)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
