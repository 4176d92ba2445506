"""Real Optuna storages for tests: in-memory, a SQLite file and a journal file."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_sm2 import _compat

STORAGE_KINDS = ("inmemory", "sqlite", "journal")


def make_storage(kind: str, directory: Path) -> optuna.storages.BaseStorage | str:
    if kind == "inmemory":
        return optuna.storages.InMemoryStorage()
    if kind == "sqlite":
        return f"sqlite:///{directory / 'study.db'}"
    if kind == "journal":
        return JournalStorage(JournalFileBackend(str(directory / "journal.log")))
    raise ValueError(kind)


def fail_and_retry(study: optuna.Study, trial: optuna.trial.Trial) -> None:
    """Mark ``trial`` FAIL and enqueue its retry, as a stale heartbeat would (a killed worker):
    Optuna's ``RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)``."""
    storage = _compat.storage_of(study)
    storage.set_trial_state_values(_compat.trial_id(trial), TrialState.FAIL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)
    callback(study, storage.get_trial(_compat.trial_id(trial)))
