"""The data source of an objective: training batches per trial, validation data for the metric.

The training and the validation data are each a pair ``(inputs, targets)`` of tensors, or a
map-style ``torch.utils.data.Dataset`` whose items are ``(inputs, targets)``; inputs and targets
are a tensor, or a tuple, list or dict of tensors (numbers and numpy arrays in a Dataset's items
are collated into tensors, as a ``DataLoader`` does). :func:`check_data` checks what was passed
and measures it; :class:`ObjectiveData` decides where each set lives:

- a pair of tensors is put on the training device once (:class:`PreloadedBatches`);
- a Dataset whose collated size fits the preload budget (together with what is already
  preloaded) is collated once and preloaded the same way;
- a larger Dataset streams through a ``DataLoader`` built for each epoch with the trial's batch
  size (:class:`StreamedBatches`).

The trial loop asks only for what :class:`TrialBatches` describes, whichever source stands
behind it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from optuna_sm2._validation import first_line
from optuna_sm2.training import _samples
from optuna_sm2.training._batches import PreloadedBatches, ShuffledEpochs
from optuna_sm2.training._samples import Tree
from optuna_sm2.training._streamed import StreamedBatches

_logger = logging.getLogger(__name__)

DataPair = tuple[Tree, Tree]
"""``(inputs, targets)``: samples along the first dimension of every tensor of both."""

PRELOAD_SHARE = 4
"""The default preload budget is the training device's memory divided by this."""

_COLLATE_CHUNK = 1024
"""Items collated at a time when a Dataset is preloaded."""

_ACCEPTED = (
    "a pair (inputs, targets) of tensors with as many samples, or a map-style "
    "torch.utils.data.Dataset whose items are (inputs, targets); inputs and targets each a "
    "tensor, or a tuple or dict of tensors"
)


