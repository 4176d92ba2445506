"""The benchmark's arms on one scenario and one seed, each a function with the same signature.

Every arm trains with the same code and books energy the same way: the SM² arms and the grid run
:class:`optuna_sm2.SM2Objective` and watch its steps through the objective's public
``callbacks``; the vanilla run and the TPE + Hyperband trials train and evaluate with the
objective's own epoch and evaluation (``training._phases``) and book each window in a
:class:`optuna_sm2.TrialEnergy`, as the objective does. A window that could not be measured is
never counted as 0 J: it is left out with a note, and an arm with no measured window has a NaN
total (``null`` in ``results.json``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import optuna
import torch
from optuna.trial import TrialState

from optuna_sm2 import _trial_attrs as trial_attrs
from optuna_sm2.analysis import summarize_study
from optuna_sm2.energy import EnergyMeter, EnergyTracker, Resolution
from optuna_sm2.pruners import TrialEnergy
from optuna_sm2.scenarios._base import Scenario
from optuna_sm2.scenarios._results import ArmResult, StepRecord
from optuna_sm2.scenarios._table import (
    GridTable,
    TableConfiguration,
    TableRecorder,
    sum_joules,
)
from optuna_sm2.training import (
    Loss,
    ObjectiveData,
    PhaseResult,
    SM2Objective,
    check_data,
    evaluate,
    optimize_synchronous,
    sgd,
    train_epoch,
)

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default progress callback: say nothing."""


class ArmRunner(Protocol):
    """``runner(scenario, meter, seed=..., device=..., progress=...)``: one arm on one seed."""

    def __call__(
        self,
        scenario: Scenario,
        meter: EnergyMeter,
        *,
        seed: int = 0,
        device: str = "cpu",
        progress: Progress = _quiet,
    ) -> ArmResult: ...


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


def _objective_arm(
    scenario: Scenario,
    arm: str,
    meter: EnergyMeter,
    *,
    seed: int,
    device: str,
    progress: Progress,
    pruner: Callable[[SM2Objective], optuna.pruners.BasePruner],
    optimize: Callable[[optuna.Study, SM2Objective], None],
) -> ArmResult:
    """One study of the scenario's :class:`SM2Objective`, in memory: ``pruner(objective)`` is
    the study's pruner, ``optimize(study, objective)`` runs it.

    Total energy: the sum of ``sm2.energy_total_j`` over the study's trials
    (:func:`optuna_sm2.analysis._summary.summarize_study`; NaN when no trial was measured, its
    notes say which were not). The final metric is the best
    completed trial's value; ``best_params`` adds the stable LR it last trained with.
    """
    recorder = _StepRecorder(scenario.metric_name, progress)
    objective = scenario.objective(device=device, meter=meter, seed=seed, callbacks=[recorder])
    study = optuna.create_study(
        study_name=f"{scenario.name}-{arm}", direction=scenario.direction, pruner=pruner(objective)
    )
    start = time.perf_counter()
    optimize(study, objective)
    wall = time.perf_counter() - start
    summary = summarize_study(study)
    notes: list[str] = list(summary.notes)
    final, params, chosen = _best(study, notes)
    if chosen is not None:
        params["lr"] = trial_attrs.STABLE_LR.read(study.best_trial.user_attrs)
    return ArmResult(
        arm=arm,
        seed=seed,
        total_energy_j=summary.total_energy_j if summary.measured_trials else math.nan,
        final_metric=final,
        best_params=params,
        n_trials=len(study.trials),
        wall_s=wall,
        energy_source="+".join(summary.energy_sources),
        chosen_trial=chosen,
        steps=tuple(recorder.records),
        notes=tuple(notes),
    )


