from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2.analysis import _summary as _study_report
from optuna_sm2.analysis._summary import summarize_study
from tests.support.report_studies import add, build_sm2_study, rung, sm2_attrs

# By hand, from tests/_report_studies.py (train_epochs_total 20, explorations_total 4):
#   totals 1000 + 300 + 100 + 50 + 80 (+ 0 for trial 5) = 1530 J, explore 240 J, pruned 480 J
#   projection: 0 complete 1000; 1 pruned 300 + 30*15 + 60/2*2 = 810;
#   2 pruned 100 + 20*20 + 40/1*3 = 620; 3 retried by 4: 50; 4 pruned 80 + 10*18 + 20*3 = 320
#   = 2800 J, saving 1270 J = 45.357 %
TOTAL, EXPLORE, PRUNED, PROJECTED = 1530.0, 240.0, 480.0, 2800.0


def _load(url: str, name: str = "sm2") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(_study_report, raise_on_error=True).failed == 0


def test_per_trial_figures(tmp_path: Path) -> None:
    summary = summarize_study(_load(build_sm2_study(tmp_path / "s.db")))
    t = {s.number: s for s in summary.trials}
    assert [s.state for s in summary.trials] == [
        "COMPLETE",
        "PRUNED",
        "PRUNED",
        "FAIL",
        "PRUNED",
        "FAIL",
    ]
    assert t[0].batch_size == 32 and t[0].stable_lr == 0.25 and t[0].energy_per_epoch_j == 40.0
    assert t[0].last_value == 0.9 and t[0].last_step == 23
    assert [t[n].rung for n in range(6)] == [2, 1, 0, 0, None, None]  # 4's record is 3's
    assert [t[n].projected_energy_j for n in range(6)] == [1000.0, 810.0, 620.0, 50.0, 320.0, None]
    assert t[5].energy_total_j is None and t[5].last_value is None and t[5].last_step is None
    assert t[4].energy_source == "rapl"


def test_study_totals(tmp_path: Path) -> None:
    summary = summarize_study(_load(build_sm2_study(tmp_path / "s.db")))
    assert summary.total_energy_j == TOTAL
    assert summary.total_energy_wh == pytest.approx(TOTAL / 3600)
    assert summary.exploration_share == pytest.approx(EXPLORE / TOTAL)
    assert summary.pruned_energy_j == PRUNED
    assert summary.projected_energy_j == PROJECTED
    assert summary.saving_j == PROJECTED - TOTAL
    assert summary.saving_pct == pytest.approx(100 * 1270 / 2800)
    assert summary.energy_sources == ("rapl",)
    assert not summary.is_estimate and not summary.is_simulated
    assert summary.unprojected_trials == ()
    assert summary.direction == "maximize"
    assert summary.schedule is not None and summary.schedule["train_epochs_total"] == 20
    assert any("without sm2.energy_total_j count 0 J: 5" in n for n in summary.notes)


def test_to_json_is_strict_json(tmp_path: Path) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    study = _load(url)
    add(study, TrialState.PRUNED, 64, sm2_attrs(10.0, 10.0, 40.0, 0, 1), {0: math.nan})
    data = json.loads(json.dumps(summarize_study(_load(url)).to_json(), allow_nan=False))
    assert data["total_energy_j"] == TOTAL + 10
    assert data["saving_j"] == data["projected_energy_j"] - data["total_energy_j"]
    assert data["trials"][6]["last_value"] is None  # NaN in the study
    assert data["trials"][1]["projected_energy_j"] == 810.0
    assert data["is_estimate"] is False


def test_estimate_source_is_flagged(tmp_path: Path) -> None:
    url = build_sm2_study(tmp_path / "s.db", source="nvml-counter+cpu-time-estimate")
    summary = summarize_study(_load(url))
    assert summary.is_estimate
    assert summary.energy_sources == ("nvml-counter+cpu-time-estimate",)


def test_without_schedule_reports_what_it_can(tmp_path: Path) -> None:
    summary = summarize_study(_load(build_sm2_study(tmp_path / "s.db", schedule=False)))
    assert summary.total_energy_j == TOTAL
    assert summary.projected_energy_j is None
    assert summary.saving_j is None and summary.saving_pct is None
    assert all(t.projected_energy_j is None for t in summary.trials)
    assert any("not written by SM2Objective" in n for n in summary.notes)


def test_report_users_without_energy_totals(tmp_path: Path) -> None:
    """report() + pruner users hold only energy per epoch and stable LR."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    attrs = {"sm2.energy_per_epoch_j": 12.0, "sm2.stable_lr": 0.05}
    add(study, TrialState.PRUNED, 64, attrs, {0: 1.0}, {"sm2:rung_0": rung(0, 1.0)})
    summary = summarize_study(study)
    assert summary.trials[0].rung == 0
    assert summary.trials[0].energy_per_epoch_j == 12.0
    assert summary.total_energy_j == 0.0
    assert summary.exploration_share is None
    assert summary.energy_sources == ()


def test_trial_lacking_projection_inputs_is_listed(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    study.set_user_attr("sm2.schedule", {"train_epochs_total": 10, "explorations_total": 2})
    add(study, TrialState.FAIL, 64, sm2_attrs(5.0, 5.0, 1.0, 0, 0), {})  # no sweep finished
    add(study, TrialState.PRUNED, 64, sm2_attrs(10.0, 4.0, 2.0, 1, 1), {0: 0.1})
    summary = summarize_study(study)
    assert summary.unprojected_trials == (0,)
    assert summary.projected_energy_j == 5.0 + (10.0 + 2.0 * 9 + 4.0 * 1)


def test_no_sm2_data_is_an_error(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="plain")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with pytest.raises(ValueError, match="'plain' holds no SM² data"):
        summarize_study(study)
