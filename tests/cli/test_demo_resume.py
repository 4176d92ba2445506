"""``optuna-sm2 demo`` killed (SIGKILL, Ctrl-C) at several points of its schedule, then run again
with the same command: the study is finished where it stopped, not reported half-done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import FrozenTrial, TrialState

from optuna_sm2 import attrs
from optuna_sm2.cli._common import CLIError, open_storage
from optuna_sm2.training._checkpoint import study_directory
from optuna_sm2.training._configurations import read_configurations
from tests.support.cli import run_cli
from tests.support.demo_run import POINTS

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--epochs-per-rung", "1", "--final-epochs", "2", "--n-lrs", "6"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # the demo checkpoints under ./studies
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # the demo trains on one thread


def _interrupted(storage: str, tmp_path: Path, point: str, sig: int) -> int:
    """Run the demo until it signals itself ``sig`` at ``point``; its exit code."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    name = signal.Signals(sig).name.removeprefix("SIG")
    command = [sys.executable, "-m", "tests.support.demo_run", point, name, "--storage", storage]
    with (tmp_path / "out.txt").open("w") as out, (tmp_path / "err.txt").open("w") as err:
        done = subprocess.run(
            [*command, *TINY],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=err,
            timeout=600,
        )
    return done.returncode


def _trials(storage: str) -> list[FrozenTrial]:
    try:
        study = optuna.load_study(study_name="sm2-demo", storage=open_storage(storage))
        return study.get_trials()
    except (KeyError, ValueError, CLIError, optuna.exceptions.OptunaError):
        return []  # not created yet


@pytest.mark.parametrize(
    ("sig", "point", "kind"),
    [
        pytest.param(signal.SIGKILL, "before the first rung", "journal", id="kill-first-journal"),
        pytest.param(signal.SIGINT, "between rungs", "journal", id="ctrl-c-between-journal"),
        pytest.param(signal.SIGKILL, "during the final epochs", "sqlite", id="kill-final-sqlite"),
    ],
)
def test_demo_run_again_finishes_an_interrupted_study(
    tmp_path: Path, sig: int, point: str, kind: str
) -> None:
    storage = str(tmp_path / "demo.log") if kind == "journal" else "sqlite:///studies/demo.db"
    returncode = _interrupted(storage, tmp_path, point, sig)
    err = (tmp_path / "err.txt").read_text()
    if sig == signal.SIGINT:
        assert returncode == 130, err
        assert err == "optuna-sm2 demo: interrupted\n"
        assert "run the same command again to finish it" in (tmp_path / "out.txt").read_text()
    else:
        assert returncode == -signal.SIGKILL, err
    trials = _trials(storage)
    assert POINTS[point](trials), "the demo stopped at another point"
    before = {t.number: t for t in trials}
    assert any(not t.state.is_finished() for t in before.values())
    pruned_before = {n for n, t in before.items() if t.state == TrialState.PRUNED}

    code, out, err = run_cli(["demo", "--storage", storage, *TINY])  # the same command
    assert code == 0, err
    assert "is unfinished" in out and "resuming it where it stopped" in out
    assert "resumed and finished in" in out
    study = optuna.load_study(study_name="sm2-demo", storage=open_storage(storage))
    after = {t.number: t for t in study.trials}
    assert not [t for t in after.values() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    configurations = read_configurations(study)
    assert len(configurations) == 8
    ends = sorted(c.current.state.name for c in configurations.values())
    assert ends == ["COMPLETE"] + ["PRUNED"] * 7
    for number in pruned_before:  # decided before the kill: still pruned
        assert after[number].state == TrialState.PRUNED
        assert after[number].user_attrs == before[number].user_attrs
    for number, trial in before.items():
        if trial.state == TrialState.RUNNING:
            # Settled by the run again: decided at its rung, or failed and retried.
            assert after[number].state in (TrialState.PRUNED, TrialState.FAIL)
    checkpoints = study_directory(Path("studies", "checkpoints"), study)
    for failed in (t for t in after.values() if t.state == TrialState.FAIL):
        (retry,) = [
            t for t in after.values() if t.system_attrs.get("failed_trial") == failed.number
        ]
        if (checkpoints / f"{failed.number}.pt").exists():
            assert retry.user_attrs[attrs.RESUMED_FROM] == failed.number
        else:  # killed before its first rung: trained again from the start
            assert attrs.RESUMED_FROM not in retry.user_attrs

    # The report follows each configuration through its retries: the winner is at the last
    # rung, and no promoted trial is shown "failed" where a retry carried it on.
    code, out, err = run_cli(["report", "--storage", storage, "--study", "sm2-demo", "--json"])
    assert code == 0, err
    report = json.loads(out)
    (winner,) = [t for t in report["trials"] if t["state"] == "COMPLETE"]
    assert winner["rung"] == len(report["rungs"]) - 1
    outcomes = [e["outcome"] for r in report["rungs"] for e in r["entries"] if e["promoted"]]
    assert "failed" not in outcomes and outcomes[-1] == "complete"

    # A third run finds the study finished and shows its report.
    code, out, err = run_cli(["demo", "--storage", storage, *TINY])
    assert code == 0, err
    assert "already holds" in out and "here is its report" in out