class TrialBatches(Protocol):
    """One trial's training data, cut into epochs of batches (:class:`PreloadedBatches` and
    :class:`StreamedBatches` are two).

    Each call of :meth:`batches` is one epoch in a fresh order drawn from the trial's seed;
    every batch is ``(inputs, targets)`` on the training device.
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

    def generator_state(self) -> dict[str, torch.Tensor]: ...

    def set_generator_state(self, state: Mapping[str, torch.Tensor]) -> None: ...


@dataclass(frozen=True)
class CheckedData:
    """What :func:`check_data` found: a pair of tensors or a Dataset, its samples and bytes.

    Attributes:
        name: The argument it was passed as (``train_data`` or ``valid_data``).
        pair: The ``(inputs, targets)`` pair, or ``None`` for a Dataset.
        dataset: The Dataset, or ``None`` for a pair.
        n: Samples (>= 1).
        nbytes: Bytes of the whole set collated (for a Dataset: its first item's times ``n``).
    """

    name: str
    pair: DataPair | None
    dataset: Dataset[Any] | None
    n: int
    nbytes: int


def _pair(name: str, data: object) -> tuple[Any, Any]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"`{name}` must be {_ACCEPTED}; got {_samples.describe(data)}.")
    return data[0], data[1]


def _check_pair(name: str, data: object) -> CheckedData:
    inputs, targets = _pair(name, data)
    try:
        n_inputs = _samples.check_tree("inputs", inputs)
        n_targets = _samples.check_tree("targets", targets)
    except ValueError as exc:
        raise ValueError(f"`{name}`: {exc}") from None
    if n_inputs != n_targets:
        raise ValueError(
            f"`{name}` must be a pair (inputs, targets) with as many samples, "
            f"got {n_inputs} and {n_targets}."
        )
    if n_inputs == 0:
        raise ValueError(f"`{name}` holds no samples.")
    nbytes = _samples.n_bytes(inputs) + _samples.n_bytes(targets)
    return CheckedData(name, (inputs, targets), None, n_inputs, nbytes)


def _check_dataset(name: str, data: Dataset[Any]) -> CheckedData:
    if isinstance(data, IterableDataset) or not isinstance(data, Sized):
        raise ValueError(
            f"`{name}` is an iterable-style Dataset ({type(data).__name__}), which has no "
            f"length and no random access; pass a map-style Dataset (with __len__ and "
            f"__getitem__) or a pair of tensors."
        )
    n = len(data)
    if n == 0:
        raise ValueError(f"`{name}` is a Dataset of length 0: it holds no samples.")
    first = data[0]
    if not isinstance(first, (tuple, list)) or len(first) != 2:
        raise ValueError(
            f"`{name}`: the items of a Dataset must be pairs (inputs, targets); "
            f"`{name}[0]` is {_samples.describe(first)}."
        )
    items = [first] if n == 1 else [first, data[1]]
    try:
        batch = default_collate(items)
    except Exception as exc:  # what torch's collate refuses: strings, ragged shapes, ...
        raise ValueError(
            f"`{name}`: its first items cannot be collated into a batch ({first_line(exc)}); "
            "inputs and targets must be tensors (or numbers, or tuples or dicts of them) of "
            "the same shape in every item: pad variable-length samples in the Dataset."
        ) from None
    inputs, targets = batch
    try:
        _samples.check_tree("inputs", inputs)
        _samples.check_tree("targets", targets)
    except ValueError as exc:
        raise ValueError(f"`{name}[0]`: {exc}") from None
    per_item = (_samples.n_bytes(inputs) + _samples.n_bytes(targets)) // len(items)
    return CheckedData(name, None, data, n, per_item * n)


def check_data(name: str, data: object) -> CheckedData:
    """``data`` checked: a pair of tensors, or a map-style Dataset of ``(inputs, targets)``.

    A Dataset's first item is read (and its first two collated) to check its form; the rest
    is read when it is preloaded or streamed.

    Raises:
        ValueError: naming ``name``: a ``DataLoader`` (pass its dataset), an iterable-style
            Dataset, a Dataset of length 0, items that are not pairs or cannot be collated, a
            pair that is not of tensors or whose parts differ in length or hold no samples.
    """
    if isinstance(data, DataLoader):
        raise ValueError(
            f"`{name}` is a torch DataLoader; pass its dataset instead: "
            f"`{name}=loader.dataset`. SM² builds its own loaders, since every trial trains "
            "with the batch size it searches (a DataLoader fixes one)."
        )
    if isinstance(data, Dataset):
        return _check_dataset(name, data)
    return _check_pair(name, data)


def default_preload_budget(device: torch.device) -> int:
    """A quarter of the training device's memory, in bytes: the GPU's total memory for CUDA,
    the machine's physical memory otherwise (2 GiB where it cannot be read)."""
    if device.type == "cuda":
        total = int(torch.cuda.get_device_properties(device).total_memory)
    else:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, OSError, ValueError):  # not a POSIX system
            total = PRELOAD_SHARE * 2**31
    return total // PRELOAD_SHARE


def _collate_all(dataset: Dataset[Any], num_workers: int) -> tuple[Tree, Tree]:
    """Every item of ``dataset``, collated (as a ``DataLoader`` would) into one pair."""
    loader = DataLoader(
        dataset,
        batch_size=_COLLATE_CHUNK,
        num_workers=num_workers,
        generator=torch.Generator(device="cpu"),
    )
    chunks = [(inputs, targets) for inputs, targets in loader]
    return _samples.concat([c[0] for c in chunks]), _samples.concat([c[1] for c in chunks])


class ValidBatches:
    """What the metric receives for a Dataset: its batches on the training device, in order.

    Iterate it once per pass over the validation set (``for inputs, targets in data:``); each
    iteration starts again at the first sample. The set was preloaded or streams, as the
    budget decided; the metric sees the same batches either way.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> data = ObjectiveData(
        ...     check_data("train_data", (torch.randn(12, 3), torch.arange(12))),
        ...     check_data("valid_data", TensorDataset(torch.randn(5, 3), torch.arange(5))),
        ...     device=torch.device("cpu"),
        ...     valid_batch_size=2,
        ... )
        >>> valid = data.valid
        >>> len(valid), [y.tolist() for _, y in valid]
        (3, [[0, 1], [2, 3], [4]])
    """

    def __init__(self, source: ShuffledEpochs, batch_size: int) -> None:
        self._source = source
        self.batch_size = min(batch_size, len(source))
        """Samples per batch (the last one may hold fewer)."""

    @property
    def n_samples(self) -> int:
        """Samples of the validation set."""
        return len(self._source)

    def __len__(self) -> int:
        """Batches of one pass."""
        return self._source.n_batches(self.batch_size)

    def __iter__(self) -> Iterator[DataPair]:
        return self._source.batches(self.batch_size, shuffle=False)

    def __repr__(self) -> str:
        return f"ValidBatches(n_samples={self.n_samples}, batch_size={self.batch_size})"


