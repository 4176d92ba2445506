from __future__ import annotations

import logging
import random
import subprocess
import sys
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2 import EnergyMeter, EnergyTracker, TrialEnergy, attrs, report
from optuna_sm2.energy import EnergyReadError, SimulatedMeter, _tracker
from optuna_sm2.pruners import per_epoch_and_spread
from tests.support.meters import SteppingMeter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FailingMeter(EnergyMeter):
    """A simulated meter whose reads fail while ``failing`` is set."""

    def __init__(self, clock: Clock, power_w: float = 10.0) -> None:
        self.inner = SimulatedMeter(power_w, clock=clock)
        self.failing: BaseException | None = None

    @property
    def source(self) -> str:
        return "simulated"

    def read(self) -> float:
        if self.failing is not None:
            raise self.failing
        return self.inner.read()


def _spend(clock: Clock, seconds: float) -> None:
    clock.now += seconds


def test_parts_totals_and_source_are_stored() -> None:
    clock = Clock()
    tracker = EnergyTracker(SimulatedMeter(10.0, clock=clock))
    trial = optuna.create_study().ask()
    book = TrialEnergy(trial, tracker)
    assert trial.user_attrs == {attrs.ENERGY_INVALID_WINDOWS: 0}  # from the start, nothing else
    with book.window("explore"):
        _spend(clock, 1.0)
    with book.window("train"):
        _spend(clock, 3.0)
    with book.window("eval"):
        _spend(clock, 0.5)
    assert (book.explore_j, book.train_j, book.eval_j, book.total_j) == (10.0, 30.0, 5.0, 45.0)
    assert trial.user_attrs == {
        attrs.ENERGY_INVALID_WINDOWS: 0,
        attrs.ENERGY_TOTAL_J: 45.0,
        attrs.ENERGY_EXPLORE_J: 10.0,
        attrs.ENERGY_TRAIN_J: 30.0,
        attrs.ENERGY_EVAL_J: 5.0,
        attrs.ENERGY_SOURCE: "simulated",
        attrs.ENERGY_PER_EPOCH_SPREAD: None,
        attrs.ENERGY_PER_EPOCH_RESOLUTION: 0.0,  # a simulated meter has no steps
    }
    assert book.user_attrs() == trial.user_attrs


