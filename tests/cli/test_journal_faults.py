"""A journal file after a crash or a full disk: a torn last record is cut and kept, a failed
append is undone, and every command still reads every finished trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_sm2._process import Process
from optuna_sm2.cli._common import open_storage
from optuna_sm2.cli._journal_file import HolderLock
from tests.support.cli import run_cli

TINY = ["--epochs-per-rung", "1", "--final-epochs", "1", "--n-lrs", "3"]
TORN = b'{"op_code":5,"worker_id":"w","trial_id":0,"st'


def _worker(journal: Path, tmp_path: Path) -> list[str]:
    return [
        *("worker", "--storage", str(journal), "--study", "s", "--scenario", "demo"),
        *("--n-trials", "1", "--checkpoint-dir", str(tmp_path / "ckpt"), *TINY),
    ]


def _plain_states(journal: Path) -> list[bool]:
    """Whether each trial finished (COMPLETE or PRUNED), as plain Optuna reads the file."""
    storage = JournalStorage(JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="s", storage=storage).trials
    return [t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """A journal holding one trial that a worker finished."""
    path = tmp_path / "s.log"
    code, out, err = run_cli(_worker(path, tmp_path))
    assert code == 0, (out, err)
    return path


def test_a_worker_cuts_a_torn_tail_and_keeps_it(journal: Path, tmp_path: Path) -> None:
    whole = journal.read_bytes()
    with journal.open("ab") as f:
        f.write(TORN)
    code, out, err = run_cli(_worker(journal, tmp_path))
    assert code == 0, (out, err)
    (kept,) = tmp_path.glob("s.log.torn-*")
    assert f"optuna-sm2 worker: warning: journal {journal} ended in a torn record" in err
    assert f"kept in {kept}\n" in err
    assert journal.read_bytes().startswith(whole)
    assert kept.read_bytes() == TORN
    assert _plain_states(journal) == [True, True]
    assert run_cli(["report", "--storage", str(journal), "--study", "s"])[0] == 0


def _lock_of(process: Process, journal: Path) -> Path:
    lock = Path(f"{journal}.lock")
    lock.write_text(json.dumps(process.to_json()))
    return lock


def _acquire_in_a_thread(lock: HolderLock) -> threading.Thread:
    thread = threading.Thread(target=lock.acquire, daemon=True)
    thread.start()
    return thread


def test_a_killed_holders_journal_lock_is_broken_at_once(tmp_path: Path) -> None:
    """The lock of a process that has ended is broken without waiting for the grace period
    (an hour here; Optuna's lock waits 30 s)."""
    journal = tmp_path / "s.log"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = replace(Process.current(), pid=child.pid, pid_start=None)
    lock = _lock_of(dead, journal)
    with pytest.warns(RuntimeWarning, match=f"held by an ended process \\(pid {child.pid}\\)"):
        thread = _acquire_in_a_thread(HolderLock(str(journal), grace_period=3600))
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_live_holders_journal_lock_is_waited_for(tmp_path: Path) -> None:
    journal = tmp_path / "s.log"
    lock = _lock_of(Process.current(), journal)  # alive: this very process
    thread = _acquire_in_a_thread(HolderLock(str(journal), grace_period=3600))
    thread.join(timeout=1)
    assert thread.is_alive()
    lock.unlink()  # released
    thread.join(timeout=60)
    assert not thread.is_alive()


def test_journal_files_are_locked_by_their_holder(tmp_path: Path) -> None:
    """The commands' journal file uses the lock, and a stale one does not stop a command."""
    journal = tmp_path / "s.log"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    _lock_of(replace(Process.current(), pid=child.pid, pid_start=None), journal)
    storage = open_storage(str(journal), must_exist=False)
    with pytest.warns(RuntimeWarning, match="held by an ended process"):
        optuna.create_study(storage=storage, study_name="s")
    assert not Path(f"{journal}.lock").exists()
