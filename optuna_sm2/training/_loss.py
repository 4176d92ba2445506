"""The loss of one batch, however the user states it, and the samples it saw.

A user gives either ``loss_fn(outputs, targets)`` (the loss of ``model(inputs)``) or
``batch_loss(model, batch)`` (any computation: a model that returns its own loss, several
inputs, a custom step). :class:`Loss` holds the one given and is what training, the stability
check and the sweep call; :meth:`Loss.counting` counts the samples every call saw, which is how
the exploration's energy is spread over the work it did.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optuna_sm2 import _validation as _check
from optuna_sm2.training import _samples

LossFn = Callable[[Any, Any], torch.Tensor]
"""``loss_fn(outputs, targets) -> Tensor``: the loss of ``model(inputs)``."""

BatchLoss = Callable[[nn.Module, Any], torch.Tensor]
"""``batch_loss(model, batch) -> Tensor``: the loss of a batch ``(inputs, targets)``."""


class SampleCount:
    """Samples seen by the calls of a counting :class:`Loss`."""

    def __init__(self) -> None:
        self.samples = 0


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
        >>> count = SampleCount()
        >>> _ = by_batch.counting(count)(model, batch)
        >>> count.samples
        4
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

    def counting(self, count: SampleCount) -> Loss:
        """This loss, adding the samples of every call to ``count``."""
        if self.batch_loss is not None:
            batch_loss = self.batch_loss

            def counted_batch(model: nn.Module, batch: Any) -> torch.Tensor:
                count.samples += _samples.n_samples(batch)
                return batch_loss(model, batch)

            return Loss(batch_loss=counted_batch)
        loss_fn = self.loss_fn
        assert loss_fn is not None

        def counted(outputs: Any, targets: Any) -> torch.Tensor:
            count.samples += _samples.n_samples(targets)
            return loss_fn(outputs, targets)

        return Loss(loss_fn=counted)

    def for_sweep(
        self, model: nn.Module, batches: Iterable[Any]
    ) -> tuple[nn.Module, LossFn, Iterator[Any]]:
        """``(model, loss_fn, batches)`` for :func:`optuna_sm2.explore_lr`, which computes
        ``loss_fn(model(inputs), targets)``: a ``batch_loss`` is swept as a model whose output
        is the loss of its input batch (batches become ``(batch, None)``).

        This adapter stands until ``explore_lr`` takes a ``batch_loss`` itself; then the sweep
        is handed the counting loss directly and ``_BatchLossModel`` goes."""
        if self.batch_loss is None:
            assert self.loss_fn is not None
            return model, self.loss_fn, iter(batches)
        return (
            _BatchLossModel(model, self.batch_loss),
            _output_is_loss,
            ((batch, None) for batch in batches),
        )


_LOSS_SIG = "loss_fn(outputs, targets) -> Tensor"
_BATCH_SIG = "batch_loss(model, batch) -> Tensor"


def _output_is_loss(outputs: torch.Tensor, targets: None) -> torch.Tensor:
    return outputs


class _BatchLossModel(nn.Module):
    """``model`` whose forward pass of a batch is ``batch_loss(model, batch)``; its parameters
    are ``model``'s, in order. A deep copy copies ``model`` and shares ``batch_loss`` (which may
    be a bound method of an object that must not be copied)."""

    def __init__(self, model: nn.Module, batch_loss: BatchLoss) -> None:
        super().__init__()
        self.model = model
        self._batch_loss = batch_loss

    def forward(self, batch: Any) -> torch.Tensor:
        return _checked("batch_loss", self._batch_loss(self.model, batch))

    def __deepcopy__(self, memo: dict[int, Any]) -> _BatchLossModel:
        return _BatchLossModel(copy.deepcopy(self.model, memo), self._batch_loss)