def _best(study: optuna.Study, notes: list[str]) -> tuple[float, dict[str, Any], int | None]:
    """The best completed trial's value, parameters and number; NaN and a note when none."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        notes.append("no trial completed (every configuration was pruned or failed)")
        return math.nan, {}, None
    best = study.best_trial
    value = float(best.value) if best.value is not None else math.nan
    return value, dict(best.params), best.number


def run_sm2(
    scenario: Scenario,
    meter: EnergyMeter,
    *,
    arm: str,
    alpha: float,
    beta: float,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = _quiet,
) -> ArmResult:
    """One SM² study of the scenario with ``objective.make_pruner(alpha, beta)``, run
    synchronously (:func:`optuna_sm2.optimize_synchronous`: every batch size once, halved at
    every rung)."""
    return _objective_arm(
        scenario,
        arm,
        meter,
        seed=seed,
        device=device,
        progress=progress,
        pruner=lambda objective: objective.make_pruner(alpha=alpha, beta=beta),
        optimize=optimize_synchronous,
    )


class OutOfTime(Exception):
    """The bench's time ran out between two trials; what finished is stored."""


def new_table(
    scenario: Scenario,
    meter: EnergyMeter,
    *,
    seed: int,
    resolution: Resolution | None,
    meta: dict[str, Any],
) -> GridTable:
    """An empty :class:`GridTable` of ``scenario`` and ``seed`` measured with ``meter``."""
    schedule = scenario.budget.schedule
    return GridTable(
        scenario=scenario.name,
        seed=seed,
        budget=scenario.budget.name,
        metric_name=scenario.metric_name,
        direction=scenario.direction,
        batch_sizes=tuple(scenario.budget.batch_sizes),
        phases=tuple(p.kind for p in schedule.phases),
        rung_steps=tuple(schedule.rung_steps),
        energy_source=meter.source,
        energy_is_estimate=meter.is_estimate,
        resolution=None if resolution is None else resolution._asdict(),
        meta=meta,
    )


def run_grid(
    scenario: Scenario,
    meter: EnergyMeter,
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = _quiet,
    table: GridTable | None = None,
    save: Callable[[GridTable], object] | None = None,
    deadline: float | None = None,
) -> ArmResult:
    """The paper's manual HPO: every batch size trained through the whole SM² schedule
    (explorations and thorough epochs) with no pruning (Optuna's ``NopPruner``); a configuration
    whose loss diverges still stops, as in every arm. The final metric is the best one's.

    Configuration ``k`` (the ``k``-th batch size) runs alone in its own in-memory study with the
    objective seeded ``seed + k``: the model, batches and explorations an SM² study seeded
    ``seed`` gives its trial ``k``. Each finished configuration is added to ``table`` (a
    :class:`GridTable`; a new one by default) and passed to ``save``; the configurations
    ``table`` holds already are not trained again. With a ``deadline`` (``time.monotonic()``)
    no configuration starts after it: :class:`OutOfTime` is raised between configurations.

    The result is the table's (:func:`grid_result`).
    """
    if table is None:
        table = new_table(scenario, meter, seed=seed, resolution=None, meta={})
    held = [c.batch_size for c in table.configurations]
    if held != list(scenario.budget.batch_sizes[: len(held)]):
        raise ValueError(
            f"the grid table of {scenario.name} seed {seed} holds batch sizes {held}, not the "
            f"first of {list(scenario.budget.batch_sizes)}: use another --out folder"
        )
    for k, batch_size in enumerate(scenario.budget.batch_sizes):
        if k < len(held):
            continue
        if deadline is not None and time.monotonic() >= deadline:
            raise OutOfTime(
                f"{scenario.name} grid seed {seed}: {k} of {len(scenario.budget.batch_sizes)} "
                "configurations trained"
            )
        table = table.with_configuration(
            _grid_configuration(scenario, meter, k, batch_size, seed, device, progress)
        )
        if save is not None:
            save(table)
    return grid_result(table)


def _grid_configuration(
    scenario: Scenario,
    meter: EnergyMeter,
    k: int,
    batch_size: int,
    seed: int,
    device: str,
    progress: Progress,
) -> TableConfiguration:
    recorder = TableRecorder()
    steps = _StepRecorder(scenario.metric_name, lambda m: progress(f"configuration {k}: {m}"))
    objective = scenario.objective(
        device=device, meter=meter, seed=seed + k, callbacks=[recorder, steps]
    )
    study = optuna.create_study(
        study_name=f"{scenario.name}-grid-{batch_size}",
        direction=scenario.direction,
        pruner=optuna.pruners.NopPruner(),
    )
    study.enqueue_trial({"batch_size": batch_size})
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    if trial.state == TrialState.COMPLETE:
        return TableConfiguration(k, batch_size, tuple(recorder.steps))
    booked = trial_attrs.ENERGY_TOTAL_J.read(trial.user_attrs) or 0.0
    tail = max(booked - sum_joules(recorder.steps)[0], 0.0)
    return TableConfiguration(
        k, batch_size, tuple(recorder.steps), (trial.state.name.lower(),), tail
    )


