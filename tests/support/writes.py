"""A real SQLite storage whose ``set_trial_user_attr`` calls are counted, each compared with
what the database held before it."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
import pytest


class CountedWrites:
    """Counts the ``set_trial_user_attr`` calls of ``storage`` (an ``RDBStorage``, wrapped in
    place) by key, and keeps the ``(key, value)`` of each call that wrote the value the
    database already held for the trial."""

    def __init__(self, storage: optuna.storages.RDBStorage, monkeypatch: pytest.MonkeyPatch):
        self.calls: Counter[str] = Counter()
        self.unchanged: list[tuple[str, Any]] = []
        write = storage.set_trial_user_attr

        def counted(trial_id: int, key: str, value: Any) -> None:
            held = storage.get_trial(trial_id).user_attrs
            self.calls[key] += 1
            if key in held and held[key] == value:
                self.unchanged.append((key, value))
            write(trial_id, key, value)

        monkeypatch.setattr(storage, "set_trial_user_attr", counted)

    @property
    def total(self) -> int:
        return sum(self.calls.values())
