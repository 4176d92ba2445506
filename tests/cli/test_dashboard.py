from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import optuna
import pytest
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects

from optuna_sm2.cli import main
from optuna_sm2.cli._common import open_storage
from optuna_sm2.visualization import FIGURE_IDS
from tests.support.dashboard_studies import build_dashboard_study


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(["dashboard", *argv]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith("optuna-sm2 dashboard: error: ")
    return err


def _plain_study(url: str, name: str = "plain") -> None:
    optuna.create_study(storage=url, study_name=name).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1
    )


def test_attach_without_serving(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = build_dashboard_study(tmp_path / "s.db")
    _plain_study(url)
    assert main(["dashboard", "--storage", url, "--no-serve"]) == 0
    out = capsys.readouterr().out
    assert "study 'sm2': attached 4 figures, 4 trial notes updated" in out
    assert "skipped study 'plain': study 'plain' holds no SM² data" in out
    argv = ["dashboard", "--storage", url, "--study", "sm2", "--no-serve", "--alpha", "1"]
    assert main(argv) == 0
    assert "attached 4 figures, 4 trial notes updated" in capsys.readouterr().out
    study = optuna.load_study(study_name="sm2", storage=url)
    attrs = study._storage.get_study_system_attrs(study._study_id)
    graphs = get_plotly_graph_objects(attrs)
    assert sorted(graphs) == sorted(FIGURE_IDS.values())
    title = json.loads(graphs["sm2-rung-scores"])["layout"]["title"]["text"]
    assert "α=1, β=0.5" in title


def test_unknown_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = build_dashboard_study(tmp_path / "s.db")
    err = _error(capsys, ["--storage", url, "--study", "nope", "--no-serve"])
    assert "no study named 'nope'" in err and "available: sm2" in err


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ("studies.db", "did you mean sqlite:///studies.db?"),
        ("nonsense", "not a storage URL: 'nonsense'"),
        ("nosuchdialect://x/y", "cannot open storage nosuchdialect://x/y"),
        ("", "empty --storage"),
    ],
)
def test_malformed_url(storage: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert expected in _error(capsys, ["--storage", storage, "--no-serve"])


def test_missing_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing.db"
    err = _error(capsys, ["--storage", f"sqlite:///{path}", "--no-serve"])
    assert "does not exist" in err
    assert not path.exists()


def test_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "text.db"
    text.write_text("not a database\n" * 100)
    assert "cannot" in _error(capsys, ["--storage", f"sqlite:///{text}", "--no-serve"])
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert "cannot" in _error(capsys, ["--storage", f"sqlite:///{empty}", "--no-serve"])
    assert "is a directory" in _error(capsys, ["--storage", f"sqlite:///{tmp_path}", "--no-serve"])
    journal = tmp_path / "garbage.log"
    journal.write_bytes(b"\x00\xff not json\n")
    assert "holds no studies" in _error(capsys, ["--storage", str(journal), "--no-serve"])


def test_study_without_sm2_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    _plain_study(url)
    err = _error(capsys, ["--storage", url, "--study", "plain", "--no-serve"])
    assert "holds no SM² data" in err
    err = _error(capsys, ["--storage", url, "--no-serve"])
    assert "no study in" in err and "holds SM² data" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--alpha", "1.5"], "--alpha must be in [0, 1], got 1.5"),
        (["--beta", "-0.1"], "--beta must be in [0, 1]"),
        (["--port", "70000"], "--port must be in 0..65535"),
        (["--host", "no-such-host.invalid", "--port", "0"], "cannot listen on no-such-host"),
    ],
)
def test_bad_options(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = build_dashboard_study(tmp_path / "s.db")
    assert expected in _error(capsys, ["--storage", url, *argv])


def test_busy_port_fails_before_attaching(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = build_dashboard_study(tmp_path / "s.db")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = _error(capsys, ["--storage", url, "--port", str(port)])
    assert f"cannot listen on 127.0.0.1:{port}" in err
    study = optuna.load_study(study_name="sm2", storage=url)
    assert not get_plotly_graph_objects(study._storage.get_study_system_attrs(study._study_id))


def test_storage_that_refuses_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import optuna_dashboard
    import sqlalchemy.exc

    def refuse(*args: object, **kwargs: object) -> None:
        error = sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("readonly database"))
        raise optuna.exceptions.StorageInternalError("An exception is raised.") from error

    monkeypatch.setattr(optuna_dashboard, "save_plotly_graph_object", refuse)
    url = build_dashboard_study(tmp_path / "s.db")
    err = _error(capsys, ["--storage", url, "--no-serve"])
    assert f"cannot attach the figures to {url}" in err and "readonly database" in err


def test_serves_on_loopback_until_interrupted(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import urllib.request

    url = build_dashboard_study(tmp_path / "s.db")
    command = [sys.executable, "-m", "optuna_sm2.cli", "dashboard", "--storage", url]
    process = subprocess.Popen(
        [*command, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job starts with SIGINT ignored, and so would the server.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("study 'sm2': attached 4 figures")
        assert lines[1].startswith("study 'sm2': http://127.0.0.1:")
        assert lines[2].startswith("serving optuna-dashboard on http://127.0.0.1:")
        page = lines[1].split(": ", 1)[1].strip()
        api = page.replace("/dashboard/studies/", "/api/studies/")
        with urllib.request.urlopen(api, timeout=10) as response:
            detail = json.loads(response.read())
        assert len(detail["plotly_graph_objects"]) == len(FIGURE_IDS)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 130
    assert "Traceback" not in err and "optuna-sm2 dashboard: interrupted" in err


def test_journal_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.log"
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    source = optuna.load_study(study_name="sm2", storage=build_dashboard_study(tmp_path / "s.db"))
    optuna.copy_study(from_study_name="sm2", from_storage=source._storage, to_storage=journal)
    assert main(["dashboard", "--storage", str(path), "--no-serve"]) == 0
    assert "attached 4 figures, 4 trial notes updated" in capsys.readouterr().out
    study = optuna.load_study(study_name="sm2", storage=open_storage(str(path)))
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert sorted(get_plotly_graph_objects(attrs)) == sorted(FIGURE_IDS.values())