def grid_result(table: GridTable) -> ArmResult:
    """The grid arm's result on ``table``: its energy the sum of every window, its final metric
    the best configuration's that reached the last step, with the LR it last trained at."""
    notes = [
        f"batch {c.batch_size}: {note} at step {c.steps[-1].step if c.steps else 0}"
        for c in table.configurations
        for note in c.notes
    ]
    steps = [s for c in table.configurations for s in c.steps]
    spent = [c.joules_to(table.last_step, tail=True) for c in table.configurations]
    joules, unmeasured = math.fsum(j for j, _ in spent), sum(n for _, n in spent)
    if unmeasured:
        notes.append(f"{unmeasured} of {len(steps)} steps not measured: left out of the total")
    finished = [c for c in table.configurations if c.steps and c.steps[-1].step == table.last_step]
    chosen: TableConfiguration | None = None
    for c in finished:
        if chosen is None or table.better(c.steps[-1].value, chosen.steps[-1].value):
            chosen = c
    if chosen is None:
        notes.append("no configuration trained to the end (every one diverged)")
    return ArmResult(
        arm="grid",
        seed=table.seed,
        total_energy_j=joules if unmeasured < len(steps) else math.nan,
        final_metric=math.nan if chosen is None else chosen.steps[-1].value,
        best_params={}
        if chosen is None
        else {"batch_size": chosen.batch_size, "lr": chosen.steps[-1].lr},
        n_trials=len(table.configurations),
        wall_s=math.fsum(c.seconds for c in table.configurations),
        energy_source=table.energy_source,
        chosen_trial=None if chosen is None else chosen.trial,
        steps=tuple(r for c in table.configurations for r in c.records()),
        notes=tuple(notes),
    )


class _PlainArm:
    """What the vanilla and the TPE + Hyperband arms share: ``scenario``'s data on ``device``,
    one energy tracker of ``meter``, every configuration trained so far (:meth:`train`, up to
    ``epochs`` epochs each), the notes, and the clock, started once the data is in place."""

    def __init__(
        self,
        scenario: Scenario,
        meter: EnergyMeter,
        *,
        epochs: int,
        device: str,
        progress: Progress,
    ) -> None:
        self.scenario = scenario
        self.epochs = epochs
        self.progress = progress
        self.tracker = EnergyTracker(meter)
        self.device = torch.device(device)
        self.data = ObjectiveData(
            check_data("train_data", scenario.train_data),
            check_data("valid_data", scenario.valid_data),
            device=self.device,
        )
        self.runs: list[_PlainTraining] = []
        self.notes: list[str] = []
        self._start = time.perf_counter()

    def train(
        self, trial: optuna.trial.Trial | None, *, batch_size: int, lr: float, seed: int
    ) -> _PlainTraining:
        """A new configuration, seeded with ``seed``, kept in :attr:`runs`."""
        run = _PlainTraining(self, trial, batch_size=batch_size, lr=lr, seed=seed)
        self.runs.append(run)
        return run

    def result(
        self,
        arm: str,
        *,
        seed: int,
        final: float,
        params: dict[str, Any],
        chosen: int | None,
        n_trials: int,
    ) -> ArmResult:
        """The arm's result: its total energy is :meth:`measured_total`'s, its steps every
        run's records."""
        return ArmResult(
            arm=arm,
            seed=seed,
            total_energy_j=self.measured_total(),
            final_metric=final,
            best_params=params,
            n_trials=n_trials,
            wall_s=time.perf_counter() - self._start,
            energy_source=self.tracker.source,
            chosen_trial=chosen,
            steps=tuple(r for run in self.runs for r in run.records),
            notes=tuple(self.notes),
        )

    def measured_total(self) -> float:
        """The joules of every measured window of :attr:`runs`; NaN when none was measured. A
        note says how many windows (an epoch and its evaluation each) could not be measured."""
        totals = [run.book.total_j for run in self.runs]
        windows = sum(2 * len(run.records) for run in self.runs)
        invalid = sum(run.book.invalid_windows for run in self.runs)
        if all(total is None for total in totals):
            self.notes.append(
                f"none of the {windows} energy windows could be measured: energy unmeasured"
            )
            return math.nan
        if invalid:
            self.notes.append(
                f"{invalid} of {windows} energy windows could not be measured: the total is of "
                f"the other {windows - invalid}"
            )
        return math.fsum(total for total in totals if total is not None)