class ObjectiveData:
    """The training and validation data of an objective, each preloaded or streamed.

    Args:
        train: The checked training data.
        valid: The checked validation data.
        device: The training device.
        preload_budget_bytes: Bytes of device memory the preloaded Datasets may take together
            (the training set is placed first); ``None`` for :func:`default_preload_budget`.
            Pairs of tensors are always preloaded and do not count.
        num_workers: ``DataLoader`` workers, for streaming and for collating a Dataset.
        pin_memory: Pinned host memory for streamed batches; ``None``: when ``device`` is CUDA.
        valid_batch_size: Batch size of :class:`ValidBatches` (a validation Dataset).

    Example:
        >>> import torch
        >>> data = ObjectiveData(
        ...     check_data("train_data", (torch.randn(12, 3), torch.arange(12))),
        ...     check_data("valid_data", (torch.randn(4, 3), torch.arange(4))),
        ...     device=torch.device("cpu"),
        ... )
        >>> len(data), [len(y) for _, y in data.for_trial(seed=0).batches(5)]
        (12, [5, 5, 2])
    """

    def __init__(
        self,
        train: CheckedData,
        valid: CheckedData,
        *,
        device: torch.device,
        preload_budget_bytes: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        valid_batch_size: int = 1024,
    ) -> None:
        self._device = device
        self._num_workers = num_workers
        self._pin_memory = device.type == "cuda" if pin_memory is None else pin_memory
        budget = preload_budget_bytes
        if budget is None:
            budget = default_preload_budget(device)
        self.preloaded: dict[str, bool] = {}
        """Per argument (``train_data``, ``valid_data``): whether it was preloaded."""
        self._train = self._place(train, budget)
        if train.pair is None and self.preloaded[train.name]:
            budget -= train.nbytes
        placed_valid = self._place(valid, budget)
        self._valid: DataPair | ValidBatches
        if valid.pair is not None:
            assert isinstance(placed_valid, PreloadedBatches)
            self._valid = (placed_valid.inputs, placed_valid.targets)
        else:
            self._valid = ValidBatches(placed_valid, valid_batch_size)

    def _place(self, data: CheckedData, budget: int) -> PreloadedBatches | StreamedBatches:
        if data.pair is not None:
            self.preloaded[data.name] = True
            return PreloadedBatches(*data.pair, device=self._device)
        assert data.dataset is not None
        if data.nbytes <= budget:
            _logger.info(
                "%s: %d samples (%.1f MB) preloaded to %s",
                data.name,
                data.n,
                data.nbytes / 1e6,
                self._device,
            )
            self.preloaded[data.name] = True
            inputs, targets = _collate_all(data.dataset, self._num_workers)
            return PreloadedBatches(inputs, targets, device=self._device)
        _logger.info(
            "%s: %d samples (%.1f MB) exceed the preload budget of %.1f MB: streamed through "
            "a DataLoader",
            data.name,
            data.n,
            data.nbytes / 1e6,
            max(budget, 0) / 1e6,
        )
        self.preloaded[data.name] = False
        return self._streamed(data.dataset, seed=0)

    def _streamed(self, dataset: Dataset[Any], seed: int) -> StreamedBatches:
        return StreamedBatches(
            dataset,
            device=self._device,
            seed=seed,
            num_workers=self._num_workers,
            pin_memory=self._pin_memory,
        )

    def __len__(self) -> int:
        """Training samples."""
        return len(self._train)

    def for_trial(self, seed: int) -> TrialBatches:
        """The training data of one trial, shuffled by a generator seeded with ``seed``."""
        if isinstance(self._train, StreamedBatches):
            return self._streamed(self._train.dataset, seed)
        return PreloadedBatches(
            self._train.inputs, self._train.targets, device=self._device, seed=seed
        )

    @property
    def valid(self) -> DataPair | ValidBatches:
        """What the metric receives: for a pair of tensors, ``(inputs, targets)`` on the
        device; for a Dataset, its :class:`ValidBatches`."""
        return self._valid
