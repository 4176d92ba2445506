"""A storage lost in the middle of a worker's trial: a SQLite file locked, a PostgreSQL or Redis
server cut off, a journal's disk full. The worker ends with one line and exit code 2, and the
trial it was running is failed and retried by the next worker once the storage is back."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2.cli._common import open_storage
from tests.support.cli import assert_refused, run_cli
from tests.support.servers import Proxy, postgres_database, redis_database

TINY = ["--epochs-per-rung", "1", "--final-epochs", "1", "--n-lrs", "3"]

_PAUSED_WORKER = """
import os, resource, signal, sys, time
import optuna
from optuna_sm2.cli import main

paused, go = sys.argv[1], sys.argv[2]
should_prune = optuna.trial.Trial.should_prune


def pause_at_the_first_rung(self):
    if not os.path.exists(paused):
        open(paused, "w").close()
        while not os.path.exists(go):
            time.sleep(0.05)
        with open(go) as f:
            limit = f.read()
        if limit:  # the disk fills up: the journal may grow by a few bytes only
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
    return should_prune(self)


optuna.trial.Trial.should_prune = pause_at_the_first_rung
sys.exit(main(sys.argv[3:]))
"""

Break = Callable[[], Iterator[str]]
"""Loses the storage when entered (yielding what the go file says), restores it on exit."""


def _worker(storage: str, tmp_path: Path) -> list[str]:
    return [
        *("worker", "--storage", storage, "--study", "s", "--scenario", "demo"),
        *("--n-trials", "1", "--checkpoint-dir", str(tmp_path / "ckpt"), *TINY),
    ]


def _paused_worker(storage: str, tmp_path: Path) -> subprocess.Popen[str]:
    """A worker process, once it has paused at its trial's first rung (until ``go`` exists)."""
    paused, go = tmp_path / "paused", tmp_path / "go"
    worker = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_WORKER, str(paused), str(go), *_worker(storage, tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not paused.exists():
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return worker


def _go_on(
    worker: subprocess.Popen[str], tmp_path: Path, limit: object = None
) -> tuple[int, str, str]:
    """Let the paused worker go on (with the file size ``limit``, if any); its exit code,
    stdout and stderr."""
    (tmp_path / "go").write_text(str(limit or ""))
    out, err = worker.communicate(timeout=300)
    return worker.returncode, out, err


def _lose_mid_trial(storage: str, tmp_path: Path, lose: Callable[[], object]) -> str:
    """Run a worker until its trial's first rung, lose the storage (``lose()`` returns a file
    size limit, or ``None``), let the worker go on; its stderr. Asserts one line and exit 2."""
    worker = _paused_worker(storage, tmp_path)
    return assert_refused(*_go_on(worker, tmp_path, lose()), "worker", "cannot write to")


def _retried_by_the_next_worker(storage: str, tmp_path: Path) -> None:
    study = optuna.load_study(study_name="s", storage=open_storage(storage))
    assert [t.state for t in study.trials] == [TrialState.RUNNING]
    code, out, err = run_cli(_worker(storage, tmp_path))
    assert code == 0, (out, err)
    trials = optuna.load_study(study_name="s", storage=open_storage(storage)).trials
    assert [t.state for t in trials][:1] == [TrialState.FAIL]
    assert trials[1].system_attrs.get("failed_trial") == trials[0].number
    assert trials[1].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert TrialState.RUNNING not in {t.state for t in trials}


def test_a_sqlite_file_locked_mid_trial(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}?timeout=0.2"
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)

    def lock() -> None:
        holder.execute("BEGIN EXCLUSIVE")

    err = _lose_mid_trial(storage, tmp_path, lock)
    assert "database is locked" in err
    holder.execute("ROLLBACK")
    holder.close()
    _retried_by_the_next_worker(storage, tmp_path)


@contextmanager
def _proxied(url: str, port: int) -> Iterator[tuple[str, Proxy]]:
    proxy = Proxy(port)
    try:
        yield proxy.url(url, port), proxy
    finally:
        proxy.cut()


def test_postgresql_cut_off_mid_trial(tmp_path: Path) -> None:
    with postgres_database() as url, _proxied(url, 5432) as (storage, proxy):
        _lose_mid_trial(storage, tmp_path, proxy.cut)
        proxy.resume()
        _retried_by_the_next_worker(storage, tmp_path)


def test_redis_cut_off_mid_trial(tmp_path: Path) -> None:
    with redis_database() as url, _proxied(url, 6379) as (storage, proxy):
        _lose_mid_trial(storage, tmp_path, proxy.cut)
        proxy.resume()
        _retried_by_the_next_worker(storage, tmp_path)


def test_a_journals_disk_full_mid_trial(tmp_path: Path) -> None:
    """The disk fills up (``RLIMIT_FSIZE``: a write past it is cut short with ``EFBIG``, as a
    full disk cuts it with ``ENOSPC``) after the first rung."""
    journal = tmp_path / "s.log"

    def fill() -> int:
        return journal.stat().st_size + 40

    err = _lose_mid_trial(str(journal), tmp_path, fill)
    assert "the journal is left as it was" in err
    _retried_by_the_next_worker(str(journal), tmp_path)


@pytest.mark.parametrize("kill", ["pg_terminate_backend", "CLIENT KILL"])
def test_a_connection_killed_by_the_server_mid_trial(kill: str, tmp_path: Path) -> None:
    """The server drops the worker's connections (and lets it connect again): the worker goes
    on and finishes its trial, or ends with one line; nothing is left RUNNING."""
    if kill == "CLIENT KILL":
        with redis_database() as storage:
            import redis

            client = redis.Redis.from_url(storage)
            _killed_mid_trial(storage, tmp_path, lambda: client.client_kill_filter(skipme=True))
        return
    with postgres_database() as storage:
        import psycopg

        with psycopg.connect(storage, autocommit=True) as admin:
            terminate = (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            _killed_mid_trial(storage, tmp_path, lambda: admin.execute(terminate))


def _killed_mid_trial(storage: str, tmp_path: Path, kill: Callable[[], object]) -> None:
    worker = _paused_worker(storage, tmp_path)
    kill()
    code, out, err = _go_on(worker, tmp_path)
    if code != 0:
        assert_refused(code, out, err, "worker", "cannot write to")
    else:
        assert "Traceback" not in err, err
    code, out, err = run_cli(_worker(storage, tmp_path))
    assert code == 0, (out, err)
    trials = optuna.load_study(study_name="s", storage=open_storage(storage)).trials
    assert TrialState.RUNNING not in {t.state for t in trials}
