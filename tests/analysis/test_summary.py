from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2.analysis._summary import summarize_study
from tests.support.report_studies import SCHEDULE, add, build_sm2_study, rung, sm2_attrs

# By hand, from tests/support/report_studies.py (train_epochs_total 20, explorations_total 4):
#   totals 1000 + 300 + 100 + 50 + 80 (trial 5 unmeasured, left out) = 1530 J,
#   explore 240 J, pruned 480 J
#   projection: 0 complete 1000; 1 pruned 300 + 30*15 + 60/2*2 = 810;
#   2 pruned 100 + 20*20 + 40/1*3 = 620; 3 retried by 4: 50; 4 pruned 80 + 10*18 + 20*3 = 320
#   = 2800 J, saving 1270 J = 45.357 %
TOTAL, EXPLORE, PRUNED, PROJECTED = 1530.0, 240.0, 480.0, 2800.0


def _load(url: str, name: str = "sm2") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


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
    # 4 holds no record of its own: it retries 3, and goes on from the rung 3 reached.
    assert [t[n].rung for n in range(6)] == [2, 1, 0, 0, 0, None]
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
    # Trial 5 measured nothing: unmeasured, left out of the totals, never counted as 0 J.
    assert summary.unmeasured_trials == (5,) and summary.measured_trials == 5
    assert any(
        "unmeasured trials (no sm2.energy_total_j), left out of the totals and the saving: 5" in n
        for n in summary.notes
    )


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


def test_unmeasured_partly_measured_and_running_trials(tmp_path: Path) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    study = _load(url)
    partial = {**sm2_attrs(40.0, 10.0, 5.0, 2, 1), "sm2.energy_invalid_windows": 2}
    add(study, TrialState.PRUNED, 64, partial, {0: 0.5})  # 6
    unmeasured = {**sm2_attrs(0.0, 0.0, 5.0, 1, 1), "sm2.energy_total_j": None}
    add(study, TrialState.PRUNED, 64, unmeasured, {0: 0.5})  # 7: null, not 0 J
    running = study.ask()  # 8: spent 25 J so far
    for key, value in sm2_attrs(25.0, 5.0, 10.0, 1, 1).items():
        running.set_user_attr(key, value)
    summary = summarize_study(_load(url))
    t = {s.number: s for s in summary.trials}
    assert t[6].energy_status == "partly measured" and t[6].energy_invalid_windows == 2
    assert t[7].energy_status == "unmeasured" and t[7].energy_total_j is None
    assert t[5].energy_status == "unmeasured" and t[0].energy_status == "measured"
    assert summary.unmeasured_trials == (5, 7)
    assert summary.partly_measured_trials == (6,)
    assert summary.running_trials == (8,)
    assert summary.total_energy_j == TOTAL + 40 + 25  # the running trial's spend so far counts
    # The saving is over finished, measured trials only: 6 adds 40 actual and
    # 40 + 5 * 18 + 10 / 1 * 3 = 160 projected; 7 and 8 are left out.
    assert summary.saving_basis_j == TOTAL + 40
    assert summary.projected_energy_j == PROJECTED + 160
    assert summary.saving_j == PROJECTED + 160 - (TOTAL + 40)
    notes = " | ".join(summary.notes)
    assert (
        "unmeasured trials (no sm2.energy_total_j), left out of the totals and the saving: "
        "5, 7" in notes
    )
    assert "partly measured trials" in notes and "6 (2 windows)" in notes
    assert "running trials, left out of the projection and the saving" in notes and ": 8" in notes
    data = summary.to_json()
    assert data["trials"][7]["energy_total_j"] is None
    assert data["trials"][7]["energy_status"] == "unmeasured"
    assert data["running_trials"] == [8]


