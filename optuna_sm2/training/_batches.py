"""The flexible batch loader of SM²: data preloaded to the device, cut into batches there.

:class:`ShuffledEpochs` holds what every source of training batches shares (the seeded order of
each epoch, the share of the data it covers, the checks of its arguments);
:class:`PreloadedBatches` cuts tensors held on the device, ``StreamedBatches`` (``_streamed.py``)
loads a ``Dataset`` through a ``DataLoader``.
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from optuna_sm2.training import _samples
from optuna_sm2.training._samples import Tree


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size}.")
    return int(batch_size)


def _check_fraction(fraction: object) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise ValueError(f"`fraction` must be a number in (0, 1], got {fraction!r}.")
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction}.")
    return float(fraction)


def fraction_size(n: int, fraction: float) -> int:
    """``ceil(fraction * n)``, at least 1, robust to float noise.

    ``0.1 * 30`` is ``3.0000000000000004`` in floating point; the product is rounded to nine
    decimals before the ceiling so that it counts as 3, not 4.

    >>> fraction_size(30, 0.1), fraction_size(10, 0.25), fraction_size(7, 1.0)
    (3, 3, 7)
    """
    return max(1, min(n, math.ceil(round(fraction * n, 9))))


class ShuffledEpochs(abc.ABC):
    """Epochs of a data set of ``n`` samples in a fresh order each, reproducible from ``seed``.

    Each call of :meth:`batches` is one epoch; with ``shuffle=True`` it draws a fresh
    permutation from a ``torch.Generator`` seeded with ``seed`` (on the CPU, so it is the same
    on every device). A subclass says how the samples of one batch are fetched (:meth:`_cut`).
    """

    def __init__(self, n: int, seed: int) -> None:
        self._n = n
        self._seed = int(seed)
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(self._seed)

    @property
    def seed(self) -> int:
        """The seed the shuffling generator started from."""
        return self._seed

    def __len__(self) -> int:
        return self._n

    def _generators(self) -> dict[str, torch.Generator]:
        """The generators the epochs draw from, by name (a subclass may add its own)."""
        return {"order": self._generator}

    def generator_state(self) -> dict[str, torch.Tensor]:
        """Where the sequence of epochs stands: each generator's state, by name.

        A checkpoint stores it, so that a resumed trial draws the very epochs that the trial
        would have drawn had it not been interrupted.

        >>> import torch
        >>> data = PreloadedBatches(torch.randn(10, 3), torch.arange(10), seed=1)
        >>> _ = data.batches(4)
        >>> state = data.generator_state()
        >>> first = [y.tolist() for _, y in data.batches(4)]
        >>> data.set_generator_state(state)
        >>> [y.tolist() for _, y in data.batches(4)] == first
        True
        """
        return {name: g.get_state() for name, g in self._generators().items()}

    def set_generator_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Go on from ``state``, what :meth:`generator_state` of data like this returned.

        Raises:
            ValueError: ``state`` is not such a state (other generators, or a tensor that is not
                a generator's state); the generators are then left as they were.
        """
        generators = self._generators()
        if not isinstance(state, Mapping) or set(state) != set(generators):
            held = sorted(map(str, state)) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"`state` must hold the states of the generators {sorted(generators)}, got {held}."
            )
        before = self.generator_state()
        try:
            for name, generator in generators.items():
                generator.set_state(torch.as_tensor(state[name]).to("cpu"))
        except (RuntimeError, TypeError) as exc:
            for name, generator in generators.items():
                generator.set_state(before[name])
            raise ValueError(f"`state` is not a generator's state: {exc}") from None

    def _epoch_size(self, batch_size: object, fraction: object) -> tuple[int, int]:
        """The checked batch size and the number of samples one epoch covers."""
        size = _check_batch_size(batch_size)
        share = _check_fraction(fraction)
        n = len(self)
        m = fraction_size(n, share)
        if size > m:
            of = f"{m} of the {n} samples (fraction {share})" if m < n else f"the {n} samples"
            raise ValueError(
                f"`batch_size` {size} is larger than the data: an epoch covers {of}; "
                f"accepted range 1 <= batch_size <= {m}."
            )
        return size, m

    def n_batches(self, batch_size: int, fraction: float = 1.0, drop_last: bool = False) -> int:
        """How many batches :meth:`batches` yields with these arguments.

        Raises:
            ValueError: as :meth:`batches`.
        """
        size, m = self._epoch_size(batch_size, fraction)
        return m // size if drop_last else -(-m // size)

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        fraction: float = 1.0,
        drop_last: bool = False,
    ) -> Iterator[tuple[Any, Any]]:
        """One epoch of ``(inputs, targets)`` batches on the training device.

        The arguments are checked and the permutation is drawn when this is called, not when
        the first batch is taken.

        Args:
            batch_size: Samples per batch, ``1 <= batch_size <= ceil(fraction * len(self))``.
            shuffle: Draw a fresh permutation (the next one of the seeded generator). ``False``
                keeps the stored order and leaves the generator untouched.
            fraction: Share of the data the epoch covers, in (0, 1]: the first
                ``ceil(fraction * len(self))`` samples of the (shuffled) order. SM²'s
                exploration uses 0.25.
            drop_last: Leave out a last batch smaller than ``batch_size``.

        Raises:
            ValueError: ``batch_size`` is not an integer >= 1 or is larger than the epoch's
                share of the data, or ``fraction`` is outside (0, 1].
        """
        size, m = self._epoch_size(batch_size, fraction)
        if shuffle:
            order = torch.randperm(len(self), generator=self._generator)[:m]
        else:
            order = torch.arange(m)
        stop = m - m % size if drop_last else m
        return self._cut(order[:stop], size)

    @abc.abstractmethod
    def _cut(self, order: torch.Tensor, size: int) -> Iterator[tuple[Any, Any]]:
        """The samples ``order`` (a CPU tensor of indices) in batches of ``size``."""


