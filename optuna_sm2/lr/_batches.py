"""The batches of an exploration: moved to the device and checked as they come
(``batches_on``), counted (``Counted``), and turned into a loss by :class:`Passes`, through
which every forward pass goes and is counted with its samples; ``pair_loss`` makes a
``batch_loss`` of a ``loss_fn``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

LossFn = Callable[[Any, Any], torch.Tensor]
BatchLoss = Callable[[nn.Module, Any], torch.Tensor]


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


def batches_on(batches: Iterable[Any], device: torch.device, pairs: bool) -> Iterator[Any]:
    """The batches, moved to ``device``; with ``pairs``, each must be ``(inputs, targets)``."""
    for batch in batches:
        if pairs and not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(
                f"each batch must be an (inputs, targets) pair, got {type(batch).__name__}; "
                "pass `batch_loss` for batches of another shape."
            )
        samples = _samples(batch)
        if samples is None:
            raise ValueError(
                "each batch must hold a tensor (a tensor, or a tuple/list/dict of them) whose "
                f"first dimension counts its samples, got {type(batch).__name__}."
            )
        _check_batch(samples)
        yield _to_device(batch, device)


def _check_batch(samples: int) -> None:
    """Refuse an empty batch."""
    if samples == 0:
        raise ValueError("`batches` must not hold an empty batch (0 samples): it trains nothing.")


def scalar_loss(name: str, loss: Any) -> torch.Tensor:
    """``loss`` if it is a one-element tensor, else one ``ValueError`` naming ``name``."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = (
            type(loss).__name__
            if not isinstance(loss, torch.Tensor)
            else f"shape {tuple(loss.shape)}"
        )
        raise ValueError(
            f"`{name}` must return a scalar tensor (one element, e.g. a mean over the batch), "
            f"got {got}."
        )
    return loss


def pair_loss(loss_fn: LossFn) -> BatchLoss:
    """``batch_loss`` of a ``loss_fn``: the inputs passed to the model as one argument."""

    def batch_loss(model: nn.Module, batch: Any) -> torch.Tensor:
        inputs, targets = batch
        try:
            loss = loss_fn(model(inputs), targets)
        except (RuntimeError, ValueError) as exc:
            counts = _samples(inputs), _samples(targets)
            if None in counts or counts[0] == counts[1]:
                raise
            # Targets may count other items than inputs (one per token): only a failure says
            # that this pair does not match.
            raise ValueError(
                f"`batches` holds a batch of {counts[0]} inputs and {counts[1]} targets that "
                f"`loss_fn` refused ({str(exc).strip().splitlines()[0]}): each (inputs, "
                "targets) pair must match."
            ) from exc
        return scalar_loss("loss_fn", loss)

    return batch_loss


class Passes:
    """Every forward pass of the exploration goes through here, and is counted."""

    def __init__(self, model: nn.Module, batch_loss: BatchLoss) -> None:
        self.model, self.batch_loss = model, batch_loss
        self.count = self.samples = 0

    def __call__(self, batch: Any) -> torch.Tensor:
        self.count += 1
        self.samples += _samples(batch) or 0
        return scalar_loss("batch_loss", self.batch_loss(self.model, batch))


class Counted:
    """An iterable that counts what it yields."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.items, self.count = items, 0

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            self.count += 1
            yield item
