"""The loss of one batch, however the user states it.

A user gives either ``loss_fn(outputs, targets)`` (the loss of ``model(inputs)``) or
``batch_loss(model, batch)`` (any computation: a model that returns its own loss, several
inputs, a custom step). :class:`Loss` holds the one given and is what training and the
exploration (as :func:`optuna_sm2.explore_lr`'s ``batch_loss``) call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optuna_sm2 import _validation as _check

LossFn = Callable[[Any, Any], torch.Tensor]
"""``loss_fn(outputs, targets) -> Tensor``: the loss of ``model(inputs)``."""

BatchLoss = Callable[[nn.Module, Any], torch.Tensor]
"""``batch_loss(model, batch) -> Tensor``: the loss of a batch ``(inputs, targets)``."""


def _checked(name: str, loss: object) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        if isinstance(loss, torch.Tensor):
            got = f"a tensor of shape {tuple(loss.shape)}"
        else:
            got = repr(loss)
        raise ValueError(f"`{name}` must return a scalar tensor (the loss), got {got}.")
    return loss


@dataclass(frozen=True)
class Loss:
    """The training loss of a batch: exactly one of ``loss_fn`` and ``batch_loss``.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(3, 1)
        >>> batch = (torch.randn(4, 3), torch.randn(4, 1))
        >>> by_outputs = Loss.checked(torch.nn.functional.mse_loss, None)
        >>> by_batch = Loss.checked(
        ...     None, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1])
        ... )
        >>> bool(by_outputs(model, batch) == by_batch(model, batch))
        True
    """

    loss_fn: LossFn | None = None
    batch_loss: BatchLoss | None = None

    @classmethod
    def checked(cls, loss_fn: object, batch_loss: object) -> Loss:
        """The loss given; ``ValueError`` unless exactly one of the two is a callable."""
        if (loss_fn is None) == (batch_loss is None):
            raise ValueError(
                "pass exactly one of `loss_fn` (loss_fn(outputs, targets) -> Tensor, the loss "
                "of model(inputs)) and `batch_loss` (batch_loss(model, batch) -> Tensor, for a "
                f"model that computes its own loss); got loss_fn={loss_fn!r} and "
                f"batch_loss={batch_loss!r}."
            )
        if batch_loss is not None:
            return cls(batch_loss=_check.check_callable("batch_loss", batch_loss, _BATCH_SIG))
        return cls(loss_fn=_check.check_callable("loss_fn", loss_fn, _LOSS_SIG))

    def __call__(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The loss of ``model`` on ``batch``, a scalar tensor.

        Raises:
            ValueError: the user's function returned something else (naming it).
        """
        if self.batch_loss is not None:
            return _checked("batch_loss", self.batch_loss(model, batch))
        assert self.loss_fn is not None
        inputs, targets = batch
        return _checked("loss_fn", self.loss_fn(model(inputs), targets))


_LOSS_SIG = "loss_fn(outputs, targets) -> Tensor"
_BATCH_SIG = "batch_loss(model, batch) -> Tensor"
