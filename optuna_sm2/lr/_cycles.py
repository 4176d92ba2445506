"""The sweep proper: ``run_cycles`` trains the copy with the next swept LR on each batch,
:class:`Sweep` records each LR's post-step loss cycle by cycle and judges divergence, and
``aggregate`` averages the cycles into the per-LR curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from optuna_sm2.lr import _selection as sel
from optuna_sm2.lr._batches import Passes
from optuna_sm2.lr._result import FloatArray
from optuna_sm2.lr._state import restore, snapshot, train_step

#: Losses the sweep needs before their mean is its typical loss (see ``Sweep.level``).
LEVEL_LOSSES = 5


class Sweep:
    """The cycling part of the sweep: records each swept LR's post-step loss, cycle by cycle."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, lrs: Any) -> None:
        self.model, self.optimizer, self.lrs = model, optimizer, lrs
        self.cycles: list[FloatArray] = []
        self.cycle_diverged: list[int | None] = []
        self.recent: list[float] = []
        self.snap: tuple[Any, Any] | None = None
        self.start_loss = math.inf

    def open_cycle(self, start_loss: float) -> None:
        self.snap = snapshot(self.model, self.optimizer)
        self.cycles.append(np.full(len(self.lrs), np.nan))
        self.cycle_diverged.append(None)
        self.start_loss = start_loss
        if math.isfinite(start_loss):
            self.recent = [*self.recent, start_loss][-len(self.lrs) :]

    def level(self) -> float:
        """The mean of the last cycle's worth of finite losses: what a loss is usually."""
        return float(np.mean(self.recent)) if self.recent else -math.inf

    def record(self, k: int, loss: float) -> bool:
        """Store the loss after LR ``k``'s step; ``True`` when the cycle diverged.

        While fewer than :data:`LEVEL_LOSSES` losses give the sweep's typical loss, a finite
        loss above the explosion limit is only a suspect: the cycle goes on, and diverges at
        it when the next loss is above the limit too, or when it is the cycle's last LR.
        """
        cycle = self.cycles[-1]
        cycle[k] = loss
        div = sel.divergence_index(
            cycle[: k + 1], reference=self.start_loss, level=self.level(), confirm=True
        )
        if div is None:
            self.recent = [*self.recent, loss][-len(self.lrs) :]
            return False
        known = len(self.recent) >= LEVEL_LOSSES or k == len(self.lrs) - 1
        if div == k and math.isfinite(loss) and not known:
            return False  # a suspect, judged at the next LR
        self.cycle_diverged[-1] = div
        return True

    def rewind(self) -> None:
        assert self.snap is not None
        restore(self.model, self.optimizer, self.snap)


def run_cycles(
    sweep: Sweep, passes: Passes, batches: Iterator[Any], keep: list[Any], keep_n: int
) -> int:
    """Train the copy with the next swept LR on each batch; returns the steps taken.

    ``keep`` receives every batch seen until it holds ``keep_n`` (for the checks and runs).

    The loss after the step with LR ``k`` is the next batch's forward loss (computed anyway
    for its gradient), so the sweep costs no extra forward pass except after a divergence
    and at the very end. A diverged cycle stops: the copy is rewound to the cycle's start and
    the next batch opens a new cycle with ``lr_min``.
    """
    n = len(sweep.lrs)
    k, pending, trained, last = 0, None, 0, None
    for batch in batches:
        if len(keep) < keep_n:
            keep.append(batch)
        loss = passes(batch)
        if pending is not None:
            if sweep.record(pending, float(loss.detach())):
                sweep.rewind()
                k = 0
                loss = passes(batch)
            elif pending == n - 1:
                k = 0
            pending = None
        if k == 0:
            sweep.open_cycle(float(loss.detach()))
            if not math.isfinite(sweep.start_loss):
                sweep.record(0, math.nan)
                continue
        train_step(sweep.optimizer, loss, float(sweep.lrs[k]))
        pending, k, trained, last = k, k + 1, trained + 1, batch
    if pending is not None and last is not None:
        with torch.no_grad():
            sweep.record(pending, float(passes(last)))
    return trained


def aggregate(sweep: Sweep) -> tuple[FloatArray, int | None]:
    """Per-LR mean over the cycles, and the first LR index that diverged in any cycle."""
    table = np.vstack(sweep.cycles)
    diverged = [d for d in sweep.cycle_diverged if d is not None]
    first = min(diverged) if diverged else None
    measured = ~np.isnan(table)
    counts = measured.sum(axis=0)
    with np.errstate(invalid="ignore"):
        sums = np.where(measured, table, 0.0).sum(axis=0)
        losses = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    if first is not None:
        # At the first diverged LR show what diverged, not an average with calmer cycles.
        rows = [c for c, d in zip(sweep.cycles, sweep.cycle_diverged, strict=True) if d == first]
        losses[first] = rows[0][first]
    return losses, first
