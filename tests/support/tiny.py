"""A tiny classification workload for end-to-end tests of the objective."""

from __future__ import annotations

import torch
from torch import nn

from optuna_sm2 import SM2Objective
from optuna_sm2.energy import SimulatedMeter


def tiny_data(n: int = 96, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    cut = n * 3 // 4
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def accuracy(model: nn.Module, data) -> float:
    inputs, targets = data
    return float((model(inputs).argmax(1) == targets).float().mean())


def tiny_objective(**kwargs) -> SM2Objective:
    train, valid = tiny_data()
    options = {
        "batch_sizes": (4, 8, 12, 16, 24, 32, 48, 72),
        "n_lrs": 6,
        "epochs_per_rung": 1,
        "final_epochs": 1,
        "meter": SimulatedMeter(power_w=50.0),
        "metric_name": "accuracy",
    }
    options.update(kwargs)
    return SM2Objective(
        lambda trial: nn.Linear(4, 2),
        train,
        valid,
        nn.functional.cross_entropy,
        accuracy,
        **options,
    )
