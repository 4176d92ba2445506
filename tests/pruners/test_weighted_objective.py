from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optuna_sm2 import weighted_objective


def _brute_force(values, energies, lrs, alpha, beta, maximize, log):
    """Eq. 2 written out term by term, one competitor at a time."""

    def rescale(xs, i, better_high):
        lo, hi = min(xs), max(xs)
        if hi == lo:
            return 1.0
        t = (xs[i] - lo) / (hi - lo)
        return t if better_high else 1.0 - t

    out = []
    for i in range(len(values)):
        p = rescale(values, i, maximize)
        e = rescale(energies, i, False)
        lr_values = [math.log(x) for x in lrs] if log else lrs
        r = rescale(lr_values, i, True)
        out.append(alpha * p + (1 - alpha) * (beta * e + (1 - beta) * r))
    return out


finite = st.floats(-1e6, 1e6, allow_nan=False)
positive = st.floats(1e-6, 1e6)


@given(
    data=st.lists(st.tuples(finite, positive, st.floats(1e-4, 10.0)), min_size=1, max_size=12),
    alpha=st.floats(0, 1),
    beta=st.floats(0, 1),
    maximize=st.booleans(),
    log=st.booleans(),
)
def test_matches_brute_force_eq2(data, alpha, beta, maximize, log):
    values, energies, lrs = (list(c) for c in zip(*data, strict=True))
    got = weighted_objective(
        values,
        energies,
        lrs,
        alpha=alpha,
        beta=beta,
        direction="maximize" if maximize else "minimize",
        lr_scale="log" if log else "linear",
    )
    want = _brute_force(values, energies, lrs, alpha, beta, maximize, log)
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert ((got >= 0) & (got <= 1)).all()


def test_orientation_each_attribute_rewards_the_right_end():
    # Only performance: larger wins when maximizing, smaller when minimizing.
    assert weighted_objective([1.0, 2.0], alpha=1.0).tolist() == [0.0, 1.0]
    assert weighted_objective([1.0, 2.0], alpha=1.0, direction="minimize").tolist() == [1.0, 0.0]
    # Only energy (alpha=0, beta=1): less energy wins.
    s = weighted_objective([5.0, 5.0], [10.0, 30.0], [0.1, 0.1], alpha=0.0, beta=1.0)
    assert s.tolist() == [1.0, 0.0]
    # Only LR (alpha=0, beta=0): larger stable LR wins.
    s = weighted_objective([5.0, 5.0], [10.0, 30.0], [0.01, 0.1], alpha=0.0, beta=0.0)
    assert s.tolist() == [0.0, 1.0]


def test_log_scale_spreads_small_learning_rates():
    lrs = [1e-3, 1e-2, 1.0]
    log = weighted_objective([0, 0, 0], None, lrs, alpha=0.0, beta=0.0)
    lin = weighted_objective([0, 0, 0], None, lrs, alpha=0.0, beta=0.0, lr_scale="linear")
    np.testing.assert_allclose(log, [0.0, 1 / 3, 1.0])
    assert lin[1] < 0.01


def test_constant_attribute_scores_one_for_everyone():
    assert weighted_objective([3.0]).tolist() == [1.0]
    s = weighted_objective([1.0, 2.0], [7.0, 7.0], [0.1, 0.1], alpha=0.5)
    # P: 0 and 1; E and LR constant -> 1 for both.
    np.testing.assert_allclose(s, [0.5, 1.0])


