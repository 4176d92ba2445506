"""Each script in examples/ runs at a tiny size and writes its study under studies/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("script", "study_name"),
    [
        ("own_training_loop.py", "own-loop"),
        ("sm2_objective.py", "sm2-objective"),
        ("synchronous.py", "synchronous"),
    ],
)
def test_example_runs(script, study_name, tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--tiny"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(
        study_name=study_name, storage=f"sqlite:///{tmp_path / 'studies' / 'examples.db'}"
    )
    assert study.trials
    assert all("sm2.energy_per_epoch_j" in t.user_attrs for t in study.trials)
