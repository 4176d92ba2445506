"""Short runs from the starting weights, after the sweep: :class:`Runs` holds the
step-after-step stability checks and the run-off's runs, and ``run_off`` compares the
largest LR that passed with smaller ones within the plan's budget.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from optuna_sm2.lr import _selection as sel
from optuna_sm2.lr._arguments import Setup
from optuna_sm2.lr._batches import Passes
from optuna_sm2.lr._plan import CHECK_STEPS, RUN_STEPS_MIN
from optuna_sm2.lr._result import FloatArray
from optuna_sm2.lr._state import restore, snapshot, train_step

#: Relative rise of the checked batch's loss that the check still calls stable (noise).
CHECK_TOLERANCE = 0.05


class Runs:
    """Short runs from the starting weights: the stability checks and the run-off's runs.

    Every run restores the copy and its optimizer to the state before the sweep and the
    random number generators to one saved state, so that two runs differ only by their LR
    (same batches, same dropout masks). The state after the steps of the last check that
    passed is kept: the run-off's run at that LR (the largest that passed) continues it
    instead of training the same steps again.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        start: tuple[Any, Any],
        passes: Passes,
        keep: list[Any],
        device: torch.device,
        level: float,
    ) -> None:
        self.model, self.optimizer, self.start = model, optimizer, start
        self.passes, self.keep, self.device, self.level = passes, keep, device, level
        self.rng = self._rng_state()
        self.passed: tuple[float, FloatArray, tuple[Any, Any], Any] | None = None

    def _rng_state(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def _set_rng_state(self, state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], self.device)

    def _train(self, lr: float, out: FloatArray, first: int) -> bool:
        """Steps ``first, ...`` of a run at ``lr``, their losses into ``out``; ``False`` when
        a loss was non-finite or exploded (it and the steps after it then read ``inf``).

        An explosion must be confirmed by the next step's loss: the runs share their
        batches, and one hard batch (a trained model's misclassified sample) would otherwise
        fail every run at the same step. The last step is judged by the check's final
        forward pass, or by the run-off's comparison.
        """
        for step in range(first, out.size):
            loss = self.passes(self.keep[step % len(self.keep)])
            out[step] = float(loss.detach())
            div = sel.divergence_index(
                out[: step + 1], level=self.level, confirm=True, complete=False
            )
            if div is not None:
                out[div:] = np.inf
                return False
            train_step(self.optimizer, loss, lr)
        return True

    def steps(self, lr: float, n: int) -> FloatArray:
        """Train ``n`` steps at ``lr`` over the kept batches (cycled); each step's loss.

        The loss of a step is measured before it trains, so it is a loss on a batch this run
        has not trained on yet (while the kept batches last). A non-finite or exploded loss
        ends the run: it and the steps after it read ``inf``.
        """
        out = np.full(n, np.inf)
        if self.passed is not None and self.passed[0] == lr and n >= CHECK_STEPS:
            _, done, state, rng = self.passed
            out[:CHECK_STEPS] = done
            restore(self.model, self.optimizer, state)
            self._set_rng_state(rng)
            self._train(lr, out, CHECK_STEPS)
            return out
        restore(self.model, self.optimizer, self.start)
        self._set_rng_state(self.rng)
        self._train(lr, out, 0)
        return out

    def stable(self, lr: float) -> bool:
        """Train ``CHECK_STEPS`` steps at ``lr``; did the loss hold?

        Stable when every loss is finite and not exploded, and the first batch's loss after the
        steps is at most ``CHECK_TOLERANCE`` of its magnitude above what it was before them.
        Both judgements measure against the sweep's typical loss where that is larger (see
        :func:`optuna_sm2.lr._selection.divergence_index`): a trained model's tiny loss on one
        minibatch is not a scale for noise.
        """
        losses = self.steps(lr, CHECK_STEPS)
        if not np.isfinite(losses).all():
            return False
        state, rng = snapshot(self.model, self.optimizer), self._rng_state()
        with torch.no_grad():
            after = float(self.passes(self.keep[0]))
        first = float(losses[0])
        ok = math.isfinite(after) and after <= first + CHECK_TOLERANCE * max(
            abs(first), self.level
        )
        if ok:
            self.passed = (lr, losses, state, rng)
        return ok


def run_off(
    verified: int | None, probe: FloatArray, runs: Runs, passes: Passes, setup: Setup
) -> tuple[float, list[tuple[float, float]]]:
    """The selected LR after the run-off from ``verified``, and the runs' log.

    The first comparison always runs; its runs are as long as the plan says, shortened (not
    below :data:`RUN_STEPS_MIN`) to what the checks left of the budget. It costs one run and
    the continuation of the verified LR's check. Each later comparison needs one more run
    and ends the run-off when it does not fit the budget.

    From ``verified`` the run-off moves down while the smaller LR trains better
    (:func:`optuna_sm2.lr._selection.run_off`). With an incumbent (``setup.incumbent``, the
    user's LR) below the LR the rule would select, the first comparison's second run is the
    incumbent's instead, and the rule's pick (the run-off's LR, judged by its run) gives way to
    the incumbent where :func:`optuna_sm2.lr._selection.user_lr_wins` says so. An incumbent
    above the rule's selection is above what the checks call stable with a margin, and is not
    a candidate.
    """
    log: list[tuple[float, float]] = []
    if verified is None or setup.run_steps == 0:
        return float(probe[sel.with_margin(verified)]), log
    budget = math.inf if setup.plan is None else setup.plan.budget
    left = budget - passes.count
    steps = int(max(RUN_STEPS_MIN, min(setup.run_steps, (left + CHECK_STEPS) // 2)))
    memo: dict[float, FloatArray] = {}

    def run_lr(lr: float) -> FloatArray | None:
        if lr not in memo:
            if len(memo) >= 2 and passes.count + steps > budget:
                return None
            memo[lr] = runs.steps(lr, steps)
            log.append((lr, float(memo[lr][steps // 2 :].mean())))
        return memo[lr]

    def run(k: int) -> FloatArray | None:
        return run_lr(float(probe[k]))

    step = sel.progress_step(setup.lrs)
    user, plain = setup.incumbent, float(probe[sel.with_margin(verified)])
    if user is not None and math.isclose(user, plain, rel_tol=1e-9):
        return user, log
    held: FloatArray | None = None
    run(verified)
    if user is not None and user < plain:
        held = run_lr(user)  # the first comparison's second run, which always runs
    here = sel.run_off(verified, step, run)
    pick = float(probe[sel.with_margin(verified) if here == verified else here])
    if held is None or user is None:
        return pick, log
    picked = run(here)
    assert picked is not None  # run by the run-off
    return (user if sel.user_lr_wins(held, picked) else pick), log
