"""Pieces shared by the subcommands."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sys
import time
import urllib.parse
import warnings
from collections.abc import Iterator, Sequence
from typing import TextIO

import optuna
from optuna.storages.journal import BaseJournalBackend, JournalRedisBackend

from optuna_sm2.cli._journal_file import JournalAppendError, JournalFile

JOURNAL_SUFFIXES = (".log", ".jsonl")
"""A ``--storage`` ending in one of these is a JournalStorage file, not a database URL."""

_URL_HELP = (
    "expected a database URL such as sqlite:///studies/demo.db or postgresql://host/db, "
    "a journal file path ending in .log or .jsonl, or a Redis journal URL redis://host:6379"
)


def storage_failures() -> tuple[type[Exception], ...]:
    """What a storage raises, at any time, when its server or file fails: connection refused or
    lost, read-only, locked, damaged. Never an error in the caller's own code.

    A function, not a constant, so that SQLAlchemy, slow to import, is imported only when an
    exception reaches an ``except storage_failures():`` clause (Python evaluates the clause
    then), not by ``optuna-sm2 --help``.
    """
    import sqlalchemy.exc

    failures = (
        sqlalchemy.exc.SQLAlchemyError,
        optuna.exceptions.StorageInternalError,
        JournalAppendError,
    )
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - redis is optional
        return failures
    return (*failures, RedisError)


def storage_failure_in(exc: BaseException) -> BaseException | None:
    """The storage failure (:func:`storage_failures`) that ``exc`` is or arose from, else
    ``None``. Optuna raises other errors while it handles a storage that failed (reading the
    trial back after a failed ``tell``, for one: an ``UnboundLocalError``); the failure is then
    the ``__cause__`` or ``__context__`` of what reaches the caller."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, storage_failures()):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _storage_errors() -> tuple[type[Exception], ...]:
    """What opening or reading a storage raises for a bad URL, driver, file or schema."""
    return (
        *storage_failures(),
        optuna.exceptions.OptunaError,
        ImportError,
        RuntimeError,
        ValueError,
        KeyError,
    )


def url_secrets(url: str | None) -> list[str]:
    """The password of a storage URL (``postgresql://user:PW@host/db``, ``redis://:PW@host``),
    as written and percent-decoded; ``[]`` when it has none."""
    if not url or "://" not in url:
        return []
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        return []
    if not password:
        return []
    return sorted({password, urllib.parse.unquote(password)}, key=len, reverse=True)


class _Masked(io.TextIOBase):
    """A text stream writing to ``stream`` with each of ``secrets`` replaced by ``***``."""

    def __init__(self, stream: TextIO, secrets: Sequence[str]) -> None:
        self._stream = stream
        self._secrets = secrets

    def write(self, text: str) -> int:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding


@contextlib.contextmanager
def secrets_masked(url: str | None) -> Iterator[None]:
    """Mask the password of the storage URL ``url`` in everything written to ``sys.stdout`` and
    ``sys.stderr`` meanwhile: every message, error line and report names the storage as
    ``postgresql://user:***@host/db``. Nothing is changed when the URL holds no password."""
    secrets = url_secrets(url)
    if not secrets:
        yield
        return
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Masked(out, secrets), _Masked(err, secrets)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


class CLIError(Exception):
    """A problem with the user's input, printed as one line without a traceback."""


TRAINING_PACKAGES = {
    "torch": "PyTorch: install the build for your hardware (on a CPU-only Linux machine: "
    "pip install torch --index-url https://download.pytorch.org/whl/cpu)",
    "sklearn": "scikit-learn: pip install 'optuna-sm2[demo]'",
}
"""The packages a training command may need, with how to install each."""


