"""The work of one step: an exploratory LR sweep, one thorough epoch, an evaluation.

Short functions over a model, its optimizer and its data, each inside an energy window; they know
nothing of Optuna. The trial loop (``_loop.py``) books their windows and reports; the benchmark's
vanilla arm trains with :func:`train_epoch` and :func:`evaluate` too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from optuna_sm2 import _validation as _check
from optuna_sm2.lr import MIN_LRS, LRExploration, SweepPlan, explore_lr, sweep_plan
from optuna_sm2.pruners import measured
from optuna_sm2.training._data import DataPair, TrialBatches, ValidBatches
from optuna_sm2.training._loss import Loss
from optuna_sm2.training._optimizer import PlainFactory

if TYPE_CHECKING:
    from optuna_sm2.energy import EnergyTracker, EnergyWindow

ValidData = DataPair | ValidBatches
"""What the metric receives: ``(inputs, targets)`` for tensors, :class:`ValidBatches` for a
Dataset."""

Metric = Callable[[nn.Module, Any], float]
"""``metric(model, valid_data) -> float``."""


class MetricError(ValueError):
    """The metric returned something that is not a finite number."""


@dataclass(frozen=True)
class SweepSettings:
    """The LR grid of every sweep and the share of the training data one sweep uses."""

    lr_min: float | None
    lr_max: float | None
    n_lrs: int
    explore_fraction: float

    @classmethod
    def checked(
        cls, lr_min: object, lr_max: object, n_lrs: object, explore_fraction: object
    ) -> SweepSettings:
        """The settings as plain Python numbers (``None`` for an end of the optimizer's default
        grid); ``ValueError`` naming a bad one."""
        low = (
            None
            if lr_min is None
            else _check.check_real("lr_min", lr_min, low=0.0, low_inclusive=False)
        )
        high = (
            None
            if lr_max is None
            else _check.check_real("lr_max", lr_max, low=0.0, low_inclusive=False)
        )
        if low is not None and high is not None and not low < high:
            raise ValueError(f"need 0 < `lr_min` < `lr_max`, got {lr_min!r} and {lr_max!r}.")
        n = _check.check_int("n_lrs", n_lrs, minimum=MIN_LRS)
        fraction = _check.finite_or_none(explore_fraction)
        if fraction is None or not 0.0 < fraction <= 1.0:
            raise ValueError(f"`explore_fraction` must be in (0, 1], got {explore_fraction!r}.")
        return cls(low, high, n, fraction)


@dataclass(frozen=True)
class Exploration:
    """One sweep: what :func:`optuna_sm2.explore_lr` found.

    Its energy per epoch is its joules per sample processed (every sample of every loss the
    sweep computed: the sweep's batches, the stability checks, the run-off and the extra
    forward passes) times the training set's size.
    """

    result: LRExploration

    def per_epoch(self, joules: float | None, n_train: int) -> float | None:
        """``joules`` of the sweep scaled to one full pass over ``n_train`` samples; ``None``
        when unmeasured, or when the meter did not advance over the sweep (0 J: shorter than
        its counter's step, not free)."""
        spent = measured(joules)
        return None if spent is None else spent * n_train / self.result.samples_processed


def exploration_batches(
    train: TrialBatches, batch_size: int, plan: SweepPlan
) -> Iterator[DataPair]:
    """The ``plan.n_batches`` batches of one sweep: that many full batches of a fresh order.

    Only where the data holds fewer batches than that (a batch size near the set's size) are
    further epochs cut, each in a fresh order, until the sweep has them all. The sweep then
    processes at most ``plan.budget`` batches' worth of samples: ``explore_fraction`` of the
    data plus one batch, or the plan's floor of 21 batches where that is more.
    """
    n = len(train)
    fraction = min(1.0, plan.n_batches * batch_size / n)
    produced = 0
    while True:
        for batch in train.batches(batch_size, fraction=fraction):
            yield batch
            produced += 1
            if produced == plan.n_batches:
                return


def explore(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: TrialBatches,
    batch_size: int,
    sweep: SweepSettings,
    *,
    loss: Loss,
    optimizer_factory: PlainFactory,
    tracker: EnergyTracker,
    device: torch.device,
) -> Exploration:
    """Sweep the LR grid on a copy of ``model`` (``model`` and ``optimizer`` stay unchanged),
    within the :func:`optuna_sm2.lr.sweep_plan` of ``explore_fraction`` of the data.

    The batches stream to the sweep as they are cut (a streamed Dataset is never held whole).
    """
    plan = sweep_plan(len(train), batch_size, sweep.explore_fraction, sweep.n_lrs)
    result = explore_lr(
        model,
        batches=exploration_batches(train, batch_size, plan),
        batch_loss=loss,
        lr_min=sweep.lr_min,
        lr_max=sweep.lr_max,
        n_lrs=sweep.n_lrs,
        plan=plan,
        optimizer_factory=optimizer_factory,
        optimizer=optimizer,
        tracker=tracker,
        device=device,
    )
    return Exploration(result)


@dataclass(frozen=True)
class Epoch:
    """One thorough epoch: its energy window, and the loss it stopped at if it diverged."""

    window: EnergyWindow
    diverged_loss: float | None = None
    """The first non-finite training loss; the epoch stopped before stepping on it."""


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[DataPair],
    loss: Loss,
    tracker: EnergyTracker,
) -> Epoch:
    """One pass over ``batches`` in train mode inside an energy window.

    A non-finite loss stops the epoch at once (no step is taken on it): training further would
    only spend energy on a diverged model. The caller decides what that means.
    """
    model.train()
    diverged: float | None = None
    with tracker.window() as window:
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            value = loss(model, batch)
            if not torch.isfinite(value):
                diverged = float(value.item())
                break
            torch.autograd.backward(value)
            optimizer.step()
    return Epoch(window, diverged)


