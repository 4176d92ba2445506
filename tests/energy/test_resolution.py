from __future__ import annotations

import itertools

import pytest

from optuna_sm2.energy import Resolution, poll_resolution
from optuna_sm2.energy._resolution import counter_steps


def test_counter_steps_needs_three_changes() -> None:
    assert counter_steps([0.0, 0.1, 0.2], [1.0, 2.0, 3.0]) is None
    assert counter_steps([0.0, 1.0], [5.0, 5.0]) is None


def test_counter_steps_leaves_out_the_first_cut_interval() -> None:
    # polling starts 40 ms into a 50 ms step: the first change comes after 10 ms
    times = [i * 0.005 for i in range(40)]
    readings = [3.0 * ((t + 0.04) // 0.05) for t in times]
    steps = counter_steps(times, readings)
    assert steps is not None
    assert steps.period_s == pytest.approx(0.05)
    assert steps.step_j == pytest.approx(3.0)


def test_poll_resolution_reads_a_stepping_source() -> None:
    counts = itertools.count()
    steps = poll_resolution(lambda: float(next(counts) // 7), 0.05)
    assert isinstance(steps, Resolution) and steps.step_j == 1.0
