"""The sweep's optimizer and its LR grid: which optimizer the exploration trains with
(``reference_optimizer``, refusing one it cannot re-create), the LR the user configured for it
(``configured_lr``, the run-off's incumbent) and the grid's default range (``grid_range``).

Plain SGD's step is ``lr x gradient``, and its stable LRs for typical networks lie within the
paper's grid, ``1e-3 .. 1``. An adaptive optimizer (Adam, AdamW, RMSprop, ...) divides the
gradient by a running estimate of its scale, so its step per coordinate is about ``lr`` whatever
the gradient: its useful LRs sit around its configured LR (Adam's default, ``1e-3``), and at
``lr`` 0.05 to 0.3 every coordinate moves by that much per step, which kills most networks
without an explosion the sweep could see. Its grid is therefore centred on the configured LR:
one decade below it and two above, never above 1.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from optuna_sm2.lr._state import BUILD_LR, OptimizerFactory, recreate, refuse

#: Optimizers whose step per coordinate is about ``lr`` (gradient divided by its running scale).
ADAPTIVE: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    torch.optim.Adadelta,
)
#: The grid of plain SGD (with or without momentum) and of an unknown optimizer: the paper's.
SGD_RANGE = (1e-3, 1.0)
#: An adaptive optimizer's grid spans this many decades below its configured LR...
ADAPTIVE_BELOW = 1
#: ...and this many above it...
ADAPTIVE_ABOVE = 2
#: ...and goes no higher than this (or the configured LR, where that is higher).
ADAPTIVE_CAP = 1.0
#: Without a configured LR, an adaptive optimizer's grid is centred here (Adam's default).
ADAPTIVE_CENTRE = 1e-3
#: Decades a user's SGD LR keeps from the ends of the grid it widens.
SGD_WIDEN_DECADES = 1
#: Optimizers whose ``step`` needs a closure: the sweep's steps do not pass one.
CLOSURE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (torch.optim.LBFGS,)


def _positive(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0.0 else None


def lr_default(fn: Callable[..., Any]) -> float | None:
    """The default of ``fn``'s ``lr`` parameter, where it has a positive one."""
    try:
        parameter = inspect.signature(fn).parameters.get("lr")
    except (TypeError, ValueError):
        return None
    if parameter is None:
        return None
    return _positive(parameter.default)


def reference_optimizer(
    model: nn.Module, factory: OptimizerFactory | None, optimizer: torch.optim.Optimizer | None
) -> torch.optim.Optimizer | None:
    """The kind of optimizer the sweep will train with; ``None`` for plain SGD.

    With a factory, what it builds over ``model``'s parameters (building takes no step, so the
    model is untouched); else ``optimizer``, checked to be re-creatable from its groups.

    Raises:
        ValueError: naming the argument, for a factory that returns no torch optimizer, or an
            optimizer the sweep cannot re-create or step (L-BFGS needs a closure).
    """
    name = "optimizer_factory" if factory is not None else "optimizer"
    if factory is not None:
        built = factory(model.parameters(), BUILD_LR)
        if not isinstance(built, torch.optim.Optimizer):
            raise ValueError(
                f"`optimizer_factory` must return a torch.optim.Optimizer, got {built!r}."
            )
    elif optimizer is not None:
        built = optimizer
        recreate(optimizer, [[p.detach() for p in g["params"]] for g in optimizer.param_groups])
    else:
        return None
    if isinstance(built, CLOSURE_OPTIMIZERS):
        raise refuse(name, built, "its step() needs a closure")
    return built


def configured_lr(
    factory: OptimizerFactory | None,
    optimizer: torch.optim.Optimizer | None,
    built: torch.optim.Optimizer | None,
) -> float | None:
    """The LR the user configured: the run-off's incumbent, and the centre of an adaptive grid.

    With a factory: its own ``lr`` default, else an adaptive optimizer's class default (Adam's
    ``1e-3``). Without one, ``optimizer``'s configured LR (``optimizer.defaults["lr"]``, which
    setting a group's LR does not change). Plain SGD built by the default factory has none.
    """
    if factory is None and optimizer is not None:
        return _positive(optimizer.defaults.get("lr"))
    if factory is not None:
        own = lr_default(factory)
        if own is not None:
            return own
    if isinstance(built, ADAPTIVE):
        return lr_default(type(built))
    return None


def default_range(
    built: torch.optim.Optimizer | None, user_lr: float | None
) -> tuple[float, float]:
    """The grid's default ``(lr_min, lr_max)`` for the optimizer ``built`` and the user's LR.

    Adaptive: ``user_lr`` (else ``1e-3``) / 10 to ``user_lr`` x 100, at most 1 (or
    ``user_lr``). Otherwise the paper's ``1e-3 .. 1``, widened so that ``user_lr`` lies at
    least a decade inside it.
    """
    if isinstance(built, ADAPTIVE):
        centre = ADAPTIVE_CENTRE if user_lr is None else user_lr
        top = min(centre * 10.0**ADAPTIVE_ABOVE, max(ADAPTIVE_CAP, centre))
        return centre / 10.0**ADAPTIVE_BELOW, top
    low, high = SGD_RANGE
    if user_lr is not None:
        room = 10.0**SGD_WIDEN_DECADES
        low, high = min(low, user_lr / room), max(high, user_lr * room)
    return low, high


def grid_range(
    lr_min: float | None,
    lr_max: float | None,
    built: torch.optim.Optimizer | None,
    user_lr: float | None,
) -> tuple[float, float]:
    """``(lr_min, lr_max)``: the ones given win; a missing one is the default's, or three
    decades from the given one where the default would lie on its wrong side."""
    low, high = default_range(built, user_lr)
    if lr_min is not None and lr_max is not None:
        return lr_min, lr_max
    if lr_min is not None:
        return lr_min, high if high > lr_min else lr_min * 1e3
    if lr_max is not None:
        return (low if low < lr_max else lr_max / 1e3), lr_max
    return low, high