class PreloadedBatches(ShuffledEpochs):
    """Training data held on the training device and cut into batches of any size there.

    The paper's flexible batch loader: the tensors are moved to ``device`` once, at
    construction, and every batch is an index into them, so trying another batch size costs
    nothing and no worker process or host-to-device copy runs during an epoch. Each call of
    :meth:`batches` is one epoch; with ``shuffle=True`` it draws a fresh permutation from a
    ``torch.Generator`` seeded with ``seed``, so the sequence of epochs is reproducible from the
    seed. The permutation is drawn on the CPU and then moved, so it is the same on every device.

    Inputs and targets are each a tensor, or a tuple, list or dict of tensors (nested), with
    samples along the first dimension of every tensor; a batch keeps their structure.

    Args:
        inputs: The inputs, samples along the first dimension.
        targets: The targets, as many samples as ``inputs``.
        device: Where the data is trained on. ``None`` keeps the data where its first tensor
            is (and moves the others there).
        seed: Seed of the shuffling generator.

    Raises:
        ValueError: ``inputs`` or ``targets`` holds something other than tensors, a 0-d
            tensor, tensors of different lengths, or no samples.

    Example:
        >>> import torch
        >>> from optuna_sm2 import PreloadedBatches
        >>> data = PreloadedBatches(torch.randn(10, 3), torch.arange(10), seed=1)
        >>> len(data), data.n_batches(4), data.n_batches(4, drop_last=True)
        (10, 3, 2)
        >>> [len(y) for _, y in data.batches(4)]
        [4, 4, 2]
        >>> [len(y) for _, y in data.batches(2, fraction=0.25)]  # ceil(0.25 * 10) = 3 samples
        [2, 1]
        >>> sorted(torch.cat([y for _, y in data.batches(3)]).tolist()) == list(range(10))
        True
        >>> text = PreloadedBatches({"ids": torch.zeros(10, 7), "mask": torch.ones(10, 7)},
        ...                         torch.arange(10))
        >>> inputs, targets = next(text.batches(4))
        >>> sorted(inputs), tuple(inputs["ids"].shape)
        (['ids', 'mask'], (4, 7))
    """

    def __init__(
        self,
        inputs: Tree,
        targets: Tree,
        *,
        device: torch.device | str | None = None,
        seed: int = 0,
    ) -> None:
        n_inputs = _samples.check_tree("inputs", inputs)
        n_targets = _samples.check_tree("targets", targets)
        if n_inputs != n_targets:
            raise ValueError(
                f"`inputs` and `targets` must hold as many samples, "
                f"got {n_inputs} and {n_targets}."
            )
        if n_inputs == 0:
            raise ValueError("`inputs` and `targets` hold no samples.")
        first = next(_samples.tensors(inputs))
        target_device = first.device if device is None else torch.device(device)
        self._inputs = _samples.to_device(inputs, target_device)
        self._targets = _samples.to_device(targets, target_device)
        self._device = target_device
        super().__init__(n_inputs, seed)

    @property
    def inputs(self) -> Tree:
        """All inputs, on :attr:`device`."""
        return self._inputs

    @property
    def targets(self) -> Tree:
        """All targets, on :attr:`device`."""
        return self._targets

    @property
    def device(self) -> torch.device:
        """The device the data lives on."""
        return self._device

    @property
    def nbytes(self) -> int:
        """Bytes the data holds on :attr:`device`."""
        return _samples.n_bytes(self._inputs) + _samples.n_bytes(self._targets)

    def __repr__(self) -> str:
        return f"PreloadedBatches(n={len(self)}, device={self.device}, seed={self.seed})"

    def _cut(self, order: torch.Tensor, size: int) -> Iterator[tuple[Any, Any]]:
        order = order.to(self._device)
        for start in range(0, len(order), size):
            index = order[start : start + size]
            yield _samples.take(self._inputs, index), _samples.take(self._targets, index)
