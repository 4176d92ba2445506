"""Checkpoints stay under checkpoint_dir, belong to their trial, and never fail a retry."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import optuna
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from optuna.trial import TrialState

from optuna_sm2 import _compat, attrs
from optuna_sm2.cli._common import open_storage
from optuna_sm2.training import _checkpoint
from optuna_sm2.training._checkpoint import (
    CheckpointKey,
    checkpoint_file,
    save_checkpoint,
    study_directory,
    study_directory_name,
)
from tests.support.tiny import die_past_first_rung, fail_and_retry, tiny_objective

HOSTILE = ["..", ".", "../../x", "/abs/evil", "a/b", "a\\b", "a\x00b", "", "~", "-", "é" * 300]


def _is_one_safe_component(name: str) -> bool:
    return (
        name not in ("", ".", "..")
        and not name.startswith(".")
        and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
        and len(name) <= 64 + 21
    )


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_study_names_give_one_safe_component(name: str) -> None:
    directory = study_directory_name(name, 7)
    assert _is_one_safe_component(directory), directory
    assert directory.endswith("-7")
    root = Path("/ckpt")
    assert (root / directory).parent == root


@given(st.text(), st.integers(min_value=0, max_value=2**63))
def test_any_study_name_gives_one_safe_component(name: str, study_id: int) -> None:
    directory = study_directory_name(name, study_id)
    assert _is_one_safe_component(directory)
    assert directory.endswith(f"-{study_id}")


def test_same_name_other_study_id_other_directory() -> None:
    assert study_directory_name("demo", 1) != study_directory_name("demo", 2)


@pytest.mark.parametrize("number", [-1, "../../x", "0", 1.0, True, None])
def test_trial_numbers_are_checked_before_they_go_into_a_path(number: object) -> None:
    with pytest.raises(ValueError, match="`trial_number` must be an integer >= 0"):
        checkpoint_file(Path("/ckpt"), number)


@pytest.mark.parametrize("name", ["..", "../../x", "/abs/evil", "a/b", "a\\b", "a\x00b"])
def test_checkpoints_stay_under_checkpoint_dir(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    objective = tiny_objective(batch_sizes=(8,), final_epochs=0, checkpoint_dir="ckpt")
    study = optuna.create_study(
        study_name=name, direction="maximize", pruner=objective.make_pruner()
    )
    study.optimize(objective, n_trials=1)
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    expected = study_directory(work / "ckpt", study) / "0.pt"
    assert written == [expected]
    assert not Path("/abs/evil").exists()


def _sqlite(tmp_path: Path, objective, name: str = "tiny") -> optuna.Study:
    return optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        study_name=name,
        direction="maximize",
        pruner=objective.make_pruner(),
    )


def _retry(study: optuna.Study, objective) -> optuna.trial.FrozenTrial:
    study.optimize(objective, n_trials=1)
    retry = study.trials[-1]
    assert retry.state == TrialState.COMPLETE
    return retry


def _started_from_scratch(retry: optuna.trial.FrozenTrial, objective) -> None:
    assert attrs.RESUMED_FROM not in retry.user_attrs
    assert retry.user_attrs[attrs.EPOCHS_TRAINED] == objective.schedule.train_epochs_total
    assert retry.user_attrs[attrs.EXPLORATIONS] == objective.schedule.explorations_total


def _checkpoint_of_trial_0(tmp_path: Path) -> Path:
    (path,) = (tmp_path / "ckpt").glob("*/0.pt")
    return path


def test_corrupt_checkpoint_is_ignored_and_the_retry_starts_over(tmp_path: Path) -> None:
    objective = tiny_objective(batch_sizes=(8,), checkpoint_dir=tmp_path / "ckpt")
    study = _sqlite(tmp_path, objective)
    die_past_first_rung(study, objective)
    path = _checkpoint_of_trial_0(tmp_path)
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a full disk
    with pytest.warns(UserWarning, match=r"0\.pt ignored: it cannot be read"):
        retry = _retry(study, objective)
    _started_from_scratch(retry, objective)


class _Stranger:
    """Not a tensor, a dict or a number: ``torch.load(weights_only=True)`` refuses it."""


def test_checkpoint_refused_by_weights_only_is_ignored(tmp_path: Path) -> None:
    objective = tiny_objective(batch_sizes=(8,), checkpoint_dir=tmp_path / "ckpt")
    study = _sqlite(tmp_path, objective)
    die_past_first_rung(study, objective)
    path = _checkpoint_of_trial_0(tmp_path)
    content = torch.load(path, weights_only=True)
    torch.save({**content, "model": _Stranger()}, path)
    with pytest.warns(UserWarning, match=r"ignored: it cannot be read \(UnpicklingError"):
        retry = _retry(study, objective)
    _started_from_scratch(retry, objective)


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("study_id", 99),
        ("study_name", "another"),
        ("trial_number", 5),
        ("batch_size", 16),
        ("trial_started", "2001-01-01T00:00:00"),
    ],
)
def test_checkpoint_of_another_trial_is_ignored(tmp_path: Path, field: str, other: object) -> None:
    objective = tiny_objective(batch_sizes=(8,), checkpoint_dir=tmp_path / "ckpt")
    study = _sqlite(tmp_path, objective)
    die_past_first_rung(study, objective)
    path = _checkpoint_of_trial_0(tmp_path)
    content = torch.load(path, weights_only=True)
    content["key"][field] = other
    torch.save(content, path)
    with pytest.warns(UserWarning, match=rf"belongs to another trial: {field} {other!r}"):
        retry = _retry(study, objective)
    _started_from_scratch(retry, objective)


def test_recreated_study_does_not_resume_from_the_deleted_ones_weights(tmp_path: Path) -> None:
    objective = tiny_objective(batch_sizes=(8,), checkpoint_dir=tmp_path / "ckpt")
    old = _sqlite(tmp_path, objective)
    die_past_first_rung(old, objective)
    stale = _checkpoint_of_trial_0(tmp_path)
    optuna.delete_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'study.db'}")
    new = _sqlite(tmp_path, objective)
    assert study_directory(tmp_path / "ckpt", new) == stale.parent  # SQLite reuses the id
    trial = new.ask()
    next(objective.run(trial))  # the first step, before any checkpoint of its own
    fail_and_retry(new, trial)
    with pytest.warns(UserWarning, match="belongs to another trial: trial_started"):
        retry = _retry(new, objective)
    _started_from_scratch(retry, objective)


def test_malformed_retry_history_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    objective = tiny_objective(batch_sizes=(8,), checkpoint_dir=tmp_path / "ckpt")
    study = _sqlite(tmp_path, objective)
    die_past_first_rung(study, objective)
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    storage = _compat.storage_of(study)
    history = [0, "../../../x", -1, 1.5, 10**30]  # the last: no storage keeps such a number
    storage.set_trial_system_attr(_compat.trial_id(waiting), "retry_history", history)
    with caplog.at_level(logging.WARNING, logger="optuna_sm2"):
        retry = _retry(study, objective)
    assert retry.user_attrs[attrs.RESUMED_FROM] == 0
    skipped = [r.getMessage() for r in caplog.records if "not a trial number" in r.getMessage()]
    assert len(skipped) == 4
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    folder = study_directory(Path("ckpt"), study)
    assert folder.name.startswith("tiny-1-")
    assert written == [folder / "0.pt", Path("study.db")]


def test_a_failed_write_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = CheckpointKey(1, "s", 0, "2024-01-01T00:00:00", 8)
    path = tmp_path / "s-1" / "0.pt"
    save_checkpoint(path, key, {"model": {}, "optimizer": {}, "progress": {"next_step": 2}})
    before = path.read_bytes()

    def dies_mid_write(obj: object, file: object) -> None:
        file.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("no space left on device")

    monkeypatch.setattr(_checkpoint.torch, "save", dies_mid_write)
    with pytest.raises(OSError, match="no space left"):
        save_checkpoint(path, key, {"model": {}, "optimizer": {}, "progress": {"next_step": 5}})
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["0.pt"]  # no partial file left behind


def test_retry_of_a_trial_killed_after_its_last_checkpoint_completes(tmp_path: Path) -> None:
    steps_run = []
    objective = tiny_objective(
        batch_sizes=(8,),
        final_epochs=0,  # the last step is a rung: its checkpoint is the trial's end
        checkpoint_dir=tmp_path / "ckpt",
        callbacks=[lambda trial, result: steps_run.append((trial.number, result.step))],
    )
    study = _sqlite(tmp_path, objective)
    trial = study.ask()
    for _ in objective.run(trial):
        pass
    fail_and_retry(study, trial)  # killed before it was told COMPLETE
    retry = _retry(study, objective)
    assert retry.user_attrs[attrs.RESUMED_FROM] == 0
    assert [number for number, _ in steps_run] == [0, 0]  # the retry had nothing left to run
    assert retry.value == study.trials[0].intermediate_values[objective.rung_steps[-1]]


def test_a_retry_training_inherited_steps_stores_its_own_figures(tmp_path: Path) -> None:
    """At a step whose value it inherited, a retry stores its own LR and energy (not the
    failed trial's last ones), so that ``sm2.stable_lr`` and ``sm2.lr_window`` agree."""
    stored = []

    def check(trial: optuna.trial.Trial, result) -> None:
        user_attrs = _compat.frozen(trial).user_attrs
        stored.append((trial.number, result.step, user_attrs[attrs.STABLE_LR], result.lr))

    objective = tiny_objective(batch_sizes=(8,), epochs_per_rung=1, callbacks=[check])
    study = _sqlite(tmp_path, objective)
    trial = study.ask()
    steps = objective.run(trial)
    for _ in range(3):  # past its first rung
        next(steps)
    steps.close()
    # Its last exploration chose another LR (the 0.336), then the worker was killed.
    trial.set_user_attr(attrs.STABLE_LR, 0.336)
    fail_and_retry(study, trial)
    retry = _retry(study, objective)  # no checkpoint_dir: it trains again from step 0
    inherited = study.trials[0].intermediate_values
    at_inherited = [
        (lr, own) for n, step, lr, own in stored if n == retry.number and step in inherited
    ]
    assert len(at_inherited) == len(inherited)
    assert all(lr == own for lr, own in at_inherited)  # not the inherited 0.336


def test_two_storages_whose_studies_share_name_and_id_never_share_checkpoints(
    tmp_path: Path,
) -> None:
    """Two SQLite files (and two journal files), each with a study ``tiny`` of id 1: their
    checkpoints go to two folders, so one never overwrites the other's."""
    objective = tiny_objective(batch_sizes=(8,), checkpoint_dir=tmp_path / "ckpt")
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
    studies = [_sqlite(tmp_path / where, objective) for where in ("a", "b")]
    journals = [
        optuna.create_study(storage=open_storage(str(tmp_path / f"{w}.log"), must_exist=False))
        for w in ("a", "b")
    ]
    assert _compat.study_id(studies[0]) == _compat.study_id(studies[1])
    folders = {study_directory(tmp_path / "ckpt", s) for s in (*studies, *journals)}
    assert len(folders) == 4
    for study in studies:
        die_past_first_rung(study, objective)
    assert len(list((tmp_path / "ckpt").glob("*/0.pt"))) == 2


def test_a_checkpoint_under_the_folder_name_without_the_storage_is_resumed(
    tmp_path: Path,
) -> None:
    """A checkpoint written by optuna-sm2 0.x (``<name>-<id>``, no storage digest) still
    resumes its retry."""
    objective = tiny_objective(batch_sizes=(8,), checkpoint_dir=tmp_path / "ckpt")
    study = _sqlite(tmp_path, objective)
    die_past_first_rung(study, objective)
    path = _checkpoint_of_trial_0(tmp_path)
    legacy = tmp_path / "ckpt" / study_directory_name("tiny", _compat.study_id(study))
    path.parent.rename(legacy)
    retry = _retry(study, objective)
    assert retry.user_attrs[attrs.RESUMED_FROM] == 0