class _PlainTraining:
    """One configuration of a :class:`_PlainArm` trained the ordinary way: plain SGD at a fixed
    LR, the scenario's batches in a seeded order, one evaluation after every epoch. Each epoch
    and evaluation is an energy window of the arm's tracker booked in :attr:`book` (on
    ``trial``, or on a ``FixedTrial`` when there is none), each epoch a :class:`StepRecord` and
    a line to the arm's progress callback. Its records carry the trial's number, or without a
    trial its place among the arm's runs (vanilla's one run is 0; Zeus's jobs 0, 1, ...)."""

    def __init__(
        self,
        arm: _PlainArm,
        trial: optuna.trial.Trial | None,
        *,
        batch_size: int,
        lr: float,
        seed: int,
    ) -> None:
        torch.manual_seed(seed)
        self.model = arm.scenario.build_model(trial).to(arm.device)
        self._optimizer = sgd(self.model.parameters(), lr)
        self._loss = Loss.checked(arm.scenario.loss_fn, None)
        self._arm = arm
        self._train = arm.data.for_trial(seed)
        self._trial = len(arm.runs) if trial is None else trial.number
        self.batch_size = batch_size
        self._lr = lr
        self.book = TrialEnergy(
            optuna.trial.FixedTrial({}) if trial is None else trial, arm.tracker
        )
        self.records: list[StepRecord] = []
        self.diverged_loss: float | None = None
        """The non-finite training loss that stopped the latest epoch, if any."""

    def epoch(self) -> float:
        """Train one epoch, evaluate, book both, say so; the metric after it."""
        arm = self._arm
        trained = train_epoch(
            self.model,
            self._optimizer,
            self._train.batches(self.batch_size),
            self._loss,
            arm.tracker,
        )
        value, evaluation = evaluate(self.model, arm.scenario.metric, arm.data.valid, arm.tracker)
        energy = self.book.add("train", trained.window)
        self.book.add("eval", evaluation)
        self.diverged_loss = trained.diverged_loss
        step = len(self.records)
        self.records.append(
            StepRecord(self._trial, self.batch_size, step, "train", value, energy, self._lr)
        )
        arm.progress(
            f"trial {self._trial} batch {self.batch_size:4d} lr={self._lr:.3g} epoch "
            f"{step + 1}/{arm.epochs} {arm.scenario.metric_name}={value:.4f}"
        )
        return value


def run_vanilla(
    scenario: Scenario,
    meter: EnergyMeter,
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = _quiet,
    epochs: int | None = None,
) -> ArmResult:
    """One ordinary training run: the middle batch size, the scenario's conventional LR, plain
    SGD, at most ``epochs`` epochs (by default a survivor's thorough epochs,
    ``schedule.train_epochs_total``), stopped early after ``budget.patience`` epochs without a
    better validation metric (or when the loss is no longer finite).

    Every epoch and every evaluation is an energy window of ``meter``; the total is their sum
    (a window that could not be measured is left out, with a note; NaN when none was). The final
    metric is the one measured after the last epoch.
    """
    budget = scenario.budget
    epochs = budget.schedule.train_epochs_total if epochs is None else epochs
    arm = _PlainArm(scenario, meter, epochs=epochs, device=device, progress=progress)
    batch_size, lr = budget.default_batch_size, scenario.conventional_lr
    run = arm.train(None, batch_size=batch_size, lr=lr, seed=seed)
    best, since_best, value = math.nan, 0, math.nan
    for epoch in range(1, epochs + 1):
        value = run.epoch()
        if run.diverged_loss is not None:
            arm.notes.append(f"the loss diverged in epoch {epoch}")
            break
        if math.isnan(best) or scenario.better(value, best):
            best, since_best = value, 0
        else:
            since_best += 1
            if since_best >= budget.patience and epoch < epochs:
                arm.notes.append(f"early stop after epoch {epoch} of {epochs}")
                break
    return arm.result(
        "vanilla",
        seed=seed,
        final=value,
        params={"batch_size": batch_size, "lr": lr},
        chosen=0,
        n_trials=1,
    )