def require(command: str, *modules: str) -> None:
    """Raise one :class:`CLIError` naming every missing package ``command`` trains with.

    Found without importing them (``importlib.util.find_spec``), so that the check is quick and
    comes before anything is read, created or trained.
    """
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        needs = "; ".join(TRAINING_PACKAGES[m] for m in missing)
        raise CLIError(f"{command} trains models and needs {needs}")


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (of its cause, for Optuna's generic storage error)."""
    if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _sqlite_path(url: str) -> str | None:
    """The file a ``sqlite://`` URL names, ``None`` for an in-memory database."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return None if not database or database == ":memory:" else database


def open_storage(
    url: str, *, must_exist: bool = True, heartbeat_interval: int | None = None
) -> optuna.storages.BaseStorage:
    """The Optuna storage ``url`` names.

    ``url`` is any URL :class:`optuna.storages.RDBStorage` takes (``sqlite:///path.db``,
    ``postgresql://...``, ``mysql+pymysql://...``), a path ending in ``.log`` or ``.jsonl``,
    which opens ``JournalStorage(JournalFileBackend(path))``, or a ``redis://`` URL, which
    opens ``JournalStorage(JournalRedisBackend(url))``.

    Args:
        url: The storage URL or journal file path.
        must_exist: Refuse a SQLite or journal file that does not exist (instead of creating
            an empty one) and do not create Optuna's tables in a database that lacks them.
            Commands that only read a study (``report``, ``dashboard``) keep the default.
        heartbeat_interval: The seconds between a running trial's heartbeats; a trial silent
            for twice as long is marked FAIL and retried (inheriting its reported values, so
            that ``SM2Objective`` resumes it from its checkpoint). A database uses Optuna's
            heartbeat, a journal (file or Redis) a lease (:mod:`optuna_sm2.cli._lease`); on
            both, the lease also retries at once a trial whose worker on this machine ended.

    Raises:
        CLIError: the URL is malformed, the file is missing, or the storage cannot be opened;
            the message is one line.

    Example:
        >>> from optuna_sm2.cli._common import open_storage
        >>> open_storage("studies/nothing-here.log")
        Traceback (most recent call last):
        ...
        optuna_sm2.cli._common.CLIError: journal file studies/nothing-here.log does not exist
    """
    if not url.strip() or "\x00" in url:
        raise CLIError(f"empty --storage or one with a NUL character; {_URL_HELP}")
    if is_journal_file(url):
        if os.path.isdir(url):
            raise CLIError(f"journal file {url} is a directory")
        if must_exist and not os.path.exists(url):
            raise CLIError(f"journal file {url} does not exist")
        try:
            return _journal(JournalFile(url), heartbeat_interval)
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot open journal file {url}: {one_line(exc)}") from exc
    if "://" not in url:
        hint = f" (did you mean sqlite:///{url}?)" if url.endswith((".db", ".sqlite3")) else ""
        raise CLIError(f"not a storage URL: {url!r}{hint}; {_URL_HELP}")
    try:
        if url.startswith("sqlite"):
            path = _sqlite_path(url)
            if path is not None and must_exist and not os.path.exists(path):
                raise CLIError(f"SQLite file {path} (from {url}) does not exist")
            if path is not None and os.path.isdir(path):
                raise CLIError(f"SQLite path {path} (from {url}) is a directory")
        if is_redis(url):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                backend = JournalRedisBackend(url)
            return _journal(backend, heartbeat_interval)
        return _rdb_storage(url, must_exist, heartbeat_interval)
    except CLIError:
        raise
    except _storage_errors() as exc:
        raise CLIError(f"cannot open storage {url}: {one_line(exc)}") from exc


def is_journal_file(url: str) -> bool:
    """Whether ``url`` names a journal file (a path ending in ``.log`` or ``.jsonl``)."""
    return url.endswith(JOURNAL_SUFFIXES) and "://" not in url


def is_redis(url: str) -> bool:
    """Whether ``url`` names a Redis journal."""
    return url.startswith(("redis://", "rediss://", "unix://"))


def _journal(
    backend: BaseJournalBackend, heartbeat_interval: int | None
) -> optuna.storages.JournalStorage:
    if heartbeat_interval is None:
        return optuna.storages.JournalStorage(backend)
    from optuna_sm2.cli._lease import LeasedJournalStorage

    return LeasedJournalStorage(backend, heartbeat_interval=heartbeat_interval)


def holds_studies(url: str) -> bool:
    """Whether the storage ``url`` exists with Optuna's schema, found without creating anything.

    A missing SQLite or journal file, or a database without Optuna's tables, holds none; a Redis
    journal is read as it is (reading it creates nothing).

    Raises:
        CLIError: the storage cannot be reached or read; one line.
    """
    if is_journal_file(url):
        return os.path.exists(url)
    if "://" not in url or is_redis(url):
        return True  # open_storage says what is wrong with it, or reads it
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path is None or not os.path.exists(path):
            return False
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        try:
            return sqlalchemy.inspect(engine).has_table("studies")
        finally:
            engine.dispose()
    except _storage_errors() as exc:
        raise CLIError(f"cannot open storage {url}: {one_line(exc)}") from exc


def _rdb_storage(
    url: str, must_exist: bool, heartbeat_interval: int | None
) -> optuna.storages.RDBStorage:
    """``RDBStorage(url)``; creating the schema is retried, since workers started together on
    an empty database race to create the same tables and all but one fail."""
    import sqlalchemy.exc

    from optuna_sm2.cli._lease import LeasedRDBStorage

    if not must_exist and url.startswith("sqlite"):
        _create_sqlite_whole(url)
    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                if heartbeat_interval is None:
                    return optuna.storages.RDBStorage(url, skip_table_creation=must_exist)
                return LeasedRDBStorage(
                    url, heartbeat_interval=heartbeat_interval, skip_table_creation=must_exist
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Another worker created the same table or type a moment earlier.
            if must_exist or attempt == _SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
    raise AssertionError("unreachable")


_SCHEMA_ATTEMPTS = 5


def _create_sqlite_whole(url: str) -> None:
    """Create the SQLite file ``url`` names, with Optuna's schema, whole or not at all.

    The schema is made in a new file beside it, which is then linked to its name (``os.link``:
    never over a file another process made meanwhile) and removed. A failure (a full disk) leaves
    no file under the name: one half-made would be refused by every later command (``no such
    table``). Nothing is done when the file exists, or for an in-memory database.
    """
    from sqlalchemy.engine import make_url

    path = _sqlite_path(url)
    if path is None or os.path.exists(path):
        return
    part = f"{path}.creating-{os.getpid()}-{random.randrange(1 << 32):08x}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            made = optuna.storages.RDBStorage(
                make_url(url).set(database=part).render_as_string(hide_password=False)
            )
        made.engine.dispose()
        with contextlib.suppress(FileExistsError):  # another worker made it meanwhile: used
            os.link(part, path)
    finally:
        for leftover in (part, f"{part}-journal"):
            if os.path.exists(leftover):
                os.unlink(leftover)


def load_study(storage_url: str, study_name: str) -> optuna.Study:
    """The existing study ``study_name`` in the storage ``storage_url`` (see :func:`open_storage`).

    Raises:
        CLIError: the storage cannot be opened or read, or holds no study of that name (the
            message lists the names it holds); one line.
    """
    storage = open_storage(storage_url)
    names = study_names(storage, storage_url)
    if study_name not in names:
        available = ", ".join(names) if names else "none, the storage holds no studies"
        raise CLIError(f"no study named {study_name!r} in {storage_url}; available: {available}")
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except _storage_errors() as exc:
        raise storage_failure("read", storage_url, exc) from exc


def add_storage_option(parser: argparse.ArgumentParser) -> None:
    """``--storage`` of the commands that read an existing study (``report``, ``dashboard``)."""
    parser.add_argument(
        "--storage",
        required=True,
        metavar="URL",
        help="an Optuna storage URL (sqlite:///path.db, postgresql://...), a JournalStorage "
        "file path ending in .log or .jsonl, or redis://host:port; nothing is created if it "
        "does not exist",
    )


def make_sqlite_parent(storage: str) -> None:
    """Create the folder of a ``sqlite:///`` file, so that a fresh clone can write its study."""
    if storage.startswith("sqlite:///"):
        database = _sqlite_path(storage)
        if database is not None:
            try:
                os.makedirs(os.path.dirname(os.path.abspath(database)), exist_ok=True)
            except OSError as exc:
                raise CLIError(f"cannot create the folder for {database}: {exc}") from exc


_PROBE_BYTES = 1 << 16


def check_writable_folder(folder: str, what: str) -> None:
    """Write (then remove) a 64 KiB file in ``folder``, so that a read-only or full folder is
    found before any trial starts, not by a trial's first checkpoint. The folders made for it are
    removed again: nothing is left. ``what`` names the folder in the message.

    Raises:
        CLIError: the folder cannot be made or written; one line naming ``what``.
    """
    made: list[str] = []  # deepest first
    path = os.path.abspath(folder)
    while not os.path.exists(path) and path != os.path.dirname(path):
        made.append(path)
        path = os.path.dirname(path)
    probe = os.path.join(folder, f".sm2-probe-{os.getpid()}")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * _PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise CLIError(
            f"{what} {folder} cannot be written ({exc.strerror or exc}): trials checkpoint "
            "there after each rung; free space, or choose another folder"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(probe)
        for created in made:
            with contextlib.suppress(OSError):
                os.rmdir(created)


def study_names(storage: optuna.storages.BaseStorage, storage_url: str) -> list[str]:
    """The sorted names of the studies in ``storage`` (opened from ``storage_url``).

    Raises:
        CLIError: the storage cannot be read (it is not an Optuna storage, or is damaged).
    """
    try:
        return sorted(optuna.get_all_study_names(storage))
    except _storage_errors() as exc:
        raise CLIError(
            f"cannot read studies from {storage_url} (is it an Optuna storage?): {one_line(exc)}"
        ) from exc


def storage_failure(action: str, storage_url: str, exc: BaseException) -> CLIError:
    """A one-line :class:`CLIError` for a storage that failed while ``action`` (e.g. writing)."""
    return CLIError(f"cannot {action} {storage_url}: {one_line(exc)}")
