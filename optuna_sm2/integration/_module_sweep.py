"""SM²'s exploratory LR sweep of a LightningModule's own ``training_step``, on a copy."""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from optuna_sm2.lr import LRExploration, SweepPlan, explore_lr, sweep_plan
from optuna_sm2.training import SweepSettings

if TYPE_CHECKING:
    import lightning.pytorch as pl

_LOG_WITHOUT_TRAINER = r"You are trying to `self\.log\(\)` but the `self\.trainer` reference"
"""Lightning's warning when a module logs without a trainer: the copy swept has none."""


class TrainingStepLoss(nn.Module):
    """``model(batch)``: the loss that ``module.training_step(batch, batch_idx)`` returns.

    This wrapper is the model :func:`optuna_sm2.explore_lr` sweeps, with
    :func:`training_step_loss` as its ``batch_loss``. A deep copy of the wrapper copies the
    module without its trainer (the copy's ``self.log`` does nothing), so the sweep never
    touches the trainer, its logged metrics or its optimizers.
    """

    def __init__(self, module: pl.LightningModule, trainer: pl.Trainer | None) -> None:
        super().__init__()
        self.module = module
        self._trainer = trainer
        parameters = inspect.signature(module.training_step).parameters
        self._takes_index = "batch_idx" in parameters or len(parameters) >= 2
        self._batch_idx = 0

    def forward(self, batch: Any) -> torch.Tensor:
        args = (batch, self._batch_idx) if self._takes_index else (batch,)
        self._batch_idx += 1
        returned = self.module.training_step(*args)
        loss = returned.get("loss") if isinstance(returned, Mapping) else returned
        if not isinstance(loss, torch.Tensor):
            raise ValueError(
                f"{type(self.module).__name__}.training_step must return the loss (a tensor, or "
                f"a dict with a 'loss' tensor) for the LR sweep, got {returned!r}; pass "
                "SM2PruningCallback(..., explore=False) to train without the sweep."
            )
        return loss

    def __deepcopy__(self, memo: dict[int, Any]) -> TrainingStepLoss:
        if self._trainer is not None:
            memo[id(self._trainer)] = None  # the copy's references to the trainer become None
        return TrainingStepLoss(copy.deepcopy(self.module, memo), None)


def training_step_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """The ``batch_loss`` of the sweep: the :class:`TrainingStepLoss` of ``batch``."""
    return model(batch)  # type: ignore[no-any-return]


def sweep_plan_of(trainer: pl.Trainer, settings: SweepSettings) -> SweepPlan | None:
    """The :func:`optuna_sm2.lr.sweep_plan` of an epoch of this rank's training batches,
    counted in batches; ``None`` when the epoch's length is unknown (a loader without one)."""
    per_epoch = trainer.num_training_batches  # inf for a loader of unknown length
    if not math.isfinite(per_epoch) or per_epoch < 1:
        return None
    return sweep_plan(int(per_epoch), 1, settings.explore_fraction, settings.n_lrs)


def sweep_batches(trainer: pl.Trainer, wanted: int) -> list[Any]:
    """The first ``wanted`` training batches of this rank (the loader is cycled when it has
    fewer).

    Drawn under :func:`torch.random.fork_rng`, so the shuffling of the epochs that follow is
    as if the sweep had not drawn.
    """
    loader = trainer.train_dataloader
    if not isinstance(loader, Iterable) or isinstance(loader, (Mapping, list, tuple)):
        raise ValueError(
            "SM2PruningCallback sweeps the LR over one training DataLoader, got "
            f"{type(loader).__name__}; pass SM2PruningCallback(..., explore=False) with "
            "several training loaders."
        )
    batches: list[Any] = []
    with torch.random.fork_rng():
        while len(batches) < wanted:
            before = len(batches)
            for batch in loader:
                batches.append(batch)
                if len(batches) == wanted:
                    break
            if len(batches) == before:
                raise ValueError("the training DataLoader yielded no batch for the LR sweep.")
    return batches


def sweep_module(
    trainer: pl.Trainer,
    module: pl.LightningModule,
    optimizer: torch.optim.Optimizer,
    settings: SweepSettings,
) -> LRExploration:
    """Sweep the LR grid with ``module``'s own ``training_step`` on a copy of it, starting
    from ``optimizer``'s state (its class and parameter groups); nothing of ``module``,
    ``optimizer`` or ``trainer`` changes.

    When the epoch's length is known, the sweep follows :func:`sweep_plan_of` (its
    ``n_batches`` batches, at most ``explore_fraction`` of the epoch's batches plus one, or
    the plan's floor, spent in all); else it sweeps every LR of the grid over ``n_lrs``
    batches.
    """
    plan = sweep_plan_of(trainer, settings)
    batches = sweep_batches(trainer, settings.n_lrs if plan is None else plan.n_batches)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_LOG_WITHOUT_TRAINER)
        return explore_lr(
            TrainingStepLoss(module, trainer),
            batches=batches,
            batch_loss=training_step_loss,
            lr_min=settings.lr_min,
            lr_max=settings.lr_max,
            n_lrs=settings.n_lrs,
            plan=plan,
            optimizer=optimizer,
            device=module.device,
        )