def run_tpe_hyperband(
    scenario: Scenario,
    meter: EnergyMeter,
    *,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = _quiet,
) -> ArmResult:
    """What an Optuna user runs instead of SM²: ``TPESampler(seed=seed)`` over the scenario's
    batch sizes (categorical) and a log-uniform LR over the SM² grid's range
    (``lr_min``..``lr_max``), ``HyperbandPruner(min_resource=1, max_resource=E)`` with ``E`` a
    survivor's thorough epochs (``schedule.train_epochs_total``), Optuna's other defaults
    (reduction factor 3, 10 random start-up trials), and ``2 x`` the number of batch sizes as
    the trial budget, run one trial after another.

    Each trial trains plainly (SGD at its LR, no exploration) and reports its metric after every
    epoch at step = epochs trained; a trial whose loss or metric is no longer finite is pruned.
    Total energy: the sum over the trials of their epochs and evaluations (the sampler's and
    pruner's own work is not metered, as in the SM² arms). The final metric is the best
    completed trial's (every completed trial trained all ``E`` epochs).
    """
    budget = scenario.budget
    epochs = budget.schedule.train_epochs_total
    arm = _PlainArm(scenario, meter, epochs=epochs, device=device, progress=progress)
    study = optuna.create_study(
        study_name=f"{scenario.name}-tpe_hyperband",
        direction=scenario.direction,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs),
    )

    def objective(trial: optuna.trial.Trial) -> float:
        batch_size = int(trial.suggest_categorical("batch_size", list(budget.batch_sizes)))
        lr = trial.suggest_float("lr", budget.lr_min, budget.lr_max, log=True)
        run = arm.train(trial, batch_size=batch_size, lr=lr, seed=seed + trial.number)
        value = math.nan
        for epoch in range(1, epochs + 1):
            value = run.epoch()
            if run.diverged_loss is not None or not math.isfinite(value):
                arm.notes.append(
                    f"trial {trial.number} (batch {batch_size}, lr {lr:.3g}) diverged in epoch "
                    f"{epoch}: pruned"
                )
                raise optuna.TrialPruned(f"diverged in epoch {epoch}")
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned by Hyperband after epoch {epoch}")
        return value

    study.optimize(objective, n_trials=2 * len(budget.batch_sizes))
    final, params, chosen = _best(study, arm.notes)
    return arm.result(
        "tpe_hyperband",
        seed=seed,
        final=final,
        params=params,
        chosen=chosen,
        n_trials=len(study.trials),
    )


ZEUS_ETA = 0.5
"""Zeus's η: the weight of energy against time in its cost."""
ZEUS_BETA = 2.0
"""Zeus's β: a job stops once its cost passes β times the cheapest job that reached the target."""


def zeus_cost(energy_j: float, seconds: float, max_power_w: float) -> tuple[float, str]:
    """Zeus's cost ``η·ETA + (1-η)·MaxPower·TTA`` (η = :data:`ZEUS_ETA`), with Zeus's own
    ``zeus.utils.metric.zeus_cost`` when Zeus is installed; and which computed it.

    Example:
        >>> zeus_cost(100.0, 2.0, 30.0)[0]
        80.0
    """
    try:
        from zeus.utils.metric import zeus_cost as theirs
    except ImportError:
        cost = ZEUS_ETA * energy_j + (1.0 - ZEUS_ETA) * max_power_w * seconds
        return cost, "optuna-sm2's copy of Zeus's cost"
    return float(theirs(energy_j, seconds, ZEUS_ETA, max_power_w)), "zeus.utils.metric.zeus_cost"


