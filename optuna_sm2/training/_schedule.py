"""The SM² schedule of one configuration: blocks of one exploration and thorough epochs."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from optuna_sm2._validation import is_int

PhaseKind = Literal["explore", "train"]


@dataclass(frozen=True)
class Phase:
    """One reported step: an exploratory sweep or a thorough epoch."""

    step: int
    kind: PhaseKind
    rung: int | None = None
    """The rung decided right after this step, if any."""


@dataclass(frozen=True)
class Schedule:
    """Which step explores, which trains, and where the rungs are.

    Every block starts with an exploration (the LR is re-chosen) followed by up to
    ``epochs_per_rung`` thorough epochs. The first ``n_rungs`` blocks end with a decision (a
    rung at their last epoch, so that configurations are compared after training, not on an
    untrained model); the blocks after the last decision hold the ``final_epochs``.
    """

    n_rungs: int
    epochs_per_rung: int
    final_epochs: int

    def __post_init__(self) -> None:
        for name in ("n_rungs", "epochs_per_rung"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be an integer >= 1, got {getattr(self, name)}.")
        if self.final_epochs < 0:
            raise ValueError(f"`final_epochs` must be an integer >= 0, got {self.final_epochs}.")

    @classmethod
    def halving(cls, n_configs: int, epochs_per_rung: int, final_epochs: int) -> Schedule:
        """Enough rungs to halve ``n_configs`` configurations down to one (at least one)."""
        if n_configs < 1:
            raise ValueError(f"need at least one configuration, got {n_configs}.")
        n_rungs = max(math.ceil(math.log2(n_configs)), 1)
        return cls(n_rungs, epochs_per_rung, final_epochs)

    def _block_sizes(self) -> list[int]:
        final = [self.epochs_per_rung] * (self.final_epochs // self.epochs_per_rung)
        if self.final_epochs % self.epochs_per_rung:
            final.append(self.final_epochs % self.epochs_per_rung)
        return [self.epochs_per_rung] * self.n_rungs + final

    @property
    def phases(self) -> list[Phase]:
        """Every step of a configuration that survives all rungs, in order."""
        phases: list[Phase] = []
        for block, size in enumerate(self._block_sizes()):
            phases.append(Phase(len(phases), "explore"))
            for epoch in range(size):
                rung = block if block < self.n_rungs and epoch == size - 1 else None
                phases.append(Phase(len(phases), "train", rung))
        return phases

    @property
    def rung_steps(self) -> list[int]:
        """The steps at which the pruner decides."""
        return [p.step for p in self.phases if p.rung is not None]

    @property
    def train_epochs_total(self) -> int:
        return sum(self._block_sizes())

    @property
    def explorations_total(self) -> int:
        return len(self._block_sizes())

    def to_json(self, **extra: Any) -> dict[str, Any]:
        """The study user attr ``sm2.schedule`` (see docs/stored-data.md)."""
        return {
            "epochs_per_rung": self.epochs_per_rung,
            "final_epochs": self.final_epochs,
            "rung_steps": self.rung_steps,
            "train_epochs_total": self.train_epochs_total,
            "explorations_total": self.explorations_total,
            **extra,
        }


def check_batch_sizes(batch_sizes: Iterable[int], n_samples: int) -> tuple[int, ...]:
    """The batch sizes as a tuple of ints: each an integer (Python or numpy) in
    ``[1, n_samples]``, without repeats, at least one.

    >>> import numpy as np
    >>> check_batch_sizes(np.array([8, 16]), 100)
    (8, 16)
    """
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Iterable):
        raise ValueError(f"`batch_sizes` must be a sequence of integers, got {batch_sizes!r}.")
    given = tuple(batch_sizes)
    if not given:
        raise ValueError("`batch_sizes` is empty: give at least one batch size.")
    for size in given:
        if not is_int(size) or not 1 <= size <= n_samples:
            raise ValueError(
                f"`batch_sizes`: batch size {size!r} is not an integer in [1, {n_samples}] "
                f"(the training set has {n_samples} samples)."
            )
    sizes = tuple(int(size) for size in given)
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"`batch_sizes` repeats a value: {sizes}.")
    return sizes
