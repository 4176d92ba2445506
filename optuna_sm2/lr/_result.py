"""The outcome of :func:`optuna_sm2.lr.explore_lr`: :class:`LRExploration` and its ``plot``,
and :class:`WindowTracker`, what the sweep needs of an energy tracker to fill the outcome's
``energy``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class WindowTracker(Protocol):
    """What ``explore_lr`` needs of an energy tracker: ``with tracker.window() as w``.

    The yielded window's attributes (``joules``, ``seconds``, ``valid``, ...) are filled
    when the block exits; :class:`optuna_sm2.EnergyTracker` is one.
    """

    def window(self) -> AbstractContextManager[Any]: ...


@dataclass(frozen=True)
class LRExploration:
    """The outcome of :func:`explore_lr`.

    Attributes:
        lrs: The LR grid, log-spaced over ``[lr_min, lr_max]``.
        losses: Per-LR training loss just after a step with that LR, averaged over the
            cycles that measured it; ``nan`` where no cycle reached the LR (or the sweep did
            not train with it), and the raw (possibly infinite or exploded) value at and
            above ``diverged_at``.
        curvature: Second derivative of the smoothed, [0, 1]-rescaled losses over
            ``log10(lr)``, on the swept LRs below ``diverged_at``; ``nan`` elsewhere.
        selected_lr: The largest stable LR that trains (see :func:`explore_lr`).
        window: Lowest and highest LR of the chosen low-curvature window (the top window
            when no LR diverged). ``selected_lr`` may lie below it when the check rejected
            the window's LRs.
        diverged_at: The smallest grid LR seen to be unstable: the sweep's first LR with a
            non-finite or exploded loss, or a lower one that the step-after-step check
            rejected; ``None`` when neither happened (the probe above ``lr_max`` does not
            count).
        all_unstable: ``True`` when not even ``lr_min`` passed the check; ``selected_lr`` is
            then ``lr_min`` and should not be trusted.
        candidate_lr: The largest LR of the window, before the stability check and margin.
        incumbent_lr: The LR the user configured (the optimizer's, or the factory's or an
            adaptive optimizer's default), when it lies in the grid's range: the rule's pick
            gives way to it when the pick's run-off run did not train and the user's did better;
            ``None`` where there is none (plain SGD from the default factory).
        checks: ``(lr, stable)`` of each step-after-step check, in the order run.
        runs: ``(lr, loss)`` of each run of the run-off (the incumbent's included), in the
            order run: the mean loss of the last half of its steps.
        energy: The tracker's window over the whole call, or ``None`` without a tracker.
        n_batches: Batches trained on by the sweep (the checks' and runs' steps not
            included).
        samples_processed: Samples of every forward pass of the call, trained on or only
            evaluated (sweep, checks, runs, extra passes): the figure to divide the call's
            energy by.
        seconds: Wall-clock duration of the whole call.
    """

    lrs: FloatArray
    losses: FloatArray
    curvature: FloatArray
    selected_lr: float
    window: tuple[float, float]
    diverged_at: float | None
    all_unstable: bool
    candidate_lr: float
    incumbent_lr: float | None
    checks: tuple[tuple[float, bool], ...]
    runs: tuple[tuple[float, float], ...]
    energy: Any
    n_batches: int
    samples_processed: int
    seconds: float

    def plot(self, ax: Axes | None = None) -> Axes:
        """Loss and curvature against LR (log axis), the window and selected LR marked.

        Needs matplotlib (``pip install 'optuna-sm2[plot]'``). Returns the loss axes; the
        curvature is drawn on a twin axis.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "LRExploration.plot needs matplotlib: pip install 'optuna-sm2[plot]'."
            ) from exc
        if ax is None:
            _, ax = plt.subplots()
        finite = np.isfinite(self.losses)
        ax.plot(self.lrs[finite], self.losses[finite], "o-", color="C0", label="loss")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.axvspan(*self.window, color="C2", alpha=0.2, label="low-curvature window")
        ax.axvline(self.selected_lr, color="C3", label=f"selected {self.selected_lr:.3g}")
        if self.diverged_at is not None:
            ax.axvline(self.diverged_at, color="k", ls=":", label="diverged")
        twin = ax.twinx()
        ok = np.isfinite(self.curvature)
        twin.plot(self.lrs[ok], self.curvature[ok], "s--", color="C1", ms=3, label="curvature")
        twin.set_ylabel("curvature of rescaled loss")
        handles = ax.get_legend_handles_labels()
        twin_handles = twin.get_legend_handles_labels()
        ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], fontsize="small")
        return ax
