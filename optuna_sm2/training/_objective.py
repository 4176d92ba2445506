"""``SM2Objective``: the facade of one Optuna trial run the SM² way.

It checks its arguments (``_arguments.py`` and the shared ``_validation``) and hands them to the
parts a reader finds by name: the data source (``_data.py``), the loss (``_loss.py``), the
optimizer factory (``_optimizer.py``), the phases of a step (``_phases.py``), the loop of a
trial (``_loop.py``, which books energy in :class:`optuna_sm2.TrialEnergy`), the trial's state
and checkpoints (``_trial_state.py``, ``_checkpoint.py``) and the driver that advances it
(``_driver.py``).
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
from optuna_sm2.lr import check_device
from optuna_sm2.pruners import SuccessiveHalvingEnergyPruner
from optuna_sm2.training._arguments import (
    check_callbacks,
    check_checkpoint_dir,
    check_loader_options,
)
from optuna_sm2.training._data import ObjectiveData, check_data
from optuna_sm2.training._driver import StepDriver
from optuna_sm2.training._loop import PhaseCallback, PhaseResult, TrialLoop
from optuna_sm2.training._loss import BatchLoss, Loss, LossFn
from optuna_sm2.training._optimizer import OptimizerFactory, TrialOptimizer, sgd
from optuna_sm2.training._phases import Metric, SweepSettings
from optuna_sm2.training._schedule import Schedule, check_batch_sizes

DEFAULT_BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)


class SM2Objective:
    """An Optuna objective that runs each trial the SM² way (arXiv 2412.08526, section 3).

    Each trial suggests ``batch_size`` from ``batch_sizes`` and then runs blocks, each an
    exploratory LR sweep on a copy of the model (about ``explore_fraction`` of the training
    data, one learning rate per batch, see :func:`optuna_sm2.explore_lr`) followed by
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
            ``batch_size`` is suggested before it is called (read it as
            ``trial.params["batch_size"]``); suggesting ``batch_size`` with other choices, or
            a learning rate (``lr``, ``learning_rate``), fails the first trial with one
            ``ValueError`` saying why.
        train_data: The training data: a pair ``(inputs, targets)`` of tensors, or a
            map-style ``torch.utils.data.Dataset`` whose items are ``(inputs, targets)``;
            inputs and targets each a tensor, or a tuple or dict of tensors (a Dataset's
            numbers and numpy arrays are collated into tensors). Tensors are put on
            ``device`` once and cut into batches there (:class:`optuna_sm2.PreloadedBatches`);
            a Dataset is collated once and preloaded the same way if it fits
            ``preload_budget_bytes``, else streamed through a ``DataLoader`` built with each
            trial's batch size. A ``DataLoader`` is refused: pass its ``dataset``.
        valid_data: The validation data for ``metric``, in the same forms.
        loss_fn: ``loss_fn(outputs, targets) -> Tensor``, the loss of ``model(inputs)``
            (inputs passed as one argument) for training, the sweep and its stability check.
        metric: ``metric(model, valid_data) -> float``, called in eval mode without
            gradients; the study's direction says whether larger is better. ``valid_data`` is
            ``(inputs, targets)`` on ``device`` when ``valid_data`` was a pair of tensors, and
            an iterable of ``(inputs, targets)`` batches on ``device`` (in order, batch size
            ``valid_batch_size``) when it was a Dataset, preloaded or streamed alike. It must
            return a finite Python or numpy number: a tensor or ``None`` fails the first
            trial before SM² writes anything, NaN or infinity fails the trial; each with a
            ``ValueError`` naming ``metric``.
        batch_loss: ``batch_loss(model, batch) -> Tensor``, the loss of a batch
            ``(inputs, targets)`` as the data gives it, instead of ``loss_fn``: for a model
            that returns its own loss, takes several inputs, or needs a custom step. Exactly
            one of ``loss_fn`` and ``batch_loss``.
        batch_sizes: The batch sizes searched (the paper: 8 of them), integers in
            ``[1, len(train_data)]`` without repeats.
        lr_min, lr_max, n_lrs: The log-spaced LR grid of every sweep (``0 < lr_min < lr_max``,
            finite; ``n_lrs >= 3``). ``None`` (default) for the optimizer's default range:
            plain SGD (with or without momentum) ``1e-3 .. 1``; an adaptive optimizer (Adam,
            AdamW, RMSprop, ...) a decade below its configured LR to two above, at most 1
            (Adam's default ``1e-3``: ``1e-4 .. 0.1``); see ``docs/lr-sweep.md``. A given end wins.
        explore_fraction: Share of the training data one exploration spends, in (0, 1] (paper:
            1/4): the whole exploration (sweep, stability check, run-off) is planned by
            :func:`optuna_sm2.lr.sweep_plan` to process at most that share of the samples plus
            one batch, or 21 batches' worth where that is more; at large batch sizes the sweep then
            trains with fewer LRs of the grid (at least 7 where it has them) rather than more data.
        epochs_per_rung: Thorough epochs per block, an integer >= 1 (paper: 5).
        final_epochs: Thorough epochs after the last decision, an integer >= 0 (paper: 10).
        optimizer_factory: ``factory(params, lr) -> Optimizer``, or
            ``factory(trial, params, lr) -> Optimizer`` (exactly three parameters without
            defaults) to suggest the optimizer's own hyperparameters; used for sweeps and
            training, and it must build the optimizer at the ``lr`` it is given. Plain SGD by
            default. Its own ``lr`` default (or an adaptive optimizer's class default, Adam's
            ``1e-3``) is the user's LR: a sweep's pick gives way to it when the pick's run-off
            run does not train and the user's LR's does better (``docs/lr-sweep.md``).
        device: Training device; CUDA when available, else CPU. A device torch cannot use here
            (``'cuda'`` without CUDA) is refused.
        meter: An :class:`optuna_sm2.energy.EnergyMeter`; :func:`optuna_sm2.auto_meter`
            (found when first needed) when ``None``.
        checkpoint_dir: If given, after each rung the model and optimizer go to
            ``checkpoint_dir/<study name>-<study id>-<storage digest>/<trial number>.pt`` (the
            name reduced to safe characters), and a trial retried by
            ``RetryHeartbeatStaleTrialCallback`` resumes from its predecessor's last one (see
            ``docs/objective.md``).
        seed: Seeds model initialisation and batch order of each trial (plus its number); an
            integer >= 0.
        metric_name: Name of the metric, shown by the report and the dashboard.
        callbacks: ``callback(trial, result)`` for each step of each trial, in order, after the
            step is reported and before any pruning decision; ``result`` is a
            :class:`optuna_sm2.training.PhaseResult`.
        preload_budget_bytes: Bytes of ``device`` memory that Datasets may take when
            preloaded (the training set first, then the validation set in what is left); a
            Dataset that does not fit streams. ``None`` (default): a quarter of the device's
            memory (the GPU's total memory, or the machine's physical memory for the CPU).
            ``0`` streams every Dataset. Pairs of tensors are always preloaded.
        num_workers: ``DataLoader`` worker processes for streaming and for collating a Dataset
            to preload, an integer >= 0 (0: load in this process).
        pin_memory: Stream through pinned host memory; ``None``: when ``device`` is CUDA.
        valid_batch_size: Batch size of the validation batches a Dataset's metric receives;
            ``None``: the largest of ``batch_sizes`` (the model trains at that size, so it
            fits).
    """

    def __init__(
        self,
        build_model: Callable[[optuna.trial.Trial], nn.Module],
        train_data: object,
        valid_data: object,
        loss_fn: LossFn | None = None,
        metric: Metric | None = None,
        *,
        batch_loss: BatchLoss | None = None,
        batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
        lr_min: float | None = None,
        lr_max: float | None = None,
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
        preload_budget_bytes: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        valid_batch_size: int | None = None,
    ) -> None:
        _check.check_callable("build_model", build_model, "build_model(trial) -> nn.Module")
        loss = Loss.checked(loss_fn, batch_loss)
        _check.check_callable("metric", metric, "metric(model, valid_data) -> float")
        assert metric is not None
        optimizer = TrialOptimizer(sgd if optimizer_factory is None else optimizer_factory)
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
        loader = check_loader_options(
            preload_budget_bytes, num_workers, pin_memory, valid_batch_size
        )
        self._device = check_device(device)
        train = check_data("train_data", train_data)
        valid = check_data("valid_data", valid_data)
        self.batch_sizes = check_batch_sizes(batch_sizes, train.n)
        """The batch sizes searched, as a tuple of ints."""
        self.schedule = Schedule.halving(len(self.batch_sizes), epochs, final)
        """Which step explores, which trains, and where the rungs are."""
        data = ObjectiveData(
            train,
            valid,
            device=self._device,
            preload_budget_bytes=loader.preload_budget_bytes,
            num_workers=loader.num_workers,
            pin_memory=loader.pin_memory,
            valid_batch_size=loader.valid_batch_size or max(self.batch_sizes),
        )
        self.preloaded = dict(data.preloaded)
        """Per data argument (``train_data``, ``valid_data``): whether it was put on the device
        whole (``True``) or streams through a ``DataLoader`` (``False``)."""
        self._loop = TrialLoop(
            build_model=build_model,
            data=data,
            loss=loss,
            metric=metric,
            metric_name=metric_name,
            optimizer=optimizer,
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
        """The pruner whose rungs are this objective's (halving, ``reduction_factor=2``);
        ``kwargs`` are the pruner's other arguments (``rung_steps`` is the objective's own)."""
        if "rung_steps" in kwargs:
            raise ValueError(
                f"`rung_steps` is the objective's own ({self.rung_steps}), not an argument of "
                "make_pruner; pass SuccessiveHalvingEnergyPruner's other arguments, or build "
                f"that pruner yourself, got rung_steps={kwargs['rung_steps']!r}."
            )
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
