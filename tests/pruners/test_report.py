"""``report()``: every argument checked before anything is written; Optuna's duplicate steps."""

from __future__ import annotations

import math
import warnings

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optuna_sm2 import SuccessiveHalvingEnergyPruner, attrs, report


def _snapshot(study: optuna.Study) -> tuple[object, ...]:
    t = study.trials[-1]
    return (dict(t.user_attrs), dict(t.intermediate_values), dict(t.system_attrs))


GOOD = {"value": 0.5, "step": 3, "energy_per_epoch_j": 2.0, "stable_lr": 0.1}


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"value": "abc"}, r"`value` must be a number"),
        ({"value": True}, r"`value` must be a number"),
        ({"value": None}, r"`value` must be a number"),
        ({"step": "1"}, r"`step` must be an integer >= 0, got '1'"),
        ({"step": 1.5}, r"`step` must be an integer >= 0"),
        ({"step": -1}, r"`step` must be an integer >= 0, got -1"),
        ({"step": False}, r"`step` must be an integer >= 0"),
        ({"energy_per_epoch_j": "5"}, r"`energy_per_epoch_j` must be a finite number >= 0"),
        ({"energy_per_epoch_j": -1.0}, r"`energy_per_epoch_j` must be a finite number >= 0"),
        ({"energy_per_epoch_j": math.inf}, r"`energy_per_epoch_j`"),
        ({"energy_per_epoch_j": True}, r"`energy_per_epoch_j`"),
        ({"stable_lr": 0.0}, r"`stable_lr` must be a finite number > 0"),
        ({"stable_lr": math.nan}, r"`stable_lr` must be a finite number > 0"),
        ({"energy_per_epoch_spread": -0.1}, r"`energy_per_epoch_spread` must be a finite"),
        ({"energy_per_epoch_spread": "0.1"}, r"`energy_per_epoch_spread`"),
        (
            {"energy_per_epoch_j": None, "energy_per_epoch_spread": 0.1},
            r"`energy_per_epoch_spread` describes `energy_per_epoch_j`",
        ),
    ],
)
def test_bad_input_writes_nothing(bad: dict[str, object], match: str) -> None:
    study = optuna.create_study()
    trial = study.ask()
    report(trial, 1.0, 0, energy_per_epoch_j=1.0, stable_lr=0.5)
    before = _snapshot(study)
    with pytest.raises(ValueError, match=match):
        report(trial, **{**GOOD, **bad})  # type: ignore[arg-type]
    assert _snapshot(study) == before


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["value", "step", "energy_per_epoch_j", "stable_lr"]),
    bad=st.one_of(
        st.text(max_size=3),
        st.booleans(),
        st.lists(st.floats(), max_size=2),
        st.just(-1),
        st.just(-math.inf),
    ),
)
def test_random_bad_values_name_the_argument(name: str, bad: object) -> None:
    if name == "value" and bad in (-1, -math.inf):
        return  # any number is a value
    study = optuna.create_study()
    trial = study.ask()
    before = _snapshot(study)
    with pytest.raises(ValueError, match=f"`{name}`"):
        report(trial, **{**GOOD, name: bad})  # type: ignore[arg-type]
    assert _snapshot(study) == before


def test_numpy_numbers_are_accepted() -> None:
    study = optuna.create_study(pruner=SuccessiveHalvingEnergyPruner(alpha=np.float32(0.5)))
    trial = study.ask()
    report(
        trial,
        np.float32(0.25),
        np.int64(1),
        energy_per_epoch_j=np.float64(3.5),
        stable_lr=np.float32(0.5),
        energy_per_epoch_spread=np.float16(0.25),
    )
    trial.should_prune()
    stored = study.trials[0]
    assert stored.intermediate_values == {1: 0.25}
    assert stored.user_attrs[attrs.ENERGY_PER_EPOCH_J] == 3.5
    assert stored.user_attrs[attrs.ENERGY_PER_EPOCH_SPREAD] == 0.25
    assert type(stored.user_attrs[attrs.STABLE_LR]) is float
    assert stored.system_attrs["sm2:rung_0"]["energy_per_epoch_spread"] == 0.25


def test_a_duplicate_step_keeps_optunas_value_and_the_stored_energy() -> None:
    study = optuna.create_study()
    trial = study.ask()
    report(trial, 1.0, 2, energy_per_epoch_j=10.0, stable_lr=0.1, energy_per_epoch_spread=0.05)
    with pytest.warns(UserWarning, match="already reported"):
        report(trial, 9.0, 2, energy_per_epoch_j=99.0, stable_lr=0.9, energy_per_epoch_spread=0.5)
    stored = study.trials[0]
    assert stored.intermediate_values == {2: 1.0}
    assert stored.user_attrs[attrs.ENERGY_PER_EPOCH_J] == 10.0
    assert stored.user_attrs[attrs.ENERGY_PER_EPOCH_SPREAD] == 0.05
    assert stored.user_attrs[attrs.STABLE_LR] == 0.1


def test_an_attribute_passed_as_none_keeps_its_value() -> None:
    study = optuna.create_study()
    trial = study.ask()
    report(trial, 1.0, 0, energy_per_epoch_j=10.0, stable_lr=0.1, energy_per_epoch_spread=0.2)
    report(trial, 1.0, 1, energy_per_epoch_j=12.0)  # e.g. TrialEnergy stores the spread itself
    stored = study.trials[0].user_attrs
    assert stored[attrs.ENERGY_PER_EPOCH_J] == 12.0
    assert stored[attrs.ENERGY_PER_EPOCH_SPREAD] == 0.2 and stored[attrs.STABLE_LR] == 0.1
    plain = optuna.create_study()
    trial = plain.ask()
    report(trial, 1.0, 0, energy_per_epoch_j=10.0)
    assert attrs.ENERGY_PER_EPOCH_SPREAD not in plain.trials[0].user_attrs


def test_multi_objective_study_is_refused_before_writing() -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    trial = study.ask()
    with pytest.raises(ValueError, match="single-objective"):
        report(trial, 1.0, 0, energy_per_epoch_j=1.0)
    assert study.trials[0].user_attrs == {}


def test_non_finite_values_are_reported_as_optuna_does() -> None:
    study = optuna.create_study()
    trial = study.ask()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report(trial, math.nan, 0)
        report(trial, -math.inf, 1)
    values = study.trials[0].intermediate_values
    assert math.isnan(values[0]) and values[1] == -math.inf


def test_a_fixed_trial_is_reported_as_before() -> None:
    trial = optuna.trial.FixedTrial({"x": 1.0})
    report(trial, 1.0, 0, energy_per_epoch_j=2.0, stable_lr=0.1)
    assert trial.user_attrs == {attrs.ENERGY_PER_EPOCH_J: 2.0, attrs.STABLE_LR: 0.1}
    with pytest.raises(ValueError, match="`step`"):
        report(trial, 1.0, -1)
