"""``optuna-sm2 COMMAND --help`` imports only what builds the parser: what only running a
command needs (SQLAlchemy, the web server, the figures, torch) is imported when it runs, which
keeps the CLI's start-up near ``import optuna``'s (benchmarks/cli_startup.py,
docs/performance.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

RUN_ONLY = ("sqlalchemy", "wsgiref", "http.server", "optuna_sm2.visualization", "plotly", "torch")

HELP = """
import sys
from optuna_sm2.cli import main
try:
    main([{command!r}, "--help"])
except SystemExit:
    pass
print(*sorted(name for name in {modules!r} if name in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("command", ["report", "dashboard", "doctor", "demo", "worker", "bench"])
def test_help_imports_nothing_only_running_needs(command: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", HELP.format(command=command, modules=RUN_ONLY)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stderr.strip() == "", out.stderr
