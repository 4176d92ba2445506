"""The selected LR trains: the demo's small batches, and models that are already trained."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from optuna_sm2 import explore_lr
from optuna_sm2.lr import sweep_plan

digits = pytest.importorskip("optuna_sm2.scenarios.digits")


@pytest.fixture(scope="module")
def data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    pytest.importorskip("sklearn")
    train, valid = digits.load_digits()
    return train, valid


def explore_batches(
    train: tuple[torch.Tensor, torch.Tensor], batch_size: int, n: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = train
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    return [
        (x[order[i : i + batch_size]], y[order[i : i + batch_size]])
        for i in range(0, n * batch_size, batch_size)
    ]


def one_epoch_accuracy(model: nn.Module, data: tuple, batch_size: int, lr: float) -> float:
    (x, y), valid = data
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    for i in range(0, len(y), batch_size):
        index = order[i : i + batch_size]
        opt.zero_grad()
        F.cross_entropy(model(x[index]), y[index]).backward()
        opt.step()
    with torch.no_grad():
        return digits.accuracy(model, valid)


def select(model: nn.Module, train: tuple, batch_size: int, seed: int) -> float:
    plan = sweep_plan(len(train[1]), batch_size, 0.25, 20)
    batches = explore_batches(train, batch_size, plan.n_batches, seed)
    return explore_lr(model, F.cross_entropy, batches, plan=plan).selected_lr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_batch_4_no_longer_picks_a_dead_network(data: tuple, seed: int) -> None:
    """``make demo`` at batch 4 picked LR 1, and one epoch there ends at chance."""
    torch.manual_seed(seed)
    model = digits.build_mlp()
    assert one_epoch_accuracy(model, data, 4, 1.0) < 0.15  # LR 1 kills it without exploding
    lr = select(model, data[0], 4, seed + 10)
    assert lr < 1.0
    assert one_epoch_accuracy(model, data, 4, lr) > 0.45


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_batch_8_trains(data: tuple, seed: int) -> None:
    torch.manual_seed(seed)
    model = digits.build_mlp()
    lr = select(model, data[0], 8, seed + 10)
    assert one_epoch_accuracy(model, data, 8, lr) > 0.5


@pytest.mark.parametrize(("seed", "batch_size"), [(0, 4), (1, 4), (2, 4), (0, 8), (1, 8)])
def test_not_timid_on_a_trained_model(data: tuple, seed: int, batch_size: int) -> None:
    """Sweeps on trained models used to pick the grid's bottom (0.001-0.006)."""
    (x, y), _ = data
    torch.manual_seed(seed)
    model = digits.build_mlp()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(2):
        for i in range(0, len(y), 16):
            opt.zero_grad()
            F.cross_entropy(model(x[i : i + 16]), y[i : i + 16]).backward()
            opt.step()
    lr = select(model, data[0], batch_size, seed + 10)
    assert lr > 0.006
    assert one_epoch_accuracy(model, data, batch_size, lr) > 0.85
