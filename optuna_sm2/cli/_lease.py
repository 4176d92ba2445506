"""Leases: a heartbeat for journal storages, so that a killed worker's trial is retried.

Optuna 5's :class:`~optuna.storages.JournalStorage` (a journal file, or Redis) has no heartbeat:
a trial whose worker was killed stays RUNNING forever. :class:`LeasedJournalStorage` gives it
Optuna's heartbeat protocol, kept as a lease in the trial's system attrs, so that
``study.optimize`` fails and retries such trials exactly as it does on a database.
:class:`LeasedRDBStorage` keeps the same lease on a database, beside Optuna's heartbeat, so that
a trial whose worker on this machine has ended is retried at once there too:

* While a worker runs a trial it renews the trial's lease (system attr ``sm2:lease``: the trial's
  storage id, the worker's host, machine and pid, the pid's start time, when the lease was taken
  and when it was last renewed) every ``heartbeat_interval`` seconds.
* Before each trial, ``study.optimize`` asks for the stale RUNNING trials of the study: those
  whose own lease was last renewed more than ``grace_period`` seconds ago (by this machine's
  clock: the machines' clocks must agree to well within it), and, at once, those whose lease
  names a process of this machine (same host name, boot and pid namespace) that is gone (the pid
  is dead, a zombie, or now another process). A RUNNING trial without its own lease (a lease
  copied into a retry from the trial it retries, or none at all) is never stale.
* Optuna marks each stale trial FAIL (one process wins when several try) and hands it to
  :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` (``inherit_intermediate_values``):
  a WAITING copy with ``failed_trial`` and ``retry_history`` is queued, which the next trial of
  any worker takes, and ``SM2Objective`` resumes it from its predecessor's checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import FrozenTrial, TrialState

from optuna_sm2 import _compat
from optuna_sm2 import attrs as _attrs
from optuna_sm2._process import Process, strict_int
from optuna_sm2.cli._common import storage_failure_in


@dataclass(frozen=True)
class Lease:
    """The stored lease of one running trial."""

    trial_id: int
    holder: Process
    acquired: float
    renewed: float

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "holder": self.holder.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> Lease | None:
        """The lease stored as ``data``, or ``None`` when ``data`` is not one."""
        try:
            lease = cls(
                trial_id=strict_int(data["trial_id"]),
                holder=Process.from_json(data["holder"]),
                acquired=float(data["acquired"]),
                renewed=float(data["renewed"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return lease


class _Leases:
    """The leases one process keeps on the trials it runs, and which leases are stale."""

    def __init__(self, storage: BaseStorage, grace_period: int) -> None:
        self._storage = storage
        self.grace_period = grace_period
        self._process = Process.current()
        self._acquired: dict[int, float] = {}

    def renew(self, trial_id: int) -> None:
        now = time.time()
        lease = Lease(trial_id, self._process, self._acquired.setdefault(trial_id, now), now)
        try:
            self._storage.set_trial_system_attr(trial_id, _attrs.LEASE, lease.to_json())
        except optuna.exceptions.UpdateFinishedTrialError:
            # Another worker found this trial stale (this process was stopped or cut off longer
            # than the grace period) and failed it; its retry is queued, nothing to renew.
            self._acquired.pop(trial_id, None)
        except Exception as exc:
            if storage_failure_in(exc) is None:
                raise
            # The storage failed: the next renewal tries again, and the trial, which writes to
            # the storage too, ends its worker with one line if the storage stays lost.

    def stale(self, study_id: int, *, by_age: bool) -> list[int]:
        """The RUNNING trials whose own lease names a process of this machine that is gone, and
        (``by_age``) those whose lease was last renewed more than the grace period ago."""
        now = time.time()
        running = self._storage.get_all_trials(
            study_id, deepcopy=False, states=(TrialState.RUNNING,)
        )
        return [
            _compat.trial_id(t)
            for t in running
            if (lease := own_lease(t)) is not None
            and (
                (by_age and now - lease.renewed > self.grace_period)
                or lease.holder.is_gone(self._process)
            )
        ]


class LeasedJournalStorage(JournalStorage, _compat.BaseHeartbeat):
    """A :class:`~optuna.storages.JournalStorage` with leases as its heartbeat (see the module).

    Args:
        log_storage: The journal backend (a file, or Redis).
        heartbeat_interval: Seconds between a running trial's lease renewals.
        grace_period: Seconds after its last renewal at which a lease expires; twice the
            interval by default, as Optuna's database heartbeat.
    """

    def __init__(
        self,
        log_storage: BaseJournalBackend,
        *,
        heartbeat_interval: int,
        grace_period: int | None = None,
    ) -> None:
        super().__init__(log_storage)
        self._heartbeat_interval = heartbeat_interval
        grace = grace_period if grace_period is not None else 2 * heartbeat_interval
        self._leases = _Leases(self, grace)

    def record_heartbeat(self, trial_id: int) -> None:
        self._leases.renew(trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self._leases.stale(study_id, by_age=True)

    def get_heartbeat_interval(self) -> int:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None]:
        return RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)


class LeasedRDBStorage(RDBStorage):
    """An :class:`~optuna.storages.RDBStorage` with Optuna's heartbeat, and the lease besides.

    Optuna's heartbeat fails a trial silent for ``2 * heartbeat_interval`` seconds; the lease (see
    the module) fails at once a trial whose worker on this machine has ended, so that a worker
    started again right after a kill retries the killed trial instead of leaving it RUNNING.
    Stale trials are retried with ``RetryHeartbeatStaleTrialCallback(inherit_intermediate_values
    =True)``.

    Args:
        url: The database URL.
        heartbeat_interval: Seconds between a running trial's heartbeats and lease renewals.
        skip_table_creation: As for :class:`~optuna.storages.RDBStorage`.
    """

    def __init__(self, url: str, *, heartbeat_interval: int, skip_table_creation: bool) -> None:
        super().__init__(
            url,
            skip_table_creation=skip_table_creation,
            heartbeat_interval=heartbeat_interval,
            grace_period=2 * heartbeat_interval,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                inherit_intermediate_values=True
            ),
        )
        self._leases = _Leases(self, 2 * heartbeat_interval)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:
            if storage_failure_in(exc) is None:
                raise
            # The storage failed: a heartbeat thread that raised would print a traceback and
            # stop beating; the next beat tries again (see _Leases.renew).
        self._leases.renew(trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        expired = super()._get_stale_trial_ids(study_id)
        return sorted({*expired, *self._leases.stale(study_id, by_age=False)})


def own_lease(trial: FrozenTrial) -> Lease | None:
    """The trial's lease if it holds one of its own (not one copied from the trial it retries)."""
    lease = Lease.from_json(trial.system_attrs.get(_attrs.LEASE))
    return lease if lease is not None and lease.trial_id == _compat.trial_id(trial) else None
