"""The benchmark's arms on one scenario: one vanilla training run, and one SM² study.

Both train with the same code: the SM² arms run :class:`optuna_sm2.SM2Objective` through
:func:`optuna_sm2.optimize_synchronous` and watch its steps through the objective's public
``callbacks``; the vanilla arm trains and evaluates with the objective's own epoch and evaluation
(``training._phases``), and books energy in the same :class:`optuna_sm2.TrialEnergy`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import optuna
import torch

from optuna_sm2 import attrs as _attrs
from optuna_sm2.analysis._summary import summarize_study
from optuna_sm2.energy import EnergyMeter, EnergyTracker
from optuna_sm2.pruners import TrialEnergy
from optuna_sm2.scenarios._base import Scenario
from optuna_sm2.scenarios._results import ArmResult, StepRecord
from optuna_sm2.training._data import ObjectiveData, check_data
from optuna_sm2.training._loop import PhaseResult
from optuna_sm2.training._loss import Loss
from optuna_sm2.training._phases import evaluate, train_epoch
from optuna_sm2.training._synchronous import optimize_synchronous

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default progress callback: say nothing."""


class _StepRecorder:
    """A phase callback that keeps every reported step (the study keeps only the latest energy
    and LR per trial) and tells a progress callback about it."""

    def __init__(self, metric_name: str, progress: Progress) -> None:
        self.records: list[StepRecord] = []
        self._metric_name = metric_name
        self._progress = progress

    def __call__(self, trial: optuna.trial.Trial, result: PhaseResult) -> None:
        self.records.append(
            StepRecord(
                trial=result.trial_number,
                batch_size=result.batch_size,
                step=result.step,
                kind=result.kind,
                value=result.value,
                energy_per_epoch_j=result.energy_per_epoch_j,
                lr=result.lr,
            )
        )
        self._progress(
            f"trial {result.trial_number} batch {result.batch_size:4d} step {result.step:2d}/"
            f"{result.n_steps - 1} {result.kind:7s} {self._metric_name}={result.value:.4f} "
            f"lr={result.lr:.3g}"
        )


def run_sm2(
    scenario: Scenario,
    arm: str,
    *,
    alpha: float,
    beta: float,
    meter: EnergyMeter,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = _quiet,
) -> ArmResult:
    """One SM² study of the scenario's objective with its ``make_pruner(alpha, beta)``, in
    memory, synchronously.

    Total energy: the sum of ``sm2.energy_total_j`` over the study's trials
    (:func:`optuna_sm2.analysis._summary.summarize_study`). The final metric is the best
    completed trial's value; ``best_params`` adds the stable LR it trained with.
    """
    recorder = _StepRecorder(scenario.metric_name, progress)
    objective = scenario.objective(device=device, meter=meter, seed=seed, callbacks=[recorder])
    study = optuna.create_study(
        study_name=f"{scenario.name}-{arm}",
        direction=scenario.direction,
        pruner=objective.make_pruner(alpha=alpha, beta=beta),
    )
    start = time.perf_counter()
    optimize_synchronous(study, objective)
    wall = time.perf_counter() - start
    summary = summarize_study(study)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    notes: list[str] = list(summary.notes)
    if complete:
        best = study.best_trial
        final = float(best.value) if best.value is not None else math.nan
        params: dict[str, Any] = {**best.params, "lr": best.user_attrs.get(_attrs.STABLE_LR)}
    else:
        final, params = math.nan, {}
        notes.append("no trial completed (every configuration was pruned or failed)")
    return ArmResult(
        arm=arm,
        total_energy_j=summary.total_energy_j,
        final_metric=final,
        best_params=params,
        n_trials=len(study.trials),
        wall_s=wall,
        energy_source="+".join(summary.energy_sources),
        steps=tuple(recorder.records),
        notes=tuple(notes),
    )


def run_vanilla(
    scenario: Scenario,
    meter: EnergyMeter,
    epochs: int,
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = _quiet,
) -> ArmResult:
    """One ordinary training run: the middle batch size, the scenario's conventional LR, plain
    SGD, at most ``epochs`` epochs, stopped early after ``budget.patience`` epochs without a
    better validation metric (or when the loss is no longer finite).

    Every epoch and every evaluation is an energy window of ``meter``, booked in a
    :class:`optuna_sm2.TrialEnergy` (on a ``FixedTrial``: no study): the total is the sum of
    the valid windows, with a note saying how many could not be measured; when none could,
    the total is NaN (unmeasured, never 0 J). The final metric is the one measured after the
    last epoch.
    """
    budget = scenario.budget
    batch_size = budget.default_batch_size
    lr = scenario.conventional_lr
    tracker = EnergyTracker(meter)
    torch.manual_seed(seed)
    target = torch.device(device)
    model = scenario.build_model(None).to(target)
    data = ObjectiveData(
        check_data("train_data", scenario.train_data),
        check_data("valid_data", scenario.valid_data),
        device=target,
    )
    train = data.for_trial(seed)
    loss = Loss.checked(scenario.loss_fn, None)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    book = TrialEnergy(optuna.trial.FixedTrial({}), tracker)
    records: list[StepRecord] = []
    notes: list[str] = []
    best, since_best, value = math.nan, 0, math.nan
    start = time.perf_counter()
    for epoch in range(epochs):
        trained = train_epoch(model, optimizer, train.batches(batch_size), loss, tracker)
        value, evaluation = evaluate(model, scenario.metric, data.valid, tracker)
        energy = book.add("train", trained.window)
        book.add("eval", evaluation)
        records.append(StepRecord(0, batch_size, epoch, "train", value, energy, lr))
        progress(
            f"epoch {epoch + 1}/{epochs} batch {batch_size} lr={lr:g} "
            f"{scenario.metric_name}={value:.4f}"
        )
        if trained.diverged_loss is not None:
            notes.append(f"the loss diverged in epoch {epoch + 1}")
            break
        if math.isnan(best) or scenario.better(value, best):
            best, since_best = value, 0
        else:
            since_best += 1
            if since_best >= budget.patience and epoch + 1 < epochs:
                notes.append(f"early stop after epoch {epoch + 1} of {epochs}")
                break
    total, windows = book.total_j, 2 * len(records)  # an epoch and its evaluation each
    if total is None:
        notes.append(f"none of the {windows} energy windows could be measured: energy unmeasured")
    elif book.invalid_windows:
        notes.append(
            f"{book.invalid_windows} of {windows} energy windows could not be measured: the "
            f"total is of the other {windows - book.invalid_windows}"
        )
    return ArmResult(
        arm="vanilla",
        total_energy_j=math.nan if total is None else total,
        final_metric=value,
        best_params={"batch_size": batch_size, "lr": lr},
        n_trials=1,
        wall_s=time.perf_counter() - start,
        energy_source=tracker.source,
        steps=tuple(records),
        notes=tuple(notes),
    )
