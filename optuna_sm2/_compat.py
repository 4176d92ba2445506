"""The one place that reaches into Optuna's private attributes.

Optuna has no public way to get a trial's storage id, its frozen copy, reported steps or user
attrs (without a copy) from a running :class:`optuna.trial.Trial`, to write a trial's system
attribute from a pruner, or to give a storage a heartbeat (:class:`BaseHeartbeat`, re-exported
from here); everything else optuna-sm2 does goes through Optuna's public API. Keeping these
accesses here means an Optuna upgrade that renames them breaks one small module, not the
package.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

# Optuna's heartbeat protocol: a storage that implements it has its stale RUNNING trials failed
# (and, with a callback, retried) by ``study.optimize``. Optuna keeps it in a private module.
from optuna.storages._heartbeat import BaseHeartbeat as BaseHeartbeat

# The base of a journal file's lock; Optuna 5 does not export it.
from optuna.storages.journal._file import BaseJournalFileLock as BaseJournalFileLock

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage the study lives in."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The storage's id of the study (unique within its storage, unlike nothing else)."""
    return study._study_id


def storage_identity(storage: BaseStorage) -> str:
    """What tells ``storage`` from every other: a database URL without its password and query
    (a SQLite file: its real path), a journal file's real path, a Redis URL and key prefix; for
    another storage (in-memory), its type and this process's id of it."""
    import os

    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages._cached_storage import _CachedStorage
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    if isinstance(storage, _CachedStorage):
        storage = storage._backend
    if isinstance(storage, RDBStorage):
        from sqlalchemy.engine import make_url

        url = make_url(storage.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return f"sqlite:{os.path.realpath(url.database)}"
        return url.set(password=None, query={}).render_as_string(hide_password=False)
    if isinstance(storage, JournalStorage):
        backend = storage._backend
        if isinstance(backend, JournalFileBackend):
            return f"journal:{os.path.realpath(backend._file_path)}"
        if isinstance(backend, JournalRedisBackend):
            return f"{backend._url}#{backend._prefix}"
    return f"{type(storage).__name__}:{os.getpid()}:{id(storage)}"


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's system attributes (Optuna 5 has no public reader)."""
    return study._storage.get_study_system_attrs(study._study_id)


def set_study_system_attr(study: optuna.Study, key: str, value: Any) -> None:
    """Write a system attribute of the study (Optuna 5 has no public writer)."""
    study._storage.set_study_system_attr(study._study_id, key, value)


def heartbeat_interval(storage: BaseStorage) -> int | None:
    """The seconds between a running trial's heartbeats, where the storage records them."""
    return storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None


def trial_id(trial: optuna.trial.Trial | FrozenTrial) -> int:
    """The storage's id of a running or frozen trial."""
    return trial._trial_id


def frozen(trial: optuna.trial.Trial) -> FrozenTrial:
    """The trial as its storage holds it now (intermediate values, attrs, state)."""
    return trial.study._storage.get_trial(trial._trial_id)


def reported_steps(trial: optuna.trial.Trial) -> Collection[int]:
    """The steps the running trial has reported, as :meth:`optuna.trial.Trial.report` sees them
    (it ignores a value reported again at one of these); none for a trial that keeps no record
    of them (:class:`optuna.trial.FixedTrial`)."""
    cached = getattr(trial, "_cached_frozen_trial", None)
    return () if cached is None else cached.intermediate_values.keys()


def held_user_attrs(trial: optuna.trial.BaseTrial) -> Mapping[str, Any]:
    """The user attrs ``trial`` holds in this process: an :class:`optuna.trial.Trial`'s where
    its ``set_user_attr`` keeps them (no copy, no storage query); any other trial's
    ``user_attrs``."""
    cached = getattr(trial, "_cached_frozen_trial", None)
    return trial.user_attrs if cached is None else cached.user_attrs


def set_trial_system_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Write a system attribute of ``trial``: what a pruner, which gets a frozen trial, needs."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def trial_handle(study: optuna.Study, trial: FrozenTrial) -> optuna.trial.Trial:
    """A :class:`optuna.trial.Trial` over a stored trial, for APIs that take one (notes)."""
    return optuna.trial.Trial(study, trial._trial_id)


def retry_history(trial: FrozenTrial) -> list[int]:
    """Numbers of the trials this one retries, oldest first (Optuna's heartbeat retry)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return list(RetryHeartbeatStaleTrialCallback.retry_history(trial))


def retried_trial_number(trial: FrozenTrial) -> int | None:
    """The number of the first failed trial this one retries, or ``None``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def queue_retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a WAITING copy of the failed ``trial``, as Optuna's heartbeat retry does
    (``RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)``): it holds
    ``failed_trial`` and ``retry_history``, and ``SM2Objective`` resumes it from a checkpoint."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)(study, trial)
