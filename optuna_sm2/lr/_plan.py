"""``sweep_plan``: how much an exploration may spend, and how it spends it (pure Python).

The exploration's stated cost is ``explore_fraction`` of the training set (paper: 1/4). At
large batch sizes that is only a few batches, fewer than the grid's LRs, so the plan shrinks
the sweep instead of cycling it past the stated cost. ``docs/lr-sweep.md`` gives the figures.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from optuna_sm2._validation import check_int, check_real
from optuna_sm2.lr._selection import MIN_LRS

#: Steps of one stability check (then one forward pass to judge it).
CHECK_STEPS = 6
#: Batch passes of a stability check: its steps and the forward pass that judges it.
CHECK_PASSES = CHECK_STEPS + 1
#: Shortest and longest run of the run-off (steps from the starting weights).
RUN_STEPS_MIN = CHECK_STEPS
RUN_STEPS_MAX = 24
#: Fewest LRs a planned sweep trains with: every third of the paper's grid (half a decade).
SWEEP_MIN = 7
#: Forward passes of the sweep beyond its batches: the one that reads the last LR's loss.
SWEEP_CLOSE = 1
#: The least an exploration spends: a sweep of :data:`SWEEP_MIN` batches and its closing pass,
#: one stability check, and one run of the run-off (the other continues the check).
FLOOR = SWEEP_MIN + SWEEP_CLOSE + CHECK_PASSES + RUN_STEPS_MIN


class SweepPlan(NamedTuple):
    """What one exploration may spend and how (see :func:`sweep_plan`).

    Attributes:
        n_batches: Distinct batches to pass to :func:`optuna_sm2.explore_lr`; the sweep trains
            on each once, and the checks and the run-off reuse the first of them.
        sweep_lrs: Learning rates of the grid the sweep trains with (spread evenly over the
            grid, both ends included); the checks still search the whole grid.
        run_steps: Steps of each run of the run-off.
        budget: Batch passes (forward passes over one batch, with or without a step) the whole
            exploration may take: ``explore_fraction`` of the samples plus one batch, or
            :data:`FLOOR` where that is less.
    """

    n_batches: int
    sweep_lrs: int
    run_steps: int
    budget: int


def sweep_plan(n_samples: int, batch_size: int, explore_fraction: float, n_lrs: int) -> SweepPlan:
    """Split an exploration's budget between the sweep, a stability check and the run-off.

    The budget is ``floor(explore_fraction * n_samples / batch_size) + 1`` batch passes, so that
    the exploration processes at most ``explore_fraction`` of the samples plus one batch, and
    never less than :data:`FLOOR` (21 passes). One stability check (7 passes) and the sweep's
    closing forward pass (the loss after its last step) are planned; of the rest, the run-off
    gets two runs of ``run_steps`` steps (at most 24; the run at the
    checked LR continues the check's 6 steps) and the sweep the remaining ``n_batches``, at
    least as many as a run has steps, since the runs reuse the sweep's first batches. The
    sweep trains with ``min(n_lrs, n_batches)`` LRs of the grid, cycling through them when it
    has more batches.

    Args:
        n_samples: Size of the training set.
        batch_size: Samples per batch, ``1 <= batch_size <= n_samples``.
        explore_fraction: Share of the training set an exploration may use, in (0, 1].
        n_lrs: LRs in the grid, >= 3.

    Returns:
        A :class:`SweepPlan`.

    Raises:
        ValueError: For an argument outside the ranges above.

    Example:
        .. code-block:: python

            from optuna_sm2.lr import sweep_plan

            plan = sweep_plan(1_437, 4, 0.25, 20)  # 90 batches' worth
            assert plan == (40, 20, 24, 90)
            plan = sweep_plan(27_000, 2048, 0.25, 20)  # 4 batches' worth: the floor
            assert plan == (7, 7, 6, 21)
    """
    n = check_int("n_samples", n_samples, minimum=1)
    size = check_int("batch_size", batch_size, minimum=1)
    if size > n:
        raise ValueError(
            f"`batch_size` must be an integer in [1, n_samples={n}], got {batch_size!r}."
        )
    share = check_real(
        "explore_fraction", explore_fraction, low=0.0, high=1.0, low_inclusive=False
    )
    grid = check_int("n_lrs", n_lrs, minimum=MIN_LRS)
    budget = max(math.floor(round(share * n / size, 9)) + 1, FLOOR)
    rest = budget - CHECK_PASSES - SWEEP_CLOSE
    run = min(RUN_STEPS_MAX, (rest + CHECK_STEPS) // 3)
    n_batches = rest - (2 * run - CHECK_STEPS)
    return SweepPlan(n_batches, min(grid, n_batches), run, budget)
