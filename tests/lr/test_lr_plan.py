"""sweep_plan: the exploration's budget and its split (pure Python, no torch)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optuna_sm2.lr import SweepPlan, _plan, sweep_plan
from optuna_sm2.lr._plan import (
    CHECK_PASSES,
    CHECK_STEPS,
    FLOOR,
    RUN_STEPS_MAX,
    RUN_STEPS_MIN,
    SWEEP_CLOSE,
)


def test_docstring_example_and_household_figures() -> None:
    assert sweep_plan(1_437, 4, 0.25, 20) == SweepPlan(40, 20, 24, 90)
    # the household set at batch 2048: 4 batches' worth; the old rule took 10 to 20 batches
    # for the sweep alone, this plan 7 and everything else included 21.
    assert sweep_plan(27_700, 2048, 0.25, 10) == SweepPlan(7, 7, 6, FLOOR)
    assert FLOOR == 21


@given(
    st.integers(1, 200_000),
    st.integers(1, 4096),
    st.floats(0.01, 1.0),
    st.integers(3, 40),
)
def test_plan_fits_the_stated_cost_or_the_floor(
    n_samples: int, batch_size: int, fraction: float, n_lrs: int
) -> None:
    batch_size = min(batch_size, n_samples)
    plan = sweep_plan(n_samples, batch_size, fraction, n_lrs)
    stated = fraction * n_samples + batch_size
    if plan.budget > FLOOR:
        assert plan.budget * batch_size <= stated + 1e-6 * stated
        assert (plan.budget + 1) * batch_size > stated  # and uses what it may
    else:
        assert plan.budget == FLOOR
    # the sweep and its closing pass, one check, and a run-off whose verified run continues
    # the check
    spent = plan.n_batches + SWEEP_CLOSE + CHECK_PASSES + 2 * plan.run_steps - CHECK_STEPS
    assert spent == plan.budget
    assert RUN_STEPS_MIN <= plan.run_steps <= RUN_STEPS_MAX
    assert plan.n_batches >= plan.run_steps  # the runs reuse the sweep's batches
    assert plan.sweep_lrs == min(n_lrs, plan.n_batches)


def test_fewer_lrs_where_batches_are_few() -> None:
    swept = [sweep_plan(10_000, b, 0.25, 20).sweep_lrs for b in (4, 16, 64, 128, 256, 1024)]
    assert swept == sorted(swept, reverse=True)
    assert swept[0] == 20 and swept[-1] == _plan.SWEEP_MIN


def test_numpy_numbers_accepted() -> None:
    plan = sweep_plan(np.int64(1000), np.int32(10), np.float32(0.25), np.int64(20))
    assert plan == sweep_plan(1000, 10, 0.25, 20)
    assert all(type(v) is int for v in plan)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": True}, "n_samples"),
        ({"n_samples": 10.0}, "n_samples"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 101}, "batch_size"),
        ({"batch_size": False}, "batch_size"),
        ({"explore_fraction": 0.0}, "explore_fraction"),
        ({"explore_fraction": 1.5}, "explore_fraction"),
        ({"explore_fraction": math.nan}, "explore_fraction"),
        ({"explore_fraction": True}, "explore_fraction"),
        ({"n_lrs": 2}, "n_lrs"),
        ({"n_lrs": "20"}, "n_lrs"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], name: str) -> None:
    args = {"n_samples": 100, "batch_size": 10, "explore_fraction": 0.25, "n_lrs": 20} | kwargs
    with pytest.raises(ValueError, match=f"`{name}`"):
        sweep_plan(**args)
