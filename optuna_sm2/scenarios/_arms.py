"""The benchmark's arms on one scenario: one vanilla training run, and one SM² study."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from typing import Any

import optuna
import torch

from optuna_sm2 import _compat
from optuna_sm2 import attrs as _attrs
from optuna_sm2.analysis._summary import summarize_study
from optuna_sm2.energy import EnergyMeter, EnergyTracker
from optuna_sm2.scenarios._base import Scenario
from optuna_sm2.scenarios._results import ArmResult, StepRecord
from optuna_sm2.training._batches import PreloadedBatches
from optuna_sm2.training._objective import SM2Objective
from optuna_sm2.training._schedule import Phase
from optuna_sm2.training._synchronous import optimize_synchronous

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default progress callback: say nothing."""


def make_objective(
    scenario: Scenario, meter: EnergyMeter, *, seed: int = 0, device: str = "cpu"
) -> SM2Objective:
    """The :class:`SM2Objective` of ``scenario`` at its budget."""
    return scenario.objective(_RecordingObjective, device=device, meter=meter, seed=seed)


class _RecordingObjective(SM2Objective):
    """An :class:`SM2Objective` that also keeps every reported step (the study keeps only the
    latest energy and LR per trial) and tells a progress callback about it."""

    records: list[StepRecord]
    progress: Progress

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records = []
        self.progress = _quiet

    def run(self, trial: optuna.trial.Trial) -> Generator[Phase, None, float]:
        steps = super().run(trial)
        try:
            while True:
                phase = next(steps)
                self._record(trial, phase)
                yield phase
        except StopIteration as done:
            return float(done.value)
        finally:
            steps.close()

    def _record(self, trial: optuna.trial.Trial, phase: Phase) -> None:
        frozen = _compat.frozen(trial)
        energy = frozen.user_attrs.get(_attrs.ENERGY_PER_EPOCH_J)
        lr = float(frozen.user_attrs.get(_attrs.STABLE_LR, math.nan))
        value = float(frozen.intermediate_values.get(phase.step, math.nan))
        record = StepRecord(
            trial=trial.number,
            batch_size=int(frozen.params["batch_size"]),
            step=phase.step,
            kind=phase.kind,
            value=value,
            energy_per_epoch_j=None if energy is None else float(energy),
            lr=lr,
        )
        self.records.append(record)
        self.progress(
            f"trial {record.trial} batch {record.batch_size:4d} step {phase.step:2d}/"
            f"{len(self.schedule.phases) - 1} {phase.kind:7s} {self._metric_name}={value:.4f} "
            f"lr={lr:.3g}"
        )


def run_sm2(
    scenario: Scenario,
    objective: SM2Objective,
    arm: str,
    *,
    alpha: float,
    beta: float,
    progress: Progress = _quiet,
) -> ArmResult:
    """One SM² study with ``objective.make_pruner(alpha, beta)`` in memory, synchronously.

    Total energy: the sum of ``sm2.energy_total_j`` over the study's trials
    (:func:`optuna_sm2.analysis._summary.summarize_study`). The final metric is the best
    completed trial's value; ``best_params`` adds the stable LR it trained with.
    """
    if isinstance(objective, _RecordingObjective):
        objective.records = []
        objective.progress = progress
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
    records = objective.records if isinstance(objective, _RecordingObjective) else []
    return ArmResult(
        arm=arm,
        total_energy_j=summary.total_energy_j,
        final_metric=final,
        best_params=params,
        n_trials=len(study.trials),
        wall_s=wall,
        energy_source="+".join(summary.energy_sources),
        steps=tuple(records),
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

    Every epoch and every evaluation is an energy window of ``meter``; the total is their sum.
    The final metric is the one measured after the last epoch.
    """
    budget = scenario.budget
    batch_size = budget.default_batch_size
    lr = scenario.conventional_lr
    tracker = EnergyTracker(meter)
    torch.manual_seed(seed)
    target = torch.device(device)
    model = scenario.build_model(None).to(target)
    train = PreloadedBatches(*scenario.train_data, device=target, seed=seed)
    valid = tuple(t.to(target) for t in scenario.valid_data)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    total = 0.0
    records: list[StepRecord] = []
    notes: list[str] = []
    best, since_best, value = math.nan, 0, math.nan
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        diverged = False
        with tracker.window() as window:
            for inputs, targets in train.batches(batch_size):
                optimizer.zero_grad(set_to_none=True)
                loss = scenario.loss_fn(model(inputs), targets)
                if not torch.isfinite(loss):
                    diverged = True
                    break
                torch.autograd.backward(loss)
                optimizer.step()
        model.eval()
        with tracker.window() as evaluation, torch.no_grad():
            value = float(scenario.metric(model, (valid[0], valid[1])))
        total += _joules(window.joules) + _joules(evaluation.joules)
        records.append(
            StepRecord(0, batch_size, epoch, "train", value, _joules(window.joules), lr)
        )
        progress(
            f"epoch {epoch + 1}/{epochs} batch {batch_size} lr={lr:g} "
            f"{scenario.metric_name}={value:.4f}"
        )
        if diverged:
            notes.append(f"the loss diverged in epoch {epoch + 1}")
            break
        if math.isnan(best) or scenario.better(value, best):
            best, since_best = value, 0
        else:
            since_best += 1
            if since_best >= budget.patience and epoch + 1 < epochs:
                notes.append(f"early stop after epoch {epoch + 1} of {epochs}")
                break
    return ArmResult(
        arm="vanilla",
        total_energy_j=total,
        final_metric=value,
        best_params={"batch_size": batch_size, "lr": lr},
        n_trials=1,
        wall_s=time.perf_counter() - start,
        energy_source=tracker.source,
        steps=tuple(records),
        notes=tuple(notes),
    )


def _joules(x: float) -> float:
    """A window's joules, 0 for an invalid (NaN) window."""
    return x if math.isfinite(x) else 0.0
