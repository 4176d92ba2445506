"""SIGKILL a worker mid-trial: nothing stored is lost, the trial is retried and resumes."""

from __future__ import annotations

import signal
import time

import optuna
from optuna.trial import TrialState

from optuna_sm2 import attrs
from optuna_sm2.analysis._summary import summarize_study
from optuna_sm2.cli._lease import own_lease
from optuna_sm2.training._checkpoint import study_directory
from tests.support.workers import start_worker, wait_until_training_past_a_checkpoint

SCHEDULE = ["--epochs-per-rung", "2", "--final-epochs", "4", "--n-lrs", "6"]
HEARTBEAT = ["--heartbeat-interval", "1"]


def test_sigkill_mid_trial_then_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    ckpt = tmp_path / "ckpt"
    worker = start_worker(url, "crash", 12, ckpt, *SCHEDULE, *HEARTBEAT)
    wait_until_training_past_a_checkpoint(worker, url, "crash", ckpt)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)

    killed_study = optuna.load_study(study_name="crash", storage=url)
    before = {t.number: t for t in killed_study.trials}
    (killed,) = [n for n, t in before.items() if t.state == TrialState.RUNNING]  # stale now
    assert (study_directory(ckpt, killed_study) / f"{killed}.pt").exists()
    # One directory per study: its name, id and storage.
    assert [p.name for p in ckpt.iterdir()] == [study_directory(ckpt, killed_study).name]
    time.sleep(3)  # past the grace period (2 heartbeats) of the killed trial

    again = start_worker(url, "crash", 1, ckpt, *SCHEDULE, *HEARTBEAT)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name="crash", storage=url)
    after = {t.number: t for t in study.trials}
    # Every trial finished before the kill is intact, energy attributes included.
    for number, t in before.items():
        if t.state.is_finished():
            assert after[number].state == t.state
            assert after[number].user_attrs == t.user_attrs
            assert after[number].intermediate_values == t.intermediate_values
    # The stale trial became FAIL with what it had stored; its retry resumed from its checkpoint.
    assert after[killed].state == TrialState.FAIL
    assert after[killed].user_attrs == before[killed].user_attrs
    (retry,) = [t for t in after.values() if t.system_attrs.get("failed_trial") == killed]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.user_attrs[attrs.RESUMED_FROM] == killed
    assert retry.params == after[killed].params
    # The lost work is counted once: in the failed trial; the retry books only its own spend.
    lost = after[killed].user_attrs[attrs.ENERGY_TOTAL_J]
    own = retry.user_attrs[attrs.ENERGY_TOTAL_J]
    assert own != lost
    report = summarize_study(study)
    assert report.total_energy_j == sum(t.user_attrs[attrs.ENERGY_TOTAL_J] for t in after.values())


def test_a_worker_started_again_at_once_retries_the_killed_trial(tmp_path):
    # The default heartbeat (60 s) has not expired: the lease tells that the worker is gone.
    url = f"sqlite:///{tmp_path / 'again.db'}"
    ckpt = tmp_path / "ckpt"
    worker = start_worker(url, "again", 12, ckpt, *SCHEDULE)
    wait_until_training_past_a_checkpoint(worker, url, "again", ckpt)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    before = {t.number: t for t in optuna.load_study(study_name="again", storage=url).trials}
    (killed,) = [n for n, t in before.items() if t.state == TrialState.RUNNING]
    assert own_lease(before[killed]) is not None

    again = start_worker(url, "again", 1, ckpt, *SCHEDULE)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    after = {t.number: t for t in optuna.load_study(study_name="again", storage=url).trials}
    assert after[killed].state == TrialState.FAIL
    (retry,) = [t for t in after.values() if t.system_attrs.get("failed_trial") == killed]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.user_attrs[attrs.RESUMED_FROM] == killed
    assert not [t for t in after.values() if t.state == TrialState.RUNNING]
