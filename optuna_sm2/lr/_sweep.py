"""``explore_lr``: SM²'s exploratory learning-rate sweep on a copy of the model."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from optuna_sm2._validation import check_callable, check_int, check_real, is_int
from optuna_sm2.lr import _selection as sel
from optuna_sm2.lr._device import check_device
from optuna_sm2.lr._plan import CHECK_STEPS, RUN_STEPS_MIN, SweepPlan

if TYPE_CHECKING:
    from matplotlib.axes import Axes

OptimizerFactory = Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]
LossFn = Callable[[Any, Any], torch.Tensor]
BatchLoss = Callable[[nn.Module, Any], torch.Tensor]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: Relative rise of the checked batch's loss that the check still calls stable (noise).
CHECK_TOLERANCE = 0.05
#: Losses the sweep needs before their mean is its typical loss (see ``_Sweep.level``).
LEVEL_LOSSES = 5
#: Steps of each run-off run when no plan is given (twice a check).
DEFAULT_RUN_STEPS = 2 * CHECK_STEPS


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
        checks: ``(lr, stable)`` of each step-after-step check, in the order run.
        runs: ``(lr, loss)`` of each run of the run-off, in the order run: the mean loss of
            the last half of its steps.
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


def _check_arguments(
    loss_fn: object, batch_loss: object, batches: object, lr_min: object, lr_max: object
) -> tuple[float, float]:
    """Raise one clear ``ValueError`` for a bad argument of ``explore_lr``; the LR range."""
    if (loss_fn is None) == (batch_loss is None):
        raise ValueError(
            "exactly one of `loss_fn` (loss_fn(outputs, targets)) and `batch_loss` "
            f"(batch_loss(model, batch)) is required, got loss_fn={loss_fn!r} and "
            f"batch_loss={batch_loss!r}."
        )
    if loss_fn is not None:
        check_callable("loss_fn", loss_fn, "(outputs, targets) -> scalar tensor")
    else:
        check_callable("batch_loss", batch_loss, "(model, batch) -> scalar tensor")
    if batches is None or not isinstance(batches, Iterable):
        raise ValueError(f"`batches` must be an iterable of batches, got {batches!r}.")
    low = check_real("lr_min", lr_min, low=0.0, low_inclusive=False)
    return low, check_real("lr_max", lr_max, low=low, low_inclusive=False)


def _check_parts(
    model: object, optimizer_factory: object, optimizer: object, tracker: object
) -> None:
    """Raise one clear ``ValueError`` for a bad ``model``, ``optimizer_factory``,
    ``optimizer`` or ``tracker``."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"`model` must be a torch.nn.Module, got {model!r}.")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"`optimizer` must be a torch.optim.Optimizer of `model`, or None, got {optimizer!r}."
        )
    if optimizer_factory is not None:
        check_callable(
            "optimizer_factory", optimizer_factory, "(params, lr) -> torch optimizer, or None"
        )
    if tracker is not None and not callable(getattr(tracker, "window", None)):
        raise ValueError(
            "`tracker` must have a callable window() returning a context manager (an "
            f"EnergyTracker), or be None, got {tracker!r}."
        )


def _check_plan(plan: object, n_lrs: int) -> SweepPlan | None:
    """The plan, which must be a :class:`SweepPlan` for a grid of ``n_lrs`` LRs, or ``None``."""
    if plan is None:
        return None
    if not (
        isinstance(plan, SweepPlan)
        and all(is_int(v) for v in plan)
        and sel.MIN_LRS <= plan.sweep_lrs <= min(n_lrs, plan.n_batches)
        and plan.run_steps >= 0
        and plan.budget > 0
    ):
        raise ValueError(
            f"`plan` must be a SweepPlan from optuna_sm2.lr.sweep_plan(..., n_lrs={n_lrs}) "
            f"(sweeping {sel.MIN_LRS} to {n_lrs} LRs) or None, got {plan!r}."
        )
    return plan


