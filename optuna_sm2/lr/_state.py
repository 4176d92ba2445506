"""The training state of the exploration's copy: its optimizer (``make_optimizer``, started
from the original optimizer's state), the snapshots that rewind it (``snapshot``,
``restore``) and the one training step at a given LR (``train_step``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

OptimizerFactory = Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]


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
