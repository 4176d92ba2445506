"""A journal file that a crash or a full disk never corrupts.

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` writes each record as one JSON line
and reads the file line by line. A write cut short (a crash, a kill or a full disk in the middle
of an append) leaves a last line without its newline: Optuna's reader skips it, but its next
append is written right after it, onto the same line, and from then on the file cannot be read
past that line: every finished trial after it is lost to every command.

:class:`JournalFile` keeps the file whole instead, under the journal's own lock:

* Before it appends, a last line without its newline (a **torn tail**) is cut off and kept, byte
  for byte, in ``<journal>.torn-<UTC time>`` beside the journal, with a warning naming that file;
  the journal then ends with its last whole record, which every reader already saw as the end.
* An append that fails (``ENOSPC``, ``EFBIG``, ``EIO``) is undone: the file is truncated back to
  its size before the append, and a :class:`JournalAppendError` (an ``OSError``) says so in one
  line. The journal holds no half of the record.

Optuna itself should do both in ``JournalFileBackend.append_logs`` (upstream issue to file:
"JournalFileBackend appends onto a torn last line, corrupting every later record"; see
docs/reliability.md).

Its lock is :class:`HolderLock`: Optuna's lock file, ``<journal>.lock``, created exclusively,
holding the process that holds it; a lock whose holder has ended (a worker killed while it
appended) is broken at once, not after Optuna's 30 s grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from typing import Any, BinaryIO

from optuna.storages.journal import JournalFileBackend

from optuna_sm2._compat import BaseJournalFileLock
from optuna_sm2._process import Process

_CHUNK = 1 << 16


class JournalAppendError(OSError):
    """An append to a journal file failed; the file was truncated back to its last record."""


class JournalFile(JournalFileBackend):
    """:class:`~optuna.storages.journal.JournalFileBackend` that cuts a torn tail before it
    appends and undoes an append that fails (see the module).

    Example:
        >>> import os, tempfile, warnings
        >>> from optuna_sm2.cli._journal_file import JournalFile
        >>> path = os.path.join(tempfile.mkdtemp(), "j.log")
        >>> record = '{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}'
        >>> with open(path, "w") as f:
        ...     _ = f.write(record + '\\n{"op_co')  # the second record torn
        >>> with warnings.catch_warnings(record=True):
        ...     JournalFile(path).append_logs([{"op_code": 1, "worker_id": "w", "study_id": 0}])
        >>> [log["op_code"] for log in JournalFile(path).read_logs(0)]
        [0, 1]
    """

    def __init__(self, file_path: str, lock_obj: BaseJournalFileLock | None = None) -> None:
        super().__init__(file_path, lock_obj or HolderLock(file_path))

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if not logs:
            return
        # The lock of the base class; the records are encoded before it is taken.
        text = "".join(_line(log) for log in logs).encode("utf-8")
        lock = self._lock
        lock.acquire()
        try:
            with open(self._file_path, "r+b", buffering=0) as f:
                end = f.seek(0, os.SEEK_END)
                try:
                    end = _cut_torn_tail(f, self._file_path)
                    f.seek(end)
                    written = 0
                    while written < len(text):
                        written += f.write(text[written:])
                    os.fsync(f.fileno())
                except OSError as exc:
                    _undo(f, end)
                    raise JournalAppendError(
                        exc.errno,
                        f"cannot append to journal {self._file_path}: {exc.strerror or exc}; "
                        "the journal is left as it was before this write",
                    ) from exc
        finally:
            lock.release()


def _line(log: dict[str, Any]) -> str:
    return json.dumps(log, separators=(",", ":")) + "\n"


def _cut_torn_tail(f: BinaryIO, path: str) -> int:
    """Cut a last line without its newline off the open file ``f``, keeping it in
    ``<path>.torn-<time>``; the offset the next record goes to."""
    size = f.seek(0, os.SEEK_END)
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        f.seek(start)
        chunk = f.read(end - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    if end == size:
        return size
    f.seek(end)
    torn = f.read(size - end)
    kept = _torn_copy(path)
    try:
        with open(kept, "xb") as copy:
            copy.write(torn)
            copy.flush()
            os.fsync(copy.fileno())  # kept before the journal is cut
    except OSError:
        os.unlink(kept)
        raise
    f.truncate(end)
    os.fsync(f.fileno())
    warnings.warn(
        f"journal {path} ended in a torn record ({len(torn)} bytes, a write cut short by a "
        f"crash or a full disk); it was cut off and kept in {kept}",
        RuntimeWarning,
        stacklevel=4,
    )
    return end


def _torn_copy(path: str) -> str:
    """A new file name beside ``path`` for its torn tail."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name, n = f"{path}.torn-{stamp}", 1
    while os.path.exists(name):
        n += 1
        name = f"{path}.torn-{stamp}-{n}"
    return name


