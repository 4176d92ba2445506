from __future__ import annotations

import math
import warnings

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from optuna_sm2 import SuccessiveHalvingEnergyPruner, attrs, report
from optuna_sm2.pruners import RungDecision, RungRecord, own_records
from tests.pruners.test_weighted_objective import _brute_force


def _study(direction="maximize", **kwargs):
    return optuna.create_study(direction=direction, pruner=SuccessiveHalvingEnergyPruner(**kwargs))


def _records(study, rung):
    key = f"sm2:rung_{rung}"
    return {
        t.number: t.system_attrs[key]
        for t in study.get_trials(deepcopy=False)
        if key in t.system_attrs and t.system_attrs[key]["trial"] == t.number
    }


@settings(max_examples=150, deadline=None)
@given(
    trials=st.lists(
        st.tuples(
            st.floats(0, 1),  # value
            st.floats(1, 1000),  # energy per epoch
            st.floats(1e-3, 1),  # stable lr
        ),
        min_size=1,
        max_size=16,
    ),
    alpha=st.floats(0, 1),
    beta=st.floats(0, 1),
    maximize=st.booleans(),
)
def test_rung_decision_is_eq2_over_recorded_competitors(trials, alpha, beta, maximize):
    """alpha < 1, the paper's rule: each decision at rung 0 equals a brute-force reading of
    Eq. 2."""
    study = _study(
        "maximize" if maximize else "minimize",
        alpha=alpha,
        beta=beta,
        rung_steps=[0],
        ranking="paper",
    )
    seen: list[tuple[float, float, float]] = []
    for value, energy, lr in trials:
        trial = study.ask()
        report(trial, value, 0, energy_per_epoch_j=energy, stable_lr=lr)
        pruned = trial.should_prune()
        seen.append((value, energy, lr))
        values, energies, lrs = (list(c) for c in zip(*seen, strict=True))
        scores = _brute_force(values, energies, lrs, alpha, beta, maximize, True)
        oriented = [v if maximize else -v for v in values]
        keys = sorted(zip(scores, oriented, strict=True), reverse=True)
        k = max(len(seen) // 2, 1)
        me = (scores[-1], oriented[-1])
        # Scores computed two ways may differ in the last bits: only check clear cases.
        margin = abs(me[0] - keys[k - 1][0])
        if margin > 1e-9 or me == keys[k - 1]:
            assert pruned == (me < keys[k - 1])
        study.tell(
            trial,
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            values=None if pruned else [value],
        )


def test_energy_decides_between_equal_performers():
    study = _study(alpha=0.5, beta=1.0, rung_steps=[0])
    cheap, costly = study.ask(), study.ask()
    report(cheap, 0.9, 0, energy_per_epoch_j=100.0, stable_lr=0.1)
    report(costly, 0.9, 0, energy_per_epoch_j=400.0, stable_lr=0.1)
    assert not cheap.should_prune()
    assert costly.should_prune()


def test_geometric_and_explicit_rungs():
    pruner = SuccessiveHalvingEnergyPruner(min_resource=2, reduction_factor=3)
    study = optuna.create_study(pruner=pruner)
    assert [pruner._promotion_step(study, r) for r in range(3)] == [2, 6, 18]
    pruner = SuccessiveHalvingEnergyPruner(rung_steps=[0, 6, 12])
    assert [pruner._promotion_step(study, r) for r in range(4)] == [0, 6, 12, None]


def test_nothing_decided_below_first_rung_nor_after_last():
    study = _study(alpha=1.0, rung_steps=[2])
    trials = [study.ask() for _ in range(4)]
    values = [3.0, 2.0, 1.0, 2.5]
    for step in range(2):
        for t, value in zip(trials, values, strict=True):
            report(t, value, step)
            assert not t.should_prune()
    assert _records(study, 0) == {}
    decisions = []
    for t, value in zip(trials, values, strict=True):
        report(t, value, 2)
        decisions.append(t.should_prune())
    # Best of 1, not best of 2, not best of 3, in the top 2 of 4.
    assert decisions == [False, True, True, False]
    for t in trials:
        report(t, -100.0, 5)
        assert not t.should_prune()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_non_finite_value_at_a_rung_prunes_and_is_not_recorded(bad, direction):
    study = _study(direction, rung_steps=[1])
    t = study.ask()
    report(t, bad, 0)
    assert not t.should_prune()  # below the rung: no decision yet
    report(t, bad, 1)
    assert t.should_prune()
    assert _records(study, 0) == {}


def test_non_finite_competitor_ranks_last():
    study = _study(alpha=1.0, rung_steps=[0])
    pruner = study.pruner
    assert isinstance(pruner, SuccessiveHalvingEnergyPruner)
    bad = study.ask()
    study._storage.set_trial_system_attr(
        bad._trial_id,
        "sm2:rung_0",
        {"trial": bad.number, "value": math.inf, "energy_per_epoch_j": None, "stable_lr": None},
    )
    good = study.ask()
    report(good, -1e300, 0)
    assert not good.should_prune()


def test_missing_attribute_is_left_out_with_one_warning():
    study = _study(alpha=0.5, beta=1.0, rung_steps=[0, 1])
    a, b, c = study.ask(), study.ask(), study.ask()
    report(a, 0.5, 0, energy_per_epoch_j=1.0)
    report(b, 0.9, 0)  # no energy: energy is left out of rung 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not a.should_prune()  # alone at the rung
        assert not b.should_prune()  # best by performance alone
        report(c, 0.1, 0, energy_per_epoch_j=0.5)
        assert c.should_prune()  # cheapest, but energy does not count here
        report(a, 0.5, 1, energy_per_epoch_j=1.0)
        a.should_prune()
        report(b, 0.9, 1)
        b.should_prune()
    missing = [w for w in caught if "energy per epoch is missing" in str(w.message)]
    assert len(missing) == 1
    assert "trial(s) [1]" in str(missing[0].message)


def test_a_study_without_any_stable_lr_ranks_by_performance_and_energy_without_warning():
    """A loop that searches the LR itself (optuna-examples' pytorch_simple.py) reports none:
    nothing to act on, so no warning; a trial that then reports one makes the lack a mistake."""
    study = _study(alpha=0.5, rung_steps=[0])
    trials = [study.ask() for _ in range(4)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figures = [(0.5, 4.0), (0.5, 1.0), (0.9, 9.0), (0.1, 0.5)]
        for t, (value, joules) in zip(trials, figures, strict=True):
            report(t, value, 0, energy_per_epoch_j=joules)
            t.should_prune()
    assert not [w for w in caught if "is missing" in str(w.message)]
    pruner = study.pruner
    assert isinstance(pruner, SuccessiveHalvingEnergyPruner)
    ranking = pruner.rank(study, list(_records_of(study, 0)))
    assert ranking.left_out == {"lr": (0, 1, 2, 3)} and ranking.unreported == ("lr",)
    assert ranking.weights == pytest.approx({"performance": 2 / 3, "energy": 1 / 3})

    late = study.ask()
    with pytest.warns(UserWarning, match=r"stable learning rate is missing for trial\(s\) \[0, "):
        report(late, 0.5, 0, energy_per_epoch_j=1.0, stable_lr=0.1)
        late.should_prune()


def _records_of(study, rung):
    return [RungRecord(**record) for record in _records(study, rung).values()]


def test_records_are_written_once_and_hold_what_was_ranked():
    study = _study(rung_steps=[0, 2])
    t = study.ask()
    report(t, 0.5, 0, energy_per_epoch_j=12.0, stable_lr=0.05)
    t.should_prune()
    report(t, 0.7, 1, energy_per_epoch_j=99.0, stable_lr=0.5)
    t.should_prune()
    t.should_prune()
    assert _records(study, 0)[0] == {
        "trial": 0,
        "value": 0.5,
        "energy_per_epoch_j": 12.0,
        "stable_lr": 0.05,
        # What the pruner decided, when it decided: alone at the rung, promoted.
        "decision": {
            "promoted": True,
            "rank": 1,
            "competitors": 1,
            "promote_count": 1,
            "score": 1.0,
            "terms": {"performance": 0.75, "energy": 0.125, "lr": 0.125},
            "diverged": False,
        },
    }
    assert 0 not in _records(study, 1)
    assert not any(k.startswith("completed_rung") for k in study.trials[0].system_attrs)


def test_record_rung_then_rank_all_together():
    """The synchronous schedule: record every configuration, then decide for each."""
    study = _study(alpha=1.0, rung_steps=[0])
    pruner = study.pruner
    assert isinstance(pruner, SuccessiveHalvingEnergyPruner)
    trials = [study.ask() for _ in range(8)]
    for i, t in enumerate(trials):
        report(t, float(i), 0)
        assert pruner.record_rung(study, study._storage.get_trial(t._trial_id)) == [0]
        assert pruner.record_rung(study, study._storage.get_trial(t._trial_id)) == []
    promoted = [
        pruner.is_promoted(study, study._storage.get_trial(t._trial_id), 0) for t in trials
    ]
    assert promoted == [False] * 4 + [True] * 4
    nan_trial = study.ask()
    report(nan_trial, math.nan, 0)
    assert pruner.record_rung(study, study._storage.get_trial(nan_trial._trial_id)) == []
    assert not pruner.is_promoted(study, study._storage.get_trial(nan_trial._trial_id), 0)


def test_bootstrap_count_as_optuna():
    study = _study(min_resource=1, bootstrap_count=2, alpha=1.0)
    first = study.ask()
    report(first, 1.0, 1)
    assert first.should_prune()  # too few competitors yet, as in Optuna


def test_retried_trial_takes_its_configurations_rungs_and_earns_the_next(tmp_path):
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 's.db'}",
        heartbeat_interval=60,
        grace_period=120,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
            inherit_intermediate_values=True
        ),
    )
    study = optuna.create_study(
        storage=storage, direction="maximize", pruner=SuccessiveHalvingEnergyPruner(alpha=1.0)
    )
    for value in (0.8, 0.9):
        t = study.ask()
        report(t, value, 1)
        assert not t.should_prune()
        report(t, value + 0.01, 2)
        assert not t.should_prune()
        study.tell(t, value)
    doomed = study.ask()
    report(doomed, 0.95, 1)
    assert not doomed.should_prune()  # 0.95 is the best of three: promoted to rung 1
    # The worker dies; Optuna's heartbeat marks the trial FAIL and queues a retry with
    # the failed trial's system attrs (our records included) and intermediate values.
    storage.set_trial_state_values(doomed._trial_id, TrialState.FAIL)
    RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)(
        study, storage.get_trial(doomed._trial_id)
    )
    retry = study.ask()
    assert retry.number == 3
    inherited = storage.get_trial_system_attrs(retry._trial_id)
    assert inherited["sm2:rung_0"]["trial"] == doomed.number
    # The retry goes on and does worse this time. Rung 0 (step 1) is its configuration's:
    # the failed trial recorded it and was promoted there, so the retry is not ranked there
    # again (against its own predecessor); it must earn rung 1 (step 2) itself.
    report(retry, 0.1, 2)
    assert retry.should_prune()
    assert sorted(_records(study, 0)) == [0, 1, 2]  # the configuration counted once
    assert _records(study, 1)[3]["value"] == 0.1
    assert _records(study, 1)[3]["decision"]["rank"] == 3  # after 0.81 and 0.91


