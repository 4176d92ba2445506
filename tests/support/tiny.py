"""A tiny classification workload for end-to-end tests of the objective."""

from __future__ import annotations

import optuna
import torch
from torch import nn

from optuna_sm2 import SM2Objective
from optuna_sm2.energy import SimulatedMeter
from tests.support.storages import fail_and_retry


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
    """``SM2Objective`` on :func:`tiny_data` with a linear model; every argument by keyword, so
    that any of them can be replaced."""
    train, valid = tiny_data()
    arguments = {
        "build_model": lambda trial: nn.Linear(4, 2),
        "train_data": train,
        "valid_data": valid,
        "loss_fn": nn.functional.cross_entropy,
        "metric": accuracy,
        "batch_sizes": (4, 8, 12, 16, 24, 32, 48, 72),
        "n_lrs": 6,
        "epochs_per_rung": 1,
        "final_epochs": 1,
        "meter": SimulatedMeter(power_w=50.0),
        "metric_name": "accuracy",
    }
    arguments.update(kwargs)
    return SM2Objective(**arguments)


def die_past_first_rung(study: optuna.Study, objective: SM2Objective) -> optuna.trial.Trial:
    """Run a new trial one step past its first rung (its checkpoint), then let it die as a
    killed worker's would: FAIL, and a retry enqueued by Optuna's heartbeat callback."""
    trial = study.ask()
    steps = objective.run(trial)
    for phase in steps:
        if phase.rung == 0:
            break
    next(steps)
    fail_and_retry(study, trial)
    return trial
