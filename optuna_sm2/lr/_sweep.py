"""``explore_lr``: SM²'s exploratory learning-rate sweep on a copy of the model."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import AbstractContextManager
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from optuna_sm2.lr import _selection as sel

if TYPE_CHECKING:
    from matplotlib.axes import Axes

OptimizerFactory = Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]
LossFn = Callable[[Any, Any], torch.Tensor]

#: Steps of the step-after-step stability check of one LR.
CHECK_STEPS = 6
#: Relative rise of the checked batch's loss that the check still calls stable (noise).
CHECK_TOLERANCE = 0.05


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
            cycles that measured it; ``nan`` where no cycle reached the LR, and the raw
            (possibly infinite or exploded) value at and above ``diverged_at``.
        curvature: Second derivative of the smoothed, [0, 1]-rescaled losses over
            ``log10(lr)``, on the LRs below ``diverged_at``; ``nan`` elsewhere.
        selected_lr: The largest stable LR (see :func:`explore_lr`).
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
        energy: The tracker's window over the whole sweep, or ``None`` without a tracker.
        n_batches: Batches trained on by the sweep (the checks' steps not included).
        seconds: Wall-clock duration of the whole call.
    """

    lrs: np.ndarray[Any, np.dtype[np.float64]]
    losses: np.ndarray[Any, np.dtype[np.float64]]
    curvature: np.ndarray[Any, np.dtype[np.float64]]
    selected_lr: float
    window: tuple[float, float]
    diverged_at: float | None
    all_unstable: bool
    candidate_lr: float
    checks: tuple[tuple[float, bool], ...]
    energy: Any
    n_batches: int
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


def _is_real(x: object) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


def _check_arguments(loss_fn: object, lr_min: float, lr_max: float, n_lrs: int) -> None:
    """Raise one clear ``ValueError`` for a bad argument of ``explore_lr``."""
    if not callable(loss_fn):
        raise ValueError(f"`loss_fn` must be callable(outputs, targets), got {loss_fn!r}.")
    if not (_is_real(lr_min) and math.isfinite(lr_min) and lr_min > 0):
        raise ValueError(f"`lr_min` must be a finite number > 0, got {lr_min!r}.")
    if not (_is_real(lr_max) and math.isfinite(lr_max) and lr_max > lr_min):
        raise ValueError(f"`lr_max` must be a finite number > lr_min={lr_min}, got {lr_max!r}.")
    if not (isinstance(n_lrs, Integral) and not isinstance(n_lrs, bool) and n_lrs >= sel.MIN_LRS):
        raise ValueError(f"`n_lrs` must be an integer >= {sel.MIN_LRS}, got {n_lrs!r}.")


