"""A trial's own stream of torch's random numbers: seeded from its configuration, kept apart.

``optimize_synchronous`` runs its trials block by block in turn, so a trial that drew from
torch's global stream would draw what the trials before it left there, and a trial resumed from
a checkpoint could not draw what it would have drawn uninterrupted. A :class:`TorchStream` is
drawn from only inside :meth:`TorchStream.drawn` (the model's initialisation, dropout, anything
else the steps draw), and a checkpoint stores its :meth:`~TorchStream.state`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch


class TorchStream:
    """Torch's random state of one trial: the CPU generator's and, for a CUDA device, that
    device's.

    Args:
        seed: What the stream starts from (``torch.manual_seed(seed)``).
        device: The trial's device.

    Example:
        >>> import torch
        >>> stream = TorchStream(seed=7, device=torch.device("cpu"))
        >>> with stream.drawn():
        ...     first = torch.rand(2)
        >>> state = stream.state()
        >>> with stream.drawn():
        ...     second = torch.rand(2)
        >>> stream.set_state(state)
        >>> with stream.drawn():
        ...     bool((torch.rand(2) == second).all())
        True
    """

    def __init__(self, seed: int, device: torch.device) -> None:
        self._devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=self._devices):
            torch.manual_seed(seed)
            self._state = self._read()

    def _read(self) -> dict[str, torch.Tensor]:
        state = {"cpu": torch.get_rng_state()}
        for device in self._devices:
            state["cuda"] = torch.cuda.get_rng_state(device)
        return state

    def _write(self, state: Mapping[str, torch.Tensor]) -> None:
        torch.set_rng_state(state["cpu"])
        for device in self._devices:
            torch.cuda.set_rng_state(state["cuda"], device)

    @contextlib.contextmanager
    def drawn(self) -> Iterator[None]:
        """Inside, torch draws from this stream; after, the caller's stream is as it was."""
        with torch.random.fork_rng(devices=self._devices):
            self._write(self._state)
            try:
                yield
            finally:
                self._state = self._read()

    def state(self) -> dict[str, torch.Tensor]:
        """Where the stream stands: ``cpu`` (and ``cuda``) generator states."""
        return dict(self._state)

    def set_state(self, state: Mapping[str, torch.Tensor]) -> None:
        """Go on from ``state``, what :meth:`state` of a stream on such a device returned.

        Raises:
            ValueError: ``state`` is not such a state; the stream is then left as it was.
        """
        if not isinstance(state, Mapping) or set(state) != set(self._state):
            held = sorted(map(str, state)) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"`state` must hold the generator states {sorted(self._state)}, got {held}."
            )
        checked = {name: torch.as_tensor(value).to("cpu") for name, value in state.items()}
        try:
            with torch.random.fork_rng(devices=self._devices):
                self._write(checked)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"`state` is not a generator's state: {exc}") from None
        self._state = checked
