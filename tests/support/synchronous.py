"""A deterministic tiny synchronous study, interrupts at chosen points, and what a finished
synchronous study must look like."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from torch import nn

from optuna_sm2 import SM2Objective
from optuna_sm2.energy import EnergyMeter
from optuna_sm2.pruners import own_records
from optuna_sm2.training import PhaseResult
from optuna_sm2.training._configurations import read_configurations
from tests.support.tiny import accuracy, tiny_data


class BatchMeter(EnergyMeter):
    """One joule per batch the loss sees: energy per epoch is the number of batches."""

    source = "simulated"

    def __init__(self) -> None:
        self.joules = 0.0

    def read(self) -> float:
        return self.joules


def counting_objective(**kwargs: Any) -> SM2Objective:
    """The tiny workload with energy counted in batches: every figure is the same in every run,
    so that decisions can be compared across runs (and differ by batch size, without ties)."""
    meter = BatchMeter()

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        meter.joules += 1.0
        return nn.functional.cross_entropy(outputs, targets)

    train, valid = tiny_data()
    options: dict[str, Any] = {
        "build_model": lambda trial: nn.Linear(4, 2),
        "metric": accuracy,
        "batch_sizes": (4, 8, 12, 16, 24, 32, 48, 72),
        "n_lrs": 6,
        "epochs_per_rung": 1,
        "final_epochs": 1,
        "meter": meter,
        "metric_name": "accuracy",
    }
    options.update(kwargs)
    return SM2Objective(train_data=train, valid_data=valid, loss_fn=loss, **options)


def minus_loss(model: nn.Module, data: Any) -> float:
    """A metric to maximize that moves with every weight (accuracy, on tiny data, may not)."""
    inputs, targets = data
    return -float(nn.functional.cross_entropy(model(inputs), targets))


DROPOUT: dict[str, Any] = {
    "build_model": lambda trial: nn.Sequential(
        nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2)
    ),
    "metric": minus_loss,
    "metric_name": "minus_loss",
}
"""Arguments of :func:`counting_objective` for a workload that draws torch's random numbers in
every step (dropout) and whose metric tells any two trainings apart."""


LAST_RUNG_STEP = 5
"""The tiny schedule's rungs are at steps 1, 3 and 5; one final block follows."""

POINTS: dict[str, Callable[[PhaseResult], bool]] = {
    "before the first rung": lambda r: r.batch_size == 12 and r.step == 0,
    "at the first rung, before its record": lambda r: r.batch_size == 24 and r.rung == 0,
    "between rungs": lambda r: r.step == 2,
    "at the last rung": lambda r: r.rung == 2,
    "during the final epochs": lambda r: r.step > LAST_RUNG_STEP,
}
"""Where a run is stopped: the first step of the run for which the predicate holds."""


class InterruptAt:
    """A step callback raising ``KeyboardInterrupt`` (as Ctrl-C would) once, at the first step
    for which ``when(result)`` holds; ``seen`` counts the steps before."""

    def __init__(self, when: Callable[[PhaseResult], bool]) -> None:
        self.when = when
        self.fired = False
        self.seen = 0

    def __call__(self, trial: optuna.trial.Trial, result: PhaseResult) -> None:
        if not self.fired and self.when(result):
            self.fired = True
            raise KeyboardInterrupt
        self.seen += 1


def outcomes(study: optuna.Study) -> dict[int, tuple[str, int]]:
    """Per batch size: how its configuration ended and how many rungs it recorded."""
    result = {}
    for configuration in read_configurations(study).values():
        rungs = set()
        for trial in configuration.trials:
            rungs |= set(own_records(trial.number, trial.system_attrs))
        result[configuration.batch_size] = (configuration.current.state.name, len(rungs))
    return result


def assert_finished(study: optuna.Study, objective: SM2Objective) -> None:
    """Every batch size once, one configuration COMPLETE, nothing RUNNING or WAITING, every
    FAIL trial retried, halving 8 -> 4 -> 2 -> 1."""
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    configurations = read_configurations(study)
    assert sorted(c.batch_size for c in configurations.values()) == sorted(objective.batch_sizes)
    for configuration in configurations.values():
        # A failed trial belongs to a configuration that a retry carried on.
        assert all(t.state != TrialState.FAIL for t in configuration.trials[-1:])
    ended = outcomes(study)
    assert sorted(state for state, _ in ended.values()) == ["COMPLETE"] + ["PRUNED"] * 7
    assert sorted(rungs for _, rungs in ended.values()) == [1, 1, 1, 1, 2, 2, 3, 3]
