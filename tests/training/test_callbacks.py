"""The public hook: a callback per step with a PhaseResult, and the one driver of the steps."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from optuna_sm2 import _compat, attrs
from optuna_sm2.training import PhaseResult, StepDriver
from tests.support.tiny import tiny_objective


class _Seen:
    def __init__(self) -> None:
        self.results: list[PhaseResult] = []
        self.stored: list[tuple[float, float | None, float]] = []

    def __call__(self, trial: optuna.trial.Trial, result: PhaseResult) -> None:
        self.results.append(result)
        frozen = _compat.frozen(trial)  # what the study holds now
        self.stored.append(
            (
                frozen.intermediate_values[result.step],
                frozen.user_attrs.get(attrs.ENERGY_PER_EPOCH_J),
                frozen.user_attrs[attrs.STABLE_LR],
            )
        )


def test_each_reported_step_reaches_the_callbacks_in_order() -> None:
    seen, also = _Seen(), []
    objective = tiny_objective(batch_sizes=(8,), callbacks=[seen, lambda t, r: also.append(r)])
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    trial = study.ask()
    yielded = list(objective.run(trial))
    assert yielded == seen.results == also
    phases = objective.schedule.phases
    assert [(r.step, r.kind, r.rung) for r in yielded] == [
        (p.step, p.kind, p.rung) for p in phases
    ]
    for result, (value, energy, lr) in zip(yielded, seen.stored, strict=True):
        assert result.trial_number == trial.number
        assert result.batch_size == 8 == trial.params["batch_size"]
        assert result.n_steps == len(phases)
        assert (result.value, result.energy_per_epoch_j, result.lr) == (value, energy, lr)
        assert result.seconds > 0


def test_callbacks_see_a_pruned_trials_last_step_before_the_decision() -> None:
    seen = _Seen()
    objective = tiny_objective(callbacks=[seen])
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    study.optimize(objective, n_trials=8)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned
    for t in study.trials:
        steps = [r.step for r in seen.results if r.trial_number == t.number]
        assert steps == sorted(t.intermediate_values)
        if t.state == TrialState.PRUNED:
            assert steps[-1] in objective.rung_steps


def test_a_failing_callback_fails_the_trial() -> None:
    def broken(trial: optuna.trial.Trial, result: PhaseResult) -> None:
        raise RuntimeError("the callback broke")

    objective = tiny_objective(batch_sizes=(8,), callbacks=[broken])
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    with pytest.raises(RuntimeError, match="the callback broke"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.FAIL


def test_step_driver_pauses_resumes_and_finishes() -> None:
    objective = tiny_objective(batch_sizes=(8,))
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    trial = study.ask()
    driver = StepDriver(objective.run(trial))
    paused = driver.advance(lambda result: result.rung is not None)
    assert paused is not None and paused.step == objective.rung_steps[0]
    assert driver.value is None
    assert driver.advance(lambda result: False) is None
    assert driver.advance(lambda result: False) is None  # finished: nothing more to run
    assert driver.value == study.trials[0].intermediate_values[objective.schedule.phases[-1].step]
    driver.close()  # after the end: nothing to do


def test_step_driver_close_stops_the_trial_where_it_is() -> None:
    objective = tiny_objective(batch_sizes=(8,))
    study = optuna.create_study(direction="maximize", pruner=objective.make_pruner())
    trial = study.ask()
    driver = StepDriver(objective.run(trial))
    driver.advance(lambda result: result.step == 0)
    driver.close()
    with pytest.raises(RuntimeError, match="cannot advance any more"):
        driver.advance(lambda result: True)
    assert sorted(study.trials[0].intermediate_values) == [0]
