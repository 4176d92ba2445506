"""The Lightning and DDP examples of docs/your-training-code.md run as written and leave energy
totals in their study."""

from __future__ import annotations

import json
import logging
import re
import runpy
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from optuna_sm2 import attrs
from optuna_sm2.cli import main

PAGE = Path(__file__).resolve().parents[2] / "docs" / "your-training-code.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
LIGHTNING = next(block for block in BLOCKS if "SM2PruningCallback(trial" in block)
DDP = next(block for block in BLOCKS if "DistributedEnergyTracker(" in block)


def _report(storage: str, study: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["report", "--storage", storage, "--study", study, "--json"]) == 0
    summary: dict[str, object] = json.loads(capsys.readouterr().out)
    return summary


def _check_totals(storage: str, name: str, summary: dict[str, object]) -> None:
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert trials
    for trial in trials:
        user = trial.user_attrs
        assert user[attrs.ENERGY_INVALID_WINDOWS] == 0
        parts = [user.get(key, 0.0) for key in (attrs.ENERGY_TRAIN_J, attrs.ENERGY_EVAL_J)]
        parts.append(user.get(attrs.ENERGY_EXPLORE_J, 0.0))
        assert user[attrs.ENERGY_TOTAL_J] == pytest.approx(sum(parts))
        assert user[attrs.ENERGY_TOTAL_J] > 0.0
    assert summary["total_energy_j"] == pytest.approx(
        sum(t.user_attrs[attrs.ENERGY_TOTAL_J] for t in trials)
    )


@pytest.mark.filterwarnings("ignore:.*treespec:FutureWarning")
def test_the_lightning_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("lightning.pytorch", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    script = tmp_path / "lightning_example.py"
    script.write_text(LIGHTNING, encoding="utf-8")
    runpy.run_path(str(script), run_name="__main__")
    storage = "sqlite:///studies/lightning.db"
    summary = _report(storage, "lightning", capsys)
    _check_totals(storage, "lightning", summary)
    for trial in optuna.load_study(study_name="lightning", storage=storage).trials:
        assert trial.user_attrs[attrs.EXPLORATIONS] >= 1
        assert trial.user_attrs[attrs.STABLE_LR] > 0.0


def test_the_ddp_example_runs_on_two_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "studies").mkdir()
    script = tmp_path / "ddp_example.py"
    script.write_text(DDP, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    storage = f"sqlite:///{tmp_path / 'studies' / 'ddp.db'}"
    summary = _report(storage, "ddp", capsys)
    assert summary["energy_sources"] == ["simulated"]
    _check_totals(storage, "ddp", summary)
    assert len(done.stdout.splitlines()) == 3  # one line per trial
