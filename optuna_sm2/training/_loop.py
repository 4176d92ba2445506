"""The loop of one trial: its schedule's phases, each reported, booked and shown to callbacks.

:meth:`TrialLoop.run` is the step generator that every driver advances (``SM2Objective``'s
``__call__``, :func:`optuna_sm2.optimize_synchronous`, the benchmark's arms): it yields a
:class:`PhaseResult` after each step is reported, and returns the final metric.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from optuna_sm2 import _compat
from optuna_sm2 import _trial_attrs as trial_attrs
from optuna_sm2 import attrs as _attrs
from optuna_sm2.energy import EnergyMeter, EnergyTracker
from optuna_sm2.lr import BUILD_LR
from optuna_sm2.pruners import TrialEnergy, report, write_figures
from optuna_sm2.training._configurations import configuration_number
from optuna_sm2.training._data import ObjectiveData
from optuna_sm2.training._loss import Loss
from optuna_sm2.training._optimizer import (
    TrialOptimizer,
    check_lr_honoured,
    check_no_lr_param,
)
from optuna_sm2.training._phases import (
    Metric,
    SweepSettings,
    check_finite_metric,
    evaluate,
    explore,
    metric_value,
    train_epoch,
)
from optuna_sm2.training._schedule import Phase, PhaseKind, Schedule
from optuna_sm2.training._stream import TorchStream
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
        energy_per_epoch_j: The energy of one full pass over the training data, as reported:
            after an exploration, its joules per sample times the training set's size; after a
            thorough epoch, the figure of the block's measured epochs so far: their median, or
            their mean when one read 0 J on a meter coarser than an epoch. ``None`` when
            not measured (the exploration's window, or every epoch of the block so far, was
            invalid).
        energy_per_epoch_spread: The relative half-range of the block's measured epochs,
            ``(max - min) / (2 * energy_per_epoch_j)`` (``None`` after an exploration, or with
            fewer than two measured epochs).
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
    energy_per_epoch_spread: float | None = None


PhaseCallback = Callable[[optuna.trial.Trial, PhaseResult], None]
"""``callback(trial, result)``, called after each step is reported, before any pruning decision."""


_REFUSED_BY_OPTUNA = ("does not support dynamic value space", "Cannot set different")
"""Optuna's words when a parameter is suggested again with another distribution."""


