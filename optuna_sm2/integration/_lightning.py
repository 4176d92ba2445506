"""``SM2PruningCallback``: the SM² schedule inside PyTorch Lightning's ``Trainer.fit``, with a
``lightning.pytorch`` or a ``pytorch_lightning`` Trainer."""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Any, NoReturn

import optuna
import torch
import torch.distributed as dist

from optuna_sm2 import _compat
from optuna_sm2 import _trial_attrs as trial_attrs
from optuna_sm2 import attrs as _attrs
from optuna_sm2.energy import EnergyTracker
from optuna_sm2.integration._blocks import Blocks, ScheduleSettings
from optuna_sm2.integration._module_sweep import sweep_module
from optuna_sm2.integration._namespaces import callback_base
from optuna_sm2.pruners import TrialEnergy, report
from optuna_sm2.training import DistributedEnergyTracker

if TYPE_CHECKING:
    import lightning.pytorch as pl

    _Callback = pl.Callback
else:
    _Callback = callback_base()


class SM2PruningCallback(_Callback):
    """Run a trial the SM² way inside ``Trainer.fit``: energy-tracked epochs, an LR sweep at the
    start of each block, the energy-aware pruner's decisions at its rungs.

    Every training epoch is measured in an energy window (and every validation, the sanity
    check's included, in one of its own), booked in the trial with a
    :class:`~optuna_sm2.TrialEnergy`: ``sm2.energy_total_j`` and its train, eval and explore
    parts, ``sm2.energy_source`` and ``sm2.energy_invalid_windows``. At the end of each training
    epoch :func:`~optuna_sm2.report` stores ``trainer.callback_metrics[monitor]`` at step
    ``current_epoch``, the block's energy per epoch (its median epoch, or the mean on a meter
    coarser than an epoch) and the stable LR, then asks
    ``trial.should_prune()``. A pruned trial stops the trainer cleanly
    (``trainer.should_stop``); as with Optuna's ``PyTorchLightningPruningCallback``, call
    :meth:`check_pruned` right after ``trainer.fit`` to raise :class:`optuna.TrialPruned`.

    At the start of each block (``explore=True``) the LR is chosen by SM²'s exploratory sweep
    (:func:`~optuna_sm2.explore_lr`) of the module's own ``training_step`` on a deep copy of the
    module (the module, its optimizer and the trainer stay unchanged), over
    ``explore_fraction`` of an epoch's training batches; the LR it selects is set in every
    parameter group of the optimizer, and reported as ``sm2.stable_lr``. The sweep's energy is
    booked as exploration.

    Blocks: with ``explore_every`` epochs each; by default they end at the rungs of the study's
    pruner when it is a :class:`~optuna_sm2.SuccessiveHalvingEnergyPruner` with ``rung_steps``
    (SM²'s schedule: explore, train, decide), else they hold 5 epochs.

    Under DDP (``Trainer(strategy="ddp_spawn")``, as Optuna's callback) each rank measures its
    own device and every window holds the sum over ranks
    (:class:`~optuna_sm2.integration.DistributedEnergyTracker`); the sweep runs on rank 0 and
    its LR is broadcast; only rank 0 writes to the study, whose storage must be shared between
    processes (not in memory). See ``docs/distributed.md``.

    One class serves both of Lightning's import names: the callback is a ``Callback`` of
    ``lightning.pytorch`` and of ``pytorch_lightning``, whichever are installed, so a Trainer of
    either accepts it (Lightning refuses a callback of the other namespace). Given to a
    ``transformers.Trainer`` it raises a ``TypeError`` naming
    ``optuna_sm2.integration.SM2TrainerCallback``.

    Args:
        trial: The running trial.
        monitor: The metric to report, a key of ``trainer.callback_metrics`` at the end of a
            training epoch (``val_acc`` logged in ``validation_step``, or ``train_loss`` logged
            with ``on_epoch=True``).
        explore: Sweep the LR at the start of each block (the module must use automatic
            optimization with one optimizer and one training DataLoader).
        explore_every: Epochs per block; ``None`` for the pruner's rungs (see above).
        lr_min, lr_max, n_lrs: The sweep's log-spaced LR grid (``0 < lr_min < lr_max``,
            ``n_lrs >= 3``); ``None`` (default) for the range that follows from the optimizer
            and the LR ``configure_optimizers`` gave it (Adam at ``1e-3``: ``1e-4 .. 0.1``; plain
            SGD: ``1e-3 .. 1`` widened to a decade around its LR). That LR is the sweep's
            incumbent: the sweep's pick gives way to it when the pick's run-off run does not
            train and the configured LR's does better (``docs/lr-sweep.md``).
        explore_fraction: Share of an epoch's training batches one sweep spends, in (0, 1]:
            the whole exploration (sweep, stability check, run-off) takes at most that share
            of the epoch's batch passes plus one, or 21 where that is more (the loader is
            cycled when it has fewer batches than the sweep needs), as
            :func:`optuna_sm2.lr.sweep_plan` plans it. With a loader of unknown length the
            sweep takes ``n_lrs`` batches.
        tracker: What each process measures with; ``None`` for the process's
            :func:`~optuna_sm2.energy.shared_tracker` (made in each DDP worker).

    Example:
        .. code-block:: python

            import lightning.pytorch as pl
            import optuna
            import torch
            from torch.utils.data import DataLoader, TensorDataset

            from optuna_sm2 import SuccessiveHalvingEnergyPruner
            from optuna_sm2.integration import SM2PruningCallback

            x = torch.randn(256, 4)
            data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)

            class Model(pl.LightningModule):
                def __init__(self):
                    super().__init__()
                    self.layer = torch.nn.Linear(4, 2)

                def training_step(self, batch, batch_idx):
                    loss = torch.nn.functional.cross_entropy(self.layer(batch[0]), batch[1])
                    self.log("train_loss", loss, on_epoch=True, on_step=False)
                    return loss

                def configure_optimizers(self):
                    return torch.optim.SGD(self.parameters(), lr=0.01)

            def objective(trial):
                callback = SM2PruningCallback(trial, monitor="train_loss")
                trainer = pl.Trainer(max_epochs=4, callbacks=[callback], logger=False)
                trainer.fit(Model(), data)
                callback.check_pruned()
                return trainer.callback_metrics["train_loss"].item()

            pruner = SuccessiveHalvingEnergyPruner(rung_steps=[1, 3])
            optuna.create_study(pruner=pruner).optimize(objective, n_trials=3)
    """

    def __init__(
        self,
        trial: optuna.trial.Trial,
        monitor: str,
        *,
        explore: bool = True,
        explore_every: int | None = None,
        lr_min: float | None = None,
        lr_max: float | None = None,
        n_lrs: int = 20,
        explore_fraction: float = 0.25,
        tracker: EnergyTracker | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(trial, optuna.trial.Trial):
            raise ValueError(
                f"`trial` must be the optuna.trial.Trial the objective receives, got {trial!r}: "
                "make the callback inside the objective, SM2PruningCallback(trial, monitor=...)."
            )
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"`monitor` must be a non-empty metric name, got {monitor!r}.")
        self._settings = ScheduleSettings.checked(
            explore, explore_every, tracker, lr_min, lr_max, n_lrs, explore_fraction
        )
        self._trial = trial
        self.monitor = monitor
        self._book: TrialEnergy | None = None
        self._blocks = Blocks()
        self._windows = contextlib.ExitStack()
        self._lr: float | None = None
        self._pruned_at: int | None = None
        self._epochs = 0
        self._explorations = 0

    @property
    def stable_lr(self) -> float | None:
        """The LR the latest sweep selected; ``None`` before one (or without ``explore``)."""
        return self._lr

    @property
    def energy(self) -> TrialEnergy | None:
        """The trial's energy book in this process, from the start of ``fit``."""
        return self._book

    def on_init_end(self, *args: Any, **kwargs: Any) -> NoReturn:
        """The first event of a ``transformers.Trainer`` (Lightning has no such hook): this
        callback was given to the wrong framework's Trainer."""
        raise TypeError(
            "SM2PruningCallback is a PyTorch Lightning callback, given to a transformers.Trainer: "
            "pass optuna_sm2.integration.SM2TrainerCallback in Trainer(callbacks=[...]) instead."
        )

    # --- fit -------------------------------------------------------------------------------

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Check the setup, make the energy book and find the blocks."""
        self._check_validation(trainer)
        if self._settings.explore:
            self._check_explorable(trainer, pl_module)
        if trainer.world_size > 1:
            self._check_distributed()
        if self._book is None:
            tracker = DistributedEnergyTracker(self._settings.tracker)
            writer: optuna.trial.BaseTrial = self._trial
            if not trainer.is_global_zero:  # books the same sums, writes nothing to the study
                writer = optuna.trial.FixedTrial({}, number=self._trial.number)
            self._book = TrialEnergy(writer, tracker)
        self._blocks = self._settings.blocks(self._trial.study.pruner)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Book the open window (its energy was spent); under DDP drop it instead, since the
        other ranks may never close theirs."""
        if trainer.world_size > 1:
            self._windows.pop_all()
        else:
            self._windows.close()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._windows.close()

    # --- windows ---------------------------------------------------------------------------

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At a block's start: a new block and, with ``explore``, the sweep; then the epoch's
        training window opens."""
        book = self._open_book()
        self._windows.close()
        if self._blocks.starts_block(trainer.current_epoch):
            if self._settings.explore:
                self._explore_lr(trainer, pl_module, book)
            book.start_block()
        self._windows.enter_context(book.window("train"))

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Training ends where validation starts; validation has its own window."""
        self._windows.close()
        self._windows.enter_context(self._open_book().window("eval"))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._windows.close()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Report the epoch and let the pruner decide (rank 0), stopping every rank if it
        prunes."""
        self._windows.close()
        book = self._open_book()
        self._epochs += 1
        epoch = trainer.current_epoch
        value = self._monitored(trainer)
        prune = False
        if trainer.is_global_zero:
            book.writer.write(trial_attrs.EPOCHS_TRAINED, self._epochs)
            report(
                self._trial,
                value,
                epoch,
                energy_per_epoch_j=book.energy_per_epoch_j,
                stable_lr=self._lr,
            )
            prune = self._trial.should_prune()
            if prune:
                study = self._trial.study
                frozen = _compat.frozen(self._trial)
                _compat.set_trial_system_attr(study, frozen, _attrs.PRUNED_AT_EPOCH, epoch)
        if bool(trainer.strategy.broadcast(prune)):
            self._pruned_at = epoch
            trainer.should_stop = True

    def check_pruned(self) -> None:
        """Raise :class:`optuna.TrialPruned` if the callback pruned the trial; call it right
        after ``trainer.fit``. Under DDP the decision was taken in a worker process and is
        read from the study."""
        epoch = self._pruned_at
        if epoch is None:
            epoch = _compat.frozen(self._trial).system_attrs.get(_attrs.PRUNED_AT_EPOCH)
        if epoch is not None:
            raise optuna.TrialPruned(f"Trial was pruned at epoch {epoch}.")

    # --- parts -----------------------------------------------------------------------------

    def _open_book(self) -> TrialEnergy:
        if self._book is None:
            raise RuntimeError("SM2PruningCallback's hooks ran before on_fit_start.")
        return self._book

    def _monitored(self, trainer: pl.Trainer) -> float:
        """The monitored metric as a float, checked on every rank (so all raise together)."""
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            raise ValueError(
                f"`monitor`={self.monitor!r} is not among the metrics logged by the end of "
                f"epoch {trainer.current_epoch}: {sorted(metrics) or 'none'}. Log it with "
                "self.log in validation_step, or in training_step with on_epoch=True."
            )
        value = metrics[self.monitor]
        return float(value.item() if isinstance(value, torch.Tensor) else value)

    def _explore_lr(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, book: TrialEnergy
    ) -> None:
        """The sweep on rank 0, inside an exploration window of every rank; its LR is set in
        the optimizer of every rank."""
        optimizer = trainer.optimizers[0]
        with book.window("explore"):
            outcome: Any = None
            if trainer.is_global_zero:
                try:
                    found = sweep_module(trainer, pl_module, optimizer, self._settings.sweep)
                    outcome = (found.selected_lr, found.window, found.diverged_at)
                except Exception as exc:  # every rank raises it, none waits for the LR
                    outcome = exc
            outcome = trainer.strategy.broadcast(outcome)
        if isinstance(outcome, Exception):
            raise outcome
        lr, window, diverged_at = outcome
        for group in optimizer.param_groups:
            group["lr"] = lr
        self._lr = float(lr)
        self._explorations += 1
        if trainer.is_global_zero:
            book.writer.write(trial_attrs.EXPLORATIONS, self._explorations)
            book.writer.write(trial_attrs.LR_WINDOW, (window[0], window[1]))
            book.writer.write(trial_attrs.LR_DIVERGED_AT, diverged_at)

    @staticmethod
    def _check_validation(trainer: pl.Trainer) -> None:
        """Validation must run once at the end of every epoch: one training window per epoch,
        and a fresh metric at every report."""
        if not trainer.enable_validation:
            return
        if trainer.val_check_interval != 1.0 or trainer.check_val_every_n_epoch != 1:
            raise ValueError(
                "SM2PruningCallback measures one training window and one validation per epoch: "
                "leave Trainer(val_check_interval=1.0, check_val_every_n_epoch=1), the defaults; "
                f"got val_check_interval={trainer.val_check_interval!r}, "
                f"check_val_every_n_epoch={trainer.check_val_every_n_epoch!r}."
            )

    @staticmethod
    def _check_explorable(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not pl_module.automatic_optimization:
            raise ValueError(
                "SM2PruningCallback(explore=True) sweeps the LR with the module's training_step "
                "and one optimizer; this module uses manual optimization: pass explore=False."
            )
        if len(trainer.optimizers) != 1:
            raise ValueError(
                "SM2PruningCallback(explore=True) sets the LR of one optimizer; "
                f"configure_optimizers returned {len(trainer.optimizers)}: pass explore=False."
            )
        if trainer.lr_scheduler_configs:
            warnings.warn(
                "SM2PruningCallback sets the optimizer's LR at the start of each block; an LR "
                "scheduler that sets the LR itself (OneCycleLR, LambdaLR) overrides it.",
                UserWarning,
                stacklevel=2,
            )

    def _check_distributed(self) -> None:
        """Every rank must hold the same trial of a study shared between processes."""
        study = self._trial.study
        if isinstance(_compat.storage_of(study), optuna.storages.InMemoryStorage):
            raise ValueError(
                "SM2PruningCallback under DDP needs a study whose storage every process reaches "
                "(a database or a journal file), not one in memory: rank 0's worker writes it."
            )
        if not dist.is_initialized():
            return
        mine = (study.study_name, _compat.trial_id(self._trial))
        held: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(held, mine)
        if len(set(held)) > 1:
            raise ValueError(
                "SM2PruningCallback: the ranks hold different trials "
                f"({', '.join(f'rank {r}: {h}' for r, h in enumerate(held))}); start DDP with "
                "Trainer(strategy='ddp_spawn') from the process that runs the study, so that "
                "every rank gets this trial."
            )