def test_nothing_measured_gives_null_totals_in_json(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    add(study, TrialState.PRUNED, 64, {"sm2.energy_per_epoch_j": 3.0}, {0: 1.0})
    data = summarize_study(study).to_json()
    assert data["measured_trials"] == 0
    assert data["total_energy_j"] is None and data["pruned_energy_j"] is None


def test_source_kinds_come_from_energy_sources() -> None:
    from optuna_sm2.analysis import source_kind
    from optuna_sm2.analysis._sources import ESTIMATES, SIMULATED
    from optuna_sm2.energy import SOURCES

    assert set(SOURCES) >= ESTIMATES | SIMULATED
    assert [source_kind(s) for s in SOURCES] == [
        "measured",
        "measured",
        "measured",
        "measured",
        "estimate",
        "estimate",
        "simulated",
    ]
    assert source_kind("nvml-counter+nvml-power-estimate") == "estimate"
    assert source_kind("nvml-counter+cpu-time-estimate") == "estimate"
    assert source_kind("simulated+cpu-time-estimate") == "simulated"
    # A label that merely contains a known word is not taken for it.
    assert source_kind("my-estimate-free-meter") == "unknown"
    assert source_kind("") == "unknown"


def test_format_joules_keeps_small_figures_readable() -> None:
    from optuna_sm2.analysis import format_joules

    assert format_joules(0.04213) == "0.0421"
    assert format_joules(123456.7) == "123456.7"
    assert format_joules(9.999) == "10.00"


def test_rungs_ranked_with_the_stored_settings_or_the_arguments(tmp_path: Path) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    summary = summarize_study(_load(url), alpha=1.0)
    assert summary.pruner_origin == "arguments" and summary.pruner.alpha == 1.0
    assert any("does not store its pruner's settings" in n for n in summary.notes)
    rung_0 = summary.rungs[0]
    assert [r.trial for r in rung_0.ranking.records] == [0, 1, 2, 3]  # 4's copy is 3's
    assert rung_0.step == 0  # sm2.schedule's rung_steps [0, 6, 12]
    assert rung_0.ranking.promoted == (0, 1)  # values 0.5, 0.4, 0.3, 0.2; k = 2
    # Trial 3 failed; trial 4, its retry, carried it on and was pruned.
    assert rung_0.outcomes == {0: "went on", 1: "went on", 2: "pruned", 3: "pruned"}
    assert [r.rung for r in summary.rungs] == [0, 1, 2]
    study = _load(url)
    stored = {**summary.pruner.to_json(), "alpha": 0.5, "reduction_factor": 4}
    study.set_user_attr("sm2.pruner", stored)
    summary = summarize_study(study, alpha=1.0)
    assert summary.pruner_origin == "study" and summary.pruner.alpha == 0.5
    assert summary.rungs[0].ranking.promote_count == 1
    assert any("not with the alpha given" in n for n in summary.notes)
    data = json.loads(json.dumps(summary.to_json(), allow_nan=False))
    assert data["pruner"]["alpha"] == 0.5 and data["pruner_origin"] == "study"
    assert data["rungs"][0]["entries"][0]["outcome"] == "went on"
    assert data["best_trial"] == 0


def test_malformed_rung_record_is_noted(tmp_path: Path) -> None:
    url = build_sm2_study(tmp_path / "s.db")
    study = _load(url)
    add(
        study,
        TrialState.PRUNED,
        64,
        sm2_attrs(1.0, 1.0, 1.0, 0, 1),
        {0: 0.1},
        {"sm2:rung_0": {"trial": 6, "energy_per_epoch_j": 1.0}},
    )
    summary = summarize_study(_load(url))
    assert summary.trials[6].rung is None
    assert 6 not in [r.trial for r in summary.rungs[0].ranking.records]
    assert any("malformed rung records" in n and "6 (sm2:rung_0)" in n for n in summary.notes)


def test_the_hugging_face_trainers_batch_size_parameter_is_the_batch_size() -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            params={"per_device_train_batch_size": 16},
            distributions={
                "per_device_train_batch_size": optuna.distributions.CategoricalDistribution(
                    [8, 16]
                )
            },
            user_attrs=sm2_attrs(10.0, 1.0, 2.0, 1, 1),
            value=0.5,
        )
    )
    (trial,) = summarize_study(study).trials
    assert trial.batch_size == 16


def test_a_retry_carries_its_configuration_on() -> None:
    """A promoted trial killed in its final epochs and resumed by a retry (as
    ``optimize_synchronous`` does): the retry goes on from the rung its predecessor reached, and
    the predecessor's outcome at its rungs is what the retry did, not "failed"."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("sm2.schedule", SCHEDULE)
    records = {"sm2:rung_0": rung(0, 0.5), "sm2:rung_1": rung(0, 0.7)}
    add(study, TrialState.FAIL, 32, sm2_attrs(9.0, 3.0, 1.0, 4, 3), {0: 0.5, 6: 0.7}, records)
    add(
        study,
        TrialState.PRUNED,
        64,
        sm2_attrs(2.0, 1.0, 1.0, 1, 1),
        {0: 0.2},
        {"sm2:rung_0": rung(1, 0.2)},
    )
    retry = {"failed_trial": 0, "retry_history": [0], **records}  # inherited, not its own
    resumed = {**sm2_attrs(4.0, 1.0, 1.0, 2, 1), "sm2.resumed_from": 0}
    add(study, TrialState.COMPLETE, 32, resumed, {0: 0.5, 6: 0.7, 12: 0.9}, retry)
    summary = summarize_study(study)
    assert [t.rung for t in summary.trials] == [1, 0, 1]
    assert summary.rungs[0].outcomes == {0: "went on", 1: "pruned"}
    assert summary.rungs[1].outcomes == {0: "complete"}
    assert [r.trial for r in summary.rungs[1].ranking.records] == [0]  # counted once