class TrialLoop:
    """Runs trials of an objective step by step; built, with checked arguments, by
    :class:`optuna_sm2.SM2Objective`, whose docstring describes them."""

    def __init__(
        self,
        *,
        build_model: Callable[[optuna.trial.Trial], nn.Module],
        data: ObjectiveData,
        loss: Loss,
        metric: Metric,
        metric_name: str,
        optimizer: TrialOptimizer,
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
        self._loss = loss
        self._metric = metric
        self._metric_name = metric_name
        self._optimizer = optimizer
        self._batch_sizes = batch_sizes
        self._sweep = sweep
        self._schedule = schedule
        self._device = device
        self._meter = meter
        self._tracker: EnergyTracker | None = None
        self._checkpoint_dir = checkpoint_dir
        self._seed = seed
        self._callbacks = tuple(callbacks)
        self._metric_checked = False

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

    def _start(self, trial: optuna.trial.Trial) -> tuple[int, TrainingState]:
        """The trial's batch size and its fresh state (model, optimizer, random streams),
        checked before anything of SM² is written to the study: the builder and the factory
        took the batch size and the LR as SM² gives them, and (in the first trial) the metric
        returns a number.

        The trial's random streams (its data order, torch's numbers) start from its
        configuration's seed, and are its own: the model is built, and every step runs, drawing
        from them, whichever trials run in between. A retry trained again repeats the first
        trial; one resumed from a checkpoint goes on from the streams' states stored there."""
        batch_size = int(trial.suggest_categorical("batch_size", list(self._batch_sizes)))
        seed = self._seed + configuration_number(_compat.frozen(trial))
        stream = TorchStream(seed, self._device)
        with self._batch_size_kept("build_model"), stream.drawn():
            model = self._build_model(trial)
        if not isinstance(model, nn.Module):
            raise ValueError(f"`build_model` must return a torch nn.Module, got {model!r}.")
        model = model.to(self._device)
        factory = self._optimizer.bind(trial)
        lr = BUILD_LR if self._sweep.lr_min is None else self._sweep.lr_min
        with self._batch_size_kept("optimizer_factory"):
            optimizer = factory(model.parameters(), lr)
        train = self._data.for_trial(seed)
        state = TrainingState(model, check_lr_honoured(optimizer, lr), train, stream)
        check_no_lr_param(trial)
        if not self._metric_checked:
            metric_value(model, self._metric, self._data.valid)
            self._metric_checked = True
        return batch_size, state

    @contextlib.contextmanager
    def _batch_size_kept(self, name: str) -> Iterator[None]:
        """Turn Optuna's refusal of a parameter suggested again with another distribution,
        raised in the user's ``name``, into one error that says what SM² suggests itself."""
        try:
            yield
        except ValueError as exc:
            if not any(words in str(exc) for words in _REFUSED_BY_OPTUNA):
                raise
            raise ValueError(
                f"`{name}` suggested a parameter again with another distribution, which Optuna "
                f"refuses. SM2Objective suggests `batch_size` itself, from `batch_sizes` "
                f"{list(self._batch_sizes)}, before calling build_model and "
                "optimizer_factory: suggest it there with exactly these choices, or read it as "
                "trial.params['batch_size']; to search other sizes, pass them as `batch_sizes`."
            ) from exc

    def _checked_schedule(self, trial: optuna.trial.Trial) -> dict[str, Any] | None:
        """The schedule to store in ``trial``'s study; ``None`` when it holds it already.

        Raises:
            ValueError: the study was run with another schedule (its rung records were made
                under that one).
        """
        schedule = self.schedule_json()
        stored = trial.study.user_attrs.get(_attrs.SCHEDULE)
        if stored is None:
            return schedule
        if stored != schedule:
            differ = sorted(k for k in {*schedule, *stored} if schedule.get(k) != stored.get(k))
            raise ValueError(
                f"study {trial.study.study_name!r} was run with another schedule "
                f"({_attrs.SCHEDULE} differs in {', '.join(differ)}: stored "
                f"{ {k: stored.get(k) for k in differ} }, this objective "
                f"{ {k: schedule.get(k) for k in differ} }); use a new study."
            )
        return None

    def run(self, trial: optuna.trial.Trial) -> Generator[PhaseResult, None, float]:
        """The trial step by step: yields each step's result after reporting it; returns the
        final metric."""
        schedule = self._checked_schedule(trial)
        batch_size, state = self._start(trial)
        if schedule is not None:
            trial.study.set_user_attr(_attrs.SCHEDULE, schedule)
        phases = self._schedule.phases
        checkpoints = (
            None
            if self._checkpoint_dir is None
            else TrialCheckpoints(self._checkpoint_dir, trial.study)
        )
        resumed_from = (
            None
            if checkpoints is None
            else checkpoints.resume(trial, state, batch_size, len(phases))
        )
        book = TrialEnergy(trial, self.tracker)
        writer = book.writer
        if resumed_from is not None:
            writer.write(trial_attrs.RESUMED_FROM, resumed_from)
        inherited = _compat.frozen(trial).intermediate_values
        self._write_progress(writer, state)
        # A retry resumed past its last step has nothing to run: its value is the one inherited.
        value = inherited.get(state.next_step - 1, math.nan)
        for phase in phases[state.next_step :]:
            started = time.perf_counter()
            with state.stream.drawn():
                energy_per_epoch, spread = self._step(trial, phase, state, batch_size, book)
                value, window = evaluate(state.model, self._metric, self._data.valid, self.tracker)
            seconds = time.perf_counter() - started
            book.add("eval", window)
            check_finite_metric(value, phase.step, trial.number)
            state.next_step = phase.step + 1
            self._write_progress(writer, state)
            if phase.step not in inherited:
                report(
                    trial,
                    value,
                    phase.step,
                    energy_per_epoch_j=energy_per_epoch,
                    stable_lr=state.lr,
                    energy_per_epoch_spread=spread,
                )
            else:  # a retry: the step's value is inherited, its figures are the retry's own
                write_figures(writer, energy_per_epoch, spread, state.lr)
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
                energy_per_epoch_spread=spread,
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
        batch_size: int,
        book: TrialEnergy,
    ) -> tuple[float | None, float | None]:
        """Run one phase's work; the energy per full epoch to report (``None`` if not
        measured) and its spread."""
        if phase.kind == "explore":
            exploration = explore(
                state.model,
                state.optimizer,
                state.train,
                batch_size,
                self._sweep,
                loss=self._loss,
                optimizer_factory=self._optimizer.bind(trial),
                tracker=self.tracker,
                device=self._device,
            )
            found = exploration.result
            state.adopt_lr(found.selected_lr)
            state.explorations += 1
            book.writer.write(trial_attrs.LR_WINDOW, found.window)
            book.writer.write(trial_attrs.LR_DIVERGED_AT, found.diverged_at)
            assert found.energy is not None
            joules = book.add("explore", found.energy)
            book.start_block()
            return exploration.per_epoch(joules, len(self._data)), None
        epoch = train_epoch(
            state.model, state.optimizer, state.train.batches(batch_size), self._loss, self.tracker
        )
        book.add("train", epoch.window)
        if epoch.diverged_loss is not None:
            self._write_progress(book.writer, state)
            raise optuna.TrialPruned(
                f"training diverged at lr={state.lr:.3g}: the loss is {epoch.diverged_loss}"
            )
        state.epochs_trained += 1
        return book.energy_per_epoch_j, book.energy_per_epoch_spread

    @staticmethod
    def _write_progress(writer: trial_attrs.TrialWriter, state: TrainingState) -> None:
        writer.write(trial_attrs.EPOCHS_TRAINED, state.epochs_trained)
        writer.write(trial_attrs.EXPLORATIONS, state.explorations)

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
            "n/a" if energy_per_epoch is None else f"{energy_per_epoch:.4g}",
        )
