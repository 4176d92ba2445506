"""The array kernels of the robust ranking equal the per-competitor rules they replaced, and a
ranking over columns kept by the pruner equals one over the records alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optuna_sm2.pruners import RungRecord, _robust
from optuna_sm2.pruners._columns import RungColumns
from optuna_sm2.pruners._ranking import RANKINGS, rank_checked


def _reference_tie_energies(energies, spreads, resolutions=None):
    """The rule as written before the array kernel: one Python step per energy."""
    r = [0.0] * len(energies) if resolutions is None else [x or 0.0 for x in resolutions]
    h = [(_robust.ENERGY_NOISE_FLOOR if x is None else x) + r[i] for i, x in enumerate(spreads)]
    tied = list(energies)
    anchor = None
    by_energy = np.lexsort((-np.asarray(h, dtype=np.float64), np.asarray(energies)))
    for i in by_energy.tolist():
        if anchor is None or energies[i] * (1.0 - h[i]) > energies[anchor] * (1.0 + h[anchor]):
            anchor = i
        tied[i] = energies[anchor]
    return tied


def _reference_tie_lrs(lrs):
    """The rule as written before the array kernel: one Python step per LR."""
    tied = list(lrs)
    anchor = None
    for i in np.argsort(-np.asarray(lrs, dtype=np.float64), kind="stable").tolist():
        if anchor is None or anchor / lrs[i] > _robust.LR_TIE_RATIO:
            anchor = lrs[i]
        tied[i] = anchor
    return tied


def _nan_for_none(figures):
    return np.array([math.nan if x is None else x for x in figures], dtype=np.float64)


# Near neighbours, exact ties and extremes, so that intervals touch, nest and overflow.
energies = st.sampled_from([0.0, 1e-300, 90.0, 100.0, 105.0, 110.0, 1e300]) | st.floats(
    0, 1e6, allow_nan=False
)
spreads = st.none() | st.sampled_from([0.0, 0.05, 0.1, 1.0, 3.0]) | st.floats(0, 2)
lrs = st.sampled_from([1e-300, 1e-3, 0.1, 0.15, 0.1 * 1.5, 0.225, 1.0, 1e300]) | st.floats(
    1e-8, 1e3, allow_nan=False
)


@settings(max_examples=400, deadline=None)
@given(
    rows=st.lists(st.tuples(energies, spreads, spreads), max_size=40),
    with_resolutions=st.booleans(),
)
def test_tie_energies_is_the_rule_it_replaced(rows, with_resolutions):
    e = [row[0] for row in rows]
    s = [row[1] for row in rows]
    r = [row[2] for row in rows] if with_resolutions else None
    got = _robust.tie_energies(
        np.array(e, dtype=np.float64), _nan_for_none(s), None if r is None else _nan_for_none(r)
    )
    assert got.tolist() == _reference_tie_energies(e, s, r)


@settings(max_examples=400, deadline=None)
@given(rows=st.lists(lrs, max_size=40))
def test_tie_lrs_is_the_rule_it_replaced(rows):
    assert _robust.tie_lrs(np.array(rows, dtype=np.float64)).tolist() == _reference_tie_lrs(rows)


def _reference_steps(monkeypatch):
    """The ranking's tie steps swapped for the rules they replaced."""
    monkeypatch.setattr(
        _robust,
        "tie_energies",
        lambda e, s, r: np.array(
            _reference_tie_energies(
                e.tolist(),
                [None if math.isnan(x) else x for x in s.tolist()],
                [None if math.isnan(x) else x for x in r.tolist()],
            )
        ),
    )
    monkeypatch.setattr(_robust, "tie_lrs", lambda lr: np.array(_reference_tie_lrs(lr.tolist())))


def _same(a, b):
    assert a.records == b.records
    for name in ("scores", "tie_breaks", "ranks", "promoted_mask", "diverged_mask"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name, term in a.terms.items():
        np.testing.assert_array_equal(term, b.terms[name])
    assert (a.weights, a.left_out, a.promote_count) == (b.weights, b.left_out, b.promote_count)


values = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 0.5, 0.51, 1.0, 5e21]) | st.floats(
    -10, 10
)
records = st.lists(
    st.tuples(
        values,
        st.none() | energies,
        st.none() | lrs,
        spreads,
        spreads,
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    rows=records,
    alpha=st.sampled_from([0.0, 0.5, 0.75, 1.0]),
    beta=st.sampled_from([0.0, 0.5, 1.0]),
    ranking=st.sampled_from(RANKINGS),
    direction=st.sampled_from(["minimize", "maximize"]),
    split=st.integers(0, 30),
)
def test_a_rung_ranks_as_with_the_rules_it_replaced_from_kept_columns(
    rows, alpha, beta, ranking, direction, split
):
    rung = [RungRecord(i, *row) for i, row in enumerate(rows)]
    arguments = {
        "direction": direction,
        "alpha": alpha,
        "beta": beta,
        "lr_scale": "log",
        "reduction_factor": 2,
        "bootstrap_count": 0,
        "ranking": ranking,
        "performance_tolerance": 0.02,
    }
    kept = RungColumns.joined([RungColumns.of(rung[:split]), RungColumns.of(rung[split:])])
    got = rank_checked(rung, columns=kept, **arguments)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _reference_steps(monkeypatch)
        reference = rank_checked(rung, **arguments)
    _same(got, reference)
