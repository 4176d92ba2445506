"""``SM2Objective``: the facade of one Optuna trial run the SM² way.

It checks its arguments (``_arguments.py`` and the shared ``_validation``) and hands them to the
parts a reader finds by name: the data source (``_data.py``), the phases of a step
(``_phases.py``), the loop of a trial (``_loop.py``), the trial's state and checkpoints
(``_trial_state.py``, ``_checkpoint.py``), its energy book (``_energy_book.py``) and the driver
that advances it (``_driver.py``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import optuna
import torch
from torch import nn

from optuna_sm2 import _validation as _check
from optuna_sm2.energy import EnergyMeter, EnergyTracker
from optuna_sm2.pruners._successive_halving_energy import SuccessiveHalvingEnergyPruner
from optuna_sm2.training._arguments import check_callbacks, check_checkpoint_dir, check_device
from optuna_sm2.training._data import DataPair, ObjectiveData
from optuna_sm2.training._driver import StepDriver
from optuna_sm2.training._loop import PhaseCallback, PhaseResult, TrialLoop
from optuna_sm2.training._phases import LossFn, Metric, OptimizerFactory, SweepSettings, sgd
from optuna_sm2.training._schedule import Schedule, check_batch_sizes

DEFAULT_BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)


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

    Every argument is checked when the objective is built: a bad one raises one ``ValueError``
    naming it, before any trial runs. Numpy numbers are accepted wherever Python numbers are.

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
            gradients; the study's direction says whether larger is better. It must return a
            finite Python or numpy number: anything else (a tensor, ``None``, NaN, infinity)
            fails the trial with a ``ValueError`` naming ``metric``.
        batch_sizes: The batch sizes searched (the paper: 8 of them), integers in
            ``[1, len(train_data)]`` without repeats.
        lr_min, lr_max, n_lrs: The log-spaced LR grid of every sweep (``0 < lr_min < lr_max``,
            finite; ``n_lrs >= 3``).
        explore_fraction: Share of the training data one sweep uses, in (0, 1] (paper: 1/4). A
            sweep always uses at least ``n_lrs`` batches so that every LR of the grid is tried.
        epochs_per_rung: Thorough epochs per block, an integer >= 1 (paper: 5).
        final_epochs: Thorough epochs after the last decision, an integer >= 0 (paper: 10).
        optimizer_factory: ``factory(params, lr) -> Optimizer`` for sweeps and training;
            plain SGD by default.
        device: Training device; CUDA when available, else CPU. A device torch cannot use here
            (``'cuda'`` without CUDA) is refused.
        meter: An :class:`optuna_sm2.energy.EnergyMeter`; :func:`optuna_sm2.auto_meter`
            (found when first needed) when ``None``.
        checkpoint_dir: If given, after each rung the model and optimizer go to
            ``checkpoint_dir/<study name>-<study id>/<trial number>.pt`` (the name reduced to
            safe characters), and a trial retried by ``RetryHeartbeatStaleTrialCallback``
            resumes from its predecessor's last one (see ``docs/objective.md``).
        seed: Seeds model initialisation and batch order of each trial (plus its number); an
            integer >= 0.
        metric_name: Name of the metric, shown by the report and the dashboard.
        callbacks: ``callback(trial, result)`` for each step of each trial, in order, after the
            step is reported and before any pruning decision; ``result`` is a
            :class:`optuna_sm2.training.PhaseResult`.
    """

    def __init__(
        self,
        build_model: Callable[[optuna.trial.Trial], nn.Module],
        train_data: DataPair,
        valid_data: DataPair,
        loss_fn: LossFn,
        metric: Metric,
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
        checkpoint_dir: str | os.PathLike[str] | None = None,
        seed: int = 0,
        metric_name: str = "metric",
        callbacks: Sequence[PhaseCallback] = (),
    ) -> None:
        _check.check_callable("build_model", build_model, "build_model(trial) -> nn.Module")
        _check.check_callable("loss_fn", loss_fn, "loss_fn(outputs, targets) -> Tensor")
        _check.check_callable("metric", metric, "metric(model, valid_data) -> float")
        if optimizer_factory is not None:
            _check.check_callable(
                "optimizer_factory", optimizer_factory, "optimizer_factory(params, lr)"
            )
        if meter is not None and not isinstance(meter, EnergyMeter):
            raise ValueError(
                f"`meter` must be an optuna_sm2.energy.EnergyMeter or None, got {meter!r}."
            )
        if not isinstance(metric_name, str) or not metric_name:
            raise ValueError(f"`metric_name` must be a non-empty string, got {metric_name!r}.")
        sweep = SweepSettings.checked(lr_min, lr_max, n_lrs, explore_fraction)
        epochs = _check.check_int("epochs_per_rung", epochs_per_rung, minimum=1)
        final = _check.check_int("final_epochs", final_epochs, minimum=0)
        checked_seed = _check.check_int("seed", seed, minimum=0)
        checkpoints = check_checkpoint_dir(checkpoint_dir)
        checked_callbacks = check_callbacks(callbacks)
        self._device = check_device(device)
        data = ObjectiveData(train_data, valid_data, device=self._device)
        self.batch_sizes = check_batch_sizes(batch_sizes, len(data))
        """The batch sizes searched, as a tuple of ints."""
        self.schedule = Schedule.halving(len(self.batch_sizes), epochs, final)
        """Which step explores, which trains, and where the rungs are."""
        self._loop = TrialLoop(
            build_model=build_model,
            data=data,
            loss_fn=loss_fn,
            metric=metric,
            metric_name=metric_name,
            optimizer_factory=optimizer_factory or sgd,
            batch_sizes=self.batch_sizes,
            sweep=sweep,
            schedule=self.schedule,
            device=self._device,
            meter=meter,
            checkpoint_dir=checkpoints,
            seed=checked_seed,
            callbacks=checked_callbacks,
        )
        self._active = 0
        self._active_lock = threading.Lock()
        self._warned_parallel = False

    def schedule_attr(self) -> dict[str, Any]:
        """What this objective stores as the study user attr ``sm2.schedule`` (JSON values).

        A study that already holds a different one is refused when a trial starts: its rung
        records were made under that schedule."""
        return self._loop.schedule_json()

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
        """The energy tracker of every window; its meter is ``meter`` or, found when first
        needed, :func:`optuna_sm2.auto_meter`."""
        return self._loop.tracker

    def __call__(self, trial: optuna.trial.Trial) -> float:
        """Run the trial, asking the pruner after every report."""
        with self._one_trial_at_a_time():
            driver = StepDriver(self.run(trial))
            try:
                paused = driver.advance(lambda result: trial.should_prune())
            finally:
                driver.close()
            if paused is not None:
                raise optuna.TrialPruned(f"pruned at step {paused.step}")
            assert driver.value is not None
            return driver.value

    def run(self, trial: optuna.trial.Trial) -> Generator[PhaseResult, None, float]:
        """The trial step by step: yields each step's :class:`PhaseResult` after reporting it;
        returns the final metric.

        The caller decides what a rung means: :meth:`__call__` asks ``trial.should_prune()``,
        :func:`optuna_sm2.optimize_synchronous` ranks all configurations together; both advance
        it with the same driver.
        """
        return self._loop.run(trial)

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
