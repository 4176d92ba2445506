"""Which process holds a lease, and whether it has certainly ended.

A lease (a journal worker's on its trial, ``optimize_synchronous``'s on its study) names the
process that holds it: its host name, its machine (boot id and pid namespace), its pid and the
pid's start time. Another process of the same machine can then tell at once that the holder is
gone (the pid is dead, a zombie, or now another process); from another machine only the lease's
age can tell. Linux's ``/proc`` is read where it exists; elsewhere no pid is ever checked.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Process:
    """A process as a lease names it: where it runs, and which one it is there."""

    host: str
    machine: str
    """Boot id and pid namespace: equal only for processes that see the same pids; ``""`` where
    unknown (no ``/proc``), and then no pid is ever checked."""
    pid: int
    pid_start: int | None
    """Start time of the pid in clock ticks since boot (``/proc/<pid>/stat``): tells a reused
    pid from the process that held the lease."""

    @classmethod
    def current(cls) -> Process:
        pid = os.getpid()
        return cls(socket.gethostname(), _machine(), pid, _start_time(pid))

    def is_gone(self, here: Process) -> bool:
        """Whether this process, seen from ``here``, has certainly ended."""
        if not self.machine or (self.host, self.machine) != (here.host, here.machine):
            return False  # another machine: only the lease's age can tell
        if not _alive(self.pid):
            return True
        return self.pid_start is not None and _start_time(self.pid) != self.pid_start

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Process:
        """The process stored as ``data``.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not one.
        """
        if not isinstance(data, Mapping):
            raise TypeError(data)
        start = data["pid_start"]
        return cls(
            host=str(data["host"]),
            machine=str(data["machine"]),
            pid=strict_int(data["pid"]),
            pid_start=None if start is None else strict_int(start),
        )


def strict_int(x: Any) -> int:
    """``x`` if it is a Python ``int`` (not a boolean), else ``TypeError``: for stored JSON."""
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError(x)
    return x


def _machine() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or ``None``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process here (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    fields = _stat(pid)
    return fields is None or fields[0] != "Z"
