"""``SM2Objective``: one Optuna trial run the SM² way, where torch, energy and Optuna meet."""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from torch import nn

from optuna_sm2 import _compat
from optuna_sm2 import attrs as _attrs
from optuna_sm2.energy import EnergyMeter, EnergyTracker
from optuna_sm2.lr._sweep import explore_lr
from optuna_sm2.pruners._report import report
from optuna_sm2.pruners._successive_halving_energy import SuccessiveHalvingEnergyPruner
from optuna_sm2.training._batches import PreloadedBatches
from optuna_sm2.training._checkpoint import load_checkpoint, save_checkpoint
from optuna_sm2.training._schedule import Phase, Schedule, check_batch_sizes

if TYPE_CHECKING:
    from optuna_sm2.energy import EnergyWindow

_logger = logging.getLogger(__name__)

Tensor = torch.Tensor
DataPair = tuple[Tensor, Tensor]
OptimizerFactory = Callable[[Any, float], torch.optim.Optimizer]

DEFAULT_BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)


def sgd(params: Any, lr: float) -> torch.optim.Optimizer:
    """Plain SGD, the default optimizer of both the sweep and the thorough epochs."""
    return torch.optim.SGD(params, lr=lr)


@dataclass
class _EnergyBook:
    """What one trial has spent so far, by part."""

    explore_j: float = 0.0
    train_j: float = 0.0
    eval_j: float = 0.0
    invalid_windows: int = 0
    sources: set[str] = field(default_factory=set)

    @property
    def total_j(self) -> float:
        return self.explore_j + self.train_j + self.eval_j

    def add(self, part: str, window: EnergyWindow) -> float | None:
        """Book the window under ``part``; its joules, or ``None`` if it is invalid."""
        self.sources.add(window.source)
        if not window.valid:
            self.invalid_windows += 1
            _logger.warning("energy window invalid (%s): not counted", window.invalid_reason)
            return None
        setattr(self, f"{part}_j", getattr(self, f"{part}_j") + window.joules)
        return window.joules

    def to_user_attrs(self) -> dict[str, Any]:
        return {
            _attrs.ENERGY_TOTAL_J: self.total_j,
            _attrs.ENERGY_EXPLORE_J: self.explore_j,
            _attrs.ENERGY_TRAIN_J: self.train_j,
            _attrs.ENERGY_EVAL_J: self.eval_j,
            _attrs.ENERGY_SOURCE: "+".join(sorted(self.sources)) if self.sources else "none",
        }


