"""Kill a worker on a journal file (SIGKILL, Ctrl-C): its trial is failed, retried and resumed.

Optuna 5's journal storage has no heartbeat; the worker's lease stands in for it (see
docs/reliability.md). On one machine a dead worker's lease is recognised at once (its pid is
gone), so the next worker retries the trial without waiting for the lease to expire.
"""

from __future__ import annotations

import signal
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_sm2 import attrs
from optuna_sm2.cli._common import open_storage
from optuna_sm2.cli._lease import own_lease
from optuna_sm2.training._checkpoint import study_directory
from tests.support.workers import start_worker, wait_until_training_past_a_checkpoint

SCHEDULE = ["--epochs-per-rung", "2", "--final-epochs", "4", "--n-lrs", "6"]


def _trials(journal: str, name: str) -> dict[int, FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=open_storage(journal))
    return {t.number: t for t in study.trials}


def _kill_mid_trial(tmp_path: Path, name: str, sig: int) -> tuple[str, Path, str]:
    journal, ckpt = str(tmp_path / "study.log"), tmp_path / "ckpt"
    worker = start_worker(journal, name, 12, ckpt, *SCHEDULE)
    wait_until_training_past_a_checkpoint(worker, journal, name, ckpt)
    worker.send_signal(sig)
    _, err = worker.communicate(timeout=60)
    return journal, ckpt, err


def _resume(
    journal: str, ckpt: Path, name: str, before: dict[int, FrozenTrial], killed: int
) -> None:
    again = start_worker(journal, name, 1, ckpt, *SCHEDULE)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    after = _trials(journal, name)
    for number, t in before.items():
        if t.state.is_finished() and number != killed:
            assert after[number].state == t.state
            assert after[number].user_attrs == t.user_attrs
            assert after[number].intermediate_values == t.intermediate_values
    assert after[killed].state == TrialState.FAIL
    (retry,) = [t for t in after.values() if t.system_attrs.get("failed_trial") == killed]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.user_attrs[attrs.RESUMED_FROM] == killed
    assert retry.params == after[killed].params
    assert own_lease(retry) is not None  # the new worker leased the retry while it ran it


def test_sigkill_on_a_journal_file_then_resume(tmp_path: Path) -> None:
    journal, ckpt, _ = _kill_mid_trial(tmp_path, "jkill", signal.SIGKILL)
    before = _trials(journal, "jkill")
    (killed,) = [n for n, t in before.items() if t.state == TrialState.RUNNING]
    assert own_lease(before[killed]) is not None
    study = optuna.load_study(study_name="jkill", storage=open_storage(journal))
    assert (study_directory(ckpt, study) / f"{killed}.pt").exists()
    # No waiting for the lease to expire: the killed worker's pid is gone on this machine.
    _resume(journal, ckpt, "jkill", before, killed)


def test_ctrl_c_fails_and_queues_the_trial_then_resume(tmp_path: Path) -> None:
    journal, ckpt, err = _kill_mid_trial(tmp_path, "jint", signal.SIGINT)
    assert err == "optuna-sm2 worker: interrupted\n"
    before = _trials(journal, "jint")
    (interrupted,) = [n for n, t in before.items() if t.system_attrs.get("retry_history")]
    queued = before[interrupted]
    assert queued.state == TrialState.WAITING
    killed = queued.system_attrs["failed_trial"]
    assert before[killed].state == TrialState.FAIL
    assert not [t for t in before.values() if t.state == TrialState.RUNNING]
    _resume(journal, ckpt, "jint", before, killed)
