"""The arguments of :func:`optuna_sm2.lr.explore_lr`: the checks that raise one clear
``ValueError`` for a bad one (``too_few`` words the one raised while sweeping), and
:class:`Setup`, the checked settings of one call that its parts share.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from optuna_sm2._validation import check_callable, check_real, is_int
from optuna_sm2.lr import _selection as sel
from optuna_sm2.lr._plan import CHECK_STEPS, SweepPlan
from optuna_sm2.lr._result import FloatArray
from optuna_sm2.lr._state import OptimizerFactory

#: Steps of each run-off run when no plan is given (twice a check).
DEFAULT_RUN_STEPS = 2 * CHECK_STEPS


def check_arguments(
    loss_fn: object, batch_loss: object, batches: object, lr_min: object, lr_max: object
) -> tuple[float | None, float | None]:
    """Raise one clear ``ValueError`` for a bad argument of ``explore_lr``; the LR range given
    (``None`` for an end the optimizer's default grid sets)."""
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
    low = None if lr_min is None else check_real("lr_min", lr_min, low=0.0, low_inclusive=False)
    if lr_max is None:
        return low, None
    return low, check_real("lr_max", lr_max, low=low or 0.0, low_inclusive=False)


def check_parts(
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
    check_model_and_optimizer(model, optimizer)
    if optimizer_factory is not None:
        check_callable(
            "optimizer_factory", optimizer_factory, "(params, lr) -> torch optimizer, or None"
        )
    if tracker is not None and not callable(getattr(tracker, "window", None)):
        raise ValueError(
            "`tracker` must have a callable window() returning a context manager (an "
            f"EnergyTracker), or be None, got {tracker!r}."
        )


def check_plan(plan: object, n_lrs: int) -> SweepPlan | None:
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


def too_few(count: int, needed: int, planned: bool) -> str:
    name = "plan.sweep_lrs" if planned else "n_lrs"
    return (
        f"`batches` gave {count} batches; the sweep needs at least {name}={needed} "
        "(one per learning rate it sweeps): pass more batches or a smaller grid."
    )


@dataclass(frozen=True)
class Setup:
    """The settings of one :func:`explore_lr` call that its parts share."""

    lrs: FloatArray
    sweep_lrs: int
    plan: SweepPlan | None
    factory: OptimizerFactory | None
    optimizer: torch.optim.Optimizer | None
    device: torch.device
    incumbent: float | None = None
    """The LR the user configured, a candidate of the run-off when it lies in the grid."""

    @property
    def run_steps(self) -> int:
        return DEFAULT_RUN_STEPS if self.plan is None else self.plan.run_steps


def check_model_and_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    """Refuse a model without trainable parameters (no LR can change it), and an optimizer
    holding parameters that are not the model's (another model's optimizer)."""
    own = {id(p) for p in model.parameters()}
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            f"`model` has no trainable parameters (none, or all with requires_grad=False): "
            f"no learning rate changes it, got {type(model).__name__}."
        )
    if optimizer is not None:
        held = [p for group in optimizer.param_groups for p in group["params"]]
        foreign = sum(id(p) not in own for p in held)
        if foreign:
            raise ValueError(
                f"`optimizer` holds {foreign} of {len(held)} parameters that are not `model`'s "
                "(another model's optimizer?): pass the optimizer made for `model`."
            )
