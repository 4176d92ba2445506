"""``StudyLease``: one synchronous run per study at a time, and a dead run noticed.

``optimize_synchronous`` runs all of a study's configurations in one process. While it runs it
holds the study's lease (study system attr ``sm2:synchronous_lease``): a run id, the process
(:class:`optuna_sm2._process.Process`), when the lease was taken and last renewed, the renewal
interval, and whether it was released. A daemon thread renews it every interval. A run that
starts while the lease is live is refused; once the lease is stale every RUNNING trial of the
study is a dead run's and the new run takes them over. The lease is stale when

- it was released (the run returned, raised or was interrupted with Ctrl-C),
- it names a process of this machine that has ended (SIGKILL, a crash): at once,
- it names this very process, but no run of this process holds it now, or
- it was last renewed more than two of its intervals ago (by this machine's clock): a run on
  another machine that died, or was cut off from the storage.

Two runs that start at the same instant may both find the lease stale; the lease is read again
after it is written, and each renewal checks that it is still the run's, so that the run that
lost stops at its next step (:meth:`StudyLease.check`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import optuna

from optuna_sm2 import _compat
from optuna_sm2 import attrs as _attrs
from optuna_sm2._process import Process

_logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 60
"""Seconds between renewals where the storage has no heartbeat interval of its own."""

_ACTIVE: set[str] = set()
"""Run ids of the runs of this process holding a lease now."""
_ACTIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class RunLease:
    """The stored lease of a synchronous run."""

    run: str
    holder: Process
    acquired: float
    renewed: float
    interval: float
    released: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "holder": self.holder.to_json(),
            "acquired": self.acquired,
            "renewed": self.renewed,
            "interval": self.interval,
            "released": self.released,
        }

    @classmethod
    def from_json(cls, data: Any) -> RunLease | None:
        """The lease stored as ``data``, or ``None`` when ``data`` is not one."""
        try:
            lease = cls(
                run=str(data["run"]),
                holder=Process.from_json(data["holder"]),
                acquired=float(data["acquired"]),
                renewed=float(data["renewed"]),
                interval=float(data["interval"]),
                released=data["released"] is True,
            )
        except (KeyError, TypeError, ValueError):
            return None
        return lease

    def held_by(self, here: Process, now: float) -> str | None:
        """Who holds the study now, in words; ``None`` when the lease is stale (see the module)."""
        if self.released:
            return None
        if self.holder == here:
            with _ACTIVE_LOCK:
                active = self.run in _ACTIVE
            return "another run in this process" if active else None
        if self.holder.is_gone(here):
            return None
        age = now - self.renewed
        if age > 2 * self.interval:
            return None
        return (
            f"pid {self.holder.pid} on {self.holder.host} (lease renewed {age:.0f} s ago, "
            f"stale {2 * self.interval - age:.0f} s from now if that run is gone)"
        )


def stored_lease(study: optuna.Study) -> RunLease | None:
    """The study's synchronous-run lease, or ``None`` (never run, or unreadable)."""
    return RunLease.from_json(_compat.study_system_attrs(study).get(_attrs.SYNCHRONOUS_LEASE))


class StudyLease:
    """Holds ``study``'s lease while a synchronous run goes on (a context manager).

    Args:
        study: The study to hold.
        interval: Seconds between renewals; the storage's heartbeat interval where it has one,
            else :data:`DEFAULT_INTERVAL_S`.

    Raises:
        ValueError: on entering, the study's lease is live: another run holds it.
    """

    def __init__(self, study: optuna.Study, interval: float | None = None) -> None:
        self._study = study
        storage_interval = _compat.heartbeat_interval(_compat.storage_of(study))
        self.interval = float(interval or storage_interval or DEFAULT_INTERVAL_S)
        self.run = uuid.uuid4().hex
        self.previous: RunLease | None = None
        """The lease found when this one was taken (a run that ended or died), if any."""
        self._process = Process.current()
        self._acquired = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost_to: str | None = None

    def __enter__(self) -> StudyLease:
        study, now = self._study, time.time()
        self.previous = stored_lease(study)
        if self.previous is not None:
            holder = self.previous.held_by(self._process, now)
            if holder is not None:
                raise ValueError(
                    f"`study` {study.study_name!r} is being run by optimize_synchronous in "
                    f"{holder}: one synchronous run per study at a time"
                )
        self._acquired = now
        with _ACTIVE_LOCK:
            _ACTIVE.add(self.run)
        try:
            self._write(now)
            taken = stored_lease(study)
            if taken is None or taken.run != self.run:
                raise ValueError(
                    f"`study` {study.study_name!r}: another optimize_synchronous run took its "
                    "lease at the same moment; one synchronous run per study at a time"
                )
        except BaseException:
            self._forget()
            raise
        self._thread = threading.Thread(
            target=self._renew_until_stopped, name=f"sm2-lease-{self.run[:8]}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if self._lost_to is None and self._is_ours():
                self._write(time.time(), released=True)
        except Exception as error:  # the storage failed: the lease goes stale by its age
            _logger.warning(
                "could not release the lease of study %r: %s", self._study.study_name, error
            )
        finally:
            self._forget()

    def check(self) -> None:
        """Raise if another run has taken the study over (this run must stop).

        Raises:
            ValueError: a renewal found another run's lease.
        """
        if self._lost_to is not None:
            raise ValueError(
                f"`study` {self._study.study_name!r} was taken over by another "
                f"optimize_synchronous run ({self._lost_to}); this run stops"
            )

    def _write(self, now: float, *, released: bool = False) -> None:
        lease = RunLease(self.run, self._process, self._acquired, now, self.interval)
        lease = replace(lease, released=released)
        _compat.set_study_system_attr(self._study, _attrs.SYNCHRONOUS_LEASE, lease.to_json())

    def _is_ours(self) -> bool:
        stored = stored_lease(self._study)
        if stored is not None and stored.run != self.run:
            self._lost_to = f"pid {stored.holder.pid} on {stored.holder.host}"
        return self._lost_to is None

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self._is_ours():
                    return
                self._write(time.time())
            except Exception as error:  # the storage failed; try again at the next interval
                _logger.warning(
                    "could not renew the lease of study %r: %s", self._study.study_name, error
                )

    def _forget(self) -> None:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(self.run)
