"""What a trial stores is one typed record, written by one writer, and docs/stored-data.md
lists exactly its keys and types."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import optuna
import pytest

from optuna_sm2 import _compat, attrs
from optuna_sm2 import _trial_attrs as trial_attrs
from optuna_sm2._trial_attrs import TRIAL_ATTRS, TrialAttrs, TrialWriter
from tests.support.writes import CountedWrites

STORED_DATA = Path(__file__).resolve().parents[2] / "docs" / "stored-data.md"

STUDY_ATTRS = {attrs.SCHEDULE, attrs.PRUNER}


def _doc_table() -> dict[str, str]:
    """``key -> type`` of the doc's table of trial user attributes."""
    text = STORED_DATA.read_text(encoding="utf-8")
    section = text.split("## Trial user attributes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(sm2\.[a-z_]+)` \| ([^|]+?) \|", section, flags=re.MULTILINE)
    return dict(rows)


def test_the_doc_lists_every_trial_attr_with_its_type_and_nothing_else() -> None:
    assert _doc_table() == {attr.key: attr.type for attr in TRIAL_ATTRS}


def test_every_user_attr_name_of_a_trial_is_one_field_of_the_record() -> None:
    names = {v for k, v in vars(attrs).items() if k.isupper() and isinstance(v, str)}
    user = {name for name in names if name.startswith("sm2.")} - STUDY_ATTRS
    assert {attr.key for attr in TRIAL_ATTRS} == user
    assert len({attr.key for attr in TRIAL_ATTRS}) == len(TRIAL_ATTRS)
    assert [f.name for f in dataclasses.fields(TrialAttrs)] == [a.name for a in TRIAL_ATTRS]


def test_the_record_reads_each_type_and_nothing_that_is_not_it() -> None:
    held = TrialAttrs.read(
        {
            attrs.ENERGY_TOTAL_J: 12.5,
            attrs.EPOCHS_TRAINED: 3.0,
            attrs.EXPLORATIONS: -1,
            attrs.ENERGY_SOURCE: "rapl",
            attrs.LR_WINDOW: [0.01, 0.1],
            attrs.STABLE_LR: "0.1",
            attrs.ENERGY_PER_EPOCH_J: float("nan"),
            attrs.LR_DIVERGED_AT: None,
            attrs.RESUMED_FROM: True,
        }
    )
    assert held == TrialAttrs(
        energy_total_j=12.5, epochs_trained=3, energy_source="rapl", lr_window=(0.01, 0.1)
    )
    assert TrialAttrs.read({attrs.LR_WINDOW: [0.01]}).lr_window is None
    assert TrialAttrs.read({}) == TrialAttrs()


@pytest.mark.parametrize("attr", TRIAL_ATTRS, ids=lambda a: a.name)
def test_each_value_reads_back_as_written(attr: trial_attrs.TrialAttr[object]) -> None:
    value = {
        "float": 0.25,
        "float or null": 0.25,
        "int": 4,
        "str or null": "nvml-counter+rapl",
        "[float, float]": (0.01, 0.5),
    }[attr.type]
    trial = optuna.trial.FixedTrial({})
    TrialWriter(trial).write(attr, value)
    assert attr.read(trial.user_attrs) == value
    assert attr.read({attr.key: None}) is None


def test_a_retry_writes_only_its_figures_that_differ_from_those_it_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'retry.db'}")
    study = optuna.create_study(storage=storage)
    inherited = {attrs.STABLE_LR: 0.1, attrs.LR_WINDOW: [0.01, 0.2], attrs.EPOCHS_TRAINED: 2}
    study.enqueue_trial({}, user_attrs=inherited)
    trial = study.ask()
    writes = CountedWrites(storage, monkeypatch)
    writer = TrialWriter(trial)
    assert writer.holds(trial_attrs.STABLE_LR) and not writer.holds(trial_attrs.ENERGY_TOTAL_J)
    assert not writer.write(trial_attrs.STABLE_LR, 0.1)
    assert not writer.write(trial_attrs.LR_WINDOW, (0.01, 0.2))
    assert writer.write(trial_attrs.EPOCHS_TRAINED, 3)  # its own figure
    assert writer.write(trial_attrs.LR_DIVERGED_AT, None)  # null, where nothing was held
    assert not writer.write(trial_attrs.LR_DIVERGED_AT, None)
    # What the trial was given by another hand counts as held, too.
    trial.set_user_attr(attrs.STABLE_LR, 0.3)
    assert writer.write(trial_attrs.STABLE_LR, 0.1)
    assert writes.calls == {
        attrs.EPOCHS_TRAINED: 1,
        attrs.LR_DIVERGED_AT: 1,
        attrs.STABLE_LR: 2,
    }
    assert writes.unchanged == []
    assert storage.get_trial(_compat.trial_id(trial)).user_attrs == {
        **inherited,
        attrs.EPOCHS_TRAINED: 3,
        attrs.LR_DIVERGED_AT: None,
        attrs.STABLE_LR: 0.1,
    }
