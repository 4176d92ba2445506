"""``explore_lr``: SM²'s exploratory learning-rate sweep on a copy of the model.

It checks its arguments, then runs the parts of the exploration in order on a deep copy
of the model: the sweep (``_cycles``), the curve's window (``_selection``), the stability
checks and the run-off (``_runs``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch import nn

from optuna_sm2._validation import check_int
from optuna_sm2.lr import _selection as sel
from optuna_sm2.lr._arguments import Setup, check_arguments, check_parts, check_plan, too_few
from optuna_sm2.lr._batches import BatchLoss, Counted, LossFn, Passes, batches_on, pair_loss
from optuna_sm2.lr._cycles import Sweep, aggregate, run_cycles
from optuna_sm2.lr._device import check_device
from optuna_sm2.lr._grid import configured_lr, grid_range, reference_optimizer
from optuna_sm2.lr._plan import CHECK_STEPS, SweepPlan
from optuna_sm2.lr._result import LRExploration, WindowTracker
from optuna_sm2.lr._runs import Runs, run_off
from optuna_sm2.lr._state import OptimizerFactory, make_optimizer, snapshot


def explore_lr(
    model: nn.Module,
    loss_fn: LossFn | None = None,
    batches: Iterable[Any] | None = None,
    *,
    batch_loss: BatchLoss | None = None,
    lr_min: float | None = None,
    lr_max: float | None = None,
    n_lrs: int = 20,
    plan: SweepPlan | None = None,
    optimizer_factory: OptimizerFactory | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    tracker: WindowTracker | None = None,
    device: torch.device | str | None = None,
) -> LRExploration:
    """Find the largest stable learning rate that trains, by SM²'s exploratory sweep (Fig. 1).

    The sweep trains a deep copy of ``model`` (the model, its buffers and ``optimizer``'s
    state stay bitwise unchanged) for one pass over ``batches``, each batch with the next LR
    of a grid of ``n_lrs`` values log-spaced over ``[lr_min, lr_max]`` (or of ``plan``'s
    evenly spread subset of it), cycling from the smallest to the largest and starting over.
    The copy trains in train mode (dropout, batch-norm statistics) whatever the model's mode;
    the torch RNG state is restored afterwards, so the caller's random stream is as if the
    sweep had not run.

    The algorithm (each choice is argued in ``docs/lr-sweep.md``):

    1. **Record.** The loss of LR ``k`` is the loss just after its step, read from the next
       batch's forward pass. A loss that is non-finite or above 4x the best loss of its cycle
       (the cycle's starting loss included; never taken below the mean of the last cycle's
       worth of losses) diverges the cycle: the copy is rewound to the cycle's start and the
       next batch restarts the grid. The per-LR loss is the mean over the cycles; the first
       LR that diverged in any cycle, and all above it, are excluded.
    2. **Curvature.** On the swept LRs below the divergence, the losses are smoothed
       (centered moving average of 3), rescaled to [0, 1] and differentiated twice over
       ``log10(lr)``.
    3. **Window.** Windows of ``max(3, round(m / 6))`` consecutive swept LRs (``m`` of them)
       are scored by their mean absolute curvature. Low-curvature windows are those scoring
       at most half the largest score (the flattest always counts); of them, the window with
       the largest mean LR is chosen and its largest LR is the candidate. When no LR
       diverged, the window is the top one and the candidate ``lr_max``.
    4. **Check.** An LR is stable when, from the original weights, 6 steps at that LR over
       the first batches give only finite, non-exploded losses and the first batch's loss
       does not end more than 5% (of its magnitude, or of the sweep's typical loss where
       that is larger) above where it started. The check starts at the swept LR above the
       candidate (one grid step above it when every grid LR was swept; above ``lr_max``: one
       more log-step, a probe beyond the grid). While it fails, it searches downwards (1, 2,
       4, ... grid steps, then bisection) for the largest grid LR that passes; when it
       passes, upwards in the same way, so that a candidate that came out low (a noisy
       curve, a coarse sweep) does not cap the result. LRs the sweep saw diverge fail
       without being run.
    5. **Run-off.** A stable LR may still not train (a network that dies or stalls without
       its loss exploding). From the largest LR that passed, runs of ``run_steps`` steps from
       the original weights compare it with the LR half a decade below; while the smaller
       LR's run ends clearly lower (the mean paired difference of the losses over the last
       half of the steps, each on a batch not yet trained on, exceeds one standard error)
       and its lead lasts (the larger LR is not measurably catching up: see
       ``docs/lr-sweep.md``, short-horizon bias), the run-off moves down half a decade. A tie
       keeps the larger LR. Where the user configured an LR (the incumbent, below the rule's
       pick), the first comparison runs it instead, and the pick gives way to it when it
       trains better than the pick by 1% of the loss beyond the noise, with a lead that lasts.
    6. **Margin.** When the run-off stays at the largest LR that passed, the selected LR is
       one grid step below it: a step-after-step check cannot see an LR barely above the
       stability limit, whose growth per step is close to 1. So ``lr_max`` is selected only
       when the probe above it passes. When the run-off moved down, its LR is selected.
       When the user's LR won, it is selected. When not even ``lr_min`` passes, ``lr_min``
       is returned with ``all_unstable=True``.

    On full-batch gradient descent over a quadratic (stability limit ``2 / λ_max``) this
    never selects above the limit (the run-off only moves down) and stays within a small
    factor below it; ``docs/lr-sweep.md`` has the figures, and the one-epoch regret of the
    selected LR against every grid LR on six model families.

    Reference: Geißler et al., "Spend More to Save More: Energy-aware hyperparameter
    optimization", arXiv 2412.08526, Sec. 3 and Fig. 1.

    Args:
        model: Any ``nn.Module``.
        loss_fn: ``loss_fn(model(inputs), targets)`` returning a scalar tensor; each batch is
            then an ``(inputs, targets)`` pair. Give this or ``batch_loss``.
        batches: Any iterable of batches, consumed once: with ``loss_fn``, ``(inputs,
            targets)`` pairs (tensors, or tuples/lists/dicts of tensors); with ``batch_loss``,
            anything it takes that holds a tensor (the first tensor's first dimension counts
            the samples). Tensors are moved to ``device``. At least as many batches as the
            sweep has LRs; more run further cycles.
        batch_loss: ``batch_loss(model, batch)`` returning a scalar tensor, in place of
            ``loss_fn`` everywhere (sweep, checks, runs): for a model that returns its own
            loss, takes several inputs or dict batches.
        lr_min: Smallest LR of the grid, > 0; ``None`` for the optimizer's default: plain
            SGD (with or without momentum) ``1e-3``, widened to a decade below the user's LR;
            an adaptive optimizer (Adam, AdamW, RMSprop, ...) a decade below its configured LR.
        lr_max: Largest LR of the grid, > ``lr_min``; ``None`` for the default: plain SGD
            ``1`` (or ten times the user's LR), an adaptive optimizer a hundred times its
            configured LR, at most 1. A given end wins.
        n_lrs: Number of LRs in the grid, >= 3.
        plan: A :func:`optuna_sm2.lr.sweep_plan` for this grid: the sweep then trains with
            ``plan.sweep_lrs`` LRs of the grid, the run-off runs ``plan.run_steps`` steps (none
            when 0), and stops where it would take the call past ``plan.budget`` batch passes.
            Without a plan: every grid LR, runs of 12 steps, no budget.
        optimizer_factory: ``optimizer_factory(params, lr)`` returning the optimizer to
            explore with; default plain SGD without momentum (or ``optimizer``'s class and
            parameter groups when ``optimizer`` is given). Its ``lr`` default, else an
            adaptive optimizer's class default, is the user's LR.
        optimizer: An optimizer of ``model`` whose state (e.g. momentum buffers) the
            exploration starts from; it is left unchanged. Without a factory, the LR it was
            configured with (``optimizer.defaults["lr"]``) is the user's LR. With
            ``optimizer_factory``, the factory must build the same parameter-group layout.
        tracker: Measures the call's energy: ``with tracker.window() as w`` around the
            whole call; ``w`` is returned as ``energy``.
        device: Where the copy trains; default the device of the model's first parameter
            (or buffer), else the CPU. Batches are moved there.

    Returns:
        An :class:`LRExploration`.

    Raises:
        ValueError: Before anything trains, for a ``model`` that is not an ``nn.Module``,
            neither or both of ``loss_fn`` and ``batch_loss``, a non-callable one, missing
            ``batches``, ``lr_min <= 0``, ``lr_max <= lr_min``, ``n_lrs < 3``, a plan for
            another grid, a non-callable ``optimizer_factory`` or one that returns no torch
            optimizer, an ``optimizer`` that is not a ``torch.optim.Optimizer``, an optimizer
            the sweep cannot re-create from its groups or step without a closure (L-BFGS,
            named by its class), a ``tracker`` without a
            callable ``window()``, a ``device`` that is not a torch device this machine has
            (``"cuda"`` where torch sees no GPU); while sweeping, for fewer batches than
            swept LRs or a batch that is not a pair (with ``loss_fn``) or holds no tensor.

    Example:
        .. code-block:: python

            import torch
            from optuna_sm2 import explore_lr

            x = torch.randn(256, 8)
            y = x @ torch.randn(8, 1)
            model = torch.nn.Linear(8, 1)
            batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)] * 3
            result = explore_lr(model, torch.nn.functional.mse_loss, batches)
            print(result.selected_lr, result.window, result.samples_processed)
    """
    check_parts(model, optimizer_factory, optimizer, tracker)
    given = check_arguments(loss_fn, batch_loss, batches, lr_min, lr_max)
    n = check_int("n_lrs", n_lrs, minimum=sel.MIN_LRS)
    built = reference_optimizer(model, optimizer_factory, optimizer)
    user_lr = configured_lr(optimizer_factory, optimizer, built)
    low, high = grid_range(*given, built, user_lr)
    dev = _model_device(model) if device is None else check_device(device)
    checked_plan = check_plan(plan, n)
    sweep_lrs = n if checked_plan is None else checked_plan.sweep_lrs
    assert batches is not None
    if isinstance(batches, Sized) and len(batches) < sweep_lrs:
        raise ValueError(too_few(len(batches), sweep_lrs, plan is not None))
    started = time.perf_counter()
    lrs = sel.lr_grid(low, high, n)
    pairs = batch_loss is None
    loss = pair_loss(loss_fn) if batch_loss is None else batch_loss  # type: ignore[arg-type]
    incumbent = user_lr if user_lr is not None and low <= user_lr <= high else None
    setup = Setup(lrs, sweep_lrs, checked_plan, optimizer_factory, optimizer, dev, incumbent)
    window: Any = None
    fork_devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        if tracker is None:
            outcome = _explore(model, loss, batches_on(batches, dev, pairs), setup)
        else:
            with tracker.window() as window:
                outcome = _explore(model, loss, batches_on(batches, dev, pairs), setup)
    return LRExploration(**outcome, energy=window, seconds=time.perf_counter() - started, lrs=lrs)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _explore(
    model: nn.Module, batch_loss: BatchLoss, batches: Iterator[Any], setup: Setup
) -> dict[str, Any]:
    """Everything of :func:`explore_lr` but the timing, the energy window and the RNG."""
    lrs = setup.lrs
    n = len(lrs)
    work = copy.deepcopy(model).to(setup.device)
    work.train()
    opt = make_optimizer(work, model, setup.factory, setup.optimizer)
    start = snapshot(work, opt)
    swept = sel.sweep_indices(n, setup.sweep_lrs)
    sweep = Sweep(work, opt, lrs[swept])
    passes = Passes(work, batch_loss)
    keep: list[Any] = []
    counted = Counted(batches)
    trained = run_cycles(sweep, passes, iter(counted), keep, max(CHECK_STEPS, setup.run_steps))
    if counted.count < len(swept):
        raise ValueError(too_few(counted.count, len(swept), setup.plan is not None))
    swept_losses, swept_div = aggregate(sweep)
    losses = np.full(n, np.nan)
    losses[swept] = swept_losses
    curv = np.full(n, np.nan)
    stop = len(swept) if swept_div is None else swept_div
    width = sel.window_size(len(swept))
    if stop == 0:
        first, last = 0, 0
    else:
        first, last, curv[swept[:stop]] = sel.candidate_window(
            lrs[swept[:stop]], swept_losses[:stop], width
        )
    if swept_div is None:  # nothing unstable in the curve: the top window, and lr_max
        first, last = len(swept) - width, len(swept) - 1
    div = None if swept_div is None else int(swept[swept_div])

    runs = Runs(work, opt, start, passes, keep, setup.device, sweep.level())
    probe = sel.extend_grid(lrs)
    checks: list[tuple[float, bool]] = []

    begin = int(swept[last + 1]) if last + 1 < len(swept) else n  # one swept LR above

    def is_stable(k: int) -> bool:
        if div is not None and k >= div:
            return False  # the sweep already saw it diverge
        ok = runs.stable(float(probe[k]))
        checks.append((float(probe[k]), ok))
        return ok

    verified = sel.largest_stable_index(begin, is_stable, upper=n)
    selected, run_log = run_off(verified, probe, runs, passes, setup)
    unstable = [lr for lr, ok in checks if not ok] + ([float(lrs[div])] if div is not None else [])
    unstable = [lr for lr in unstable if lr <= lrs[-1]]
    return {
        "losses": losses,
        "curvature": curv,
        "selected_lr": selected,
        "incumbent_lr": setup.incumbent,
        "window": (float(lrs[swept[first]]), float(lrs[swept[last]])),
        "diverged_at": min(unstable) if unstable else None,
        "all_unstable": verified is None,
        "candidate_lr": float(lrs[swept[last]]),
        "checks": tuple(checks),
        "runs": tuple(run_log),
        "n_batches": trained,
        "samples_processed": passes.samples,
    }