def _to_device(x: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors of a tuple/list/dict, to ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(_to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x


def _batches_on(batches: Iterable[Any], device: torch.device) -> Iterator[tuple[Any, Any]]:
    """The ``(inputs, targets)`` batches, moved to ``device``."""
    for batch in batches:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(
                f"each batch must be an (inputs, targets) pair, got {type(batch).__name__}."
            )
        inputs, targets = batch
        yield _to_device(inputs, device), _to_device(targets, device)


def _loss(model: nn.Module, loss_fn: LossFn, batch: tuple[Any, Any]) -> torch.Tensor:
    """The loss of ``model`` on one batch (inputs passed as one positional argument)."""
    inputs, targets = batch
    return loss_fn(model(inputs), targets)


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


def _train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float
) -> None:
    _set_lr(optimizer, lr)
    optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(loss)
    optimizer.step()


class _Sweep:
    """The cycling part of the sweep: records each LR's post-step loss, cycle by cycle."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, lrs: Any) -> None:
        self.model, self.optimizer, self.lrs = model, optimizer, lrs
        self.cycles: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        self.cycle_diverged: list[int | None] = []
        self.snap: tuple[Any, Any] | None = None
        self.start_loss = math.inf

    def open_cycle(self, start_loss: float) -> None:
        self.snap = _snapshot(self.model, self.optimizer)
        self.cycles.append(np.full(len(self.lrs), np.nan))
        self.cycle_diverged.append(None)
        self.start_loss = start_loss

    def record(self, k: int, loss: float) -> bool:
        """Store the loss after LR ``k``'s step; ``True`` when it diverged."""
        cycle = self.cycles[-1]
        cycle[k] = loss
        div = sel.divergence_index(cycle[: k + 1], reference=self.start_loss)
        if div is not None:
            self.cycle_diverged[-1] = div
            return True
        return False

    def rewind(self) -> None:
        assert self.snap is not None
        _restore(self.model, self.optimizer, self.snap)


def _run_cycles(
    sweep: _Sweep, loss_fn: LossFn, batches: Iterator[tuple[Any, Any]], keep: list[Any]
) -> int:
    """Train the copy with the next grid LR on each batch; returns the steps taken.

    ``keep`` receives every batch seen until it holds ``CHECK_STEPS`` (for the check).

    The loss after the step with LR ``k`` is the next batch's forward loss (computed anyway
    for its gradient), so the sweep costs no extra forward pass except after a divergence
    and at the very end. A diverged cycle stops: the copy is rewound to the cycle's start and
    the next batch opens a new cycle with ``lr_min``.
    """
    n = len(sweep.lrs)
    k, pending, trained, last = 0, None, 0, None
    for batch in batches:
        if len(keep) < CHECK_STEPS:
            keep.append(batch)
        loss = _loss(sweep.model, loss_fn, batch)
        if pending is not None:
            if sweep.record(pending, float(loss.detach())):
                sweep.rewind()
                k = 0
                loss = _loss(sweep.model, loss_fn, batch)
            elif pending == n - 1:
                k = 0
            pending = None
        if k == 0:
            sweep.open_cycle(float(loss.detach()))
            if not math.isfinite(sweep.start_loss):
                sweep.record(0, math.nan)
                continue
        _train_step(sweep.model, sweep.optimizer, loss, float(sweep.lrs[k]))
        pending, k, trained, last = k, k + 1, trained + 1, batch
    if pending is not None and last is not None:
        with torch.no_grad():
            sweep.record(pending, float(_loss(sweep.model, loss_fn, last)))
    return trained


def _aggregate(sweep: _Sweep) -> tuple[np.ndarray[Any, np.dtype[np.float64]], int | None]:
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


def _is_stable(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    start: tuple[Any, Any],
    loss_fn: LossFn,
    keep: list[Any],
    lr: float,
) -> bool:
    """Train ``CHECK_STEPS`` steps at ``lr`` from the original state; did the loss hold?

    Stable when every loss is finite and not exploded, and the first batch's loss after the
    steps is at most ``1 + CHECK_TOLERANCE`` times (plus the same share of ``|loss|``) what
    it was before them.
    """
    _restore(model, optimizer, start)
    first: float | None = None
    for step in range(CHECK_STEPS):
        loss = _loss(model, loss_fn, keep[step % len(keep)])
        value = float(loss.detach())
        first = value if first is None else first
        exploded = sel.divergence_index(np.array([value]), reference=first) is not None
        if exploded:
            return False
        _train_step(model, optimizer, loss, lr)
    with torch.no_grad():
        after = float(_loss(model, loss_fn, keep[0]))
    assert first is not None
    return math.isfinite(after) and after <= first + CHECK_TOLERANCE * abs(first)


def explore_lr(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[tuple[Any, Any]],
    *,
    lr_min: float = 1e-3,
    lr_max: float = 1.0,
    n_lrs: int = 20,
    optimizer_factory: OptimizerFactory | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    tracker: WindowTracker | None = None,
    device: torch.device | str | None = None,
) -> LRExploration:
    """Find the largest stable learning rate by SM²'s exploratory sweep (paper Fig. 1).

    The sweep trains a deep copy of ``model`` (the model, its buffers and ``optimizer``'s
    state stay bitwise unchanged) for one pass over ``batches``, each batch with the next LR
    of a grid of ``n_lrs`` values log-spaced over ``[lr_min, lr_max]``, cycling from the
    smallest to the largest and starting over. The copy trains in train mode (dropout,
    batch-norm statistics) whatever the model's mode; the torch RNG state is restored
    afterwards, so the caller's random stream is as if the sweep had not run.

    The algorithm (each choice is argued in ``docs/lr-sweep.md``):

    1. **Record.** The loss of LR ``k`` is the loss just after its step, read from the next
       batch's forward pass. A loss that is non-finite or above 4x the best loss of its cycle
       (the cycle's starting loss included) diverges the cycle: the copy is rewound to the
       cycle's start and the next batch restarts the grid. The per-LR loss is the mean over
       the cycles; the first LR that diverged in any cycle, and all above it, are excluded.
    2. **Curvature.** On the LRs below the divergence, the losses are smoothed (centered
       moving average of 3), rescaled to [0, 1] and differentiated twice over ``log10(lr)``.
    3. **Window.** Windows of ``max(3, round(n_lrs / 6))`` consecutive LRs are scored by
       their mean absolute curvature. Low-curvature windows are those scoring at most half
       the largest score (the flattest always counts); of them, the window with the largest
       mean LR is chosen and its largest LR is the candidate. When no LR diverged, the
       window is the top one and the candidate ``lr_max``: nothing in the curve argues for
       less.
    4. **Check.** An LR is stable when, from the original weights, 6 steps at that LR over
       the first batches give only finite, non-exploded losses and the first batch's loss
       does not end more than 5% (of its magnitude) above where it started. The check
       starts one grid step above the candidate (above ``lr_max``: one more log-step, a
       probe beyond the grid) and, while it fails, searches downwards (1, 2, 4, ... steps,
       then bisection) for the largest LR that passes; LRs the sweep saw diverge fail
       without being run.
    5. **Margin.** The selected LR is one grid step below the largest LR that passed: a
       step-after-step check cannot see an LR barely above the stability limit, whose
       growth per step is close to 1. So ``lr_max`` is selected only when the probe above it
       passes. When not even ``lr_min`` passes, ``lr_min`` is returned with
       ``all_unstable=True``.

    On full-batch gradient descent over a quadratic (stability limit ``2 / λ_max``) this
    never selected above the limit in 177 cases and stayed within a factor 2 below it
    (median 0.65 of the limit on the paper's grid); ``docs/lr-sweep.md`` has the figures.
    The check costs 7 forward passes and 6 steps per LR tried (usually 1 on real networks,
    about 5 on quadratics, whose sweep curves hide the limit).

    Reference: Geißler et al., "Spend More to Save More: Energy-aware hyperparameter
    optimization", arXiv 2412.08526, Sec. 3 and Fig. 1.

    Args:
        model: Any ``nn.Module``; ``model(inputs)`` must return what ``loss_fn`` takes.
        loss_fn: ``loss_fn(outputs, targets)`` returning a scalar tensor.
        batches: Any iterable of ``(inputs, targets)`` (tensors, or tuples/lists/dicts of
            tensors), consumed once: pass the exploration fraction of the data. At least
            ``n_lrs`` batches; more run further cycles of the grid.
        lr_min: Smallest LR of the grid, > 0.
        lr_max: Largest LR of the grid, > ``lr_min``.
        n_lrs: Number of LRs in the grid, >= 3.
        optimizer_factory: ``optimizer_factory(params, lr)`` returning the optimizer to
            explore with; default plain SGD without momentum (or ``optimizer``'s class and
            parameter groups when ``optimizer`` is given).
        optimizer: An optimizer of ``model`` whose state (e.g. momentum buffers) the
            exploration starts from; it is left unchanged. With ``optimizer_factory``, the
            factory must build the same parameter-group layout.
        tracker: Measures the sweep's energy: ``with tracker.window() as w`` around the
            whole call; ``w`` is returned as ``energy``.
        device: Where the copy trains; default the device of the model's first parameter
            (or buffer), else the CPU. Batches are moved there.

    Returns:
        An :class:`LRExploration`.

    Raises:
        ValueError: For a non-callable ``loss_fn``, ``lr_min <= 0``, ``lr_max <= lr_min``,
            ``n_lrs < 3``, or fewer than ``n_lrs`` batches.

    Example:
        .. code-block:: python

            import torch
            from optuna_sm2 import explore_lr

            x = torch.randn(256, 8)
            y = x @ torch.randn(8, 1)
            model = torch.nn.Linear(8, 1)
            batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)] * 3
            result = explore_lr(model, torch.nn.functional.mse_loss, batches)
            print(result.selected_lr, result.window)
    """
    _check_arguments(loss_fn, lr_min, lr_max, n_lrs)
    if isinstance(batches, Sized) and len(batches) < n_lrs:
        raise ValueError(_too_few(len(batches), n_lrs))
    started = time.perf_counter()
    dev = torch.device(device) if device is not None else _model_device(model)
    lrs = sel.lr_grid(float(lr_min), float(lr_max), int(n_lrs))
    window: Any = None
    fork_devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        if tracker is None:
            outcome = _explore(model, loss_fn, batches, lrs, optimizer_factory, optimizer, dev)
        else:
            with tracker.window() as window:
                outcome = _explore(model, loss_fn, batches, lrs, optimizer_factory, optimizer, dev)
    return LRExploration(**outcome, energy=window, seconds=time.perf_counter() - started, lrs=lrs)


class _Counted:
    """An iterable that counts what it yields."""

    def __init__(self, items: Iterator[tuple[Any, Any]]) -> None:
        self.items, self.count = items, 0

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for item in self.items:
            self.count += 1
            yield item


def _too_few(count: int, n_lrs: int) -> str:
    return (
        f"`batches` gave {count} batches; the sweep needs at least n_lrs={n_lrs} "
        "(one per learning rate): pass more batches or a smaller `n_lrs`."
    )


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _explore(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[tuple[Any, Any]],
    lrs: np.ndarray[Any, np.dtype[np.float64]],
    factory: OptimizerFactory | None,
    optimizer: torch.optim.Optimizer | None,
    device: torch.device,
) -> dict[str, Any]:
    """Everything of :func:`explore_lr` but the timing, the energy window and the RNG."""
    n = len(lrs)
    work = copy.deepcopy(model).to(device)
    work.train()
    opt = _make_optimizer(work, model, factory, optimizer)
    start = _snapshot(work, opt)
    sweep = _Sweep(work, opt, lrs)
    keep: list[Any] = []
    counted = _Counted(_batches_on(batches, device))
    trained = _run_cycles(sweep, loss_fn, iter(counted), keep)
    if counted.count < n:
        raise ValueError(_too_few(counted.count, n))
    losses, div = _aggregate(sweep)
    stop = n if div is None else div
    curv = np.full(n, np.nan)
    if stop == 0:
        first, last = 0, 0
    else:
        first, last, curv[:stop] = sel.candidate_window(
            lrs[:stop], losses[:stop], sel.window_size(n)
        )
    if div is None:  # nothing unstable in the curve: the top window, and lr_max
        first, last = n - sel.window_size(n), n - 1

    probe = sel.extend_grid(lrs)
    checks: list[tuple[float, bool]] = []

    def is_stable(k: int) -> bool:
        if div is not None and k >= div:
            return False  # the sweep already saw it diverge
        ok = _is_stable(work, opt, start, loss_fn, keep, float(probe[k]))
        checks.append((float(probe[k]), ok))
        return ok

    verified = sel.largest_stable_index(last + 1, is_stable)
    chosen = sel.with_margin(verified)
    unstable = [lr for lr, ok in checks if not ok] + ([float(lrs[div])] if div is not None else [])
    unstable = [lr for lr in unstable if lr <= lrs[-1]]
    return {
        "losses": losses,
        "curvature": curv,
        "selected_lr": float(lrs[chosen]),
        "window": (float(lrs[first]), float(lrs[last])),
        "diverged_at": min(unstable) if unstable else None,
        "all_unstable": verified is None,
        "candidate_lr": float(lrs[last]),
        "checks": tuple(checks),
        "n_batches": trained,
    }