def test_retry_ranks_the_value_at_the_rungs_step_not_a_later_inherited_one(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(
        storage=storage, direction="maximize", pruner=SuccessiveHalvingEnergyPruner(alpha=1.0)
    )
    failed = study.ask()
    for step, value in enumerate([0.1, 0.2, 0.3, 0.9]):
        failed.report(value, step)  # no decision asked: the worker died first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage.set_trial_state_values(failed._trial_id, TrialState.FAIL)
        RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)(
            study, storage.get_trial(failed._trial_id)
        )
    retry = study.ask()
    assert retry.should_prune() is False  # rungs at steps 1 and 2 (min_resource 1, halving)
    assert _records(study, 0)[retry.number]["value"] == 0.2
    assert _records(study, 1)[retry.number]["value"] == 0.3  # not step 3's 0.9


def test_multi_objective_study_is_refused():
    study = optuna.create_study(directions=["minimize", "maximize"])
    pruner = SuccessiveHalvingEnergyPruner()
    trial = study.ask()
    with pytest.raises(ValueError, match="single-objective studies only"):
        pruner.prune(study, study._storage.get_trial(trial._trial_id))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_resource": 0}, r"`min_resource` must be 'auto' or an integer >= 1, got 0"),
        ({"min_resource": "fast"}, r"`min_resource` must be 'auto' or an integer >= 1"),
        ({"reduction_factor": 1}, r"`reduction_factor` must be an integer >= 2, got 1"),
        ({"min_early_stopping_rate": -1}, r"`min_early_stopping_rate` must be an integer >= 0"),
        ({"bootstrap_count": -2}, r"`bootstrap_count` must be an integer >= 0, got -2"),
        ({"bootstrap_count": 1, "min_resource": "auto"}, r"needs an integer `min_resource`"),
        ({"alpha": 1.01}, r"`alpha` must be a finite number in \[0, 1\], got 1.01"),
        ({"beta": -0.5}, r"`beta` must be a finite number in \[0, 1\], got -0.5"),
        ({"lr_scale": "exp"}, r"`lr_scale` must be one of 'log', 'linear', got 'exp'"),
        ({"rung_steps": []}, r"`rung_steps` must be a non-empty list of integers >= 0"),
        ({"rung_steps": [0, -1]}, r"`rung_steps` must be a non-empty list of integers >= 0"),
        ({"rung_steps": [0, 6, 6]}, r"`rung_steps` must be strictly increasing"),
        ({"rung_steps": [3, 1]}, r"`rung_steps` must be strictly increasing"),
        ({"rung_steps": [0, 1], "min_resource": 2}, r"`rung_steps` replaces the geometric"),
        ({"ranking": "Eq2"}, r"`ranking` must be one of 'robust', 'paper', got 'Eq2'"),
        ({"ranking": True}, r"`ranking` must be one of 'robust', 'paper', got True"),
        (
            {"performance_tolerance": 1},
            r"`performance_tolerance` must be a finite number in \[0, 1\), got 1",
        ),
        ({"performance_tolerance": math.nan}, r"`performance_tolerance` must be a finite"),
        ({"performance_tolerance": None}, r"`performance_tolerance` must be a finite"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SuccessiveHalvingEnergyPruner(**kwargs)


def test_report_stores_attributes_and_validates():
    study = optuna.create_study()
    t = study.ask()
    report(t, 1.0, 0, energy_per_epoch_j=5.0, stable_lr=0.1)
    assert t.user_attrs[attrs.ENERGY_PER_EPOCH_J] == 5.0
    assert t.user_attrs[attrs.STABLE_LR] == 0.1
    with pytest.raises(ValueError, match="`energy_per_epoch_j` must be a finite number >= 0"):
        report(t, 1.0, 1, energy_per_epoch_j=math.nan, stable_lr=0.2)
    with pytest.raises(ValueError, match="`stable_lr` must be a finite number > 0"):
        report(t, 1.0, 1, energy_per_epoch_j=6.0, stable_lr=0.0)
    assert t.user_attrs[attrs.ENERGY_PER_EPOCH_J] == 5.0  # nothing half-written
    assert 1 not in study.trials[0].intermediate_values


@pytest.mark.parametrize(
    "malformed",
    [
        {"trial": 0, "energy_per_epoch_j": 1.0},  # no value
        {"trial": 0, "value": "high"},
        {"value": 0.5},  # no trial
        "not a record",
        {"trial": 0, "value": True},
    ],
)
def test_a_malformed_record_is_ignored_with_one_warning(malformed):
    study = _study(alpha=1.0, rung_steps=[0])
    broken = study.ask()
    study._storage.set_trial_system_attr(broken._trial_id, "sm2:rung_0", malformed)
    study.tell(broken, state=TrialState.PRUNED)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for value in (1.0, 2.0, 0.5, 3.0):
            t = study.ask()
            report(t, value, 0)
            t.should_prune()  # never fails on the malformed record
            study.tell(t, value)
    assert [t.state for t in study.trials[1:]] == [TrialState.COMPLETE] * 4
    about = [w for w in caught if "malformed rung record" in str(w.message)]
    assert len(about) == 1 and "Trial 0" in str(about[0].message)
    assert [n for n, t in enumerate(study.trials) if 0 in own_records(n, t.system_attrs)] == [
        1,
        2,
        3,
        4,
    ]


def test_own_malformed_record_is_replaced_by_a_real_one():
    study = _study(alpha=1.0, rung_steps=[0])
    t = study.ask()
    study._storage.set_trial_system_attr(t._trial_id, "sm2:rung_0", {"trial": t.number})
    report(t, 0.5, 0)
    with pytest.warns(UserWarning, match="malformed rung record"):
        assert not t.should_prune()
    assert _records(study, 0)[0]["value"] == 0.5


@pytest.mark.parametrize("steps", [iter([1, 2]), (s for s in (1, 2)), range(1, 3), (1, 2)])
def test_rung_steps_accepts_any_iterable_once(steps):
    pruner = SuccessiveHalvingEnergyPruner(rung_steps=steps, alpha=1.0)
    assert pruner.rung_steps == (1, 2)
    study = optuna.create_study(pruner=pruner)
    decisions = []
    for value in (1.0, 2.0, 3.0):
        t = study.ask()
        report(t, value, 1)
        decisions.append(t.should_prune())
    assert decisions == [False, True, True]  # minimize, k = 1: only the best goes on
    assert [pruner._promotion_step(study, r) for r in range(3)] == [1, 2, None]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rung_steps": 5}, r"`rung_steps` must be a list of integers, got 5"),
        ({"rung_steps": "12"}, r"`rung_steps` must be a list of integers"),
        ({"rung_steps": [1.5]}, r"`rung_steps` must be a non-empty list of integers >= 0"),
        ({"rung_steps": [True]}, r"`rung_steps` must be a non-empty list of integers >= 0"),
        ({"alpha": True}, r"`alpha` must be a finite number in \[0, 1\], got True"),
        ({"alpha": "0.5"}, r"`alpha` must be a finite number in \[0, 1\]"),
        ({"reduction_factor": 2.0}, r"`reduction_factor` must be an integer >= 2, got 2.0"),
        ({"min_resource": True}, r"`min_resource` must be 'auto' or an integer >= 1"),
        ({"bootstrap_count": None}, r"`bootstrap_count` must be an integer >= 0"),
    ],
)
def test_more_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SuccessiveHalvingEnergyPruner(**kwargs)


