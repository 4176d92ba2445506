"""A failing storage (refused, read-only, locked, damaged): one line, exit 2, nothing created."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests.support.cli import assert_refused, demo_study, fingerprint, run_cli

TINY = ["--epochs-per-rung", "1", "--final-epochs", "1", "--n-lrs", "3"]


def _commands(storage: str, tmp_path: Path) -> dict[str, list[str]]:
    """One reading and two writing commands on ``storage``."""
    return {
        "report": ["report", "--storage", storage, "--study", "s"],
        "worker": [
            *("worker", "--storage", storage, "--study", "s", "--scenario", "demo"),
            *("--n-trials", "1", "--checkpoint-dir", str(tmp_path / "ckpt"), *TINY),
        ],
        "demo": ["demo", "--storage", storage, "--study", "s", *TINY],
    }


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the demo checkpoints under ./studies


def _refused_everywhere(storage: str, tmp_path: Path, *mentions: str) -> None:
    for command, argv in _commands(storage, tmp_path).items():
        assert_refused(*run_cli(argv), command, *mentions)
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "studies").exists()


@pytest.mark.parametrize(
    ("storage", "mention"),
    [
        ("redis://127.0.0.1:1", "Connection refused"),
        ("postgresql://nobody@127.0.0.1:1/x", "cannot open storage postgresql://"),
    ],
)
def test_unreachable_servers(storage: str, mention: str, tmp_path: Path) -> None:
    _refused_everywhere(storage, tmp_path, mention)


def test_a_damaged_sqlite_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"not a database\n" * 200)
    _refused_everywhere(f"sqlite:///{path}", tmp_path, "file is not a database")
    assert path.read_bytes() == b"not a database\n" * 200


def test_a_damaged_journal_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.log"
    path.write_text('xx\n{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\n')
    before = fingerprint(path)
    _refused_everywhere(str(path), tmp_path, f"cannot open journal file {path}")
    assert fingerprint(path) == before


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[str]:
    """A SQLite study file another connection holds an exclusive lock on."""
    path = tmp_path / "s.db"
    demo_study(f"sqlite:///{path}", "s", n_trials=1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield f"sqlite:///{path}?timeout=0.1"
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_locked_sqlite_file(locked: str, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    before = fingerprint(path)
    _refused_everywhere(locked, tmp_path, "database is locked")
    assert fingerprint(path) == before


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A SQLite file of Optuna's schema holding no study, that no one may write."""
    path = tmp_path / "s.db"
    optuna.storages.RDBStorage(f"sqlite:///{path}")
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("running as root, and chattr +i does not work here")
        try:
            yield path
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        tmp_path.chmod(0o555)  # nor may SQLite create its journal beside it
        try:
            yield path
        finally:
            tmp_path.chmod(0o755)


def test_a_read_only_sqlite_file(read_only: Path, tmp_path: Path) -> None:
    before = fingerprint(read_only)
    commands = _commands(f"sqlite:///{read_only}", tmp_path)
    for command in ("worker", "demo"):
        assert_refused(*run_cli(commands[command]), command, "readonly database")
    assert_refused(*run_cli(commands["report"]), "report", "no study named 's'")
    assert fingerprint(read_only) == before


def test_a_refused_worker_creates_no_folder(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    storage = f"sqlite:///{tmp_path / 'new' / 'study.db'}"
    argv = _commands(storage, tmp_path)["worker"]
    assert_refused(*run_cli([*argv, "--gpu", "0"]), "worker", "torch sees no CUDA device")
    assert not (tmp_path / "new").exists()


def test_a_nul_in_a_storage_url(tmp_path: Path) -> None:
    _refused_everywhere("sqlite:///a\x00b.db", tmp_path, "NUL")


_FULL_DISK = """
import resource, signal, sys
from optuna_sm2.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(main(sys.argv[2:]))
"""


def _with_file_limit(limit: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``optuna-sm2 argv`` in a process whose files may not grow past ``limit`` bytes."""
    return subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(limit), *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_full_disk_while_creating_a_sqlite_file(tmp_path: Path) -> None:
    """No file may grow past 96 KiB (``RLIMIT_FSIZE``: a write past it fails with ``EFBIG``, as
    a full disk fails it with ``ENOSPC``; Optuna's empty schema takes 112 KiB): the new SQLite
    file is not made at all, so the next command, with space, makes it whole."""
    path = tmp_path / "new.db"
    argv = _commands(f"sqlite:///{path}", tmp_path)["worker"]
    done = _with_file_limit(96 << 10, argv)
    assert_refused(done.returncode, done.stdout, done.stderr, "worker", "cannot open storage")
    assert os.listdir(tmp_path) == []
    assert run_cli(argv)[0] == 0
    assert run_cli(["report", "--storage", f"sqlite:///{path}", "--study", "s"])[0] == 0


def test_a_read_only_checkpoint_folder_is_refused_before_any_trial(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root, and chattr +i does not work here")
    else:
        folder.chmod(0o555)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    try:
        err = assert_refused(*run_cli(_commands(storage, tmp_path)["worker"]), "worker")
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)
    assert f"--checkpoint-dir {folder} cannot be written" in err
    assert not (tmp_path / "s.db").exists()


def test_a_full_checkpoint_folder_is_refused_before_any_trial(tmp_path: Path) -> None:
    """Files may not grow past 8 KiB (as on a full disk): refused before the study is made."""
    argv = _commands(f"sqlite:///{tmp_path / 's.db'}", tmp_path)["worker"]
    done = _with_file_limit(8 << 10, argv)
    err = assert_refused(done.returncode, done.stdout, done.stderr, "worker")
    assert f"--checkpoint-dir {tmp_path / 'ckpt'} cannot be written" in err
    assert os.listdir(tmp_path) == []
