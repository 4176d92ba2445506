"""A journal file after a crash or a full disk: a torn last record is cut and kept, a failed
append is undone, and every command still reads every finished trial."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tests.support.cli import assert_refused, fingerprint, run_cli

TINY = ["--epochs-per-rung", "1", "--final-epochs", "1", "--n-lrs", "3"]
TORN = b'{"op_code":5,"worker_id":"w","trial_id":0,"st'


def _worker(journal: Path, tmp_path: Path) -> list[str]:
    return [
        *("worker", "--storage", str(journal), "--study", "s", "--scenario", "demo"),
        *("--n-trials", "1", "--checkpoint-dir", str(tmp_path / "ckpt"), *TINY),
    ]


def _plain_states(journal: Path) -> list[TrialState]:
    """The trials' states as plain Optuna reads the file."""
    storage = JournalStorage(JournalFileBackend(str(journal)))
    return [t.state for t in optuna.load_study(study_name="s", storage=storage).trials]


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
    with pytest.warns(RuntimeWarning, match="torn record"):
        code, out, err = run_cli(_worker(journal, tmp_path))
    assert code == 0, (out, err)
    assert journal.read_bytes().startswith(whole)
    (kept,) = tmp_path.glob("s.log.torn-*")
    assert kept.read_bytes() == TORN
    assert _plain_states(journal) == [TrialState.COMPLETE] * 2
    assert run_cli(["report", "--storage", str(journal), "--study", "s"])[0] == 0


_FULL_DISK = """
import resource, signal, sys
from optuna_sm2.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(main(sys.argv[2:]))
"""


def test_a_full_disk_during_a_workers_append(journal: Path, tmp_path: Path) -> None:
    """The file may grow by 40 bytes only (``RLIMIT_FSIZE``: a write past it is cut short with
    ``EFBIG``, as a full disk cuts it with ``ENOSPC``): one line, exit 2, the journal as it was."""
    before = fingerprint(journal)
    limit = journal.stat().st_size + 40
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(limit), *_worker(journal, tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_refused(done.returncode, done.stdout, done.stderr, "worker", "cannot", str(journal))
    assert "the journal is left as it was" in done.stderr
    assert fingerprint(journal) == before
    code, out, err = run_cli(_worker(journal, tmp_path))
    assert code == 0, (out, err)
    assert _plain_states(journal) == [TrialState.COMPLETE] * 2
