"""Every ``optuna-sm2 ...`` command that README.md and docs/ show runs as written.

A command is a line of a fenced code block, or an inline code span with an option, that starts
with ``optuna-sm2 `` and holds no placeholder (an upper-case word such as URL or NAME, ``...``, an
optional ``[...]`` part, ``<...>``). Each runs in a fresh folder in which every study it names
was stored first, shaped as the demo stores it (tests/support/report_studies.py).

``report``, ``doctor`` and ``dashboard`` run as written; ``dashboard`` attaches its figures and
binds its server (on a free port), and only serving forever is left out. The commands that train
for minutes to hours (``demo``, ``worker``, ``bench``) are read by the real parser, which checks
every option's value and range, and are not run here: their runs are the demo, worker and bench
tests'. A storage on another host (``postgresql://user@db-host/...``) is a placeholder too.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import optuna
import pytest

from optuna_sm2.cli import build_parser
from optuna_sm2.cli._common import open_storage
from tests.support.cli import run_cli
from tests.support.report_studies import build_sm2_study

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"report", "doctor", "dashboard"}
PARSE_ONLY = {"demo", "worker", "bench"}
PLACEHOLDER = re.compile(r"\b[A-Z]{1,}\b|\.\.\.|\[|<|db-host")


def _commands() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        lines: list[str] = []
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
            lines += block.replace("\\\n", " ").splitlines()
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        # In prose, `optuna-sm2 report` alone names the command; a command there has options.
        lines += re.findall(r"`(optuna-sm2 [^`]* --[^`]+)`", prose)
        for line in lines:
            command = line.strip().removeprefix("$ ").split("  #")[0].strip()
            if command.startswith("optuna-sm2 ") and not PLACEHOLDER.search(command):
                found.append((page.name, command))
    return sorted(set(found))


COMMANDS = _commands()


def test_the_docs_show_commands_of_every_kind() -> None:
    shown = {shlex.split(command)[1] for _, command in COMMANDS}
    assert {"report", "dashboard", "bench"} <= shown, shown


def _store_demo_study(url: str, name: str | None, tmp_path: Path) -> None:
    """A study named ``name`` (the demo's when none is named) at ``url``, unless it is there."""
    name = name or "sm2-demo"
    storage = open_storage(url, must_exist=False)
    if name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        return
    source = build_sm2_study(tmp_path / f"source-{len(list(tmp_path.iterdir()))}.db", name)
    optuna.copy_study(from_study_name=name, from_storage=source, to_storage=storage)


@pytest.mark.parametrize(("page", "command"), COMMANDS)
def test_documented_command_runs_as_written(
    page: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = shlex.split(command)[1:]
    if "--help" in argv:
        code, out, _ = run_cli(argv)
        assert code == 0 and "usage: optuna-sm2" in out
        return
    args = build_parser().parse_args(argv)  # every option's value checked, as the CLI does
    if args.command in PARSE_ONLY:
        return
    assert args.command in RUN, f"{page}: add {args.command!r} to RUN or PARSE_ONLY"
    work = tmp_path / "work"
    (work / "studies").mkdir(parents=True)
    monkeypatch.chdir(work)
    if getattr(args, "storage", None):
        _store_demo_study(args.storage, getattr(args, "study", None), tmp_path)
    if args.command == "dashboard":
        from optuna_sm2.cli import _dashboard_server as server

        bind = server.make_dashboard_server

        def on_a_free_port(storage: Any, host: str, port: int, **options: Any) -> Any:
            return bind(storage, host, 0, **options)

        monkeypatch.setattr(server, "make_dashboard_server", on_a_free_port)
        monkeypatch.setattr(server, "serve_until_interrupted", lambda _server: None)
    code, out, err = run_cli(argv)
    assert code == 0, (page, command, out, err)
    assert "Traceback" not in out + err