def metric_number(returned: object) -> float:
    """What ``metric`` returned, as a float (possibly non-finite).

    Raises:
        MetricError: it is not a Python or numpy number (a tensor, ``None``, a string, a bool).
    """
    if isinstance(returned, torch.Tensor):
        raise MetricError(
            f"`metric` must return a number (a Python or numpy float), got a tensor "
            f"({returned!r}): return `value.item()`."
        )
    if not _check.is_real(returned):
        kind = "" if returned is None else f" (a {type(returned).__name__})"
        raise MetricError(
            f"`metric` must return a number (a Python or numpy float), got {returned!r}{kind}."
        )
    return float(returned)  # type: ignore[arg-type]


def check_finite_metric(value: float, step: int, trial_number: int) -> float:
    """``value`` if it is finite.

    Raises:
        MetricError: NaN or infinite: it cannot be ranked, and an infinite final value would
            complete the trial as the best of the study.
    """
    if not math.isfinite(value):
        raise MetricError(
            f"`metric` returned {value} at step {step} of trial {trial_number}: it must return "
            "a finite number."
        )
    return value


def evaluate(
    model: nn.Module, metric: Metric, valid: ValidData, tracker: EnergyTracker
) -> tuple[float, EnergyWindow]:
    """``metric(model, valid)`` in eval mode without gradients, inside an energy window.

    Returns the value (checked to be a number, possibly non-finite) and the window; the model is
    left in train mode.

    Raises:
        MetricError: the metric did not return a number.
    """
    with tracker.window() as window:
        value = metric_value(model, metric, valid)
    return value, window


def metric_value(model: nn.Module, metric: Metric, valid: ValidData) -> float:
    """``metric(model, valid)`` in eval mode without gradients, checked to be a number
    (possibly non-finite); the model is left in train mode.

    Raises:
        MetricError: the metric did not return a number.
    """
    model.eval()
    with torch.no_grad():
        returned = metric(model, valid)
    model.train()
    return metric_number(returned)