def test_a_trial_with_no_valid_window_has_no_total(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    meter = FailingMeter(clock)
    meter.failing = OSError(5, "Input/output error")
    study = optuna.create_study()
    trained = []

    def objective(trial: optuna.trial.Trial) -> float:
        book = TrialEnergy(trial, EnergyTracker(meter))
        for epoch in range(3):
            with book.window("train"):
                trained.append(epoch)
            with book.window("eval"):
                pass
        return 1.0

    with caplog.at_level(logging.WARNING):
        study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE and trained == [0, 1, 2]  # training went on
    assert trial.user_attrs == {
        attrs.ENERGY_INVALID_WINDOWS: 6,
        attrs.ENERGY_SOURCE: "simulated",
        attrs.ENERGY_PER_EPOCH_SPREAD: None,
        attrs.ENERGY_PER_EPOCH_RESOLUTION: None,
    }
    assert "train energy window invalid, not counted" in caplog.text and "OSError" in caplog.text


def test_a_partly_measured_trial_counts_what_is_missing() -> None:
    clock = Clock()
    meter = FailingMeter(clock)
    book = TrialEnergy(optuna.create_study().ask(), EnergyTracker(meter))
    with book.window("train"):
        _spend(clock, 2.0)
    with book.window("train"):
        meter.failing = EnergyReadError("GPU is lost")
        _spend(clock, 2.0)
    meter.failing = None
    with book.window("eval"):
        meter.failing = EnergyReadError("GPU is lost")
    meter.failing = None
    with book.window("train"):
        _spend(clock, 4.0)
    stored = book.trial.user_attrs
    assert stored[attrs.ENERGY_TOTAL_J] == stored[attrs.ENERGY_TRAIN_J] == 60.0
    assert stored[attrs.ENERGY_INVALID_WINDOWS] == 2
    assert attrs.ENERGY_EVAL_J not in stored  # its only window was invalid: unmeasured, not 0


def test_only_what_changed_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    trial = optuna.create_study().ask()
    writes: list[tuple[str, Any]] = []
    real = trial.set_user_attr
    monkeypatch.setattr(trial, "set_user_attr", lambda k, v: (writes.append((k, v)), real(k, v)))
    book = TrialEnergy(trial, EnergyTracker(SimulatedMeter(10.0, clock=clock)))
    assert writes == [(attrs.ENERGY_INVALID_WINDOWS, 0)]
    writes.clear()
    with book.window("eval"):
        _spend(clock, 1.0)
    assert dict(writes) == {
        attrs.ENERGY_TOTAL_J: 10.0,
        attrs.ENERGY_EVAL_J: 10.0,
        attrs.ENERGY_SOURCE: "simulated",
    }
    writes.clear()
    with book.window("eval"):
        pass  # 0 J: nothing changed
    book.store()
    assert writes == []


def test_the_block_figure_is_its_median_epoch_and_spread() -> None:
    clock = Clock()
    book = TrialEnergy(optuna.create_study().ask(), EnergyTracker(SimulatedMeter(1.0, clock)))
    for seconds in (10.0, 14.0, 12.0):
        with book.window("train"):
            _spend(clock, seconds)
    assert book.energy_per_epoch_j == 12.0  # not the last window's 12 by chance: the median
    with book.window("train"):
        _spend(clock, 40.0)  # one disturbed epoch does not move the figure much
    assert book.energy_per_epoch_j == 13.0
    assert book.energy_per_epoch_spread == pytest.approx((40.0 - 10.0) / (2 * 13.0))
    assert book.trial.user_attrs[attrs.ENERGY_PER_EPOCH_SPREAD] == book.energy_per_epoch_spread
    book.start_block()
    assert book.energy_per_epoch_j is None
    assert book.trial.user_attrs[attrs.ENERGY_PER_EPOCH_SPREAD] is None
    with book.window("explore"):
        _spend(clock, 5.0)  # exploration is not an epoch of the block
    with book.window("train"):
        _spend(clock, 8.0)
    assert (book.energy_per_epoch_j, book.energy_per_epoch_spread) == (8.0, None)
    assert book.train_j == 10.0 + 14.0 + 12.0 + 40.0 + 8.0


def test_per_epoch_and_spread() -> None:
    assert per_epoch_and_spread([]) == (None, None)
    assert per_epoch_and_spread([5.0]) == (5.0, None)
    assert per_epoch_and_spread([4.0, 6.0]) == (5.0, 0.2)
    # a counter coarser than the epochs: the mean, which its steps do not bias
    assert per_epoch_and_spread([0.0, 0.0, 3.0]) == (1.0, 1.5)
    assert per_epoch_and_spread([0.0]) == (None, None)  # below resolution, not 0 J
    assert per_epoch_and_spread([0.0, 0.0]) == (None, None)


@pytest.mark.parametrize("epoch_s", [0.013, 0.021, 0.037, 0.049])
def test_epochs_shorter_than_the_counter_step_are_measured_by_their_mean(epoch_s: float) -> None:
    clock = Clock()
    tracker = EnergyTracker(SteppingMeter(clock, power_w=70.0, period=0.05))
    book = TrialEnergy(optuna.create_study().ask(), tracker)
    jitter = random.Random(0)
    for _ in range(400):  # epochs and evaluations of a few milliseconds' jitter, as on a GPU
        with book.window("train"):
            _spend(clock, epoch_s * jitter.uniform(0.9, 1.1))
        with book.window("eval"):
            _spend(clock, jitter.uniform(0.002, 0.012))
    figure = book.energy_per_epoch_j
    assert figure is not None and figure > 0.0
    assert figure == pytest.approx(70.0 * epoch_s, rel=0.15)
    # every window was kept: the totals are off by at most the counter's last step
    assert book.total_j == pytest.approx(70.0 * clock.now, abs=70.0 * 0.05)


def test_a_block_the_counter_never_moved_in_is_unmeasured_not_zero() -> None:
    clock = Clock()
    clock.now = 0.001
    tracker = EnergyTracker(SteppingMeter(clock, power_w=70.0, period=10.0))
    study = optuna.create_study()
    trial = study.ask()
    book = TrialEnergy(trial, tracker)
    for step in range(3):
        with book.window("train"):
            _spend(clock, 0.01)
        report(trial, 1.0, step, energy_per_epoch_j=book.energy_per_epoch_j)
    assert book.energy_per_epoch_j is None
    stored = study.trials[0].user_attrs
    assert stored.get(attrs.ENERGY_PER_EPOCH_J) is None


def test_report_ranks_the_books_figure() -> None:
    clock = Clock()
    tracker = EnergyTracker(SimulatedMeter(2.0, clock=clock))
    study = optuna.create_study(direction="maximize")

    def objective(trial: optuna.trial.Trial) -> float:
        book = TrialEnergy(trial, tracker)
        for epoch, seconds in enumerate((3.0, 9.0, 5.0)):
            with book.window("train"):
                _spend(clock, seconds)
            report(trial, 0.5, epoch, energy_per_epoch_j=book.energy_per_epoch_j)
        return 0.5

    study.optimize(objective, n_trials=1)
    assert study.trials[0].user_attrs[attrs.ENERGY_PER_EPOCH_J] == 10.0  # median of 6, 18, 10


def test_figures_inherited_from_a_retried_trial_are_not_kept() -> None:
    study = optuna.create_study()
    study.enqueue_trial({}, user_attrs={attrs.ENERGY_TOTAL_J: 99.0, attrs.ENERGY_TRAIN_J: 99.0})
    trial = study.ask()
    clock = Clock()
    meter = FailingMeter(clock)
    book = TrialEnergy(trial, EnergyTracker(meter))
    meter.failing = EnergyReadError("GPU is lost")
    with book.window("train"):
        pass
    stored = study.trials[0].user_attrs
    assert stored[attrs.ENERGY_TOTAL_J] is None and stored[attrs.ENERGY_TRAIN_J] is None
    assert stored[attrs.ENERGY_INVALID_WINDOWS] == 1


def test_a_window_is_booked_when_its_block_raises() -> None:
    clock = Clock()
    book = TrialEnergy(optuna.create_study().ask(), EnergyTracker(SimulatedMeter(10.0, clock)))
    with pytest.raises(optuna.TrialPruned), book.window("train"):
        _spend(clock, 1.0)
        raise optuna.TrialPruned("diverged")
    assert book.train_j == 10.0 and book.trial.user_attrs[attrs.ENERGY_TOTAL_J] == 10.0
    with book.window("train"):  # the book is usable again
        pass


def test_a_meter_returning_non_numbers_stores_nothing() -> None:
    class TextMeter(EnergyMeter):
        source = "simulated"

        def read(self) -> float:
            return "12 J"  # type: ignore[return-value]

    trial = optuna.create_study().ask()
    book = TrialEnergy(trial, EnergyTracker(TextMeter()))
    match = r"TextMeter\.read\(\) must return a number"
    with pytest.raises(ValueError, match=match), book.window("train"):
        pass
    assert trial.user_attrs == {attrs.ENERGY_INVALID_WINDOWS: 0}


def test_bad_use_is_one_clear_error() -> None:
    trial = optuna.create_study().ask()
    book = TrialEnergy(trial, EnergyTracker(SimulatedMeter()))
    match = "`part` must be one of 'explore', 'train', 'eval'"
    with pytest.raises(ValueError, match=match), book.window("epoch"):
        pass
    with (
        pytest.raises(RuntimeError, match="must not nest"),
        book.window("train"),
        book.window("eval"),
    ):
        pass
    open_window = EnergyTracker(SimulatedMeter()).window()
    with open_window as w, pytest.raises(ValueError, match="closed EnergyWindow"):
        book.add("train", w)
    with pytest.raises(ValueError, match="`trial` must be an Optuna trial"):
        TrialEnergy("trial 1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`tracker` must be an EnergyTracker"):
        TrialEnergy(trial, SimulatedMeter())  # type: ignore[arg-type]


def test_without_a_tracker_the_process_shares_one(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    shared = EnergyTracker(SimulatedMeter(10.0, clock=clock))
    monkeypatch.setattr(_tracker, "_shared", shared)
    study = optuna.create_study()
    first, second = TrialEnergy(study.ask()), TrialEnergy(study.ask())
    with first.window("train"):
        _spend(clock, 1.0)
    assert first.tracker is second.tracker is shared and first.total_j == 10.0


def test_booking_a_trial_never_imports_torch() -> None:
    code = (
        "import sys, optuna\n"
        "from optuna_sm2 import TrialEnergy\n"
        "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
        "book = TrialEnergy(optuna.create_study().ask())\n"
        "with book.window('train'):\n"
        "    sum(range(1000))\n"
        "print(book.source, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == "False", done.stdout + done.stderr
