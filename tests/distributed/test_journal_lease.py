"""Leases on journal storages and databases: which RUNNING trials are stale, and that Optuna
retries them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend
from optuna.trial import TrialState

from optuna_sm2 import _compat, attrs
from optuna_sm2.cli._common import open_storage
from optuna_sm2.cli._lease import Lease, LeasedJournalStorage, LeasedRDBStorage, Process, own_lease

REDIS = "redis://127.0.0.1:6379"

pytestmark = [
    # Trials are asked by hand here, as a killed worker leaves them; Optuna warns about that.
    pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning"),
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]


def _dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _running_trial(study: optuna.Study, lease: Lease | None) -> int:
    """A RUNNING trial holding ``lease`` (given its trial id), as a killed worker leaves it."""
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.report(0.5, 0)
    if lease is not None:
        own = replace(lease, trial_id=_compat.trial_id(trial))
        study._storage.set_trial_system_attr(_compat.trial_id(trial), attrs.LEASE, own.to_json())
    return trial.number


def _study(storage: optuna.storages.BaseStorage) -> optuna.Study:
    return optuna.create_study(storage=storage, study_name=f"lease-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def storage(tmp_path: Path) -> LeasedJournalStorage:
    return LeasedJournalStorage(JournalFileBackend(str(tmp_path / "j.log")), heartbeat_interval=1)


def _stale_numbers(
    storage: LeasedJournalStorage | LeasedRDBStorage, study: optuna.Study
) -> set[int]:
    ids = set(storage._get_stale_trial_ids(_compat.study_id(study)))
    return {t.number for t in study.get_trials() if _compat.trial_id(t) in ids}


def test_which_running_trials_are_stale(storage: LeasedJournalStorage) -> None:
    study = _study(storage)
    here = Process.current()
    now = time.time()
    elsewhere = Process("other-host", "boot/pid:[1]", here.pid, None)
    cases = {
        "fresh lease on another machine": (Lease(0, elsewhere, now, now), False),
        "expired lease on another machine": (Lease(0, elsewhere, now - 60, now - 3), True),
        "this machine, pid gone": (
            Lease(0, replace(here, pid=_dead_pid(), pid_start=None), now, now),
            True,
        ),
        "this machine, pid now another process": (
            Lease(0, replace(here, pid_start=(here.pid_start or 0) + 1), now, now),
            here.pid_start is not None,
        ),
        "this process, renewing": (Lease(0, here, now, now), False),
        "no lease": (None, False),
    }
    numbers = {name: _running_trial(study, lease) for name, (lease, _) in cases.items()}
    # A lease copied from the trial a retry retries is not the retry's own: never stale.
    inherited = study.ask()
    old = Lease(12345, elsewhere, now - 60, now - 60).to_json()
    storage.set_trial_system_attr(_compat.trial_id(inherited), attrs.LEASE, old)
    assert own_lease(study.trials[inherited.number]) is None

    expected = {numbers[name] for name, (_, stale) in cases.items() if stale}
    assert _stale_numbers(storage, study) == expected


def test_a_lease_without_proc_is_judged_by_its_age_only(storage: LeasedJournalStorage) -> None:
    study = _study(storage)
    here = Process.current()
    unknown = replace(here, machine="", pid=_dead_pid())
    now = time.time()
    fresh = _running_trial(study, Lease(0, unknown, now, now))
    old = _running_trial(study, Lease(0, unknown, now - 60, now - 5))
    assert _stale_numbers(storage, study) == {old}
    assert fresh != old


@pytest.mark.parametrize(
    "data",
    [None, "x", [], {"trial_id": 1}, {"trial_id": True, "holder": {}}, {"holder": "h"}],
)
def test_malformed_leases_are_no_leases(data: object) -> None:
    assert Lease.from_json(data) is None


def test_heartbeat_renews_the_lease(storage: LeasedJournalStorage) -> None:
    study = _study(storage)
    trial = study.ask()
    storage.record_heartbeat(_compat.trial_id(trial))
    first = own_lease(study.trials[0])
    time.sleep(0.01)
    storage.record_heartbeat(_compat.trial_id(trial))
    second = own_lease(study.trials[0])
    assert first is not None and second is not None
    assert second.acquired == first.acquired < second.renewed
    assert second.holder == Process.current()
    # Once another worker has failed the trial, renewing it is quietly given up.
    storage.set_trial_state_values(_compat.trial_id(trial), TrialState.FAIL)
    storage.record_heartbeat(_compat.trial_id(trial))


def _stale_trial_is_failed_and_retried(storage: optuna.storages.BaseStorage) -> None:
    study = _study(storage)
    here = Process.current()
    dead = replace(here, pid=_dead_pid(), pid_start=None)
    killed = _running_trial(study, Lease(0, dead, time.time(), time.time()))
    seen: list[tuple[int, dict[int, float], list[int]]] = []

    def objective(trial: optuna.trial.Trial) -> float:
        frozen = _compat.frozen(trial)
        seen.append((trial.number, frozen.intermediate_values, _compat.retry_history(frozen)))
        return 1.0

    study.optimize(objective, n_trials=1)
    trials = study.trials
    assert trials[killed].state == TrialState.FAIL
    # The next trial run is the retry, with Optuna's retry attrs and the values reported.
    ((number, values, history),) = seen
    assert history == [killed]
    assert values == {0: 0.5}
    assert trials[number].system_attrs["failed_trial"] == killed
    assert trials[number].state == TrialState.COMPLETE
    # The worker took its own lease while it ran the retry.
    lease = own_lease(trials[number])
    assert lease is not None and lease.holder == here


def test_a_dead_workers_trial_is_failed_and_retried_on_a_journal_file(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "j.log"), must_exist=False, heartbeat_interval=1)
    assert isinstance(storage, LeasedJournalStorage)
    _stale_trial_is_failed_and_retried(storage)


def test_a_dead_workers_trial_is_failed_and_retried_at_once_on_sqlite(tmp_path: Path) -> None:
    # A heartbeat of a minute: only the lease can tell that the worker is gone.
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = open_storage(url, must_exist=False, heartbeat_interval=60)
    assert isinstance(storage, LeasedRDBStorage)
    _stale_trial_is_failed_and_retried(storage)


def test_on_a_database_the_lease_adds_gone_workers_and_leaves_age_to_the_heartbeat(
    tmp_path: Path,
) -> None:
    storage = LeasedRDBStorage(
        f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1, skip_table_creation=False
    )
    study = _study(storage)
    here, now = Process.current(), time.time()
    elsewhere = Process("other-host", "boot/pid:[1]", here.pid, None)
    gone = _running_trial(study, Lease(0, replace(here, pid=_dead_pid()), now, now))
    _running_trial(study, Lease(0, here, now, now))
    _running_trial(study, Lease(0, elsewhere, now - 60, now - 30))  # no heartbeat row either
    assert _stale_numbers(storage, study) == {gone}


def test_a_dead_workers_trial_is_failed_and_retried_on_redis() -> None:
    try:
        import redis

        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except Exception as exc:  # any reason the server cannot be used: skip, saying which
        pytest.skip(f"Redis at {REDIS} is not usable: {exc}")
    prefix = f"sm2-test-{uuid.uuid4().hex[:8]}:"
    backend = JournalRedisBackend(REDIS, prefix=prefix)
    try:
        _stale_trial_is_failed_and_retried(LeasedJournalStorage(backend, heartbeat_interval=1))
    finally:
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)


def test_journal_storages_for_reading_have_no_lease(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    assert not isinstance(open_storage(str(path), must_exist=False), LeasedJournalStorage)
    assert os.path.exists(path)
