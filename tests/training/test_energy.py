"""SM2Objective books its energy in TrialEnergy: unmeasured is never 0 J, the invalid windows
are counted on every trial, and a block's figure is its median epoch with its spread."""

from __future__ import annotations

import statistics

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2 import attrs
from optuna_sm2.energy import EnergyMeter
from optuna_sm2.training import PhaseResult
from tests.support.tiny import tiny_objective


class BrokenMeter(EnergyMeter):
    """Every read fails, as an NVML device lost after a driver reload would."""

    source = "simulated"
    is_estimate = False

    def read(self) -> float:
        raise OSError("the device is gone")


class FrozenCounter(EnergyMeter):
    """A counter that never advances within the run: every window is shorter than its step
    (an H100's NVML counter moves every 50 to 100 ms; the tiny objective's epochs are shorter)."""

    source = "simulated"
    is_estimate = False

    def read(self) -> float:
        return 1234.5


@pytest.mark.parametrize(
    ("meter", "invalid_per_step"),
    [(BrokenMeter(), 2), (FrozenCounter(), 0)],  # each step and its evaluation, or none
    ids=["every read fails", "counter never moves"],
)
def test_a_trial_with_no_measured_window_stores_no_figure(
    meter: EnergyMeter, invalid_per_step: int
) -> None:
    seen: list[PhaseResult] = []
    objective = tiny_objective(
        batch_sizes=(8,), meter=meter, callbacks=[lambda t, r: seen.append(r)]
    )
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    with pytest.warns(UserWarning, match="energy per epoch is missing"):
        study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE  # training went on
    stored = trial.user_attrs
    for key in (
        attrs.ENERGY_TOTAL_J,
        attrs.ENERGY_EXPLORE_J,
        attrs.ENERGY_TRAIN_J,
        attrs.ENERGY_EVAL_J,
        attrs.ENERGY_PER_EPOCH_J,
    ):
        assert key not in stored, key  # unmeasured, never 0 J
    n_steps = len(objective.schedule.phases)
    assert stored[attrs.ENERGY_INVALID_WINDOWS] == invalid_per_step * n_steps
    assert seen and all(r.energy_per_epoch_j is None for r in seen)


def test_every_trial_stores_its_invalid_window_count_and_sources() -> None:
    objective = tiny_objective(batch_sizes=(8, 16))
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    study.optimize(objective, n_trials=2)
    for trial in study.trials:
        assert trial.user_attrs[attrs.ENERGY_INVALID_WINDOWS] == 0
        assert trial.user_attrs[attrs.ENERGY_SOURCE] == "simulated"


def test_a_blocks_figure_is_its_median_epoch_with_the_spread() -> None:
    epochs_per_rung = 3
    steps: list[tuple[PhaseResult, float]] = []

    def watch(trial: optuna.trial.Trial, result: PhaseResult) -> None:
        steps.append((result, trial.user_attrs.get(attrs.ENERGY_TRAIN_J, 0.0)))

    objective = tiny_objective(
        batch_sizes=(8,), epochs_per_rung=epochs_per_rung, final_epochs=3, callbacks=[watch]
    )
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]

    block: list[float] = []
    previous_train_j = 0.0
    checked = 0
    for result, train_j in steps:
        if result.kind == "explore":
            block = []
            assert result.energy_per_epoch_spread is None
            continue
        block.append(train_j - previous_train_j)  # this epoch's window
        previous_train_j = train_j
        median = statistics.median(block)
        assert result.energy_per_epoch_j == pytest.approx(median)
        if len(block) == 1:
            assert result.energy_per_epoch_spread is None
        else:
            spread = (max(block) - min(block)) / (2 * median)
            assert result.energy_per_epoch_spread == pytest.approx(spread)
            checked += 1
    assert checked >= 2 * (epochs_per_rung - 1)
    # Each rung record carries the figure and spread reported at its step.
    rungs = {r.step: r for r, _ in steps if r.rung is not None}
    for result in rungs.values():
        record = trial.system_attrs[f"sm2:rung_{result.rung}"]
        assert record["energy_per_epoch_j"] == pytest.approx(result.energy_per_epoch_j)
        assert record["energy_per_epoch_spread"] == pytest.approx(result.energy_per_epoch_spread)
    assert rungs
    # What the study holds after the last step is that step's figure and spread.
    last = steps[-1][0]
    assert trial.user_attrs[attrs.ENERGY_PER_EPOCH_J] == pytest.approx(last.energy_per_epoch_j)
    assert trial.user_attrs[attrs.ENERGY_PER_EPOCH_SPREAD] == pytest.approx(
        last.energy_per_epoch_spread
    )
