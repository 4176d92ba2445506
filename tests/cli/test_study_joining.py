"""``demo`` and ``worker`` on an existing study: checked before anything runs or is written."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2 import attrs
from optuna_sm2.cli._study import read_pruner_settings
from optuna_sm2.pruners import PrunerSettings
from tests.support.cli import assert_refused, demo_schedule, demo_study, fingerprint, run_cli

TINY = {"epochs_per_rung": 1, "final_epochs": 1, "n_lrs": 6}
TINY_ARGS = ["--epochs-per-rung", "1", "--final-epochs", "1", "--n-lrs", "6"]
PRUNER = {
    "alpha": 0.5,
    "beta": 0.25,
    "lr_scale": "log",
    "reduction_factor": 2,
    "min_resource": 1,
    "min_early_stopping_rate": 0,
    "bootstrap_count": 0,
    "rung_steps": [1, 3, 5],
    "version": "0.1.0",
}


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "study.log"


def _storage(path: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def _worker(path: Path, *argv: str) -> tuple[int, str, str]:
    where = ["--storage", str(path), "--study", "s", "--checkpoint-dir", str(path.parent / "c")]
    return run_cli(["worker", *where, "--scenario", "demo", "--n-trials", "1", *argv])


def _plain(storage: optuna.storages.BaseStorage | str, **kwargs: object) -> None:
    study = optuna.create_study(storage=storage, study_name="s", **kwargs)
    if "directions" not in kwargs:
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda s: _plain(s),
            "study 's' in {url} is not an SM² study: it holds 2 trials and no sm2.schedule",
        ),
        (
            lambda s: _plain(s, directions=["minimize", "minimize"]),
            "study 's' in {url} has several objectives; SM² needs one",
        ),
        (
            lambda s: optuna.create_study(storage=s, study_name="s"),
            "study 's' in {url} is set to minimize; the demo scenario (accuracy) needs maximize",
        ),
        (
            lambda s: demo_study(s, "s", epochs_per_rung=2, final_epochs=2, n_lrs=6),
            "--epochs-per-rung 1 (the study's epochs_per_rung is 2); --final-epochs 1 (the "
            "study's final_epochs is 2)",
        ),
        (
            lambda s: demo_study(s, "s", n_trials=1, pruner=PRUNER, **TINY),
            "--alpha 0.75 (the study's alpha is 0.5)",
        ),
        (
            lambda s: demo_study(
                s, "s", pruner={**PRUNER, "alpha": 0.75, "rung_steps": None}, **TINY
            ),
            "has a pruner deciding at steps None (sm2.pruner); this run's objective reaches "
            "its rungs at [1, 3, 5]",
        ),
    ],
)
def test_worker_refuses_a_study_it_cannot_join(make, message: str, journal: Path) -> None:
    make(_storage(journal))
    before = fingerprint(journal)
    err = assert_refused(*_worker(journal, *TINY_ARGS, "--alpha", "0.75"), "worker")
    assert message.format(url=journal) in err
    assert fingerprint(journal) == before  # nothing written: no trial, no attribute


def test_worker_refuses_what_no_option_sets_and_keeps_the_schedule(journal: Path) -> None:
    study = demo_study(_storage(journal), "s", **TINY)
    other = {**study.user_attrs[attrs.SCHEDULE], "batch_sizes": [4, 8], "metric_name": "f1"}
    study.set_user_attr(attrs.SCHEDULE, other)
    before = fingerprint(journal)
    err = assert_refused(*_worker(journal), "worker", "has another sm2.schedule than the demo")
    assert "batch_sizes [4, 8] there, [4, 8, 16, 32, 64, 128, 256, 512] here" in err
    assert "metric_name f1 there, accuracy here" in err
    assert fingerprint(journal) == before
    assert optuna.load_study(study_name="s", storage=_storage(journal)).user_attrs == {
        attrs.SCHEDULE: other
    }


def test_worker_takes_the_studys_settings_when_options_are_left_out(journal: Path) -> None:
    demo_study(_storage(journal), "s", pruner=PRUNER, **TINY)
    code, out, err = _worker(journal)
    assert code == 0, err
    assert "rungs at steps [1, 3, 5], alpha=0.5, beta=0.25" in out
    study = optuna.load_study(study_name="s", storage=_storage(journal))
    assert study.user_attrs[attrs.SCHEDULE] == demo_schedule(**TINY)
    (trial,) = study.trials
    assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


def test_worker_marks_a_new_study_sm2_before_its_first_trial(journal: Path) -> None:
    code, _, err = _worker(journal, *TINY_ARGS)
    assert code == 0, err
    study = optuna.load_study(study_name="s", storage=_storage(journal))
    assert study.user_attrs[attrs.SCHEDULE] == demo_schedule(**TINY)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE


@pytest.mark.parametrize(
    "value",
    [
        None,
        "not json",
        json.dumps({"alpha": 0.5}),  # JSON text, not a JSON object: the pruner refuses it too
        [0.5],
        {"alpha": "0.5", "beta": True, "rung_steps": "1,3", "lr_scale": "cubic"},
        {**PRUNER, "alpha": 2.0},
        {**PRUNER, "bootstrap_count": 1.5},
    ],
)
def test_an_absent_or_unreadable_stored_pruner_is_ignored(value: object) -> None:
    assert read_pruner_settings(value) is None


def test_stored_pruner_settings_are_read_as_the_pruner_reads_them() -> None:
    settings = read_pruner_settings(PRUNER)
    assert settings == PrunerSettings.from_json(PRUNER)
    # Keys left out take the pruner's defaults; stored before `ranking` existed: the paper's rule.
    assert settings == PrunerSettings(
        alpha=0.5, beta=0.25, rung_steps=(1, 3, 5), ranking="paper", version="0.1.0"
    )
    assert read_pruner_settings({"alpha": 0.5}) == PrunerSettings(alpha=0.5, ranking="paper")


def test_worker_joins_a_study_whose_stored_pruner_is_unreadable(journal: Path) -> None:
    unreadable = {**PRUNER, "alpha": 2.0}
    demo_study(_storage(journal), "s", pruner=unreadable, **TINY)
    code, out, err = _worker(journal, "--alpha", "0.75")
    assert code == 0, err
    # The warning is one line on stderr (not Python's, with the source line that warned).
    (line,) = [w for w in err.splitlines() if "unreadable" in w]
    assert line.startswith("optuna-sm2 worker: warning: ")
    assert "unreadable (`alpha` must be a finite number" in line
    assert "rungs at steps [1, 3, 5], alpha=0.75, beta=0.5" in out
    study = optuna.load_study(study_name="s", storage=_storage(journal))
    assert study.user_attrs[attrs.PRUNER] == unreadable  # left as it is


@pytest.fixture
def demo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the demo checkpoints under ./studies
    return tmp_path


def _demo(path: Path, *argv: str) -> tuple[int, str, str]:
    return run_cli(["demo", "--storage", f"sqlite:///{path}", *argv])


def test_demo_does_not_ignore_an_option_it_cannot_check(demo_dir: Path) -> None:
    path = demo_dir / "demo.db"
    demo_study(f"sqlite:///{path}", "sm2-demo", n_trials=2, **TINY)
    before = fingerprint(path)
    err = assert_refused(*_demo(path, "--alpha", "0.5"), "demo", "does not store what it ran")
    assert "--alpha (sm2.pruner)" in err and "--fresh" in err
    assert_refused(
        *_demo(path, "--epochs-per-rung", "2"),
        "demo",
        "--epochs-per-rung 2 (the study's epochs_per_rung is 1)",
        "or add --fresh to delete it and start over",
    )
    assert fingerprint(path) == before
    # Options equal to the study's, or left out, show its report.
    code, out, err = _demo(path, *TINY_ARGS)
    assert code == 0, err
    assert "already holds 2 trials: here is its report" in out


def test_demo_shows_the_report_when_the_stored_pruner_agrees(demo_dir: Path) -> None:
    path = demo_dir / "demo.db"
    demo_study(f"sqlite:///{path}", "sm2-demo", n_trials=2, pruner=PRUNER, **TINY)
    code, out, err = _demo(path, "--alpha", "0.5")
    assert code == 0, err
    assert "here is its report" in out
    assert_refused(*_demo(path, "--beta", "0.5"), "demo", "--beta 0.5 (the study's beta is 0.25)")


def test_demo_fresh_deletes_sm2_studies_only(demo_dir: Path) -> None:
    path = demo_dir / "demo.db"
    _plain(f"sqlite:///{path}")
    before = fingerprint(path)
    err = assert_refused(*_demo(path, "--study", "s", "--fresh"), "demo", "is not an SM² study")
    assert "choose another --study" in err
    assert fingerprint(path) == before


@pytest.mark.slow
def test_demo_fresh_applies_new_options(demo_dir: Path) -> None:
    path = demo_dir / "demo.db"
    demo_study(f"sqlite:///{path}", "sm2-demo", n_trials=2, epochs_per_rung=2)
    code, out, err = _demo(path, "--fresh", "--n-lrs", "3", "--final-epochs", "1", *TINY_ARGS[:2])
    assert code == 0, err
    assert "deleted the existing study 'sm2-demo'; starting over" in out
    study = optuna.load_study(study_name="sm2-demo", storage=f"sqlite:///{path}")
    assert study.user_attrs[attrs.SCHEDULE] == demo_schedule(
        epochs_per_rung=1, final_epochs=1, n_lrs=3
    )
    assert len(study.trials) == 8
    assert all(t.state.is_finished() for t in study.trials)
