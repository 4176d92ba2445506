from __future__ import annotations

import pytest

from optuna_sm2.training._schedule import Schedule, check_batch_sizes


def test_paper_schedule_eight_batch_sizes():
    s = Schedule.halving(8, epochs_per_rung=5, final_epochs=10)
    assert s.n_rungs == 3
    assert s.rung_steps == [5, 11, 17]
    kinds = "".join("E" if p.kind == "explore" else "t" for p in s.phases)
    assert kinds == "Ettttt" * 5
    assert (s.train_epochs_total, s.explorations_total) == (25, 5)
    assert [p.step for p in s.phases] == list(range(30))


def test_final_epochs_not_a_multiple_and_zero():
    s = Schedule(n_rungs=1, epochs_per_rung=2, final_epochs=3)
    assert "".join("E" if p.kind == "explore" else "t" for p in s.phases) == "EttEttEt"
    assert s.rung_steps == [2]
    assert Schedule(1, 2, 0).phases[-1].rung == 0


@pytest.mark.parametrize(("n", "rungs"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4)])
def test_enough_rungs_to_halve_to_one(n, rungs):
    assert Schedule.halving(n, 1, 0).n_rungs == rungs


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_rungs": 0, "epochs_per_rung": 1, "final_epochs": 0}, "`n_rungs` must be"),
        ({"n_rungs": 1, "epochs_per_rung": 0, "final_epochs": 0}, "`epochs_per_rung` must be"),
        ({"n_rungs": 1, "epochs_per_rung": 1, "final_epochs": -1}, "`final_epochs` must be"),
    ],
)
def test_bad_schedule(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Schedule(**kwargs)


@pytest.mark.parametrize(
    ("sizes", "match"),
    [
        ((), "`batch_sizes` is empty"),
        ((8, 200), r"batch size 200 is not an integer in \[1, 100\]"),
        ((0,), r"batch size 0 is not an integer in \[1, 100\]"),
        ((8.0,), "batch size 8.0"),
        ((8, 8), "repeats a value"),
    ],
)
def test_bad_batch_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        check_batch_sizes(sizes, 100)
