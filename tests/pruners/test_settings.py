"""The pruner's settings in the study (``sm2.pruner``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest

from optuna_sm2 import SuccessiveHalvingEnergyPruner, attrs, report
from optuna_sm2.pruners import PrunerSettings, stored_pruner_settings


def _decide_once(study: optuna.Study, value: float = 1.0) -> bool:
    trial = study.ask()
    report(trial, value, 1, energy_per_epoch_j=3.0, stable_lr=0.1)
    return trial.should_prune()


def test_first_write_stores_the_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    pruner = SuccessiveHalvingEnergyPruner(
        min_resource=1, reduction_factor=3, bootstrap_count=1, alpha=0.6, beta=0.2
    )
    study = optuna.create_study(storage=url, study_name="s", pruner=pruner)
    assert attrs.PRUNER not in study.user_attrs  # nothing written yet
    trial = study.ask()
    report(trial, 1.0, 0)
    assert not trial.should_prune()  # below the first rung: nothing written
    assert attrs.PRUNER not in study.user_attrs
    _decide_once(study)
    stored = study.user_attrs[attrs.PRUNER]
    assert stored == {
        "alpha": 0.6,
        "beta": 0.2,
        "lr_scale": "log",
        "reduction_factor": 3,
        "min_resource": 1,
        "min_early_stopping_rate": 0,
        "bootstrap_count": 1,
        "rung_steps": None,
        "ranking": "robust",
        "performance_tolerance": 0.02,
        "version": pruner.settings.version,
    }
    assert pruner.settings.version not in ("", None)
    reloaded = stored_pruner_settings(optuna.load_study(study_name="s", storage=url))
    assert reloaded == pruner.settings


def test_explicit_rung_steps_and_auto_are_stored() -> None:
    pruner = SuccessiveHalvingEnergyPruner(rung_steps=iter([1, 4]))
    study = optuna.create_study(pruner=pruner)
    _decide_once(study)
    assert study.user_attrs[attrs.PRUNER]["rung_steps"] == [1, 4]
    auto = SuccessiveHalvingEnergyPruner("auto", 4, alpha=1.0)
    assert auto.settings.to_json()["min_resource"] == "auto"
    assert PrunerSettings.from_json(auto.settings.to_json()) == auto.settings


def test_other_settings_warn_once_and_never_overwrite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = optuna.create_study(
        storage=url, study_name="s", pruner=SuccessiveHalvingEnergyPruner(alpha=0.75)
    )
    _decide_once(first)
    stored = dict(first.user_attrs[attrs.PRUNER])
    # A second process, its pruner built with other settings.
    second = optuna.load_study(
        study_name="s", storage=url, pruner=SuccessiveHalvingEnergyPruner(alpha=1.0, beta=0.2)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            _decide_once(second)
    mine = [w for w in caught if attrs.PRUNER in str(w.message)]
    assert len(mine) == 1
    message = str(mine[0].message)
    assert "alpha 0.75 against 1" in message and "beta 0.5 against 0.2" in message
    assert second.user_attrs[attrs.PRUNER] == stored
    # The same settings: no warning.
    same = optuna.load_study(study_name="s", storage=url, pruner=SuccessiveHalvingEnergyPruner())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _decide_once(same)


def test_unreadable_stored_settings_are_kept_with_a_warning() -> None:
    study = optuna.create_study(pruner=SuccessiveHalvingEnergyPruner())
    study.set_user_attr(attrs.PRUNER, {"alpha": 3})
    with pytest.warns(UserWarning, match="unreadable"):
        _decide_once(study)
    assert study.user_attrs[attrs.PRUNER] == {"alpha": 3}
    with pytest.raises(ValueError, match=r"`alpha` must be a finite number in \[0, 1\], got 3"):
        stored_pruner_settings(study)


def test_the_ranking_rule_is_stored_and_old_settings_read_as_the_paper_rule() -> None:
    pruner = SuccessiveHalvingEnergyPruner(ranking="paper", performance_tolerance=0.1)
    study = optuna.create_study(pruner=pruner)
    _decide_once(study)
    stored = study.user_attrs[attrs.PRUNER]
    assert (stored["ranking"], stored["performance_tolerance"]) == ("paper", 0.1)
    assert stored_pruner_settings(study) == pruner.settings
    assert PrunerSettings().differences(pruner.settings) == (
        "ranking robust against paper",
        "performance_tolerance 0.02 against 0.1",
    )
    # Stored before `ranking` existed: those rungs were decided by the plain Eq. 2.
    old = {k: v for k, v in PrunerSettings().to_json().items() if k != "ranking"}
    assert PrunerSettings.from_json(old).ranking == "paper"
    assert PrunerSettings.from_json({**old, "ranking": "robust"}).ranking == "robust"


def test_no_settings_before_the_pruner_writes() -> None:
    assert stored_pruner_settings(optuna.create_study()) is None


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([0.75], "must be a JSON object"),
        ({"reduction_factor": 1}, r"`reduction_factor` must be an integer >= 2"),
        ({"lr_scale": "cubic"}, r"`lr_scale` must be one of 'log', 'linear'"),
        ({"rung_steps": [2, 1]}, "strictly increasing"),
        ({"min_resource": "soon"}, r"`min_resource` must be 'auto' or an integer >= 1"),
        ({"ranking": "plain"}, r"`ranking` must be one of 'robust', 'paper', got 'plain'"),
        ({"performance_tolerance": 2}, r"`performance_tolerance` must be a finite number"),
    ],
)
def test_bad_stored_settings(data: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PrunerSettings.from_json(data)
