"""A journal file after a crash or a full disk: a torn last record is cut and kept, a failed
append is undone, and every command still reads every finished trial."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

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