def zeus_order(batch_sizes: tuple[int, ...], default: int) -> tuple[list[int], list[int]]:
    """Zeus's pruning exploration: the default batch size, then the smaller ones downwards,
    and the larger ones upwards (each direction ends at its first failure).

    Example:
        >>> zeus_order((8, 16, 32, 64), 16)
        ([16, 8], [32, 64])
    """
    sizes = sorted(batch_sizes)
    at = sizes.index(default)
    return [default, *reversed(sizes[:at])], sizes[at + 1 :]


def run_zeus_cost(
    scenario: Scenario,
    meter: EnergyMeter,
    *,
    target: float,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = _quiet,
) -> ArmResult:
    """The energy-aware peer: Zeus's batch-size optimizer (You et al., NSDI'23) on the
    scenario's batch sizes, as its pruning exploration runs once.

    Each batch size is a job trained plainly (SGD at the scenario's conventional LR, the same
    for every batch size, as Zeus tunes no LR) for at most a survivor's thorough epochs
    (``schedule.train_epochs_total``), evaluated after every epoch. A job **reaches** the
    target when its metric is at least as good as ``target``; its cost is Zeus's
    :func:`zeus_cost` of its energy and seconds so far (η = 0.5, MaxPower the meter's
    ``max_power_w``, or the largest mean power of its windows when the meter knows none). A
    job stops once it reaches the target, once its cost passes β = 2 times the cheapest job that
    reached it, or after its last epoch (then it failed). Jobs run in :func:`zeus_order`: the
    default (middle) batch size, then smaller ones until one fails, then larger ones until
    one fails. The chosen batch size is the cheapest that reached the target; its final metric
    is its value then. When none reached it, the final metric is the best last value of a job,
    with a note. The energy is every job's epochs and evaluations.
    """
    budget = scenario.budget
    epochs = budget.schedule.train_epochs_total
    arm = _PlainArm(scenario, meter, epochs=epochs, device=device, progress=progress)
    max_power = meter.max_power_w
    cheapest = math.inf
    reached: list[tuple[float, int, float]] = []  # (cost, run index, value)
    fallback: tuple[float, int] | None = None  # (value, run index)
    how = ""
    for direction in zeus_order(tuple(budget.batch_sizes), budget.default_batch_size):
        for batch_size in direction:
            index = len(arm.runs)
            run = arm.train(
                None, batch_size=batch_size, lr=scenario.conventional_lr, seed=seed + index
            )
            seconds, joules, power, value, cost = 0.0, 0.0, 0.0, math.nan, math.inf
            for epoch in range(1, epochs + 1):
                started = time.perf_counter()
                value = run.epoch()
                took = time.perf_counter() - started
                spent = run.book.total_j or 0.0
                power = max(power, (spent - joules) / took if took > 0 else 0.0)
                seconds, joules = seconds + took, spent
                if run.diverged_loss is not None or not math.isfinite(value):
                    arm.notes.append(f"batch {batch_size} diverged in epoch {epoch}")
                    break
                cost, how = zeus_cost(joules, seconds, max_power or power)
                if not scenario.better(target, value):
                    break
                if cost > ZEUS_BETA * cheapest:
                    arm.notes.append(
                        f"batch {batch_size} stopped after epoch {epoch}: cost {cost:.3g} > "
                        f"{ZEUS_BETA:g} x {cheapest:.3g}"
                    )
                    break
            if math.isfinite(value) and not scenario.better(target, value):
                reached.append((cost, index, value))
                cheapest = min(cheapest, cost)
                continue
            if math.isfinite(value) and (fallback is None or scenario.better(value, fallback[0])):
                fallback = (value, index)
            break  # this direction ends at its first failure
    arm.notes.append(
        f"target {scenario.metric_name} {target:.4g}; cost: {how}"
        f"{'' if max_power else ' with MaxPower the largest mean power measured'}"
    )
    if reached:
        _, index, final = min(reached)
    elif fallback is not None:
        final, index = fallback
        arm.notes.append("no batch size reached the target: the best job's last value")
    else:
        return arm.result(
            "zeus_cost", seed=seed, final=math.nan, params={}, chosen=None, n_trials=len(arm.runs)
        )
    return arm.result(
        "zeus_cost",
        seed=seed,
        final=final,
        params={"batch_size": arm.runs[index].batch_size, "lr": scenario.conventional_lr},
        chosen=index,
        n_trials=len(arm.runs),
    )