def _undo(f: BinaryIO, end: int) -> None:
    """Truncate ``f`` back to ``end`` after a failed write (best effort: a truncation frees
    space, so it works on a full disk)."""
    try:
        f.truncate(end)
        os.fsync(f.fileno())
    except OSError:
        pass  # what is left is a torn tail, cut by the next append


GRACE_S = 30.0
"""Seconds after which a lock whose holder cannot be checked (another machine's, or a plain
Optuna process's symlink) is broken, as Optuna's own lock does."""


class HolderLock(BaseJournalFileLock):
    """``<journal>.lock``, created with ``O_EXCL`` and holding its holder (host, machine, pid and
    the pid's start time: :class:`optuna_sm2._process.Process`).

    A process waiting for it breaks it at once when the holder is a process of this machine that
    has ended (killed while it appended), and otherwise after :data:`GRACE_S` seconds without
    change, as Optuna's :class:`~optuna.storages.journal.JournalFileOpenLock` does. It excludes
    Optuna's own locks on the same journal (they create the same file name).
    """

    def __init__(self, journal: str, grace_period: float = GRACE_S) -> None:
        self._path = journal + ".lock"
        self._grace = grace_period
        self._here = Process.current()

    def acquire(self) -> bool:
        content = json.dumps(self._here.to_json()).encode()
        wait, seen, since = 0.001, None, time.monotonic()
        while True:
            try:
                fd = os.open(self._path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self._holder()
                if holder != seen:
                    seen, since = holder, time.monotonic()
                if (holder is not None and holder.is_gone(self._here)) or (
                    time.monotonic() - since > self._grace
                ):
                    self._break(holder)
                    continue
                time.sleep(wait)
                wait = min(2 * wait, 0.25)
                continue
            try:
                os.write(fd, content)
            finally:
                os.close(fd)
            return True

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)

    def _holder(self) -> Process | None:
        """The process the lock names; ``None`` while it cannot be told (being written, a
        symlink of Optuna's lock, unreadable)."""
        return None if os.path.islink(self._path) else self._holder_of(self._path)

    def _break(self, holder: Process | None) -> None:
        """Remove the lock of ``holder``, unless another process took it meanwhile."""
        taken = f"{self._path}.broken-{os.getpid()}"
        try:
            os.rename(self._path, taken)
        except FileNotFoundError:
            return  # released meanwhile
        if holder is not None and self._holder_of(taken) != holder:
            # Another process broke it and locked it in between: give its lock back.
            with contextlib.suppress(FileExistsError):
                os.link(taken, self._path)
        os.unlink(taken)
        warnings.warn(
            f"journal lock {self._path} held by "
            + ("an ended process" if holder is not None else "no one for a while")
            + f" ({'pid ' + str(holder.pid) if holder is not None else 'unknown holder'}); "
            "broken",
            RuntimeWarning,
            stacklevel=3,
        )

    @staticmethod
    def _holder_of(path: str) -> Process | None:
        """The process the lock file ``path`` names, or ``None``."""
        try:
            with open(path, "rb") as f:
                return Process.from_json(json.loads(f.read(4096)))
        except (OSError, ValueError, KeyError, TypeError):
            return None
