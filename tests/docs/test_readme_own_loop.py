"""The README's own-loop recipe leaves in the study what ``optuna-sm2 report`` needs."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import optuna
import pytest

from optuna_sm2 import attrs
from optuna_sm2.cli import main
from optuna_sm2.energy import _tracker, shared_tracker
from tests.docs.test_readme import BLOCKS

OWN_LOOP = next(block for block in BLOCKS if "TrialEnergy(trial)" in block)


def test_own_loop_recipe_stores_totals_source_and_invalid_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_tracker, "_shared", None)  # this machine's auto_meter(), made afresh
    (tmp_path / "own_loop.py").write_text(OWN_LOOP, encoding="utf-8")
    runpy.run_path(str(tmp_path / "own_loop.py"), run_name="__main__")
    source = shared_tracker().source
    capsys.readouterr()

    storage = "sqlite:///studies/own-loop.db"
    assert main(["report", "--storage", storage, "--study", "own-loop", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["energy_sources"] == [source]
    assert len(summary["trials"]) == 16
    for trial in summary["trials"]:
        assert trial["energy_source"] == source
        assert trial["energy_total_j"] is not None and trial["energy_total_j"] >= 0.0
    assert summary["total_energy_j"] == pytest.approx(
        sum(t["energy_total_j"] for t in summary["trials"])
    )
    assert not any("count 0 J" in note for note in summary["notes"])
    for trial in optuna.load_study(study_name="own-loop", storage=storage).trials:
        assert trial.user_attrs[attrs.ENERGY_INVALID_WINDOWS] == 0
        assert trial.user_attrs[attrs.ENERGY_TOTAL_J] == pytest.approx(
            trial.user_attrs[attrs.ENERGY_TRAIN_J] + trial.user_attrs[attrs.ENERGY_EVAL_J]
        )
