"""optimize_synchronous called again on an interrupted study finishes it where it stopped.

Interrupts come from a step callback (Ctrl-C lands there as ``KeyboardInterrupt``) or from a
patched call between the steps of a decision; SIGKILL of a real process is in
``tests/distributed/test_synchronous_kill.py``. The objective is deterministic (energy counted in
batches), so a run resumed without checkpoints (retries train again from their
configuration's seed) must take the very decisions of an uninterrupted run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2 import SM2Objective, _compat, attrs, optimize_synchronous
from optuna_sm2._process import Process
from optuna_sm2.analysis._summary import summarize_study
from optuna_sm2.training import _run_lease, _synchronous
from optuna_sm2.training._run_lease import RunLease, stored_lease
from tests.support.storages import STORAGE_KINDS, make_storage
from tests.support.synchronous import (
    POINTS,
    InterruptAt,
    assert_finished,
    counting_objective,
    outcomes,
)


def _study(storage: Any, objective: SM2Objective, name: str = "sync") -> optuna.Study:
    return optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        pruner=objective.make_pruner(),
        load_if_exists=True,
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def uninterrupted() -> dict[int, tuple[str, int]]:
    objective = counting_objective()
    study = _study(None, objective)
    optimize_synchronous(study, objective)
    assert_finished(study, objective)
    return outcomes(study)


def _interrupt_then_resume(
    storage: Any, point: str, checkpoint_dir: Path | None
) -> tuple[optuna.Study, SM2Objective]:
    interrupt = InterruptAt(POINTS[point])
    first = counting_objective(checkpoint_dir=checkpoint_dir, callbacks=[interrupt])
    with pytest.raises(KeyboardInterrupt):
        optimize_synchronous(_study(storage, first), first)
    assert interrupt.fired
    objective = counting_objective(checkpoint_dir=checkpoint_dir)
    study = _study(storage, objective)
    optimize_synchronous(study, objective)
    return study, objective


@pytest.mark.parametrize("point", list(POINTS))
def test_resumed_without_checkpoints_decides_as_an_uninterrupted_run(
    tmp_path: Path, point: str, uninterrupted: dict[int, tuple[str, int]]
) -> None:
    storage = optuna.storages.InMemoryStorage()
    study, objective = _interrupt_then_resume(storage, point, None)
    assert_finished(study, objective)
    assert outcomes(study) == uninterrupted


@pytest.mark.parametrize("kind", STORAGE_KINDS)
@pytest.mark.parametrize("point", ["between rungs", "during the final epochs"])
def test_resumed_with_checkpoints_continues_from_them(
    tmp_path: Path, kind: str, point: str
) -> None:
    storage = make_storage(kind, tmp_path)
    study, objective = _interrupt_then_resume(storage, point, tmp_path / "ckpt")
    assert_finished(study, objective)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed  # the trial the interrupt stopped mid-block
    for trial in failed:
        (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == trial.number]
        assert retry.user_attrs[attrs.RESUMED_FROM] == trial.number
        assert retry.params == trial.params
    report = summarize_study(study)
    assert report.total_energy_j == pytest.approx(
        sum(t.user_attrs.get(attrs.ENERGY_TOTAL_J, 0.0) for t in study.trials)
    )


def test_a_finished_study_is_left_as_it_is(tmp_path: Path) -> None:
    objective = counting_objective()
    study = _study(make_storage("journal", tmp_path), objective)
    optimize_synchronous(study, objective)
    before = [(t.number, t.state, t.user_attrs, t.system_attrs) for t in study.trials]
    optimize_synchronous(study, objective)
    after = [(t.number, t.state, t.user_attrs, t.system_attrs) for t in study.trials]
    assert after == before


def test_interrupted_mid_decision_keeps_the_losers_told_and_decides_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uninterrupted: dict[int, tuple[str, int]]
) -> None:
    storage = make_storage("journal", tmp_path)
    objective = counting_objective()
    study = _study(storage, objective)
    told: list[int] = []
    tell = study.tell

    def tell_twice_then_interrupt(trial: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("state") == TrialState.PRUNED and len(told) == 2:
            raise KeyboardInterrupt
        told.append(1)
        return tell(trial, *args, **kwargs)

    monkeypatch.setattr(study, "tell", tell_twice_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        optimize_synchronous(study, objective)
    stored = _study(storage, objective)
    assert [t.state for t in stored.trials].count(TrialState.PRUNED) == 2
    assert attrs.SYNCHRONOUS_DECIDED not in _compat.study_system_attrs(stored)
    optimize_synchronous(stored, counting_objective())
    assert_finished(stored, objective)
    assert outcomes(stored) == uninterrupted


def test_a_retry_queued_but_its_trial_not_failed_is_taken_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = make_storage("journal", tmp_path)
    first = counting_objective(callbacks=[InterruptAt(POINTS["between rungs"])])
    with pytest.raises(KeyboardInterrupt):
        optimize_synchronous(_study(storage, first), first)
    queue_retry = _compat.queue_retry

    def queue_then_die(study: optuna.Study, trial: Any) -> None:
        queue_retry(study, trial)
        raise KeyboardInterrupt  # killed between queueing the retry and failing the trial

    monkeypatch.setattr(_synchronous._compat, "queue_retry", queue_then_die)
    objective = counting_objective()
    with pytest.raises(KeyboardInterrupt):
        optimize_synchronous(_study(storage, objective), objective)
    monkeypatch.undo()
    study = _study(storage, objective)
    optimize_synchronous(study, objective)
    assert_finished(study, objective)


def test_n_trials_counts_configurations_and_batch_sizes_are_queued_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uninterrupted: dict[int, tuple[str, int]]
) -> None:
    storage = make_storage("journal", tmp_path)
    objective = counting_objective()
    study = _study(storage, objective)
    enqueue = study.enqueue_trial
    calls: list[int] = []

    def enqueue_three(params: dict[str, Any], **kwargs: Any) -> None:
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while queueing the batch sizes
        calls.append(1)
        enqueue(params, **kwargs)

    monkeypatch.setattr(study, "enqueue_trial", enqueue_three)
    with pytest.raises(KeyboardInterrupt):
        optimize_synchronous(study, objective, n_trials=8)
    assert len(optuna.load_study(study_name="sync", storage=storage).trials) == 3
    study = _study(storage, objective)
    optimize_synchronous(study, objective, n_trials=8)
    assert len(study.trials) == 8  # not 8 more
    assert_finished(study, objective)
    assert outcomes(study) == uninterrupted


def test_no_configuration_joins_after_a_rung_was_decided(tmp_path: Path) -> None:
    storage = make_storage("journal", tmp_path)
    first = counting_objective(callbacks=[InterruptAt(POINTS["between rungs"])])
    with pytest.raises(KeyboardInterrupt):
        optimize_synchronous(_study(storage, first), first)
    study = _study(storage, first)
    before = [(t.number, t.state, t.system_attrs) for t in study.trials]
    lease_before = stored_lease(study)
    with pytest.raises(ValueError, match="`n_trials` 9 asks for 1 configurations more"):
        optimize_synchronous(study, counting_objective(), n_trials=9)
    assert [(t.number, t.state, t.system_attrs) for t in study.trials] == before
    assert stored_lease(study) == lease_before  # refused before anything was written


def test_another_schedule_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    storage = make_storage("journal", tmp_path)
    first = counting_objective(callbacks=[InterruptAt(POINTS["between rungs"])])
    with pytest.raises(KeyboardInterrupt):
        optimize_synchronous(_study(storage, first), first)
    other = counting_objective(epochs_per_rung=2)
    study = optuna.create_study(
        storage=storage,
        study_name="sync",
        direction="maximize",
        pruner=other.make_pruner(),
        load_if_exists=True,
    )
    before = [(t.number, t.state, t.system_attrs) for t in study.trials]
    lease = stored_lease(study)
    with pytest.raises(ValueError, match="`objective` has another schedule than study 'sync'"):
        optimize_synchronous(study, other)
    assert [(t.number, t.state, t.system_attrs) for t in study.trials] == before
    assert stored_lease(study) == lease


def test_running_trials_no_synchronous_run_started_are_refused(tmp_path: Path) -> None:
    objective = counting_objective()
    study = _study(f"sqlite:///{tmp_path / 's.db'}", objective)
    study.ask()  # a worker's trial, say: RUNNING, and the study holds no lease
    with pytest.raises(ValueError, match=r"`study` 'sync' holds RUNNING trials \[0\]"):
        optimize_synchronous(study, objective)
    assert stored_lease(study) is None
    assert [t.state for t in study.trials] == [TrialState.RUNNING]


def _lease(holder: Process, renewed_ago: float, interval: float = 60.0) -> dict[str, Any]:
    now = time.time()
    return RunLease("other-run", holder, now - 100.0, now - renewed_ago, interval).to_json()


def test_a_live_lease_is_refused_and_a_stale_one_taken(tmp_path: Path) -> None:
    objective = counting_objective()
    study = _study(make_storage("journal", tmp_path), objective)
    here = Process.current()
    elsewhere = Process("elsewhere", "boot/pid:[1]", 4242, None)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    alive = replace(here, pid=sleeper.pid, pid_start=None)
    try:
        live = {
            "a live process of this machine": _lease(alive, renewed_ago=5.0),
            "another machine, renewed lately": _lease(elsewhere, renewed_ago=30.0),
        }
        for case, lease in live.items():
            _compat.set_study_system_attr(study, attrs.SYNCHRONOUS_LEASE, lease)
            with pytest.raises(ValueError, match="is being run by optimize_synchronous in"):
                optimize_synchronous(study, objective)
            assert study.trials == [], case
            assert stored_lease(study) == RunLease.from_json(lease), case
    finally:
        sleeper.kill()
        sleeper.wait()
    stale = {
        "a process of this machine, gone": _lease(alive, renewed_ago=5.0),
        "another machine, silent for two intervals": _lease(elsewhere, renewed_ago=121.0),
        "released": {**_lease(here, renewed_ago=0.0), "released": True},
        "this process, held by no run of it": _lease(here, renewed_ago=0.0),
    }
    for case, lease in stale.items():
        _compat.set_study_system_attr(study, attrs.SYNCHRONOUS_LEASE, lease)
        optimize_synchronous(study, objective)
        taken = stored_lease(study)
        assert taken is not None and taken.run != "other-run", case
        assert taken.holder == here and taken.released, case
    assert_finished(study, objective)


def test_the_lease_is_renewed_and_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_run_lease, "DEFAULT_INTERVAL_S", 0.05)
    seen: list[RunLease] = []

    def look(trial: optuna.trial.Trial, result: Any) -> None:
        lease = stored_lease(trial.study)
        assert lease is not None
        seen.append(lease)
        time.sleep(0.02)

    objective = counting_objective(callbacks=[look])
    study = _study(make_storage("journal", tmp_path), objective)
    optimize_synchronous(study, objective)
    assert {lease.run for lease in seen} == {seen[0].run}
    assert not any(lease.released for lease in seen)
    assert seen[-1].renewed > seen[0].renewed  # renewed while the run went on
    final = stored_lease(study)
    assert final is not None and final.released and final.holder.pid == os.getpid()


def test_a_run_whose_lease_was_taken_over_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_run_lease, "DEFAULT_INTERVAL_S", 0.2)
    elsewhere = Process("elsewhere", "boot/pid:[1]", 4242, None)

    def taken_over(trial: optuna.trial.Trial, result: Any) -> None:
        if result.step == 0 and result.batch_size == 4:
            # Right after a renewal (a renewal reads, then writes: a write landing in between
            # would be overwritten, and then the other run would stop instead).
            first = stored_lease(trial.study)
            while stored_lease(trial.study) == first:
                time.sleep(0.005)
            lease = _lease(elsewhere, renewed_ago=0.0)
            _compat.set_study_system_attr(trial.study, attrs.SYNCHRONOUS_LEASE, lease)
            time.sleep(0.5)  # the next renewal finds the other run's lease

    objective = counting_objective(callbacks=[taken_over])
    study = _study(make_storage("journal", tmp_path), objective)
    with pytest.raises(ValueError, match="was taken over by another optimize_synchronous run"):
        optimize_synchronous(study, objective)
    lease = stored_lease(study)
    assert lease is not None and lease.run == "other-run"  # left to the run that took it
