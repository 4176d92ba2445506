"""A ``Dataset`` too large to preload, streamed through a ``DataLoader`` per epoch and batch size.

:class:`StreamedBatches` is the counterpart of :class:`~optuna_sm2.PreloadedBatches` for data that
stays where the ``Dataset`` keeps it: each epoch builds a ``DataLoader`` with the trial's batch
size over the epoch's (seeded, shuffled) indices, and moves every batch to the training device.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from optuna_sm2.training import _samples
from optuna_sm2.training._batches import ShuffledEpochs


class StreamedBatches(ShuffledEpochs):
    """Epochs of a map-style ``Dataset`` loaded batch by batch.

    Each epoch is one ``DataLoader(dataset, batch_size, sampler=<the epoch's indices>,
    num_workers, pin_memory)``: the order and the share of the data are those of
    :class:`~optuna_sm2.PreloadedBatches` with the same seed (the same permutations), and the
    loader's own worker seeds come from a generator of this object, so that streaming never
    draws from torch's global random stream. Every batch is moved to ``device`` (without
    blocking when ``pin_memory``).

    Args:
        dataset: A map-style ``Dataset`` whose items are ``(inputs, targets)``, checked by the
            caller; batches are collated by torch's ``default_collate``.
        device: The training device.
        seed: Seed of the shuffling generator.
        num_workers: ``DataLoader`` worker processes (0: load in this process).
        pin_memory: Load into pinned host memory (only useful for a CUDA device).

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> data = StreamedBatches(
        ...     TensorDataset(torch.randn(10, 3), torch.arange(10)), device=torch.device("cpu")
        ... )
        >>> len(data), [len(y) for _, y in data.batches(4)]
        (10, [4, 4, 2])
        >>> [y.tolist() for _, y in data.batches(4, shuffle=False, fraction=0.5)]
        [[0, 1, 2, 3], [4]]
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        *,
        device: torch.device,
        seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(len(dataset), seed)  # type: ignore[arg-type]
        self._dataset = dataset
        self._device = device
        self._num_workers = num_workers
        self._pin_memory = pin_memory
        self._loader_seeds = torch.Generator(device="cpu")
        self._loader_seeds.manual_seed(self.seed)

    @property
    def dataset(self) -> Dataset[Any]:
        """The Dataset streamed."""
        return self._dataset

    @property
    def device(self) -> torch.device:
        """Where the batches are moved."""
        return self._device

    def _generators(self) -> dict[str, torch.Generator]:
        return {**super()._generators(), "loader_seeds": self._loader_seeds}

    def __repr__(self) -> str:
        return (
            f"StreamedBatches(n={len(self)}, device={self.device}, seed={self.seed}, "
            f"num_workers={self._num_workers})"
        )

    def _cut(self, order: torch.Tensor, size: int) -> Iterator[tuple[Any, Any]]:
        loader = DataLoader(
            self._dataset,
            batch_size=size,
            sampler=order.tolist(),
            num_workers=self._num_workers,
            pin_memory=self._pin_memory,
            generator=self._loader_seeds,
        )
        for inputs, targets in loader:
            yield (
                _samples.to_device(inputs, self._device, non_blocking=self._pin_memory),
                _samples.to_device(targets, self._device, non_blocking=self._pin_memory),
            )