@dataclass
class _TrialState:
    """Everything a checkpoint restores."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    lr: float
    next_step: int = 0
    epochs_trained: int = 0
    explorations: int = 0
    stored: dict[str, Any] = field(default_factory=dict)
    """User attrs as last written, so that unchanged ones are not written again."""


class SM2Objective:
    """An Optuna objective that runs each trial the SM² way (arXiv 2412.08526, section 3).

    Each trial suggests ``batch_size`` from ``batch_sizes`` and then runs blocks, each an
    exploratory LR sweep on a copy of the model (``explore_fraction`` of the training data,
    one learning rate per batch, see :func:`optuna_sm2.explore_lr`) followed by
    ``epochs_per_rung`` thorough epochs at the stable LR it chose. Every step is energy-tracked
    and reported with :func:`optuna_sm2.report` (value: ``metric`` on the validation data),
    so the study holds energy per epoch, stable LR and the totals of
    ``docs/stored-data.md``. The last epoch of each of the first blocks is a rung: with the
    pruner from :meth:`make_pruner` the worse half is pruned there, after the configurations
    have trained, not on untrained models. After the last rung, ``final_epochs`` more epochs
    are trained, re-exploring the LR every ``epochs_per_rung`` epochs, and the final metric is
    returned.

    Example:
        .. code-block:: python

            import optuna
            import torch
            from optuna_sm2 import SM2Objective

            X, y = torch.randn(512, 8), torch.randint(0, 2, (512,))

            def accuracy(model, data):
                inputs, targets = data
                return (model(inputs).argmax(1) == targets).float().mean().item()

            objective = SM2Objective(
                lambda trial: torch.nn.Linear(8, 2),
                (X[:384], y[:384]),
                (X[384:], y[384:]),
                torch.nn.functional.cross_entropy,
                accuracy,
                batch_sizes=(16, 32, 64, 128),
                epochs_per_rung=1,
                final_epochs=1,
            )
            study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
            study.optimize(objective, n_trials=4)

    Args:
        build_model: ``build_model(trial) -> nn.Module``; may suggest its own hyperparameters.
        train_data: ``(inputs, targets)`` tensors; put on ``device`` once and cut into
            batches there (:class:`optuna_sm2.PreloadedBatches`).
        valid_data: ``(inputs, targets)`` tensors for ``metric``, also put on ``device``.
        loss_fn: ``loss_fn(outputs, targets)``, the training loss.
        metric: ``metric(model, valid_data) -> float``, called in eval mode without
            gradients; the study's direction says whether larger is better.
        batch_sizes: The batch sizes searched (the paper: 8 of them).
        lr_min, lr_max, n_lrs: The log-spaced LR grid of every sweep.
        explore_fraction: Share of the training data one sweep uses (paper: 1/4). A sweep
            always uses at least ``n_lrs`` batches so that every LR of the grid is tried.
        epochs_per_rung: Thorough epochs per block (paper: 5).
        final_epochs: Thorough epochs after the last decision (paper: 10).
        optimizer_factory: ``factory(params, lr) -> Optimizer`` for sweeps and training;
            plain SGD by default.
        device: Training device; CUDA when available, else CPU.
        meter: Energy meter; :func:`optuna_sm2.auto_meter` when ``None``.
        checkpoint_dir: If given, after each rung the model and optimizer go to
            ``checkpoint_dir/<study>/<trial number>.pt``, and a trial retried by
            ``RetryHeartbeatStaleTrialCallback`` resumes from its predecessor's last one.
        seed: Seeds model initialisation and batch order of each trial (plus its number).
        metric_name: Name of the metric, shown by the report and the dashboard.
    """

    def __init__(
        self,
        build_model: Callable[[optuna.trial.Trial], nn.Module],
        train_data: DataPair,
        valid_data: DataPair,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        metric: Callable[[nn.Module, DataPair], float],
        *,
        batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
        lr_min: float = 1e-3,
        lr_max: float = 1.0,
        n_lrs: int = 20,
        explore_fraction: float = 0.25,
        epochs_per_rung: int = 5,
        final_epochs: int = 10,
        optimizer_factory: OptimizerFactory | None = None,
        device: str | torch.device | None = None,
        meter: EnergyMeter | None = None,
        checkpoint_dir: str | Path | None = None,
        seed: int = 0,
        metric_name: str = "metric",
    ) -> None:
        self._device = torch.device(
            device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        self._train = PreloadedBatches(*train_data, device=self._device, seed=seed)
        self._valid = PreloadedBatches(*valid_data, device=self._device, seed=seed)
        self.batch_sizes = check_batch_sizes(batch_sizes, len(self._train))
        if not 0.0 < explore_fraction <= 1.0:
            raise ValueError(f"`explore_fraction` must be in (0, 1], got {explore_fraction!r}.")
        if not (0.0 < lr_min < lr_max):
            raise ValueError(f"need 0 < `lr_min` < `lr_max`, got {lr_min!r} and {lr_max!r}.")
        self.schedule = Schedule.halving(len(self.batch_sizes), epochs_per_rung, final_epochs)
        self._build_model = build_model
        self._loss_fn = loss_fn
        self._metric = metric
        self._lr_min, self._lr_max, self._n_lrs = lr_min, lr_max, n_lrs
        self._explore_fraction = explore_fraction
        self._optimizer_factory = optimizer_factory or sgd
        self._meter = meter
        self._tracker: EnergyTracker | None = None
        self._checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self._seed = seed
        self._metric_name = metric_name
        self._active = 0
        self._active_lock = threading.Lock()
        self._warned_parallel = False

    @property
    def rung_steps(self) -> list[int]:
        """The steps at which the pruner decides."""
        return self.schedule.rung_steps

    def make_pruner(
        self, alpha: float = 0.75, beta: float = 0.5, **kwargs: Any
    ) -> SuccessiveHalvingEnergyPruner:
        """The pruner whose rungs are this objective's (halving, ``reduction_factor=2``)."""
        return SuccessiveHalvingEnergyPruner(
            alpha=alpha, beta=beta, rung_steps=self.rung_steps, **kwargs
        )

    @property
    def tracker(self) -> EnergyTracker:
        if self._tracker is None:
            self._tracker = EnergyTracker(self._meter)
        return self._tracker

    def __call__(self, trial: optuna.trial.Trial) -> float:
        """Run the trial, asking the pruner after every report."""
        with self._one_trial_at_a_time():
            steps = self.run(trial)
            try:
                while True:
                    phase = next(steps)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"pruned at step {phase.step}")
            except StopIteration as done:
                return float(done.value)
            finally:
                steps.close()

    def run(self, trial: optuna.trial.Trial) -> Generator[Phase, None, float]:
        """The trial step by step: yields each phase after reporting it; returns the metric.

        The caller decides what a rung means: :meth:`__call__` asks ``trial.should_prune()``,
        :func:`optuna_sm2.optimize_synchronous` ranks all configurations together.
        """
        self._store_schedule(trial.study)
        batch_size = int(trial.suggest_categorical("batch_size", list(self.batch_sizes)))
        torch.manual_seed(self._seed + trial.number)
        model = self._build_model(trial).to(self._device)
        state = _TrialState(model, self._optimizer_factory(model.parameters(), 0.0), 0.0)
        self._resume(trial, state)
        train = PreloadedBatches(
            self._train.inputs,
            self._train.targets,
            device=self._device,
            seed=self._seed + trial.number,
        )
        book = _EnergyBook()
        already_reported = set(_compat.frozen(trial).intermediate_values)
        self._store_progress(trial, state, book)
        value = math.nan
        for phase in self.schedule.phases[state.next_step :]:
            if phase.kind == "explore":
                energy_per_epoch = self._explore(trial, state, train, batch_size, book)
            else:
                energy_per_epoch = self._train_epoch(state, train, batch_size, book)
                state.epochs_trained += 1
            value = self._evaluate(state.model, book)
            state.next_step = phase.step + 1
            self._store_progress(trial, state, book)
            if phase.step not in already_reported:
                report(
                    trial,
                    value,
                    phase.step,
                    energy_per_epoch_j=energy_per_epoch,
                    stable_lr=state.lr,
                )
            _logger.info(
                "trial %d  batch %4d  step %2d  %-7s  %s=%.4f  lr=%.3g  J/epoch=%s",
                trial.number,
                batch_size,
                phase.step,
                phase.kind,
                self._metric_name,
                value,
                state.lr,
                "n/a" if energy_per_epoch is None else f"{energy_per_epoch:.1f}",
            )
            if phase.rung is not None:
                self._save(trial, state, batch_size)
            yield phase
        return value

    def _explore(
        self,
        trial: optuna.trial.Trial,
        state: _TrialState,
        train: PreloadedBatches,
        batch_size: int,
        book: _EnergyBook,
    ) -> float | None:
        """Sweep the LR grid on a copy; adopt the stable LR; energy per full epoch."""
        batches = list(self._exploration_batches(train, batch_size))
        exploration = explore_lr(
            state.model,
            self._loss_fn,
            batches,
            optimizer_factory=self._optimizer_factory,
            optimizer=state.optimizer,
            tracker=self.tracker,
            device=self._device,
            lr_min=self._lr_min,
            lr_max=self._lr_max,
            n_lrs=self._n_lrs,
        )
        state.lr = exploration.selected_lr
        for group in state.optimizer.param_groups:
            group["lr"] = state.lr
        state.explorations += 1
        trial.set_user_attr(_attrs.LR_WINDOW, [float(x) for x in exploration.window])
        trial.set_user_attr(_attrs.LR_DIVERGED_AT, exploration.diverged_at)
        assert exploration.energy is not None
        joules = book.add("explore", exploration.energy)
        samples = sum(len(targets) for _, targets in batches)
        return None if joules is None else joules * len(train) / samples

    def _exploration_batches(self, train: PreloadedBatches, batch_size: int) -> Iterator[DataPair]:
        """``explore_fraction`` of the data, cycled until every LR of the grid has a batch."""
        fraction = min(1.0, max(self._explore_fraction, batch_size / len(train)))
        wanted = max(self._n_lrs, train.n_batches(batch_size, fraction=fraction))
        produced = 0
        while True:
            for batch in train.batches(batch_size, fraction=fraction):
                yield batch
                produced += 1
                if produced == wanted:
                    return

    def _train_epoch(
        self, state: _TrialState, train: PreloadedBatches, batch_size: int, book: _EnergyBook
    ) -> float | None:
        """One thorough epoch at the stable LR; its joules, or ``None`` if not measured."""
        state.model.train()
        with self.tracker.window() as window:
            for inputs, targets in train.batches(batch_size):
                state.optimizer.zero_grad(set_to_none=True)
                loss = self._loss_fn(state.model(inputs), targets)
                if not torch.isfinite(loss):
                    raise optuna.TrialPruned(
                        f"training diverged at lr={state.lr:.3g}: the loss is {loss.item()}"
                    )
                torch.autograd.backward(loss)
                state.optimizer.step()
        return book.add("train", window)

    def _evaluate(self, model: nn.Module, book: _EnergyBook) -> float:
        model.eval()
        with self.tracker.window() as window, torch.no_grad():
            value = float(self._metric(model, (self._valid.inputs, self._valid.targets)))
        book.add("eval", window)
        model.train()
        return value

    def _store_schedule(self, study: optuna.Study) -> None:
        schedule = self.schedule.to_json(
            batch_sizes=list(self.batch_sizes),
            explore_fraction=self._explore_fraction,
            metric_name=self._metric_name,
            lr_min=self._lr_min,
            lr_max=self._lr_max,
            n_lrs=self._n_lrs,
        )
        if study.user_attrs.get(_attrs.SCHEDULE) != schedule:
            study.set_user_attr(_attrs.SCHEDULE, schedule)

    def _store_progress(
        self, trial: optuna.trial.Trial, state: _TrialState, book: _EnergyBook
    ) -> None:
        """Keep the trial's energy and progress attrs current, writing only what changed."""
        for key, value in {
            **book.to_user_attrs(),
            _attrs.EPOCHS_TRAINED: state.epochs_trained,
            _attrs.EXPLORATIONS: state.explorations,
        }.items():
            if state.stored.get(key) != value:
                trial.set_user_attr(key, value)
                state.stored[key] = value

    def _checkpoint_path(self, study: optuna.Study, number: int) -> Path | None:
        if self._checkpoint_dir is None:
            return None
        return self._checkpoint_dir / study.study_name / f"{number}.pt"

    def _save(self, trial: optuna.trial.Trial, state: _TrialState, batch_size: int) -> None:
        path = self._checkpoint_path(trial.study, trial.number)
        if path is not None:
            save_checkpoint(
                path,
                model=state.model,
                optimizer=state.optimizer,
                progress={
                    "next_step": state.next_step,
                    "lr": state.lr,
                    "epochs_trained": state.epochs_trained,
                    "explorations": state.explorations,
                    "batch_size": batch_size,
                },
            )

    def _resume(self, trial: optuna.trial.Trial, state: _TrialState) -> None:
        """Continue from the newest checkpoint of the trials this one retries, if any."""
        history = _compat.retry_history(_compat.frozen(trial))
        for number in reversed(history):
            path = self._checkpoint_path(trial.study, number)
            if path is None or not path.exists():
                continue
            progress = load_checkpoint(path, model=state.model, optimizer=state.optimizer)
            state.lr = float(progress["lr"])
            state.next_step = int(progress["next_step"])
            state.epochs_trained = int(progress["epochs_trained"])
            state.explorations = int(progress["explorations"])
            trial.set_user_attr(_attrs.RESUMED_FROM, number)
            _logger.info(
                "trial %d resumes from %s at step %d", trial.number, path, state.next_step
            )
            return

    @contextlib.contextmanager
    def _one_trial_at_a_time(self) -> Iterator[None]:
        """Count the trials running in this process: two at once share one energy meter."""
        with self._active_lock:
            self._active += 1
            parallel = self._active > 1 and not self._warned_parallel
            self._warned_parallel = self._warned_parallel or parallel
        if parallel:
            warnings.warn(
                "SM2Objective is running several trials at once in this process "
                "(study.optimize(n_jobs>1)): they share the device and its energy meter, so "
                "energy per epoch can no longer be attributed to one trial. Run one trial per "
                "device (one worker process per GPU, see docs/distributed.md).",
                RuntimeWarning,
                stacklevel=4,
            )
        try:
            yield
        finally:
            with self._active_lock:
                self._active -= 1


__all__ = ["DEFAULT_BATCH_SIZES", "SM2Objective"]
