"""``SM2TrainerCallback``: the SM² schedule inside a Hugging Face ``transformers.Trainer``."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import optuna
import torch
from accelerate.utils import send_to_device
from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import default_compute_objective, default_hp_space_optuna

from optuna_sm2 import _compat
from optuna_sm2 import _trial_attrs as trial_attrs
from optuna_sm2 import attrs as _attrs
from optuna_sm2.energy import EnergyTracker
from optuna_sm2.integration._blocks import Blocks, ScheduleSettings
from optuna_sm2.lr import SweepPlan, explore_lr, sweep_plan
from optuna_sm2.pruners import TrialEnergy, report
from optuna_sm2.training import SweepSettings

HpSpace = Callable[[optuna.trial.Trial], dict[str, Any]]
Metric = Callable[[dict[str, float]], float]


class SM2TrainerCallback(TrainerCallback):
    """Make a ``transformers.Trainer`` run an SM² trial: energy-tracked epochs, rungs counted
    in epochs, the energy-aware pruner's decisions and, where asked, SM²'s LR sweep.

    Every training epoch (``on_epoch_begin`` to ``on_epoch_end``) is measured in a ``train``
    energy window and every evaluation at an epoch's end (``on_epoch_end`` to
    ``on_evaluate``) in an ``eval`` window, booked in the trial with a
    :class:`~optuna_sm2.TrialEnergy`: ``sm2.energy_total_j`` and its parts,
    ``sm2.energy_source``, ``sm2.energy_invalid_windows``.

    **Rungs in epochs.** After each epoch's evaluation the callback reports
    ``metric(metrics)`` with :func:`~optuna_sm2.report` at the **epoch index** (0, 1, ...),
    with the block's energy per epoch (its median epoch, or the mean on a meter coarser than an
    epoch; the stable LR too when exploring), then asks
    ``trial.should_prune()``. The Trainer's own report, at ``global_step``, is kept from the
    study: a batch size of 16 and one of 128 then meet the pruner's rungs after the same
    number of epochs. Inside ``trainer.hyperparameter_search`` the Trainer's ``trial.report``
    and ``trial.should_prune`` are answered by the callback while it trains (the value was
    reported at the epoch, the decision is the callback's), so a pruned trial leaves
    ``train`` the Trainer's way: ``on_train_end`` for every callback, then
    :class:`optuna.TrialPruned`. In an objective of your own, the callback stops the Trainer
    (``control.should_training_stop``) and :meth:`check_pruned`, called right after
    ``trainer.train``, raises :class:`optuna.TrialPruned`. After a search, a ``train`` that is
    no trial of it (the final model) is left alone.

    **Exploration** (``explore=True``; off by default, so the Trainer trains at the
    ``learning_rate`` and schedule you gave it): at the start of each block SM²'s sweep
    (:func:`~optuna_sm2.explore_lr`) trains a copy of the model with the model's own loss
    (``model(**batch).loss``) and the Trainer's optimizer (its class and parameter groups),
    over shuffled training batches of the Trainer's batch size drawn from the training set
    (``explore_fraction`` of an epoch, as :func:`optuna_sm2.lr.sweep_plan` plans it). The LR
    it selects becomes the peak of the Trainer's schedule: the scheduler's base LR is set to
    it, and every parameter group's LR to it times the schedule's current factor (warm-up,
    decay). It is reported as ``sm2.stable_lr``; the sweep's energy is booked as exploration.

    Blocks: ``explore_every`` epochs each; by default they end at the rungs of the study's
    pruner when it is a :class:`~optuna_sm2.SuccessiveHalvingEnergyPruner` with
    ``rung_steps``, else they hold 5 epochs.

    Args:
        trial: The running trial, in an objective that calls ``trainer.train(trial=trial)``;
            ``None`` inside ``trainer.hyperparameter_search``, where the trial is taken from
            ``hp_space=callback.hp_space(...)``.
        metric: What to report from the evaluation's metrics: ``None`` for the Trainer's
            default objective (``eval_loss`` without other metrics, else their sum; pass the
            ``compute_objective`` you give ``hyperparameter_search`` if you give one), a
            metric's name (``"eval_accuracy"``, or ``"accuracy"``), or a function of the
            metrics dict.
        explore: Sweep the LR at the start of each block and train at the LR it selects.
        explore_every: Epochs per block; ``None`` for the pruner's rungs (see above).
        lr_min, lr_max, n_lrs: The sweep's log-spaced LR grid (``0 < lr_min < lr_max``,
            ``n_lrs >= 3``); the defaults suit AdamW, the Trainer's optimizer.
        explore_fraction: Share of an epoch's training batches one exploration spends, in
            (0, 1].
        tracker: What the windows measure with; ``None`` for the process's
            :func:`~optuna_sm2.energy.shared_tracker`.

    Example:
        .. code-block:: python

            import optuna
            import torch
            from transformers import (
                BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
            )

            from optuna_sm2 import SuccessiveHalvingEnergyPruner
            from optuna_sm2.integration import SM2TrainerCallback

            ids = torch.randint(1, 50, (128, 8))
            data = [{"input_ids": x, "labels": int(x[0] > 25)} for x in ids]
            config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32, num_labels=2)

            callback = SM2TrainerCallback()
            trainer = Trainer(
                model_init=lambda: BertForSequenceClassification(config),
                args=TrainingArguments("out", eval_strategy="epoch", num_train_epochs=3,
                                       save_strategy="no", report_to="none"),
                train_dataset=data,
                eval_dataset=data[:32],
                callbacks=[callback],
            )
            trainer.hyperparameter_search(
                hp_space=callback.hp_space(),  # the Trainer's default space
                backend="optuna",
                n_trials=4,
                pruner=SuccessiveHalvingEnergyPruner(rung_steps=[0, 1]),
            )

        ``docs/your-training-code.md`` runs both ways in full.
    """

    def __init__(
        self,
        trial: optuna.trial.Trial | None = None,
        *,
        metric: str | Metric | None = None,
        explore: bool = False,
        explore_every: int | None = None,
        lr_min: float = 1e-5,
        lr_max: float = 1e-1,
        n_lrs: int = 20,
        explore_fraction: float = 0.25,
        tracker: EnergyTracker | None = None,
    ) -> None:
        super().__init__()
        if trial is not None and not isinstance(trial, optuna.trial.Trial):
            raise ValueError(f"`trial` must be an optuna.trial.Trial or None, got {trial!r}.")
        if not (metric is None or callable(metric) or (isinstance(metric, str) and metric)):
            raise ValueError(
                "`metric` must be None, a metric's name or a function of the metrics dict, "
                f"got {metric!r}."
            )
        self._settings = ScheduleSettings.checked(
            explore, explore_every, tracker, lr_min, lr_max, n_lrs, explore_fraction
        )
        self._trial = trial
        self._searched = False
        self._captured = False
        self._metric = metric
        self._book: TrialEnergy | None = None
        self._blocks = Blocks()
        self._windows = contextlib.ExitStack()
        self._lr: float | None = None
        self._epoch: int | None = None
        self._ended: int | None = None
        self._pruned_at: int | None = None
        self._epochs = 0
        self._explorations = 0
        self._own_report = False

    # --- given to a Lightning Trainer by mistake: what Lightning calls first -----------------

    @property
    def state_key(self) -> str:
        """The name a Lightning ``Trainer`` reads before each hook (transformers never does)."""
        return type(self).__name__

    def setup(self, *args: Any, **kwargs: Any) -> NoReturn:
        """The first hook a Lightning ``Trainer`` calls (transformers has no such event): this
        callback was given to the wrong framework's Trainer."""
        raise TypeError(
            "SM2TrainerCallback is a transformers TrainerCallback, given to a Lightning Trainer: "
            "pass optuna_sm2.integration.SM2PruningCallback in Trainer(callbacks=[...]) instead."
        )

    def on_exception(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's hook after the error of :meth:`setup`: nothing to add to it."""

    @property
    def trial(self) -> optuna.trial.Trial | None:
        """The trial the callback writes to: the one given, or the search's current one."""
        return self._trial

    @property
    def stable_lr(self) -> float | None:
        """The LR the latest sweep selected; ``None`` before one (or without ``explore``)."""
        return self._lr

    @property
    def energy(self) -> TrialEnergy | None:
        """The trial's energy book, from the start of ``train``."""
        return self._book

    def hp_space(self, space: HpSpace | None = None) -> HpSpace:
        """``space`` (the Trainer's default search space when ``None``), which also hands the
        callback each trial of ``trainer.hyperparameter_search``: pass
        ``hp_space=callback.hp_space(space)`` to it."""
        if space is not None and not callable(space):
            raise ValueError(f"`space` must be a function of the trial or None, got {space!r}.")
        chosen = default_hp_space_optuna if space is None else space

        def captured(trial: optuna.trial.Trial) -> dict[str, Any]:
            self._trial = trial
            self._searched = self._captured = True
            return chosen(trial)

        return captured

    def check_pruned(self) -> None:
        """Raise :class:`optuna.TrialPruned` if the callback pruned the trial; call it right
        after ``trainer.train`` in an objective of your own."""
        if self._pruned_at is not None:
            raise optuna.TrialPruned(f"Trial was pruned at epoch {self._pruned_at}.")

    # --- train -----------------------------------------------------------------------------

    def on_init_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Refuse, as the Trainer is made, arguments the callback cannot measure by epoch."""
        _check_arguments(args)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Check the setup, then make the trial's energy book and find the blocks. After a
        search, a ``train`` that is no trial of it (the final model) is left alone."""
        self._windows.pop_all()  # a window a failed train left open: its trial has ended
        self._book = None
        captured, self._captured = self._captured, False
        if self._searched and not captured:
            return
        _check_arguments(args)
        trial = self._trial
        if trial is None:
            raise ValueError(
                "SM2TrainerCallback has no trial: in an objective, make it with "
                "SM2TrainerCallback(trial) and call trainer.train(trial=trial); with "
                "trainer.hyperparameter_search, pass hp_space=callback.hp_space(your_hp_space)."
            )
        if len(trial.study.directions) > 1:
            raise ValueError(
                "SM2TrainerCallback reports intermediate values, which Optuna allows in a "
                f"single-objective study only; this one has {len(trial.study.directions)} "
                "directions: pass one `direction`."
            )
        self._book = TrialEnergy(trial, self._settings.tracker)
        self._lr = None
        self._epoch = self._ended = self._pruned_at = None
        self._epochs = self._explorations = 0
        self._blocks = self._settings.blocks(trial.study.pruner)
        if self._searched:
            self._answer_the_trainer(trial)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Close the open window; the trial answers for itself again."""
        self._windows.close()
        self._book = None
        if self._trial is not None:
            for name in ("report", "should_prune"):
                vars(self._trial).pop(name, None)

    # --- windows ---------------------------------------------------------------------------

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """At a block's start: a new block and, with ``explore``, the sweep; then the epoch's
        training window opens."""
        book = self._book
        if book is None:
            return
        self._windows.close()
        self._epoch = round(state.epoch or 0.0)
        if self._blocks.starts_block(self._epoch):
            if self._settings.explore:
                self._explore_lr(args, book, **kwargs)
            book.start_block()
        self._windows.enter_context(book.window("train"))

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """The epoch's training ends; its evaluation has a window of its own."""
        book = self._book
        if book is None:
            return
        self._windows.close()
        self._ended = self._epoch
        self._epochs += 1
        self._windows.enter_context(book.window("eval"))

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        """After an epoch's evaluation: report at the epoch index and let the pruner decide."""
        if self._book is None or self._ended is None:
            return  # an evaluation outside an epoch's end: eval_on_start, or after train
        self._windows.close()
        epoch, self._ended = self._ended, None
        trial = self._open_trial()
        self._book.writer.write(trial_attrs.EPOCHS_TRAINED, self._epochs)
        self._own_report = True
        try:
            report(
                trial,
                self._value(metrics or {}),
                epoch,
                energy_per_epoch_j=self._book.energy_per_epoch_j,
                stable_lr=self._lr,
            )
            prune = type(trial).should_prune(trial)
        finally:
            self._own_report = False
        if prune:
            self._pruned_at = epoch
            _compat.set_trial_system_attr(
                trial.study, _compat.frozen(trial), _attrs.PRUNED_AT_EPOCH, epoch
            )
            control.should_training_stop = True

    # --- parts -----------------------------------------------------------------------------

    def _open_trial(self) -> optuna.trial.Trial:
        if self._trial is None:
            raise RuntimeError("SM2TrainerCallback's hooks ran before on_train_begin.")
        return self._trial

    def _answer_the_trainer(self, trial: optuna.trial.Trial) -> None:
        """Inside ``hyperparameter_search``: the Trainer's ``trial.report`` at ``global_step``
        is dropped (the callback reported the epoch), and its ``trial.should_prune`` gets the
        callback's decision, so the Trainer ends a pruned trial its own way."""
        own_report = type(trial).report

        def report_epochs_only(value: float, step: int) -> None:
            if self._own_report:
                own_report(trial, value, step)

        def callback_decision() -> bool:
            return self._pruned_at is not None

        vars(trial)["report"] = report_epochs_only
        vars(trial)["should_prune"] = callback_decision

    def _value(self, metrics: dict[str, float]) -> float:
        """The reported value: ``metric`` of the evaluation's metrics."""
        if self._metric is None:
            return float(default_compute_objective(metrics))
        if callable(self._metric):
            return float(self._metric(metrics))
        name = self._metric
        key = name if name in metrics else f"eval_{name}"
        if key not in metrics:
            raise ValueError(
                f"`metric`={name!r} is not among the evaluation's metrics: {sorted(metrics)}. "
                "Return it from compute_metrics, or pass one of these."
            )
        return float(metrics[key])

    def _explore_lr(
        self,
        args: TrainingArguments,
        book: TrialEnergy,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        lr_scheduler: Any = None,
        train_dataloader: Any = None,
        **_: Any,
    ) -> None:
        """The sweep, in an exploration window; its LR becomes the schedule's peak."""
        optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
        scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)
        sweep = self._settings.sweep
        with book.window("explore"):
            plan, batches = _sweep_batches(train_dataloader, sweep, args.seed + self._epochs)
            device = next(model.parameters()).device
            found = explore_lr(
                model,
                batches=[send_to_device(batch, device) for batch in batches],
                batch_loss=_model_loss,
                lr_min=sweep.lr_min,
                lr_max=sweep.lr_max,
                n_lrs=sweep.n_lrs,
                plan=plan,
                optimizer=optimizer,
                device=device,
            )
        lr = float(found.selected_lr)
        _set_peak_lr(optimizer, scheduler, lr)
        self._lr = lr
        self._explorations += 1
        book.writer.write(trial_attrs.EXPLORATIONS, self._explorations)
        book.writer.write(trial_attrs.LR_WINDOW, found.window)
        book.writer.write(trial_attrs.LR_DIVERGED_AT, found.diverged_at)


