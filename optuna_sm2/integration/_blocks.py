"""Where the blocks of SM²'s schedule start, in training epochs (a pure rule), and what a
callback that runs the schedule was asked for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optuna.pruners import BasePruner

from optuna_sm2._validation import check_int
from optuna_sm2.energy import EnergyTracker
from optuna_sm2.pruners import SuccessiveHalvingEnergyPruner
from optuna_sm2.training import SweepSettings

DEFAULT_BLOCK_EPOCHS = 5
"""Epochs per block when neither ``explore_every`` nor the pruner's rung steps say (the
paper's epochs per rung)."""


@dataclass(frozen=True)
class Blocks:
    """Blocks of training epochs, each starting with an exploration.

    With ``rung_steps`` (a pruner's explicit rungs), blocks end at the rungs: the first starts at
    epoch 0, each next one right after a rung, and after the last rung they keep the length of
    the last block. Otherwise each block holds ``every`` epochs.

    Example:
        >>> Blocks(every=3).starts(8)
        [0, 3, 6]
        >>> Blocks(rung_steps=(1, 3)).starts(8)
        [0, 2, 4, 6]
        >>> Blocks(rung_steps=(4,)).starts(12)
        [0, 5, 10]
    """

    every: int = DEFAULT_BLOCK_EPOCHS
    rung_steps: Sequence[int] = ()

    def starts_block(self, epoch: int) -> bool:
        """Whether ``epoch`` is the first of a block."""
        if not self.rung_steps:
            return epoch % self.every == 0
        if epoch == 0 or epoch - 1 in self.rung_steps:
            return True
        last = self.rung_steps[-1]
        before = self.rung_steps[-2] if len(self.rung_steps) > 1 else -1
        return epoch > last and (epoch - last - 1) % (last - before) == 0

    def starts(self, n_epochs: int) -> list[int]:
        """The epochs below ``n_epochs`` that start a block."""
        return [epoch for epoch in range(n_epochs) if self.starts_block(epoch)]


@dataclass(frozen=True)
class ScheduleSettings:
    """A callback's schedule: whether it sweeps the LR (and how), its blocks, its meter.

    Example:
        >>> settings = ScheduleSettings.checked(True, None, None, 1e-3, 1.0, 20, 0.25)
        >>> settings.blocks(SuccessiveHalvingEnergyPruner(rung_steps=[1, 3])).starts(6)
        [0, 2, 4]
        >>> ScheduleSettings.checked(True, 2, None, 1e-3, 1.0, 20, 0.25).blocks(None).starts(6)
        [0, 2, 4]
        >>> ScheduleSettings.checked(True, None, None, 1e-3, 1.0, 20, 0.25).blocks(None).starts(6)
        [0, 5]
    """

    explore: bool
    explore_every: int | None
    tracker: EnergyTracker | None
    sweep: SweepSettings

    @classmethod
    def checked(
        cls,
        explore: object,
        explore_every: object,
        tracker: object,
        lr_min: object,
        lr_max: object,
        n_lrs: object,
        explore_fraction: object,
    ) -> ScheduleSettings:
        """The settings, each checked; ``ValueError`` naming a bad one."""
        if not isinstance(explore, bool):
            raise ValueError(f"`explore` must be True or False, got {explore!r}.")
        every = None
        if explore_every is not None:
            every = check_int("explore_every", explore_every, minimum=1)
        if tracker is not None and not isinstance(tracker, EnergyTracker):
            raise ValueError(f"`tracker` must be an EnergyTracker or None, got {tracker!r}.")
        sweep = SweepSettings.checked(lr_min, lr_max, n_lrs, explore_fraction)
        return cls(explore, every, tracker, sweep)

    def blocks(self, pruner: BasePruner | None) -> Blocks:
        """``explore_every`` epochs each when given; else ending at the rungs of ``pruner``
        when it is a :class:`~optuna_sm2.SuccessiveHalvingEnergyPruner` with ``rung_steps``;
        else :data:`DEFAULT_BLOCK_EPOCHS` epochs each."""
        if self.explore_every is not None:
            return Blocks(every=self.explore_every)
        if isinstance(pruner, SuccessiveHalvingEnergyPruner) and pruner.rung_steps:
            return Blocks(rung_steps=pruner.rung_steps)
        return Blocks()
