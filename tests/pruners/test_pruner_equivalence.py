"""With alpha=1 the pruner decides exactly as Optuna's SuccessiveHalvingPruner."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from optuna_sm2 import SuccessiveHalvingEnergyPruner, report
from tests.support.storages import STORAGE_KINDS, make_storage

# A few distinct values so that ties are common; NaN now and then.
values = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 1.0, -3.0]),
    st.floats(-10, 10, allow_nan=False, allow_infinity=False),
    st.just(math.nan),
)
# Each trial: increasing steps with gaps (so one call may cross several rungs).
trial_reports = st.lists(st.tuples(st.integers(1, 3), values), min_size=1, max_size=10)


@st.composite
def pruner_args(draw):
    min_resource = draw(st.sampled_from(["auto", 1, 2, 3]))
    bootstrap = 0 if min_resource == "auto" else draw(st.integers(0, 3))
    return {
        "min_resource": min_resource,
        "reduction_factor": draw(st.integers(2, 4)),
        "min_early_stopping_rate": draw(st.integers(0, 2)),
        "bootstrap_count": bootstrap,
    }


def _run_side_by_side(storage, args, direction, trials, energy_attrs):
    ours = optuna.create_study(
        storage=storage,
        study_name="ours",
        direction=direction,
        pruner=SuccessiveHalvingEnergyPruner(**args, alpha=1.0),
    )
    theirs = optuna.create_study(
        storage=storage,
        study_name="theirs",
        direction=direction,
        pruner=optuna.pruners.SuccessiveHalvingPruner(**args),
    )
    decisions = 0
    for n, reports in enumerate(trials):
        a, b = ours.ask(), theirs.ask()
        step = -1
        for gap, value in reports:
            step += gap
            # Energy and LR vary, but with alpha=1 they must not matter.
            extra = {"energy_per_epoch_j": 10.0 + n, "stable_lr": 0.1 / (n + 1)}
            report(a, value, step, **(extra if energy_attrs else {}))
            b.report(value, step)
            got, want = a.should_prune(), b.should_prune()
            assert got == want, f"trial {n} step {step}: ours={got} optuna={want}"
            decisions += 1
            if got:
                ours.tell(a, state=TrialState.PRUNED)
                theirs.tell(b, state=TrialState.PRUNED)
                break
        else:
            ours.tell(a, 1.0)
            theirs.tell(b, 1.0)
    return decisions


EXAMPLES = {"inmemory": 300, "sqlite": 30, "journal": 40}


@pytest.mark.parametrize("kind", STORAGE_KINDS)
def test_alpha_one_decides_as_optuna(kind):
    @settings(
        max_examples=EXAMPLES[kind],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        args=pruner_args(),
        direction=st.sampled_from(["minimize", "maximize"]),
        trials=st.lists(trial_reports, min_size=1, max_size=12),
        energy_attrs=st.booleans(),
    )
    def check(args, direction, trials, energy_attrs):
        with tempfile.TemporaryDirectory() as tmp:
            storage = make_storage(kind, Path(tmp))
            _run_side_by_side(storage, args, direction, trials, energy_attrs)

    check()


def test_a_long_fixed_sequence_makes_real_decisions():
    """Guard against a vacuous equivalence: the sequence prunes and promotes."""
    trials = [[(1, (i * 7919) % 13 / 13.0)] * 8 for i in range(40)]
    storage = optuna.storages.InMemoryStorage()
    args = {"min_resource": 1, "reduction_factor": 2, "min_early_stopping_rate": 0}
    _run_side_by_side(storage, {**args, "bootstrap_count": 0}, "maximize", trials, True)
    states = [t.state for t in optuna.load_study(study_name="ours", storage=storage).trials]
    assert states.count(TrialState.PRUNED) > 10
    assert states.count(TrialState.COMPLETE) > 3