def _check_arguments(args: TrainingArguments) -> None:
    """One evaluation at the end of every epoch, in one process."""
    strategy = str(getattr(args.eval_strategy, "value", args.eval_strategy))
    if strategy != "epoch":
        raise ValueError(
            "SM2TrainerCallback reports once per epoch, after the epoch's evaluation: make the "
            "Trainer with TrainingArguments(eval_strategy='epoch'); got "
            f"eval_strategy={strategy!r}."
        )
    if args.world_size > 1:
        raise ValueError(
            "SM2TrainerCallback measures and reports in one process; this Trainer runs "
            f"{args.world_size}: train each trial in one process (see docs/distributed.md)."
        )


def _sweep_batches(loader: Any, settings: SweepSettings, seed: int) -> tuple[SweepPlan, list[Any]]:
    """The plan of a sweep over an epoch of the Trainer's batches, and its ``n_batches``
    batches of the Trainer's batch size from its training set, shuffled from ``seed`` (the
    set is cycled when it has fewer): drawn with the loader's collator, without touching the
    loader or torch's random stream."""
    dataset, collate = loader.dataset, loader.collate_fn
    size = loader.batch_size or getattr(loader, "total_batch_size", None)  # accelerate's shard
    sized = hasattr(dataset, "__len__") and hasattr(loader, "__len__") and len(dataset) > 0
    if not (sized and isinstance(size, int)):
        raise ValueError(
            "SM2TrainerCallback(explore=True) draws its sweep's batches from a map-style "
            "training set of known length and a fixed batch size; pass explore=False."
        )
    plan = sweep_plan(len(loader), 1, settings.explore_fraction, settings.n_lrs)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while len(order) < plan.n_batches * size:
        order += torch.randperm(len(dataset), generator=generator).tolist()
    starts = range(0, plan.n_batches * size, size)
    return plan, [collate([dataset[i] for i in order[k : k + size]]) for k in starts]


def _model_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """The model's own loss of a batch (a dict with its labels): ``model(**batch).loss``."""
    outputs = model(**batch) if isinstance(batch, Mapping) else model(*batch)
    loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs[0]
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise ValueError(
            "SM2TrainerCallback(explore=True) sweeps with the model's own loss, and "
            f"{type(model).__name__} returned none for a training batch (the batches need "
            "their labels); pass explore=False."
        )
    return loss


def _set_peak_lr(optimizer: torch.optim.Optimizer, scheduler: Any, lr: float) -> None:
    """Make ``lr`` the peak of the schedule: each group's LR is ``lr`` times the schedule's
    current factor (its LR over its base LR), and the base LR is ``lr``."""
    base = getattr(scheduler, "base_lrs", None)
    for i, group in enumerate(optimizer.param_groups):
        factor = 1.0
        if base is not None and base[i] > 0 and math.isfinite(group["lr"]):
            factor = group["lr"] / base[i]
            base[i] = lr
        group["initial_lr"] = lr
        group["lr"] = lr * factor
