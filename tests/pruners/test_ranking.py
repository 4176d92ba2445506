"""The one ranking rule: ``rank_rung`` over plain records."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from optuna_sm2 import SuccessiveHalvingEnergyPruner, report, weighted_objective
from optuna_sm2.pruners import (
    RungRecord,
    rank_rung,
    weighted_components,
)

records_strategy = st.lists(
    st.tuples(
        st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, 0.5, 1.0])),
        st.one_of(st.none(), st.floats(0, 1e4)),
        st.one_of(st.none(), st.floats(1e-4, 1.0)),
    ),
    min_size=1,
    max_size=20,
)


def _records_of(rows):
    return [RungRecord(i, v, e, lr) for i, (v, e, lr) in enumerate(rows)]


@settings(max_examples=200, deadline=None)
@given(
    rows=records_strategy,
    alpha=st.floats(0, 1),
    beta=st.floats(0, 1),
    maximize=st.booleans(),
    reduction_factor=st.integers(2, 5),
    bootstrap_count=st.integers(0, 4),
)
def test_rank_rung_is_eq2_with_the_tie_break_and_optunas_k(
    rows, alpha, beta, maximize, reduction_factor, bootstrap_count
):
    """The paper's rule is the plain Eq. 2 (the scores of ``weighted_objective``)."""
    records = _records_of(rows)
    direction = "maximize" if maximize else "minimize"
    ranking = rank_rung(
        records,
        direction=direction,
        alpha=alpha,
        beta=beta,
        reduction_factor=reduction_factor,
        bootstrap_count=bootstrap_count,
        ranking="paper",
    )
    assert ranking.rule == "paper" and ranking.diverged == ()
    # Components: left out where any competitor lacks them (and their weight is not 0).
    energies = [r.energy_per_epoch_j for r in records]
    lrs = [r.stable_lr for r in records]
    use_e = (1 - alpha) * beta > 0 and None not in energies
    use_lr = (1 - alpha) * (1 - beta) > 0 and None not in lrs
    kwargs = {"alpha": alpha, "beta": beta, "direction": direction}
    values = [r.value for r in records]
    args = (values, energies if use_e else None, lrs if use_lr else None)
    np.testing.assert_array_equal(ranking.scores, weighted_objective(*args, **kwargs))
    parts = weighted_components(*args, **kwargs)
    for name, part in parts.items():
        np.testing.assert_array_equal(ranking.terms[name], part)
    assert set(ranking.left_out) == {
        name
        for name, used, column, weight in (
            ("energy", use_e, energies, (1 - alpha) * beta),
            ("lr", use_lr, lrs, (1 - alpha) * (1 - beta)),
        )
        if not used and weight > 0 and None in column
    }
    assert sum(ranking.weights.values()) == pytest.approx(1.0)
    # Promotion: Optuna's k over (score, oriented value).
    keys = [(s, v if maximize else -v) for s, v in zip(ranking.scores, values, strict=True)]
    k = max(len(records) // reduction_factor, 1)
    threshold = sorted(keys, reverse=True)[k - 1]
    expected = [len(records) > bootstrap_count and key >= threshold for key in keys]
    assert ranking.promoted_mask.tolist() == expected
    assert ranking.promote_count == k
    assert ranking.bootstrapping == (len(records) <= bootstrap_count)
    for entry, key in zip(ranking.entries, keys, strict=True):
        assert entry.rank == 1 + sum(other > key for other in keys)
        assert entry.promoted == ranking.is_promoted(entry.trial)


def test_alpha_one_orders_by_value_even_when_scores_round_alike():
    # Next to -1e20, 0 and 1 both rescale to 1.0: the tie-break on the raw value orders them.
    records = _records_of([(-1e20, None, None), (0.0, None, None), (1.0, None, None)])
    ranking = rank_rung(
        records, direction="maximize", alpha=1.0, reduction_factor=3, ranking="paper"
    )
    assert ranking.scores.tolist() == [0.0, 1.0, 1.0]
    assert ranking.promoted == (2,)
    assert [e.rank for e in ranking.entries] == [3, 2, 1]
    # The robust rule finds -1e20 diverged and rescales the others without it: same order.
    ranking = rank_rung(records, direction="maximize", alpha=1.0, reduction_factor=3)
    assert ranking.diverged == (0,) and ranking.scores.tolist() == [0.0, 0.0, 1.0]
    assert ranking.promoted == (2,)
    assert [e.rank for e in ranking.entries] == [3, 2, 1]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_value_ranks_last_and_is_never_promoted(bad):
    ranking = rank_rung(_records_of([(bad, 1.0, 0.1)]), direction="maximize")
    assert ranking.promoted == () and ranking.scores.tolist() == [0.0]
    ranking = rank_rung(
        _records_of([(bad, 1.0, 0.1), (-1e300, 5.0, 0.1)]), direction="minimize", alpha=0.5
    )
    assert ranking.promoted == (1,)
    assert [e.rank for e in ranking.entries] == [2, 1]


def test_missing_components_and_zero_weights():
    records = [RungRecord(0, 0.5, 10.0, None), RungRecord(1, 0.4, 1.0, 0.1)]
    ranking = rank_rung(records, direction="maximize", alpha=0.5, beta=0.5)
    assert ranking.left_out == {"lr": (0,)}
    assert ranking.weights == pytest.approx({"performance": 2 / 3, "energy": 1 / 3})
    assert ranking.terms["lr"].tolist() == [0.0, 0.0]
    # A zero weight is never consulted: nothing is left out.
    ranking = rank_rung(records, direction="maximize", alpha=1.0)
    assert ranking.left_out == {} and ranking.weights == {"performance": 1.0}


def test_unreported_components_are_those_no_counted_competitor_has():
    # Nobody reports an LR: left out and unreported (a loop that chooses its own LR).
    records = [RungRecord(0, 0.5, 10.0, None), RungRecord(1, 0.4, 1.0, None)]
    ranking = rank_rung(records, direction="maximize")
    assert ranking.left_out == {"lr": (0, 1)} and ranking.unreported == ("lr",)
    # One trial reports it: left out, but a lack to fix, not unreported.
    records.append(RungRecord(2, 0.45, 2.0, 0.1))
    ranking = rank_rung(records, direction="maximize")
    assert ranking.left_out == {"lr": (0, 1)} and ranking.unreported == ()
    # The one reporting it diverged: the others, who count, report none.
    records = [*records[:2], RungRecord(2, -1e9, 2.0, 0.1), RungRecord(3, 0.45, 2.0, None)]
    ranking = rank_rung(records, direction="maximize")
    assert ranking.diverged == (2,) and ranking.unreported == ("lr",)


def test_bootstrapping_promotes_nobody():
    records = _records_of([(1.0, None, None), (2.0, None, None)])
    assert rank_rung(records, direction="maximize", bootstrap_count=2).promoted == ()
    assert rank_rung(records, direction="maximize", bootstrap_count=1).promoted == (1,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reduction_factor": 1}, r"`reduction_factor` must be an integer >= 2, got 1"),
        ({"reduction_factor": 2.0}, r"`reduction_factor` must be an integer >= 2"),
        ({"bootstrap_count": -1}, r"`bootstrap_count` must be an integer >= 0"),
        ({"alpha": True}, r"`alpha` must be a finite number in \[0, 1\], got True"),
        ({"alpha": "0.5"}, r"`alpha` must be a finite number in \[0, 1\], got '0.5'"),
        ({"beta": None}, r"`beta` must be a finite number in \[0, 1\], got None"),
        ({"direction": "up"}, r"`direction` must be one of 'maximize', 'minimize'"),
        ({"ranking": "eq2"}, r"`ranking` must be one of 'robust', 'paper', got 'eq2'"),
        (
            {"performance_tolerance": 1.0},
            r"`performance_tolerance` must be a finite number in \[0, 1\), got 1.0",
        ),
        ({"performance_tolerance": -0.1}, r"`performance_tolerance` must be a finite number"),
        ({"performance_tolerance": True}, r"`performance_tolerance` must be a finite number"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rank_rung(_records_of([(1.0, None, None)]), **{"direction": "maximize", **kwargs})


def test_no_records():
    with pytest.raises(ValueError, match="`records` is empty"):
        rank_rung([], direction="maximize")


def test_numpy_numbers_are_accepted():
    ranking = rank_rung(
        _records_of([(1.0, 2.0, 0.1), (2.0, 1.0, 0.2)]),
        direction="maximize",
        alpha=np.float32(0.5),
        beta=np.float64(0.5),
        reduction_factor=np.int64(2),
    )
    assert ranking.promoted == (1,)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_values_beyond_the_float_range_decide_as_optuna(direction):
    """1e308 - (-1e308) overflows; the rescaling must not turn it into NaN."""
    ours = optuna.create_study(
        direction=direction, pruner=SuccessiveHalvingEnergyPruner(alpha=1.0, rung_steps=[0])
    )
    theirs = optuna.create_study(
        direction=direction,
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
    )
    sequence = [1e308, -1e308, 1.7e308, -1.7e308, 0.0, 5e307, -1e308]
    for value in sequence:
        a, b = ours.ask(), theirs.ask()
        report(a, value, 0)
        b.report(value, 1)  # Optuna's first rung is at step min_resource = 1
        got, want = a.should_prune(), b.should_prune()
        assert got == want, value
        ours.tell(
            a,
            state=TrialState.PRUNED if got else TrialState.COMPLETE,
            values=None if got else [value],
        )
        theirs.tell(
            b,
            state=TrialState.PRUNED if want else TrialState.COMPLETE,
            values=None if want else [value],
        )
    scores = weighted_objective([1e308, -1e308, 0.0], alpha=1.0)
    assert np.isfinite(scores).all()
    assert scores.tolist() == [1.0, 0.0, 0.5]