def test_numpy_arguments_are_accepted():
    pruner = SuccessiveHalvingEnergyPruner(
        min_resource=np.int64(2),
        reduction_factor=np.int32(3),
        alpha=np.float32(0.5),
        beta=np.float64(0.25),
    )
    assert pruner.settings.min_resource == 2 and type(pruner.settings.min_resource) is int
    assert pruner.settings.alpha == 0.5 and type(pruner.settings.alpha) is float


def test_records_without_or_with_a_malformed_decision_still_read():
    old = {"trial": 2, "value": 0.5, "energy_per_epoch_j": 3.0, "stable_lr": 0.1}
    record = RungRecord.from_json(old)
    assert record is not None and record.decision is None and record.to_json() == old
    decided = RungDecision(False, 3, 4, 2, 0.25, {"performance": 0.25, "energy": 0.0, "lr": 0.0})
    stored = {**old, "decision": decided.to_json()}
    assert RungRecord.from_json(stored) == RungRecord(2, 0.5, 3.0, 0.1, decision=decided)
    for bad in (
        {"promoted": 1},
        {**decided.to_json(), "rank": 0},
        {**decided.to_json(), "terms": []},
    ):
        again = RungRecord.from_json({**old, "decision": bad})
        assert again is not None and again.decision is None  # read as undecided, not dropped


def test_record_rung_stores_no_decision_and_prune_stores_one():
    study = _study(alpha=1.0, rung_steps=[0])
    pruner = study.pruner
    a, b = study.ask(), study.ask()
    report(a, 0.3, 0)
    pruner.record_rung(study, study._storage.get_trial(a._trial_id))
    report(b, 0.9, 0)
    assert not b.should_prune()
    assert "decision" not in _records(study, 0)[0]
    assert _records(study, 0)[1]["decision"] == {
        "promoted": True,
        "rank": 1,
        "competitors": 2,
        "promote_count": 1,
        "score": 1.0,
        "terms": {"performance": 1.0, "energy": 0.0, "lr": 0.0},
        "diverged": False,
    }
