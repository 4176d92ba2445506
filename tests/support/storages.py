"""Real Optuna storages for tests: in-memory, a SQLite file and a journal file."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

STORAGE_KINDS = ("inmemory", "sqlite", "journal")


def make_storage(kind: str, directory: Path) -> optuna.storages.BaseStorage | str:
    if kind == "inmemory":
        return optuna.storages.InMemoryStorage()
    if kind == "sqlite":
        return f"sqlite:///{directory / 'study.db'}"
    if kind == "journal":
        return JournalStorage(JournalFileBackend(str(directory / "journal.log")))
    raise ValueError(kind)
