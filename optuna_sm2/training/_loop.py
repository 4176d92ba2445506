"""The loop of one trial: its schedule's phases, each reported, booked and shown to callbacks.

:meth:`TrialLoop.run` is the step generator that every driver advances (``SM2Objective``'s
``__call__``, :func:`optuna_sm2.optimize_synchronous`, the benchmark's arms): it yields a
:class:`PhaseResult` after each step is reported, and returns the final metric.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from optuna_sm2 import _compat
from optuna_sm2 import attrs as _attrs
from optuna_sm2.energy import EnergyMeter, EnergyTracker
from optuna_sm2.pruners._report import report
from optuna_sm2.training._configurations import configuration_number
from optuna_sm2.training._data import ObjectiveData, TrialBatches
from optuna_sm2.training._energy_book import EnergyBook
from optuna_sm2.training._phases import (
    LossFn,
    Metric,
    OptimizerFactory,
    SweepSettings,
    check_finite_metric,
    evaluate,
    explore,
    train_epoch,
)
from optuna_sm2.training._schedule import Phase, PhaseKind, Schedule
from optuna_sm2.training._trial_state import TrainingState, TrialCheckpoints

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseResult:
    """What one step of a trial produced, once it is reported.

    Yielded by :meth:`optuna_sm2.SM2Objective.run` and given to every callback of
    ``SM2Objective(..., callbacks=[...])``.

    Attributes:
        trial_number: The trial's number.
        batch_size: The trial's batch size.
        step: The step reported (0, 1, ...).
        kind: ``explore`` (an exploratory LR sweep) or ``train`` (a thorough epoch).
        rung: The rung decided right after this step, or ``None``.
        value: The metric on the validation data after the step.
        energy_per_epoch_j: Energy of the step scaled to one full pass over the training data
            (an exploration on a quarter of the data counts x4), as reported; ``None`` when the
            step's energy window could not be measured.
        lr: The stable LR the trial trains at after this step.
        seconds: Wall time of the step, its evaluation included.
        n_steps: Steps of the whole schedule: a trial that survives every rung reports steps
            ``0`` to ``n_steps - 1``.
    """

    trial_number: int
    batch_size: int
    step: int
    kind: PhaseKind
    rung: int | None
    value: float
    energy_per_epoch_j: float | None
    lr: float
    seconds: float
    n_steps: int


PhaseCallback = Callable[[optuna.trial.Trial, PhaseResult], None]
"""``callback(trial, result)``, called after each step is reported, before any pruning decision."""


class _TrialAttrs:
    """Writes a trial's user attrs, skipping those whose value it already wrote."""

    def __init__(self, trial: optuna.trial.Trial) -> None:
        self._trial = trial
        self._written: dict[str, Any] = {}

    def write(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if self._written.get(key, self) != value:
                self._trial.set_user_attr(key, value)
                self._written[key] = value


class TrialLoop:
    """Runs trials of an objective step by step; built, with checked arguments, by
    :class:`optuna_sm2.SM2Objective`, whose docstring describes them."""

    def __init__(
        self,
        *,
        build_model: Callable[[optuna.trial.Trial], nn.Module],
        data: ObjectiveData,
        loss_fn: LossFn,
        metric: Metric,
        metric_name: str,
        optimizer_factory: OptimizerFactory,
        batch_sizes: tuple[int, ...],
        sweep: SweepSettings,
        schedule: Schedule,
        device: torch.device,
        meter: EnergyMeter | None,
        checkpoint_dir: Path | None,
        seed: int,
        callbacks: Sequence[PhaseCallback],
    ) -> None:
        self._build_model = build_model
        self._data = data
        self._loss_fn = loss_fn
        self._metric = metric
        self._metric_name = metric_name
        self._optimizer_factory = optimizer_factory
        self._batch_sizes = batch_sizes
        self._sweep = sweep
        self._schedule = schedule
        self._device = device
        self._meter = meter
        self._tracker: EnergyTracker | None = None
        self._checkpoint_dir = checkpoint_dir
        self._seed = seed
        self._callbacks = tuple(callbacks)

    @property
    def tracker(self) -> EnergyTracker:
        """The energy tracker of every window (its meter is found when first needed)."""
        if self._tracker is None:
            self._tracker = EnergyTracker(self._meter)
        return self._tracker

    def schedule_json(self) -> dict[str, Any]:
        """The study user attr ``sm2.schedule``."""
        return self._schedule.to_json(
            batch_sizes=list(self._batch_sizes),
            explore_fraction=self._sweep.explore_fraction,
            metric_name=self._metric_name,
            lr_min=self._sweep.lr_min,
            lr_max=self._sweep.lr_max,
            n_lrs=self._sweep.n_lrs,
        )

    def run(self, trial: optuna.trial.Trial) -> Generator[PhaseResult, None, float]:
        """The trial step by step: yields each step's result after reporting it; returns the
        final metric."""
        schedule = self.schedule_json()
        stored = trial.study.user_attrs.get(_attrs.SCHEDULE)
        if stored is None:
            trial.study.set_user_attr(_attrs.SCHEDULE, schedule)
        elif stored != schedule:
            differ = sorted(k for k in {*schedule, *stored} if schedule.get(k) != stored.get(k))
            raise ValueError(
                f"study {trial.study.study_name!r} was run with another schedule "
                f"({_attrs.SCHEDULE} differs in {', '.join(differ)}: stored "
                f"{ {k: stored.get(k) for k in differ} }, this objective "
                f"{ {k: schedule.get(k) for k in differ} }); use a new study."
            )
        batch_size = int(trial.suggest_categorical("batch_size", list(self._batch_sizes)))
        # A retry starts from its configuration's seed: trained again, it repeats the first trial.
        seed = self._seed + configuration_number(_compat.frozen(trial))
        torch.manual_seed(seed)
        model = self._build_model(trial).to(self._device)
        state = TrainingState(model, self._optimizer_factory(model.parameters(), 0.0))
        phases = self._schedule.phases
        checkpoints = (
            None
            if self._checkpoint_dir is None
            else TrialCheckpoints(self._checkpoint_dir, trial.study)
        )
        if checkpoints is not None:
            resumed_from = checkpoints.resume(trial, state, batch_size, len(phases))
            if resumed_from is not None:
                trial.set_user_attr(_attrs.RESUMED_FROM, resumed_from)
        train = self._data.for_trial(seed)
        book = EnergyBook()
        attrs = _TrialAttrs(trial)
        inherited = _compat.frozen(trial).intermediate_values
        attrs.write(self._progress_attrs(state, book))
        # A retry resumed past its last step has nothing to run: its value is the one inherited.
        value = inherited.get(state.next_step - 1, math.nan)
        for phase in phases[state.next_step :]:
            started = time.perf_counter()
            energy_per_epoch = self._step(trial, phase, state, train, batch_size, book, attrs)
            value, window = evaluate(state.model, self._metric, self._data.valid, self.tracker)
            seconds = time.perf_counter() - started
            book.add("eval", window)
            check_finite_metric(value, phase.step, trial.number)
            state.next_step = phase.step + 1
            attrs.write(self._progress_attrs(state, book))
            if phase.step not in inherited:
                report(
                    trial,
                    value,
                    phase.step,
                    energy_per_epoch_j=energy_per_epoch,
                    stable_lr=state.lr,
                )
            self._log(trial, batch_size, phase, value, state.lr, energy_per_epoch)
            if phase.rung is not None and checkpoints is not None:
                checkpoints.save(trial, state, batch_size)
            result = PhaseResult(
                trial_number=trial.number,
                batch_size=batch_size,
                step=phase.step,
                kind=phase.kind,
                rung=phase.rung,
                value=value,
                energy_per_epoch_j=energy_per_epoch,
                lr=state.lr,
                seconds=seconds,
                n_steps=len(phases),
            )
            for callback in self._callbacks:
                callback(trial, result)
            yield result
        return value

    def _step(
        self,
        trial: optuna.trial.Trial,
        phase: Phase,
        state: TrainingState,
        train: TrialBatches,
        batch_size: int,
        book: EnergyBook,
        attrs: _TrialAttrs,
    ) -> float | None:
        """Run one phase's work; its energy per full epoch, or ``None`` if not measured."""
        if phase.kind == "explore":
            exploration = explore(
                state.model,
                state.optimizer,
                train,
                batch_size,
                self._sweep,
                loss_fn=self._loss_fn,
                optimizer_factory=self._optimizer_factory,
                tracker=self.tracker,
                device=self._device,
            )
            found = exploration.result
            state.adopt_lr(found.selected_lr)
            state.explorations += 1
            attrs.write(
                {
                    _attrs.LR_WINDOW: [float(x) for x in found.window],
                    _attrs.LR_DIVERGED_AT: found.diverged_at,
                }
            )
            assert found.energy is not None
            return exploration.per_epoch(book.add("explore", found.energy), len(self._data))
        epoch = train_epoch(
            state.model, state.optimizer, train.batches(batch_size), self._loss_fn, self.tracker
        )
        joules = book.add("train", epoch.window)
        if epoch.diverged_loss is not None:
            attrs.write(self._progress_attrs(state, book))
            raise optuna.TrialPruned(
                f"training diverged at lr={state.lr:.3g}: the loss is {epoch.diverged_loss}"
            )
        state.epochs_trained += 1
        return joules

    @staticmethod
    def _progress_attrs(state: TrainingState, book: EnergyBook) -> dict[str, Any]:
        return {
            **book.to_user_attrs(),
            _attrs.EPOCHS_TRAINED: state.epochs_trained,
            _attrs.EXPLORATIONS: state.explorations,
        }

    def _log(
        self,
        trial: optuna.trial.Trial,
        batch_size: int,
        phase: Phase,
        value: float,
        lr: float,
        energy_per_epoch: float | None,
    ) -> None:
        _logger.info(
            "trial %d  batch %4d  step %2d  %-7s  %s=%.4f  lr=%.3g  J/epoch=%s",
            trial.number,
            batch_size,
            phase.step,
            phase.kind,
            self._metric_name,
            value,
            lr,
            "n/a" if energy_per_epoch is None else f"{energy_per_epoch:.1f}",
        )