def test_missing_component_renormalizes_remaining_weights():
    values, energies = [0.0, 1.0, 0.5], [30.0, 10.0, 20.0]
    s = weighted_objective(values, energies, None, alpha=0.5, beta=0.5)
    # Weights 0.5 (P) and 0.25 (E) renormalized to 2/3 and 1/3.
    np.testing.assert_allclose(s, [0.0, 1.0, 2 / 3 * 0.5 + 1 / 3 * 0.5])
    # Nothing but a zero weight left: performance alone ranks.
    s = weighted_objective([0.0, 1.0], None, [0.1, 0.2], alpha=0.0, beta=1.0)
    assert s.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_scores_zero_and_leaves_others_alone(bad):
    s = weighted_objective([1.0, bad, 3.0], alpha=1.0)
    assert s.tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 1.5}, r"`alpha` must be a finite number in \[0, 1\]"),
        ({"alpha": -0.1}, r"`alpha`"),
        ({"beta": 2}, r"`beta` must be a finite number in \[0, 1\]"),
        ({"direction": "up"}, r"`direction` must be one of 'maximize', 'minimize'"),
        ({"lr_scale": "ln"}, r"`lr_scale` must be one of 'log', 'linear'"),
        ({"energies": [1.0]}, r"`energies` has 1 entries but `values` has 2"),
        ({"lrs": [0.1, 0.0]}, r"`lrs` must be finite and > 0"),
        ({"energies": [1.0, -1.0]}, r"`energies` must be finite and >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        weighted_objective([1.0, 2.0], **kwargs)


@pytest.mark.parametrize("name", ["values", "energies", "lrs"])
@pytest.mark.parametrize("ragged", [[[1.0, 2.0], [3.0]], [1.0, [2.0]], [[1.0], 2.0]])
def test_a_ragged_list_is_refused_naming_its_argument(name, ragged):
    kwargs = {"values": [0.5, 0.7], name: ragged}
    with pytest.raises(ValueError, match=rf"`{name}` must be a one-dimensional sequence"):
        weighted_objective(**kwargs)


def test_empty_values():
    with pytest.raises(ValueError, match="`values` is empty"):
        weighted_objective([])


def test_every_permutation_gives_the_same_scores():
    values, energies, lrs = [0.7, 0.9, 0.8], [100.0, 300.0, 200.0], [0.3, 0.01, 0.1]
    base = weighted_objective(values, energies, lrs)
    for perm in itertools.permutations(range(3)):
        p = list(perm)
        got = weighted_objective(
            [values[i] for i in p], [energies[i] for i in p], [lrs[i] for i in p]
        )
        np.testing.assert_allclose(got, base[p])


@pytest.mark.parametrize(
    ("values", "energies", "lrs", "alpha", "beta", "direction"),
    [
        ([0.9, 0.8, 0.7], [10.0, 30.0, 20.0], [0.1, 0.01, 1.0], 0.75, 0.5, "maximize"),
        ([2.0, float("nan"), 1.0], [10.0, 30.0, 20.0], None, 0.6, 0.3, "minimize"),
        ([0.5, 0.5], None, [0.1, 0.2], 0.0, 1.0, "maximize"),
        ([0.3], [5.0], [0.1], 0.2, 0.9, "maximize"),
    ],
)
def test_weighted_components_sum_to_the_score(values, energies, lrs, alpha, beta, direction):
    from optuna_sm2.pruners._weighted_objective import COMPONENTS, weighted_components

    kwargs = {"alpha": alpha, "beta": beta, "direction": direction}
    parts = weighted_components(values, energies, lrs, **kwargs)
    assert list(parts) == list(COMPONENTS)
    total = sum(parts.values())
    np.testing.assert_allclose(total, weighted_objective(values, energies, lrs, **kwargs))
    if energies is None:
        assert not parts["energy"].any()
    for name, part in parts.items():
        assert (part >= 0).all(), name


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        (None, {}, r"`values` must be a one-dimensional sequence of numbers, got None"),
        (3.0, {}, r"`values` must be a one-dimensional sequence of numbers, got 3.0"),
        ([[1.0, 2.0]], {}, r"`values` must be a one-dimensional sequence"),
        ("12", {}, r"`values` must be a one-dimensional sequence"),
        ([True, False], {}, r"`values` must be a one-dimensional sequence"),
        ([1.0, 2.0], {"energies": 5.0}, r"`energies` must be a one-dimensional sequence"),
        ([1.0, 2.0], {"lrs": [[0.1], [0.2]]}, r"`lrs` must be a one-dimensional sequence"),
        ([1.0], {"alpha": True}, r"`alpha` must be a finite number in \[0, 1\], got True"),
    ],
)
def test_malformed_input_is_refused(values, kwargs, match):
    with pytest.raises(ValueError, match=match):
        weighted_objective(values, **kwargs)


def test_numpy_input_is_accepted():
    scores = weighted_objective(
        np.array([1.0, 2.0], dtype=np.float32),
        np.array([3.0, 1.0]),
        (np.float32(0.1), np.float64(0.2)),
        alpha=np.float32(0.5),
    )
    np.testing.assert_allclose(scores, [0.0, 1.0])


def test_values_at_the_float_range_do_not_overflow():
    for values in ([1e308, -1e308], [1.7976931348623157e308, -1.7976931348623157e308, 0.0]):
        scores = weighted_objective(values, alpha=1.0)
        assert np.isfinite(scores).all()
        assert scores.argmax() == 0 and scores.argmin() == 1
    energies = [1e308, 0.0, 1.5e308]
    scores = weighted_objective([0.0, 0.0, 0.0], energies, alpha=0.0, beta=1.0)
    np.testing.assert_allclose(scores, [1 - 1 / 1.5, 1.0, 0.0])
