"""The robust ranking rule: diverged values, ties within noise, protected performance."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from optuna_sm2 import SuccessiveHalvingEnergyPruner, report
from optuna_sm2.pruners import COMPONENTS, RungRecord, _robust, rank_rung

# Perplexities of a rung (minimize): value, energy per epoch (J), stable LR.
RUNG = [(100.0, 400.0, 0.01), (103.0, 100.0, 1.0), (104.0, 110.0, 1.0), (160.0, 90.0, 1.0)]


def _records(rows):
    return [RungRecord(i, *row) for i, row in enumerate(rows)]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("outlier_energy", [50.0, None])
def test_a_diverged_value_ranks_last_and_the_others_score_as_without_it(direction, outlier_energy):
    sign = 1.0 if direction == "minimize" else -1.0
    others = [
        RungRecord(r.trial, sign * r.value, r.energy_per_epoch_j, r.stable_lr)
        for r in _records(RUNG)
    ]
    # Diverged though finite; the cheapest energy and the largest LR (or no energy at all).
    outlier = RungRecord(9, sign * 5e21, outlier_energy, 2.0)
    with_it = rank_rung([*others, outlier], direction=direction)
    without = rank_rung(others, direction=direction)
    assert with_it.diverged == (9,) and with_it.entry(9).diverged
    assert with_it.entry(9).rank == 5 and not with_it.entry(9).promoted
    assert with_it.entry(9).score == 0.0 and set(with_it.entry(9).terms.values()) == {0.0}
    assert with_it.left_out == {}
    np.testing.assert_array_equal(with_it.scores[:4], without.scores)
    for name in COMPONENTS:
        np.testing.assert_array_equal(with_it.terms[name][:4], without.terms[name])
    assert with_it.ranks[:4].tolist() == without.ranks.tolist()
    assert with_it.promoted == without.promoted
    # The paper's Eq. 2 rescales the others' performance against 5e21: all get its whole
    # weight, and the cost terms alone order them (an outlier lacking energy drops it).
    paper = rank_rung([*others, outlier], direction=direction, ranking="paper")
    assert paper.diverged == ()
    w = paper.weights["performance"]
    assert all(abs(paper.terms["performance"][i] - w) < 1e-15 for i in range(4))
    assert ("energy" in paper.left_out) == (outlier_energy is None)


def test_the_paper_rule_prunes_the_best_model_for_its_cost_and_the_robust_one_keeps_it():
    records = _records(RUNG)
    paper = rank_rung(records, direction="minimize", ranking="paper")
    robust = rank_rung(records, direction="minimize")
    assert paper.promoted == (1, 2)  # perplexity 100 pruned for its energy and LR
    assert robust.promoted == (0, 1)  # 100 is 3 % better than 103: the cost cannot overtake
    assert [e.rank for e in robust.entries] == [1, 2, 3, 4]
    # A tolerance of 5 % lets the cost terms decide among 100, 103 and 104.
    loose = rank_rung(records, direction="minimize", performance_tolerance=0.05)
    assert loose.promoted == (1, 2)


def test_the_performance_tolerance_blocks_a_cost_driven_promotion():
    best, cheap = RungRecord(0, 0.90, 300.0, 0.1), RungRecord(1, 0.88, 100.0, 0.1)
    kwargs = {"direction": "maximize", "alpha": 0.4, "beta": 1.0}
    assert rank_rung([best, cheap], **kwargs, ranking="paper").promoted == (1,)
    # 0.90 - 0.88 = 0.02 > 2 % of 0.90 (0.018): the better performer stays ahead.
    robust = rank_rung([best, cheap], **kwargs)
    assert robust.promoted == (0,)
    assert robust.entry(1).score > robust.entry(0).score  # the scores are Eq. 2's
    assert rank_rung([best, cheap], **kwargs, performance_tolerance=0.03).promoted == (1,)
    # Tolerance 0: the value decides whenever the values differ, whatever the weights.
    strict = rank_rung([best, cheap], **kwargs, performance_tolerance=0.0)
    assert strict.promoted == (0,)


def test_energies_within_their_spread_tie():
    # Same value and LR: only the energy could decide.
    def ranked(e0, e1, s0=None, s1=None, ranking="robust"):
        records = [RungRecord(0, 0.9, e0, 0.1, s0), RungRecord(1, 0.9, e1, 0.1, s1)]
        return rank_rung(records, direction="maximize", alpha=0.5, beta=1.0, ranking=ranking)

    # No spread stored: the 5 % noise floor. 104 J is within it of 100 J.
    tied = ranked(100.0, 104.0)
    assert tied.terms["energy"].tolist() == [0.5, 0.5]
    assert tied.promoted == (0, 1)  # equal scores and values: both go through, as Optuna
    assert ranked(100.0, 104.0, ranking="paper").promoted == (0,)
    # 111 J is beyond 100 J's and its own 5 %: the energy decides.
    assert ranked(100.0, 111.0).promoted == (0,)
    # Stored spreads replace the floor: 1 % each does not cover 4 %; 10 % covers 20 %.
    assert ranked(100.0, 104.0, 0.01, 0.01).promoted == (0,)
    assert ranked(100.0, 120.0, 0.1, 0.1).promoted == (0, 1)


def test_learning_rates_within_a_factor_1_5_tie():
    def promoted(lr0, lr1):
        records = [RungRecord(0, 0.9, 100.0, lr0), RungRecord(1, 0.9, 100.0, lr1)]
        return rank_rung(records, direction="maximize", alpha=0.5, beta=0.0).promoted

    assert promoted(0.1, 0.144) == (0, 1)  # one step of the default grid
    assert promoted(0.1, 0.16) == (1,)


outliers = st.sampled_from([5e21, -5e21, 1e300, -1e300, 1e6])
values = st.one_of(st.floats(-1e3, 1e3), st.sampled_from([0.0, 0.5, 1.0, 100.0, 104.0]), outliers)
rows = st.lists(
    st.tuples(
        values,
        st.one_of(st.none(), st.floats(0, 1e4)),
        st.one_of(st.none(), st.floats(1e-4, 1.0)),
        st.one_of(st.none(), st.floats(0, 0.5)),
    ),
    min_size=1,
    max_size=16,
)


@settings(max_examples=300, deadline=None)
@given(
    rows=rows,
    beta=st.floats(0, 1),
    tolerance=st.floats(0, 0.99),
    maximize=st.booleans(),
    reduction_factor=st.integers(2, 5),
    bootstrap_count=st.integers(0, 4),
)
def test_at_alpha_one_robust_and_paper_decide_the_same(
    rows, beta, tolerance, maximize, reduction_factor, bootstrap_count
):
    records = [RungRecord(i, *row) for i, row in enumerate(rows)]
    kwargs = {
        "direction": "maximize" if maximize else "minimize",
        "alpha": 1.0,
        "beta": beta,
        "reduction_factor": reduction_factor,
        "bootstrap_count": bootstrap_count,
    }
    robust = rank_rung(records, **kwargs, performance_tolerance=tolerance)
    paper = rank_rung(records, **kwargs, ranking="paper")
    assert robust.promoted_mask.tolist() == paper.promoted_mask.tolist()
    assert robust.ranks.tolist() == paper.ranks.tolist()


@settings(max_examples=300, deadline=None)
@given(
    rows=rows,
    alpha=st.floats(0, 1),
    beta=st.floats(0, 1),
    tolerance=st.floats(0, 0.99),
    maximize=st.booleans(),
    reduction_factor=st.integers(2, 5),
    data=st.data(),
)
def test_robust_guarantees(rows, alpha, beta, tolerance, maximize, reduction_factor, data):
    records = [RungRecord(i, *row) for i, row in enumerate(rows)]
    kwargs = {
        "direction": "maximize" if maximize else "minimize",
        "alpha": alpha,
        "beta": beta,
        "reduction_factor": reduction_factor,
        "performance_tolerance": tolerance,
    }
    ranking = rank_rung(records, **kwargs)
    oriented = [r.value if maximize else -r.value for r in records]
    diverged = ranking.diverged_mask.tolist()
    # Fewer than half diverged, each worse than every other, never promoted.
    assert 2 * sum(diverged) < len(records)
    kept = [x for x, d in zip(oriented, diverged, strict=True) if not d]
    assert all(x < min(kept) for x, d in zip(oriented, diverged, strict=True) if d)
    assert not (ranking.promoted_mask & ranking.diverged_mask).any()
    # Nobody promoted over a pruned competitor better by more than the tolerance.
    scale = max(abs(x) for x in kept)
    for i, promoted_i in enumerate(ranking.promoted_mask):
        for j, promoted_j in enumerate(ranking.promoted_mask):
            if promoted_i and not promoted_j and not diverged[j]:
                assert oriented[j] - oriented[i] <= tolerance * scale
    # The record order does not matter.
    shuffled = data.draw(st.permutations(records))
    again = rank_rung(shuffled, **kwargs)
    for record in records:
        a, b = ranking.entry(record.trial), again.entry(record.trial)
        assert (a.score, a.rank, a.promoted, a.diverged) == (
            b.score,
            b.rank,
            b.promoted,
            b.diverged,
        )
        assert a.terms == b.terms


def test_the_pruner_keeps_the_best_model_next_to_a_diverged_one():
    """The story of the text scenario: one perplexity of 5e21 at the first rung."""
    rung = [(5e21, 60.0, 1.0), (14.0, 400.0, 0.01), (30.0, 150.0, 0.1), (190.0, 80.0, 0.5)]
    decisions = {}
    for ranking in ("paper", "robust"):
        study = optuna.create_study(
            direction="minimize",
            pruner=SuccessiveHalvingEnergyPruner(rung_steps=[0], ranking=ranking),
        )
        pruner = study.pruner
        assert isinstance(pruner, SuccessiveHalvingEnergyPruner)
        trials = [study.ask() for _ in rung]
        for trial, (value, energy, lr) in zip(trials, rung, strict=True):
            report(trial, value, 0, energy_per_epoch_j=energy, stable_lr=lr)
            pruner.record_rung(study, study.trials[trial.number])
        decisions[ranking] = [pruner.is_promoted(study, study.trials[t.number], 0) for t in trials]
        for t in trials:
            study.tell(t, state=TrialState.PRUNED)
        assert study.user_attrs["sm2.pruner"]["ranking"] == ranking
    assert decisions["robust"] == [False, True, True, False]
    assert decisions["paper"][1] is False  # perplexity 14 pruned: energy and LR decided


def _naive_protected_order(scores, oriented, tolerance):
    left, order = set(range(len(scores))), []
    while left:
        top = max(oriented[i] for i in left)
        eligible = [i for i in left if top - oriented[i] <= tolerance * abs(top)]
        best = max(eligible, key=lambda i: (scores[i], oriented[i], -i))
        order.append(best)
        left.remove(best)
    return order


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from([0.0, 0.3, 0.5, 1.0]) | st.floats(0, 1), values), max_size=12
    ),
    tolerance=st.sampled_from([0.0, 0.02, 0.5]) | st.floats(0, 0.99),
)
def test_protected_order_is_the_place_by_place_rule(pairs, tolerance):
    scores = np.array([s for s, _ in pairs], dtype=np.float64)
    oriented = np.array([x for _, x in pairs], dtype=np.float64)
    got = _robust.protected_order(scores, oriented, tolerance)
    assert got == _naive_protected_order(scores.tolist(), oriented.tolist(), tolerance)
