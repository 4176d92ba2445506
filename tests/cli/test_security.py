"""Secrets and stored strings: storage passwords masked in every message, what the report and
the dashboard's notes show from storage escaped, and the dashboard answering only requests
addressed to it, read-only unless asked."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import optuna_dashboard
import pytest

from optuna_sm2.cli._dashboard_server import make_dashboard_server
from optuna_sm2.visualization import attach_to_dashboard
from tests.support.cli import assert_refused, run_cli
from tests.support.report_studies import build_sm2_study

SECRET = "S3cret%2FPass"
HOSTILE = "\x1b]0;owned\x07\x1b[2J\u202e<img src=x onerror=alert(1)>[x](javascript:alert(1))"


@pytest.mark.parametrize(
    "storage",
    [
        f"postgresql://postgres:{SECRET}@127.0.0.1:1/x",
        f"redis://:{SECRET}@127.0.0.1:1",
        f"mysql+pymysql://root:{SECRET}@127.0.0.1:1/x",
    ],
)
@pytest.mark.parametrize("command", ["report", "worker", "demo", "dashboard"])
def test_a_storage_password_is_masked_in_every_message(
    storage: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = [command, "--storage", storage, "--study", "s"]
    if command == "worker":
        argv += ["--scenario", "demo", "--n-trials", "1"]
    code, out, err = run_cli(argv)
    assert_refused(code, out, err, command, ":***@127.0.0.1:1")
    assert SECRET not in out + err and "S3cret/Pass" not in out + err


def test_the_report_escapes_terminal_control_characters(tmp_path: Path) -> None:
    url = build_sm2_study(tmp_path / "s.db", source=HOSTILE)
    code, out, err = run_cli(["report", "--storage", url, "--study", "sm2"])
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;owned\\x07\\x1b[2J\\u202e" in out


def test_the_dashboard_notes_escape_markup(tmp_path: Path) -> None:
    url = build_sm2_study(tmp_path / "s.db", source=HOSTILE)
    study = optuna.load_study(study_name="sm2", storage=url)
    attach_to_dashboard(study)
    notes = [optuna_dashboard.get_note(study)] + [
        optuna_dashboard.get_note(optuna.Trial(study, t._trial_id)) for t in study.trials
    ]
    text = "".join(notes)
    assert "&lt;img src=x" in text
    assert "<img" not in text and "](javascript" not in text


@contextmanager
def _serving(tmp_path: Path, *, allow_writes: bool = False) -> Iterator[tuple[str, int]]:
    url = build_sm2_study(tmp_path / "s.db")
    storage = optuna.storages.RDBStorage(url)
    server = make_dashboard_server(storage, "127.0.0.1", 0, quiet=True, allow_writes=allow_writes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url, server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _status(port: int, path: str, *, host: str | None = None, method: str = "GET") -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_dashboard_refuses_a_host_it_does_not_serve(tmp_path: Path) -> None:
    """A page of another site reaching the dashboard by DNS rebinding sends its own name."""
    with _serving(tmp_path) as (_, port):
        assert _status(port, "/api/studies") == 200
        assert _status(port, "/api/studies", host=f"localhost:{port}") == 200
        assert _status(port, "/api/studies", host=f"evil.example:{port}") == 403
        assert _status(port, "/api/studies", host=f"127.0.0.1:{port + 1}") == 403
        assert _status(port, "/api/studies", host="") == 403


def test_the_dashboard_is_read_only_unless_asked(tmp_path: Path) -> None:
    with _serving(tmp_path) as (url, port):
        assert _status(port, "/api/studies/1", method="DELETE") == 403
        assert optuna.get_all_study_names(url) == ["sm2"]
    (tmp_path / "w").mkdir()
    with _serving(tmp_path / "w", allow_writes=True) as (url, port):
        assert _status(port, "/api/studies/1", method="DELETE") in (200, 204)
        assert optuna.get_all_study_names(url) == []
