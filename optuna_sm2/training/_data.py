"""The data source of an objective: training batches per trial, validation data for the metric.

Today both sets are pairs of tensors held on the training device (:class:`PreloadedBatches`).
The trial loop asks only for what :class:`TrialBatches` describes, so other sources (Datasets
streamed through a loader) can stand behind the same interface.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch

from optuna_sm2.training._batches import PreloadedBatches

DataPair = tuple[torch.Tensor, torch.Tensor]
"""``(inputs, targets)``: samples along the first dimension of both."""


class TrialBatches(Protocol):
    """One trial's training data, cut into epochs of batches (:class:`PreloadedBatches` is one).

    Each call of :meth:`batches` is one epoch in a fresh order drawn from the trial's seed.
    """

    def __len__(self) -> int: ...

    def n_batches(
        self, batch_size: int, fraction: float = 1.0, drop_last: bool = False
    ) -> int: ...

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        fraction: float = 1.0,
        drop_last: bool = False,
    ) -> Iterator[DataPair]: ...


def _describe(data: object) -> str:
    if isinstance(data, torch.Tensor):
        return f"one tensor of shape {tuple(data.shape)}"
    if isinstance(data, (tuple, list)):
        return f"a {type(data).__name__} of {len(data)} items"
    return f"a {type(data).__name__}"


def preload_pair(name: str, data: object, device: torch.device) -> PreloadedBatches:
    """``data``, a pair of tensors, checked and put on ``device``.

    Raises:
        ValueError: ``data`` is not a pair ``(inputs, targets)`` of tensors with as many samples
            (at least one); the message names ``name``.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(
            f"`{name}` must be a pair (inputs, targets) of tensors with as many samples, "
            f"got {_describe(data)}."
        )
    try:
        return PreloadedBatches(data[0], data[1], device=device)
    except ValueError as exc:
        raise ValueError(f"`{name}`: {exc}") from None


class ObjectiveData:
    """The training and validation data of an objective, put on the training device once.

    Args:
        train_data: ``(inputs, targets)`` tensors for training.
        valid_data: ``(inputs, targets)`` tensors for the metric.
        device: The training device.

    Raises:
        ValueError: either set is not a pair of tensors with as many samples (naming it).

    Example:
        >>> import torch
        >>> data = ObjectiveData(
        ...     (torch.randn(12, 3), torch.arange(12)),
        ...     (torch.randn(4, 3), torch.arange(4)),
        ...     device=torch.device("cpu"),
        ... )
        >>> len(data), [len(y) for _, y in data.for_trial(seed=0).batches(5)]
        (12, [5, 5, 2])
    """

    def __init__(self, train_data: object, valid_data: object, *, device: torch.device) -> None:
        self._train = preload_pair("train_data", train_data, device)
        self._valid = preload_pair("valid_data", valid_data, device)
        self._device = device

    def __len__(self) -> int:
        """Training samples."""
        return len(self._train)

    def for_trial(self, seed: int) -> TrialBatches:
        """The training data of one trial, shuffled by a generator seeded with ``seed``."""
        return PreloadedBatches(
            self._train.inputs, self._train.targets, device=self._device, seed=seed
        )

    @property
    def valid(self) -> DataPair:
        """What the metric receives: ``(inputs, targets)`` of the validation set, on the device."""
        return self._valid.inputs, self._valid.targets