def _to_device(x: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors of a tuple/list/dict, to ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


def _samples(batch: Any) -> int | None:
    """Samples in a batch: the first dimension of its first tensor (depth first)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    values = batch.values() if isinstance(batch, dict) else batch
    if isinstance(values, (tuple, list)) or isinstance(batch, dict):
        for value in values:
            found = _samples(value)
            if found is not None:
                return found
    return None


def _batches_on(batches: Iterable[Any], device: torch.device, pairs: bool) -> Iterator[Any]:
    """The batches, moved to ``device``; with ``pairs``, each must be ``(inputs, targets)``."""
    for batch in batches:
        if pairs and not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(
                f"each batch must be an (inputs, targets) pair, got {type(batch).__name__}; "
                "pass `batch_loss` for batches of another shape."
            )
        if _samples(batch) is None:
            raise ValueError(
                "each batch must hold a tensor (a tensor, or a tuple/list/dict of them) whose "
                f"first dimension counts its samples, got {type(batch).__name__}."
            )
        yield _to_device(batch, device)


def _pair_loss(loss_fn: LossFn) -> BatchLoss:
    """``batch_loss`` of a ``loss_fn``: the inputs passed to the model as one argument."""

    def batch_loss(model: nn.Module, batch: Any) -> torch.Tensor:
        inputs, targets = batch
        return loss_fn(model(inputs), targets)

    return batch_loss


class _Passes:
    """Every forward pass of the exploration goes through here, and is counted."""

    def __init__(self, model: nn.Module, batch_loss: BatchLoss) -> None:
        self.model, self.batch_loss = model, batch_loss
        self.count = self.samples = 0

    def __call__(self, batch: Any) -> torch.Tensor:
        self.count += 1
        self.samples += _samples(batch) or 0
        return self.batch_loss(self.model, batch)


def _make_optimizer(
    model: nn.Module,
    original: nn.Module,
    factory: OptimizerFactory | None,
    optimizer: torch.optim.Optimizer | None,
) -> torch.optim.Optimizer:
    """The exploration optimizer over ``model`` (the copy), with ``optimizer``'s state.

    Without a factory: plain SGD, or ``optimizer``'s class and parameter groups when one is
    given. The state is deep-copied so the copy's updates never write into the original.
    """
    if optimizer is None:
        if factory is None:
            return torch.optim.SGD(model.parameters(), lr=1e-3)
        return factory(model.parameters(), 1e-3)
    by_id = {id(p): q for p, q in zip(original.parameters(), model.parameters(), strict=True)}
    if factory is None:
        groups = [
            {
                **{k: v for k, v in g.items() if k != "params"},
                "params": [by_id[id(p)] for p in g["params"]],
            }
            for g in optimizer.param_groups
        ]
        cls: Callable[..., torch.optim.Optimizer] = type(optimizer)
        new = cls(groups)
    else:
        new = factory(model.parameters(), 1e-3)
    new.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    return new


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
    return copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())


def _restore(model: nn.Module, optimizer: torch.optim.Optimizer, snap: tuple[Any, Any]) -> None:
    model.load_state_dict(snap[0])
    optimizer.load_state_dict(copy.deepcopy(snap[1]))


def _train_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float) -> None:
    _set_lr(optimizer, lr)
    optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(loss)
    optimizer.step()


class _Sweep:
    """The cycling part of the sweep: records each swept LR's post-step loss, cycle by cycle."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, lrs: Any) -> None:
        self.model, self.optimizer, self.lrs = model, optimizer, lrs
        self.cycles: list[FloatArray] = []
        self.cycle_diverged: list[int | None] = []
        self.recent: list[float] = []
        self.snap: tuple[Any, Any] | None = None
        self.start_loss = math.inf

    def open_cycle(self, start_loss: float) -> None:
        self.snap = _snapshot(self.model, self.optimizer)
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
        _restore(self.model, self.optimizer, self.snap)


def _run_cycles(
    sweep: _Sweep, passes: _Passes, batches: Iterator[Any], keep: list[Any], keep_n: int
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
        _train_step(sweep.optimizer, loss, float(sweep.lrs[k]))
        pending, k, trained, last = k, k + 1, trained + 1, batch
    if pending is not None and last is not None:
        with torch.no_grad():
            sweep.record(pending, float(passes(last)))
    return trained


def _aggregate(sweep: _Sweep) -> tuple[FloatArray, int | None]:
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


class _Runs:
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
        passes: _Passes,
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
            _train_step(self.optimizer, loss, lr)
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
            _restore(self.model, self.optimizer, state)
            self._set_rng_state(rng)
            self._train(lr, out, CHECK_STEPS)
            return out
        _restore(self.model, self.optimizer, self.start)
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
        state, rng = _snapshot(self.model, self.optimizer), self._rng_state()
        with torch.no_grad():
            after = float(self.passes(self.keep[0]))
        first = float(losses[0])
        ok = math.isfinite(after) and after <= first + CHECK_TOLERANCE * max(
            abs(first), self.level
        )
        if ok:
            self.passed = (lr, losses, state, rng)
        return ok


def explore_lr(
    model: nn.Module,
    loss_fn: LossFn | None = None,
    batches: Iterable[Any] | None = None,
    *,
    batch_loss: BatchLoss | None = None,
    lr_min: float = 1e-3,
    lr_max: float = 1.0,
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
       half of the steps, each on a batch not yet trained on, exceeds one standard error),
       the run-off moves down half a decade. A tie keeps the larger LR.
    6. **Margin.** When the run-off stays at the largest LR that passed, the selected LR is
       one grid step below it: a step-after-step check cannot see an LR barely above the
       stability limit, whose growth per step is close to 1. So ``lr_max`` is selected only
       when the probe above it passes. When the run-off moved down, its LR is selected.
       When not even ``lr_min`` passes, ``lr_min`` is returned with ``all_unstable=True``.

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
        lr_min: Smallest LR of the grid, > 0.
        lr_max: Largest LR of the grid, > ``lr_min``.
        n_lrs: Number of LRs in the grid, >= 3.
        plan: A :func:`optuna_sm2.lr.sweep_plan` for this grid: the sweep then trains with
            ``plan.sweep_lrs`` LRs of the grid, the run-off runs ``plan.run_steps`` steps (none
            when 0), and stops where it would take the call past ``plan.budget`` batch passes.
            Without a plan: every grid LR, runs of 12 steps, no budget.
        optimizer_factory: ``optimizer_factory(params, lr)`` returning the optimizer to
            explore with; default plain SGD without momentum (or ``optimizer``'s class and
            parameter groups when ``optimizer`` is given).
        optimizer: An optimizer of ``model`` whose state (e.g. momentum buffers) the
            exploration starts from; it is left unchanged. With ``optimizer_factory``, the
            factory must build the same parameter-group layout.
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
            another grid, a non-callable ``optimizer_factory``, an ``optimizer`` that is not a
            ``torch.optim.Optimizer``, a ``tracker`` without a
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
    _check_parts(model, optimizer_factory, optimizer, tracker)
    low, high = _check_arguments(loss_fn, batch_loss, batches, lr_min, lr_max)
    n = check_int("n_lrs", n_lrs, minimum=sel.MIN_LRS)
    dev = _model_device(model) if device is None else check_device(device)
    checked_plan = _check_plan(plan, n)
    sweep_lrs = n if checked_plan is None else checked_plan.sweep_lrs
    assert batches is not None
    if isinstance(batches, Sized) and len(batches) < sweep_lrs:
        raise ValueError(_too_few(len(batches), sweep_lrs, plan is not None))
    started = time.perf_counter()
    lrs = sel.lr_grid(low, high, n)
    pairs = batch_loss is None
    loss = _pair_loss(loss_fn) if batch_loss is None else batch_loss  # type: ignore[arg-type]
    setup = _Setup(lrs, sweep_lrs, checked_plan, optimizer_factory, optimizer, dev)
    window: Any = None
    fork_devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        if tracker is None:
            outcome = _explore(model, loss, _batches_on(batches, dev, pairs), setup)
        else:
            with tracker.window() as window:
                outcome = _explore(model, loss, _batches_on(batches, dev, pairs), setup)
    return LRExploration(**outcome, energy=window, seconds=time.perf_counter() - started, lrs=lrs)


@dataclass(frozen=True)
class _Setup:
    """The settings of one :func:`explore_lr` call that its parts share."""

    lrs: FloatArray
    sweep_lrs: int
    plan: SweepPlan | None
    factory: OptimizerFactory | None
    optimizer: torch.optim.Optimizer | None
    device: torch.device

    @property
    def run_steps(self) -> int:
        return DEFAULT_RUN_STEPS if self.plan is None else self.plan.run_steps


class _Counted:
    """An iterable that counts what it yields."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.items, self.count = items, 0

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            self.count += 1
            yield item


def _too_few(count: int, needed: int, planned: bool) -> str:
    name = "plan.sweep_lrs" if planned else "n_lrs"
    return (
        f"`batches` gave {count} batches; the sweep needs at least {name}={needed} "
        "(one per learning rate it sweeps): pass more batches or a smaller grid."
    )


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _explore(
    model: nn.Module, batch_loss: BatchLoss, batches: Iterator[Any], setup: _Setup
) -> dict[str, Any]:
    """Everything of :func:`explore_lr` but the timing, the energy window and the RNG."""
    lrs = setup.lrs
    n = len(lrs)
    work = copy.deepcopy(model).to(setup.device)
    work.train()
    opt = _make_optimizer(work, model, setup.factory, setup.optimizer)
    start = _snapshot(work, opt)
    swept = sel.sweep_indices(n, setup.sweep_lrs)
    sweep = _Sweep(work, opt, lrs[swept])
    passes = _Passes(work, batch_loss)
    keep: list[Any] = []
    counted = _Counted(batches)
    trained = _run_cycles(sweep, passes, iter(counted), keep, max(CHECK_STEPS, setup.run_steps))
    if counted.count < len(swept):
        raise ValueError(_too_few(counted.count, len(swept), setup.plan is not None))
    swept_losses, swept_div = _aggregate(sweep)
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

    runs = _Runs(work, opt, start, passes, keep, setup.device, sweep.level())
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
    chosen, run_log = _run_off(verified, probe, runs, passes, setup)
    unstable = [lr for lr, ok in checks if not ok] + ([float(lrs[div])] if div is not None else [])
    unstable = [lr for lr in unstable if lr <= lrs[-1]]
    return {
        "losses": losses,
        "curvature": curv,
        "selected_lr": float(lrs[chosen]),
        "window": (float(lrs[swept[first]]), float(lrs[swept[last]])),
        "diverged_at": min(unstable) if unstable else None,
        "all_unstable": verified is None,
        "candidate_lr": float(lrs[swept[last]]),
        "checks": tuple(checks),
        "runs": tuple(run_log),
        "n_batches": trained,
        "samples_processed": passes.samples,
    }


def _run_off(
    verified: int | None, probe: FloatArray, runs: _Runs, passes: _Passes, setup: _Setup
) -> tuple[int, list[tuple[float, float]]]:
    """The selected grid index after the run-off from ``verified``, and the runs' log.

    The first comparison always runs; its runs are as long as the plan says, shortened (not
    below :data:`RUN_STEPS_MIN`) to what the checks left of the budget. It costs one run and
    the continuation of the verified LR's check. Each later comparison needs one more run
    and ends the run-off when it does not fit the budget.
    """
    log: list[tuple[float, float]] = []
    if verified is None or setup.run_steps == 0:
        return sel.with_margin(verified), log
    budget = math.inf if setup.plan is None else setup.plan.budget
    left = budget - passes.count
    steps = int(max(RUN_STEPS_MIN, min(setup.run_steps, (left + CHECK_STEPS) // 2)))
    memo: dict[int, FloatArray] = {}

    def run(k: int) -> FloatArray | None:
        if k not in memo:
            if len(memo) >= 2 and passes.count + steps > budget:
                return None
            memo[k] = runs.steps(float(probe[k]), steps)
            log.append((float(probe[k]), float(memo[k][steps // 2 :].mean())))
        return memo[k]

    here = sel.run_off(verified, sel.progress_step(setup.lrs), run)
    return (sel.with_margin(verified) if here == verified else here), log
