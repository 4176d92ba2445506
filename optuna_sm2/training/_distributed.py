"""``DistributedEnergyTracker``: energy windows summed over the ranks of ``torch.distributed``.

Under DDP every rank trains on its own device, so every rank measures its own device; a trial's
energy is the sum over ranks. The sum is taken at each window's closing edge by one collective
(an all-gather of each rank's joules, seconds and validity), so every rank holds the same figure
and a window invalid on any rank is invalid on all: a partial sum is never presented as whole.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from optuna_sm2.energy import EnergyTracker, EnergyWindow, shared_tracker

_logger = logging.getLogger(__name__)

HOST_WIDE_SOURCES = ("rapl", "zeus")
"""Sources that measure a whole machine's CPU packages (Zeus adds RAPL itself): every rank on a
machine reading one would count the machine once per rank."""


@dataclass(frozen=True)
class _Ranks:
    """The process group a tracker sums over, and what its ranks measure."""

    group: Any
    rank: int
    world_size: int
    device: torch.device
    source: str
    is_estimate: bool

    def sum(self, own: EnergyWindow, estimated: bool) -> tuple[float, float, str | None, bool]:
        """Joules summed over the ranks, the slowest rank's seconds, why the summed window is
        invalid (``None`` when it is valid), and whether any rank estimated its window from
        power (``estimated``: this rank did). A collective: every rank must call it."""
        mine = torch.tensor(
            [own.joules if own.valid else math.nan, own.seconds, float(estimated)],
            dtype=torch.float64,
            device=self.device,
        )
        gathered = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(gathered, mine, group=self.group)
        figures = [(float(t[0]), float(t[1])) for t in gathered]
        seconds = max(s for _, s in figures)
        any_estimated = any(float(t[2]) > 0.0 for t in gathered)
        invalid = [r for r, (j, _) in enumerate(figures) if math.isnan(j)]
        if not invalid:
            return math.fsum(j for j, _ in figures), seconds, None, any_estimated
        ranks = ", ".join(str(r) for r in invalid)
        reason = (
            f"the window could not be measured on rank {ranks} of {self.world_size}, so the "
            "sum over ranks is not booked"
        )
        if not own.valid:
            reason += f"; on this rank ({self.rank}): {own.invalid_reason}"
        return math.nan, seconds, reason, any_estimated


class DistributedEnergyTracker(EnergyTracker):
    """An :class:`~optuna_sm2.EnergyTracker` whose windows sum the energy of every rank.

    Under ``torch.distributed`` (DDP), each rank measures its own device with ``tracker`` and,
    when a window closes, the ranks exchange their figures (one all-gather over ``group``): the
    window every rank gets holds the joules **summed over the ranks** and the seconds of the
    slowest. If any rank's window is invalid (a failed read, an impossible reading), the summed
    window is invalid on every rank, its reason naming the ranks: a partial sum is never booked
    as a whole. Without an initialized process group, windows are ``tracker``'s own.

    Every rank must open and close the same windows in the same order (they are collectives,
    like DDP's gradient all-reduce). Book them on every rank with the same code, for instance a
    :class:`~optuna_sm2.TrialEnergy` per rank, and let only rank 0 write to the study (give the
    other ranks' books an ``optuna.trial.FixedTrial``; see ``docs/distributed.md``).

    The first window also gathers each rank's host and meter label: the summed window's
    ``source`` is the union of the labels (``nvml-counter+rapl``) and it is an estimate when any
    rank's is; a window that any rank estimated from power (shorter than its counter's step)
    adds ``nvml-power-estimate`` to it and is an estimate. A meter of the whole machine
    (``rapl``, ``zeus``) read by several ranks of one host counts that machine once per rank:
    rank 0 warns (``RuntimeWarning``) naming them; give every rank but one per host a meter of
    its own device only (e.g. ``NvmlMeter()``).

    Args:
        tracker: What this rank measures with; ``None`` for this process's
            :func:`~optuna_sm2.energy.shared_tracker`. Each rank's meter must measure its own
            device: set the rank's CUDA device (``torch.cuda.set_device``) before the first
            window, as DDP needs anyway, and :class:`~optuna_sm2.energy.NvmlMeter` follows it.
        group: The process group to sum over; ``None`` for the default group. With the
            ``nccl`` backend the figures travel as CUDA tensors on the current device.

    Example:
        .. code-block:: python

            from optuna_sm2 import EnergyTracker
            from optuna_sm2.energy import SimulatedMeter
            from optuna_sm2.integration import DistributedEnergyTracker

            tracker = DistributedEnergyTracker(EnergyTracker(SimulatedMeter(power_w=80.0)))
            with tracker.window() as epoch:  # on each rank, after init_process_group
                pass
            print(epoch.joules)  # the sum over ranks (this rank's alone without a group)
    """

    def __init__(self, tracker: EnergyTracker | None = None, *, group: Any = None) -> None:
        if tracker is not None and not isinstance(tracker, EnergyTracker):
            raise ValueError(f"`tracker` must be an EnergyTracker or None, got {tracker!r}.")
        if isinstance(tracker, DistributedEnergyTracker):
            raise ValueError(
                "`tracker` already sums over ranks: pass the tracker it wraps, so that each "
                "window is summed once."
            )
        inner = shared_tracker() if tracker is None else tracker
        super().__init__(inner.meter, sync_cuda=False)  # the inner tracker synchronizes
        self._inner = inner
        self._group = group
        self._ranks: _Ranks | None = None

    @property
    def tracker(self) -> EnergyTracker:
        """The tracker this rank measures with."""
        return self._inner

    @property
    def source(self) -> str:
        """The union of the ranks' meter labels once the first window gathered them; this
        rank's label before."""
        return self._inner.source if self._ranks is None else self._ranks.source

    @property
    def is_estimate(self) -> bool:
        """Whether any rank's figures are an estimate (this rank's before the first window)."""
        return self._inner.is_estimate if self._ranks is None else self._ranks.is_estimate

    @contextlib.contextmanager
    def window(self) -> Iterator[EnergyWindow]:
        """Measure the enclosed block on this rank; on exit, the window holds the sum over
        ranks (a collective: every rank must close its window)."""
        ranks = self._current_ranks()
        if ranks is None:
            with self._inner.window() as alone:
                yield alone
            return
        meter = self._inner.meter
        summed = EnergyWindow(ranks.source, ranks.is_estimate, meter.update_period_s)
        own: EnergyWindow | None = None
        try:
            with self._inner.window() as own:
                yield summed
        finally:
            if own is not None:
                estimated = own.source != self._inner.source
                joules, seconds, reason, any_estimated = ranks.sum(own, estimated)
                estimate = meter.estimate_source or "nvml-power-estimate"  # the one there is
                label = f"{ranks.source}+{estimate}" if any_estimated else None
                summed.close(seconds, joules, reason, estimated_as=label)

    def _current_ranks(self) -> _Ranks | None:
        """The group summed over, gathered at the first window of each process group;
        ``None`` when this process is not part of one."""
        if not (dist.is_available() and dist.is_initialized()):
            return None
        world_size = dist.get_world_size(self._group)
        rank = dist.get_rank(self._group)
        if self._ranks is not None and (self._ranks.world_size, self._ranks.rank) == (
            world_size,
            rank,
        ):
            return self._ranks
        backend = str(dist.get_backend(self._group))
        device = (
            torch.device("cuda", torch.cuda.current_device())
            if backend == "nccl"
            else torch.device("cpu")
        )
        mine = (socket.gethostname(), self._inner.source, self._inner.is_estimate)
        found: list[Any] = [None] * world_size
        dist.all_gather_object(found, mine, group=self._group)
        parts = sorted({part for _, source, _ in found for part in source.split("+")})
        self._ranks = _Ranks(
            group=self._group,
            rank=rank,
            world_size=world_size,
            device=device,
            source="+".join(parts),
            is_estimate=any(estimate for _, _, estimate in found),
        )
        if rank == 0:
            _warn_host_wide(found)
        _logger.info(
            "energy summed over %d ranks: %s",
            world_size,
            ", ".join(f"rank {r} {source} on {host}" for r, (host, source, _) in enumerate(found)),
        )
        return self._ranks


def _warn_host_wide(found: list[Any]) -> None:
    """Warn when several ranks of one host read a meter of the whole host."""
    by_host: dict[str, list[int]] = {}
    for rank, (host, source, _) in enumerate(found):
        if set(source.split("+")) & set(HOST_WIDE_SOURCES):
            by_host.setdefault(host, []).append(rank)
    for host, ranks in by_host.items():
        if len(ranks) > 1:
            warnings.warn(
                f"ranks {', '.join(map(str, ranks))} on host {host} each read a meter of the "
                f"whole machine ({' or '.join(HOST_WIDE_SOURCES)}): summed over ranks, its "
                f"energy is counted {len(ranks)} times. Give all ranks of a host but one a "
                "tracker of their own device only, e.g. EnergyTracker(NvmlMeter()).",
                RuntimeWarning,
                stacklevel=4,
            )
