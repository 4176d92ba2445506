"""The training state of the exploration's copy: its optimizer (``make_optimizer``, started
from the original optimizer's state; ``recreate`` builds an optimizer's class anew, ``refuse``
words the error for one it cannot use), the snapshots that rewind it (``snapshot``,
``restore``) and the one training step at a given LR (``train_step``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

OptimizerFactory = Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]

#: LR an optimizer is built with before the sweep sets the one each step uses.
BUILD_LR = 1e-3


def make_optimizer(
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
            return torch.optim.SGD(model.parameters(), lr=BUILD_LR)
        return factory(model.parameters(), BUILD_LR)
    by_id = {id(p): q for p, q in zip(original.parameters(), model.parameters(), strict=True)}
    if factory is None:
        new = recreate(
            optimizer, [[by_id[id(p)] for p in g["params"]] for g in optimizer.param_groups]
        )
    else:
        new = factory(model.parameters(), BUILD_LR)
    new.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    return new


def refuse(name: str, optimizer: torch.optim.Optimizer, why: str) -> ValueError:
    return ValueError(
        f"`{name}` gives a {type(optimizer).__name__}, which the LR sweep cannot use: {why}. "
        "Pass an optimizer_factory(params, lr) that builds a torch optimizer whose step() "
        "needs no closure, or explore=False."
    )


def recreate(
    optimizer: torch.optim.Optimizer, params: Iterable[list[torch.Tensor]]
) -> torch.optim.Optimizer:
    """``optimizer``'s class over new parameters, group by group (the groups' settings kept).

    Raises:
        ValueError: naming the class, when it cannot be built from its parameter groups.
    """
    groups = [
        {**{k: v for k, v in g.items() if k != "params"}, "params": p}
        for g, p in zip(optimizer.param_groups, params, strict=True)
    ]
    cls: Callable[..., torch.optim.Optimizer] = type(optimizer)
    try:
        return cls(groups)
    except (TypeError, ValueError) as exc:
        raise refuse(
            "optimizer", optimizer, f"it cannot be re-created from its parameter groups ({exc})"
        ) from exc


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
    return copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())


def restore(model: nn.Module, optimizer: torch.optim.Optimizer, snap: tuple[Any, Any]) -> None:
    model.load_state_dict(snap[0])
    optimizer.load_state_dict(copy.deepcopy(snap[1]))


def train_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float) -> None:
    _set_lr(optimizer, lr)
    optimizer.zero_grad(set_to_none=True)
    torch.autograd.backward(loss)
    optimizer.step()
